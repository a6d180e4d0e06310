// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../ops/mod.ts";
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { Executor } from "../../graph/executor.ts";
import { Graph } from "../../graph/graph.ts";
import { grad } from "../../graph/grad.ts";
import { makePlan } from "../../graph/plan.ts";
import type { Tensor } from "../../graph/tensor.ts";
import { vjp } from "../../graph/vjp.ts";
import { matmul } from "../../ops/matmul.ts";
import { sum } from "../../ops/sum.ts";
import { checkVjp, randTensor } from "../_grad_check.ts";

const RUNS = 40;
const dim = fc.integer({ min: 1, max: 6 });
const combos = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

/** Operands of `op(a) [m, k] · op(b) [k, n]` in their stored layouts. */
function operands(
  m: number,
  k: number,
  n: number,
  transA: boolean,
  transB: boolean,
  seed: number,
  f32 = false,
): [Tensor<Float64Array>, Tensor<Float64Array>] {
  const a = randTensor(transA ? [k, m] : [m, k], seed);
  const b = randTensor(transB ? [n, k] : [k, n], seed + 1);
  // float32-representable values, so the float32 run differs only by rounding of the sums
  if (f32) { for (const t of [a, b]) t.data = t.data.map(Math.fround); }
  return [a, b];
}

/** `op(a) · op(b)` by the definition, in float64. */
function direct(
  a: Tensor<Float64Array>,
  b: Tensor<Float64Array>,
  m: number,
  k: number,
  n: number,
  transA: boolean,
  transB: boolean,
): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) {
        s += a.data[transA ? p * m + i : i * k + p]! * b.data[transB ? j * k + p : p * n + j]!;
      }
      c[i * n + j] = s;
    }
  }
  return c;
}

for (const [transA, transB] of combos) {
  const tag = `transA=${transA}, transB=${transB}`;

  Deno.test(`matmul forward matches the definition (${tag}), float64 and float32`, () => {
    fc.assert(
      fc.property(dim, dim, dim, fc.integer(), (m, k, n, seed) => {
        const [a, b] = operands(m, k, n, transA, transB, seed, true);
        const want = direct(a, b, m, k, n, transA, transB);
        const out = vjp((x, y) => matmul(x, y, { transA, transB }), a, b).out;
        assert.deepEqual(out.shape, [m, n]);
        for (let i = 0; i < want.length; i++) assert.ok(Math.abs(out.data[i]! - want[i]!) < 1e-12);
        const a32 = { shape: a.shape, data: Float32Array.from(a.data) };
        const b32 = { shape: b.shape, data: Float32Array.from(b.data) };
        const o32 = vjp((x, y) => matmul(x, y, { transA, transB }), a32, b32).out.data;
        for (let i = 0; i < want.length; i++) {
          assert.ok(Math.abs(o32[i]! - want[i]!) < 1e-5 * k, `f32 out[${i}]`);
        }
      }),
      { numRuns: RUNS },
    );
  });

  Deno.test(`matmul vjp matches finite differences (${tag})`, () => {
    fc.assert(
      fc.property(dim, dim, dim, fc.integer(), (m, k, n, seed) => {
        const [a, b] = operands(m, k, n, transA, transB, seed);
        checkVjp((x, y) => matmul(x, y, { transA, transB }), [a, b], {
          seed,
          full: (m * k + k * n) * m * n <= 200,
        });
      }),
      { numRuns: RUNS },
    );
  });
}

Deno.test("matmul contracts over the batch axis at plan time (dW = dyᵀ·x)", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 3]);
  const w = g.input("w", [3, 2]);
  const y = matmul(x, w);
  const [dw] = grad(sum(y), [w]);
  assert.deepEqual(dw!.shape, [3, 2]);
  const ex = new Executor(makePlan(g, { batch: 2, outputs: [y, dw!] }));
  const [yv, dwv] = ex.run({ x: [1, 2, 3, 4, 5, 6], w: [1, 0, 0, 1, 1, 1] });
  assert.deepEqual([...yv!], [4, 5, 10, 11]);
  assert.deepEqual([...dwv!], [5, 5, 7, 7, 9, 9]); // column sums of x, once per output column
});

Deno.test("matmul shape errors name the op, the node and the shapes", () => {
  const g = new Graph();
  const a = g.input("a", [-1, 3]);
  assert.throws(
    () => matmul(a, g.input("b", [4, 2]), { name: "mm" }),
    /matmul "mm": inner sizes differ \(3 and 4\) \(a \[N,3\], b \[4,2\]\)/,
  );
  assert.throws(
    () => matmul(a, g.input("c", [3]), { name: "mv" }),
    /matmul "mv": both operands must be 2-D \(a \[N,3\], b \[3\]\)/,
  );
});
