import "../../ops/mod.ts";
import assert from "node:assert/strict";
import { Executor } from "../../graph/executor.ts";
import { Graph } from "../../graph/graph.ts";
import { makePlan } from "../../graph/plan.ts";
import { packedFirst } from "../../ops/packed_first.ts";

Deno.test("packedFirst reads x[0] of a packed tensor, batch axis included", () => {
  const g = new Graph();
  const x = g.input("x", [2, 3, 2]);
  const y = packedFirst(x);
  assert.deepEqual(y.shape, [3, 2]);
  const ex = new Executor(makePlan(g, { outputs: [y] }));
  assert.deepEqual([...ex.run({ x: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] })[0]!], [
    1,
    2,
    3,
    4,
    5,
    6,
  ]);
  assert.throws(() => packedFirst(g.input("v", [4])), /at least one tensor along axis 0/);
});
