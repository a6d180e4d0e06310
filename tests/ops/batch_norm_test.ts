import "../../ops/mod.ts";
import assert from "node:assert/strict";
import fc from "npm:fast-check@3.23.2";
import { Executor } from "../../graph/executor.ts";
import { Graph } from "../../graph/graph.ts";
import { makePlan } from "../../graph/plan.ts";
import { vjp } from "../../graph/vjp.ts";
import { batchNorm, batchNormParts } from "../../ops/batch_norm.ts";
import { checkVjp, randTensor } from "../_grad_check.ts";

/** [N, C] or [N, C, H, W] with at least two values per channel. */
const bnShape = fc.oneof(
  fc.tuple(fc.integer({ min: 2, max: 5 }), fc.integer({ min: 1, max: 3 })).map(([n, c]) => [n, c]),
  fc.tuple(
    fc.integer({ min: 1, max: 3 }),
    fc.integer({ min: 1, max: 3 }),
    fc.integer({ min: 1, max: 3 }),
    fc.integer({ min: 2, max: 3 }),
  ).map(([n, c, h, w]) => [n, c, h, w]),
);

/** Normalises channel axis 1 of x with its batch mean and biased variance, directly. */
export function directBatchNorm(
  x: Float64Array,
  shape: number[],
  w: ArrayLike<number> | null,
  b: ArrayLike<number> | null,
  eps: number,
): Float64Array {
  const [n, c] = shape as [number, number];
  const inner = shape.slice(2).reduce((a, d) => a * d, 1);
  const y = new Float64Array(x.length);
  for (let ch = 0; ch < c; ch++) {
    const idx: number[] = [];
    for (let i = 0; i < n; i++) for (let k = 0; k < inner; k++) idx.push((i * c + ch) * inner + k);
    const mu = idx.reduce((s, i) => s + x[i]!, 0) / idx.length;
    const v = idx.reduce((s, i) => s + (x[i]! - mu) ** 2, 0) / idx.length;
    for (const i of idx) {
      y[i] = ((x[i]! - mu) / Math.sqrt(v + eps)) * (w ? w[ch]! : 1) + (b ? b[ch]! : 0);
    }
  }
  return y;
}

Deno.test("batchNorm vjp in x, weight and bias matches finite differences", () => {
  fc.assert(
    fc.property(bnShape, fc.boolean(), fc.integer(), (s, affine, seed) => {
      const x = randTensor(s, seed, -2, 2);
      const w = randTensor([s[1]!], seed + 1, 0.5, 2), b = randTensor([s[1]!], seed + 2);
      if (affine) {
        checkVjp((v, wn, bn) => batchNorm(v, wn, bn, { eps: 0.1 }), [x, w, b], {
          seed,
          rtol: 1e-5,
          full: x.data.length <= 8,
        });
      } else checkVjp((v) => batchNorm(v, null, null), [x], { seed, rtol: 1e-5 });
    }),
    { numRuns: 50 },
  );
});

Deno.test("batchNorm forward is the direct per-channel normalisation", () => {
  fc.assert(
    fc.property(
      bnShape,
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.integer(),
      (s, eps, seed) => {
        const x = randTensor(s, seed, -3, 3);
        const w = randTensor([s[1]!], seed + 1), b = randTensor([s[1]!], seed + 2);
        const got = vjp((v, wn, bn) => batchNorm(v, wn, bn, { eps }), x, w, b).out.data;
        const want = directBatchNorm(x.data, s, w.data, b.data, eps);
        got.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) < 1e-9, `${v} vs ${want[i]}`));
      },
    ),
    { numRuns: 50 },
  );
});

Deno.test("batchNorm with running estimates uses them in evaluation mode only", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 2]);
  const rm = g.input("rm", [2]), rv = g.input("rv", [2]);
  const { y, mean, var: variance } = batchNormParts(x, null, null, {
    eps: 0,
    running: { mean: rm, var: rv },
  });
  const ex = new Executor(makePlan(g, { batch: 2, outputs: [y, mean, variance] }));
  const feeds = { x: [1, 10, 3, 30], rm: [0, 10], rv: [4, 25] };
  const [train, m, v] = ex.run(feeds);
  assert.deepEqual([...train!], [-1, -1, 1, 1]);
  assert.deepEqual([...m!], [2, 20]);
  assert.deepEqual([...v!], [1, 100]);
  assert.deepEqual([...ex.run(feeds, { training: false })[0]!], [0.5, 0, 1.5, 4]);
  assert.deepEqual([...ex.run(feeds)[0]!], [-1, -1, 1, 1]);
});

Deno.test("batchNorm errors name the node and the shapes", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 3, 4, 4]);
  assert.throws(
    () => batchNorm(x, g.input("w", [4]), null, { name: "bn1" }),
    /batchNorm "bn1": weight has shape \[4\] but x \[N,3,4,4\] has 3 channels/,
  );
  assert.throws(() => batchNorm(g.input("v", [-1]), null, null), /must have a channel axis 1/);
});
