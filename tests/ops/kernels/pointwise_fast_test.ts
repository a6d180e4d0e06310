import assert from "node:assert/strict";
// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../../ops/mod.ts";
import fc from "npm:fast-check@3.23.2";
import { Executor } from "../../../graph/executor.ts";
import { Graph } from "../../../graph/graph.ts";
import { grad } from "../../../graph/grad.ts";
import { makePlan } from "../../../graph/plan.ts";
import { maxPool2d } from "../../../ops/max_pool2d.ts";
import { mul } from "../../../ops/mul.ts";
import { relu } from "../../../ops/relu.ts";
import { sum } from "../../../ops/sum.ts";
import { rng } from "../../_grad_check.ts";

// Runs f and its gradient at float32 with the given tier; returns [y, dx].
function run(
  f: (x: ReturnType<Graph["input"]>) => ReturnType<Graph["input"]>,
  shape: number[],
  x: Float32Array,
  w: Float32Array,
  tier: "ref" | "ts" | "wasm",
): [number[], number[]] {
  const g = new Graph();
  const xn = g.input("x", shape);
  const y = f(xn);
  const wn = g.input("w", y.shape);
  const [dx] = grad(sum(mul(y, wn)), [xn]);
  const ex = new Executor(makePlan(g, { outputs: [y, dx!] }), { tier });
  const [yv, dxv] = ex.run({ x, w });
  // -0 and 0 are the same number; deepEqual would tell them apart
  return [[...yv!].map((v) => v + 0), [...dxv!].map((v) => v + 0)];
}

// values on a coarse grid so that ties and exact zeros are common
function grid(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => Math.round((r() - 0.5) * 8) / 4);
}

// "wasm" runs the SIMD module on the executor's arena (the TS kernels where it is missing)
for (const tier of ["ts", "wasm"] as const) {
  Deno.test(`${tier} relu and its backward equal the reference loops, ties, zeros and NaN included`, () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.integer(), (n, seed) => {
        const x = grid(n, seed), w = grid(n, seed + 1);
        x[0] = -0; // the sign of zero must not leak through
        if (seed % 4 === 0) x[Math.abs(seed) % n] = NaN;
        assert.deepEqual(
          run((v) => relu(v), [n], x, w, tier),
          run((v) => relu(v), [n], x, w, "ref"),
        );
      }),
      { numRuns: 60 },
    );
  });
}

for (const tier of ["ts", "wasm"] as const) {
  Deno.test(`${tier} 2x2 max-pool and its backward equal the reference, first maximum on ties, NaN winning`, () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 2, max: 9 }),
        // from 8 wide the wasm kernel takes four windows at a time, the last group overlapping
        fc.integer({ min: 2, max: 21 }),
        fc.integer(),
        (c, h, w, seed) => {
          const shape = [2, c, h, w];
          const n = 2 * c * h * w;
          const x = grid(n, seed);
          // a NaN now and then: it must win its window and take the gradient, as in the reference
          if (seed % 3 === 0) x[Math.abs(seed) % n] = NaN;
          if (seed % 5 === 0) x[Math.abs(seed >> 3) % n] = NaN;
          const f = (v: ReturnType<Graph["input"]>) => maxPool2d(v, { size: 2 });
          const yShape = 2 * c * Math.floor(h / 2) * Math.floor(w / 2);
          const wv = grid(yShape, seed + 7);
          assert.deepEqual(run(f, shape, x, wv, tier), run(f, shape, x, wv, "ref"));
        },
      ),
      { numRuns: 80 },
    );
  });
}

Deno.test("branch-free max-pool keeps the exact maximum for values far apart in magnitude", () => {
  const x = Float32Array.from([
    1e-30,
    3e38,
    -2e-40,
    7,
    1,
    1 + 2 ** -23,
    1,
    1,
    -5,
    -5,
    -1e30,
    -1e-30,
  ]);
  const shape = [1, 3, 2, 2];
  const w = Float32Array.from([1, 2, 3]);
  const f = (v: ReturnType<Graph["input"]>) => maxPool2d(v, { size: 2 });
  assert.deepEqual(run(f, shape, x, w, "ts"), run(f, shape, x, w, "ref"));
  // eight wide, so the wasm kernel takes it
  const wide = Float32Array.from({ length: 2 * 8 * 3 }, (_, i) => x[i % x.length]! * (i % 5 - 2));
  const ww = Float32Array.from({ length: 4 * 3 }, (_, i) => i - 4);
  const g = (v: ReturnType<Graph["input"]>) => maxPool2d(v, { size: 2 });
  assert.deepEqual(run(g, [1, 3, 2, 8], wide, ww, "wasm"), run(g, [1, 3, 2, 8], wide, ww, "ref"));
});
