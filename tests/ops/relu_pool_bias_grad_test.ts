// The bias gradient of the fused bias + ReLU + pool, from the codes and dy,
// against the unfused sum over dz on each tier: the same additions in the
// same order, so the same bits (values with fractions, where order matters;
// ±0, ±inf and NaN too).
import "../../ops/mod.ts";
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { Graph } from "../../graph/graph.ts";
import { sumKernel } from "../../ops/_reduce.ts";
import { biasReluPool } from "../../ops/bias_relu_pool.ts";
import { reluPoolBiasGrad } from "../../ops/relu_pool_bias_grad.ts";
import {
  biasReluPoolRef,
  reluPoolBackwardRef,
  reluPoolBiasGradRef,
} from "../../ops/kernels/bias_relu_pool_ref.ts";
import { reluPoolBiasGradWasm } from "../../ops/kernels/bias_relu_pool_wasm.ts";
import { elementwiseWasm, wasmArenaBuffer } from "../../ops/kernels/elementwise_wasm.ts";
import { rng } from "../_grad_check.ts";

Deno.test("reluPoolBiasGrad: [C], and errors that name the bad shapes", () => {
  const g = new Graph();
  const packed = biasReluPool(
    g.input("z", [-1, 4, 9, 8]),
    g.param("b", [4], { kind: "constant", value: 0 }),
  );
  assert.deepEqual(reluPoolBiasGrad(packed, g.input("dy", [-1, 4, 4, 4]), [9, 8]).shape, [4]);
  assert.throws(
    () => reluPoolBiasGrad(packed, g.input("dy2", [-1, 4, 4, 3]), [9, 8]),
    /dy must have the pooled shape/,
  );
});

function draw(r: () => number, n: number, special: number): Float32Array {
  const pick = [NaN, Infinity, -Infinity, -0, 0];
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = r() < special
      ? pick[Math.floor(r() * pick.length)]!
      : (r() - 0.5) * 2 ** (r() * 80 - 40);
  }
  return out;
}

const sizes = fc.record({
  n: fc.integer({ min: 1, max: 3 }),
  c: fc.integer({ min: 1, max: 4 }),
  h: fc.integer({ min: 2, max: 13 }),
  w: fc.integer({ min: 2, max: 26 }),
  special: fc.constantFrom(0, 0, 0.02, 0.2),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
});

Deno.test("the reference order equals the reference sum over dz bit for bit, in float32 and float64", () => {
  fc.assert(
    fc.property(sizes, ({ n, c, h, w, special, seed }) => {
      const d = { n, c, h, w, ph: h >> 1, pw: w >> 1 };
      const r = rng(seed);
      const half = n * c * d.ph * d.pw;
      for (const F of [Float32Array, Float64Array]) {
        const z = F.from(draw(r, n * c * h * w, special / 4));
        const b = F.from(draw(r, c, 0));
        const dy = F.from(draw(r, half, special));
        const packed = new F(2 * half), dz = new F(z.length);
        biasReluPoolRef(z, b, packed, d);
        reluPoolBackwardRef(packed, dy, dz, d);
        const want = new F(c), got = new F(c).fill(NaN);
        sumKernel(dz, [n, c, h, w], [0, 2, 3], want);
        reluPoolBiasGradRef(packed, dy, got, d, "ref");
        assert.deepEqual([...got], [...want]);
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("the wasm order (SIMD kernel for W a multiple of 8, else the reference in that order) equals sum_runs over dz", () => {
  const buf = wasmArenaBuffer(1 << 22);
  if (!buf) return; // no WebAssembly SIMD here: the sum and this op both add in the reference order
  const k = elementwiseWasm(new Float32Array(buf, 0, 1))!;
  let simd = 0;
  fc.assert(
    fc.property(
      sizes.chain((s) => fc.constantFrom(s, { ...s, w: 8 * Math.ceil(s.w / 8) })),
      ({ n, c, h, w, special, seed }) => {
        if (h * w < 8) return;
        const d = { n, c, h, w, ph: h >> 1, pw: w >> 1 };
        const r = rng(seed);
        const half = n * c * d.ph * d.pw, len = n * c * h * w;
        let at = 64;
        const view = (k: number) => {
          const a = new Float32Array(buf, at, k);
          at += 4 * k + 4 * Math.floor(r() * 4);
          return a;
        };
        const packed = view(2 * half), dy = view(half), dz = view(len);
        const want = view(c), got = view(c);
        const z = draw(r, len, special / 4);
        biasReluPoolRef(z, draw(r, c, 0), packed, d);
        dy.set(draw(r, half, special));
        reluPoolBackwardRef(packed, dy, dz, d);
        want.fill(0);
        k.sum_runs(dz.byteOffset, want.byteOffset, n, c, h * w);
        got.fill(NaN);
        const run = reluPoolBiasGradWasm(d, packed, dy, got);
        assert.equal(run.order, "runs");
        assert.equal(run.done, w % 8 === 0);
        if (run.done) simd++;
        else reluPoolBiasGradRef(packed, dy, got, d, "runs");
        assert.deepEqual([...got], [...want]);
      },
    ),
    { numRuns: 300 },
  );
  assert.ok(simd > 0, "the SIMD kernel ran");
});

Deno.test("the reference order puts dz's last H·W mod 4 values on the first chain, as the sum does", () => {
  // 6x5: dz has 30 values, the last two a tail; window (2, 1)'s bottom right
  // (index 28) is in it. Values where the association shows: 1 - 2^60 + 2^60.
  const d = { n: 1, c: 1, h: 6, w: 5, ph: 3, pw: 2 };
  const packed = new Float64Array(12);
  // codes: window (0,0) top right (1 + 4), (1,0) and (2,1) bottom right (1)
  packed.set([5, 0, 1, 0, 0, 1], 6);
  const dy = Float64Array.from([2 ** 60, 0, 1, 0, 0, -(2 ** 60)]);
  const dz = new Float64Array(30), want = new Float64Array(1), got = new Float64Array(1);
  reluPoolBackwardRef(packed, dy, dz, d);
  assert.deepEqual([1, 16, 28].map((i) => dz[i]), [2 ** 60, 1, -(2 ** 60)]);
  sumKernel(dz, [1, 1, 6, 5], [0, 2, 3], want);
  reluPoolBiasGradRef(packed, dy, got, d, "ref");
  assert.deepEqual([...got], [...want]);
  // another association gives another sum: the check above can fail
  assert.notEqual(1 + (2 ** 60 - 2 ** 60), want[0]);
});
