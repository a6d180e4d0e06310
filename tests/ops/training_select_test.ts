import "../../ops/mod.ts";
import assert from "node:assert/strict";
import { Executor } from "../../graph/executor.ts";
import { Graph } from "../../graph/graph.ts";
import { makePlan } from "../../graph/plan.ts";
import { trainingSelect } from "../../ops/training_select.ts";
import { mul } from "../../ops/mul.ts";
import { checkVjp, randTensor } from "../_grad_check.ts";

Deno.test("training_select vjp matches finite differences (training mode: the first input)", () => {
  for (const seed of [1, 2, 3]) {
    const a = randTensor([2, 3], seed), b = randTensor([2, 3], seed + 10);
    checkVjp((x, y) => mul(trainingSelect(x, y), x), [a, b], { seed, full: true });
  }
});

Deno.test("training_select picks by mode and reruns when the mode changes", () => {
  const g = new Graph();
  const y = trainingSelect(g.input("a", [2]), g.input("b", [2]));
  const ex = new Executor(makePlan(g, { outputs: [y] }));
  assert.deepEqual([...ex.run({ a: [1, 2], b: [3, 4] })[0]!], [1, 2]);
  assert.deepEqual([...ex.run({}, { training: false })[0]!], [3, 4]);
  assert.deepEqual([...ex.run({}, { training: true })[0]!], [1, 2]);
  assert.equal(ex.kernelRuns[y.id], 3);
});
