import "../../ops/mod.ts";
import assert from "node:assert/strict";
import { Executor } from "../../graph/executor.ts";
import { Graph } from "../../graph/graph.ts";
import { makePlan } from "../../graph/plan.ts";
import { take } from "../../ops/take.ts";

Deno.test("take copies a contiguous run and reshapes it", () => {
  const g = new Graph();
  const x = g.input("x", [2, 5]);
  const y = take(x, { offset: 3, shape: [2, 3] });
  const ex = new Executor(makePlan(g, { outputs: [y] }));
  assert.deepEqual([...ex.run({ x: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] })[0]!], [3, 4, 5, 6, 7, 8]);
});

Deno.test("take rejects runs past the end, bad shapes and batch axes", () => {
  const g = new Graph();
  const x = g.input("x", [6]);
  assert.throws(
    () => take(x, { offset: 4, shape: [3] }),
    /offset 4 and shape \[3\] run past the 6/,
  );
  assert.throws(() => take(x, { offset: 0, shape: [1.5] }), /whole sizes/);
  assert.throws(() => take(g.input("b", [-1, 3]), { offset: 0, shape: [3] }), /batch axis/);
});
