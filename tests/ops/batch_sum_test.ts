// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../ops/mod.ts";
import assert from "node:assert/strict";
import { Executor } from "../../graph/executor.ts";
import { Graph } from "../../graph/graph.ts";
import { grad } from "../../graph/grad.ts";
import { makePlan } from "../../graph/plan.ts";
import { batchSum } from "../../ops/batch_sum.ts";
import { mul } from "../../ops/mul.ts";
import { sum } from "../../ops/sum.ts";
import { checkVjp, randTensor } from "../_grad_check.ts";

Deno.test("batch_sum over one whole batch is the identity, and its VJP passes finite differences", () => {
  for (const [shape, seed] of [[[3], 1], [[2, 3], 2], [[1], 3]] as const) {
    checkVjp((x) => batchSum(x), [randTensor([...shape], seed)], { full: true });
    // composed with a batch sum, as batch statistics use it
    checkVjp((x) => mul(batchSum(sum(x, { axes: [0] })), sum(x, { axes: [0] })), [
      randTensor([4, ...shape], seed + 10),
    ]);
  }
});

Deno.test("batch_sum rejects a value with a batch axis, naming the op and the shape", () => {
  const g = new Graph();
  assert.throws(
    () => batchSum(g.input("x", [-1, 3])),
    /batch_sum "batch_sum_\d+": batch_sum sums a value that has no batch axis, got \[N,3\]/,
  );
});

Deno.test("an executor given a collective handler calls it for batch_sum nodes on every run", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 2]);
  const s = batchSum(sum(x, { axes: [0] }), { name: "s" });
  const y = mul(s, s);
  const ex = new Executor(makePlan(g, { batch: 2, outputs: [y] }));
  const calls: number[] = [];
  const handler = (node: number, local: ArrayLike<number>, out: Float32Array | Float64Array) => {
    calls.push(node);
    // as if another micro-batch held the same values again
    for (let i = 0; i < out.length; i++) out[i] = 2 * local[i]!;
  };
  assert.deepEqual([...ex.run({ x: [1, 2, 3, 4] }, { collective: handler })[0]!], [64, 144]);
  // unchanged inputs, but a collective's value comes from outside: it reruns
  assert.deepEqual([...ex.run({}, { collective: handler })[0]!], [64, 144]);
  assert.deepEqual(calls, [s.id, s.id]);
  // without a handler, the plain value: the identity over this batch
  assert.deepEqual([...ex.run({ x: [1, 2, 3, 4] })[0]!], [16, 36]);
});

Deno.test("the VJP of batch_sum is a batch_sum of the cotangent, marked as one", () => {
  const g = new Graph();
  const w = g.param("w", [3], { kind: "constant", value: 1 });
  const loss = sum(mul(batchSum(w), w));
  const [dw] = grad(loss, [w]);
  const marked = g.nodes.filter((r) => r.op === "batch_sum" && r.attrs.cotangent === true);
  assert.equal(marked.length, 1);
  assert.ok(dw);
});
