// The fused bias + ReLU + 2×2 max-pool (forward) and max-pool backward +
// ReLU backward, against the composition of the unfused reference kernels
// they replace, with ties, zeros, signed zeros, infinities and NaN.
import "../../ops/mod.ts";
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { Graph } from "../../graph/graph.ts";
import { biasReluPool } from "../../ops/bias_relu_pool.ts";
import { biasReluPoolBackward } from "../../ops/bias_relu_pool_backward.ts";
import {
  type BiasReluPoolDims,
  biasReluPoolRef,
  reluPoolBackwardRef,
} from "../../ops/kernels/bias_relu_pool_ref.ts";
import { biasReluPoolWasm } from "../../ops/kernels/bias_relu_pool_wasm.ts";
import { wasmArenaBuffer } from "../../ops/kernels/elementwise_wasm.ts";
import { maxPool2dBackwardRef, maxPool2dRef } from "../../ops/kernels/max_pool2d_ref.ts";
import { reluBackwardRef, reluRef } from "../../ops/kernels/relu_ref.ts";
import { rng } from "../_grad_check.ts";

Deno.test("biasReluPool and its backward: shapes, and errors that name the bad shapes", () => {
  const g = new Graph();
  const z = g.input("z", [-1, 4, 9, 8]);
  const b = g.param("b", [4], { kind: "constant", value: 0 });
  const packed = biasReluPool(z, b);
  assert.deepEqual(packed.shape, [2, -1, 4, 4, 4]);
  const dy = g.input("dy", [-1, 4, 4, 4]);
  assert.deepEqual(biasReluPoolBackward(packed, dy, [9, 8]).shape, [-1, 4, 9, 8]);
  const b5 = g.param("b5", [5], { kind: "constant", value: 0 });
  assert.throws(() => biasReluPool(z, b5), /bias must be \[4\].*\[5\]/);
  assert.throws(() => biasReluPool(g.input("z1", [-1, 4, 1, 8]), b), /smaller than one 2x2/);
  assert.throws(() => biasReluPoolBackward(packed, dy, [11, 8]), /does not pool a 11x8/);
  const dy3 = g.input("dy3", [-1, 4, 3, 4]);
  assert.throws(() => biasReluPoolBackward(packed, dy3, [9, 8]), /dy must have the pooled shape/);
});

// Values drawn from a small set so windows tie, hit zero and -0, and carry
// infinities and NaN.
function draw(r: () => number, n: number, special: number): Float32Array {
  const pick = [NaN, Infinity, -Infinity, -0, 0];
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = r() < special ? pick[Math.floor(r() * pick.length)]! : Math.floor(r() * 7) - 3;
  }
  return out;
}

/** The unfused forward and backward, reference kernel by reference kernel, in float32. */
function unfused(z: Float32Array, b: Float32Array, dy: Float32Array, d: BiasReluPoolDims) {
  const { n, c, h, w, ph, pw } = d;
  const v = new Float32Array(z.length);
  for (let i = 0; i < z.length; i++) v[i] = z[i]! + b[Math.floor(i / (h * w)) % c]!;
  const r = new Float32Array(v.length);
  reluRef(v, r);
  const pd = { planes: n * c, h, w, oh: ph, ow: pw, size: 2, stride: 2, padding: 0 };
  const y = new Float32Array(n * c * ph * pw);
  maxPool2dRef(r, y, pd);
  const dr = new Float32Array(v.length);
  maxPool2dBackwardRef(r, dy, dr, pd);
  const dz = new Float32Array(v.length);
  reluBackwardRef(v, dr, dz);
  return { y, dz };
}

const sizes = fc.record({
  n: fc.integer({ min: 1, max: 3 }),
  c: fc.integer({ min: 1, max: 4 }),
  h: fc.integer({ min: 2, max: 13 }),
  w: fc.integer({ min: 2, max: 21 }),
  special: fc.constantFrom(0, 0.05, 0.3),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
});

Deno.test("the fused reference kernels equal the unfused reference ops bit for bit (ties, zeros, ±∞, NaN)", () => {
  fc.assert(
    fc.property(sizes, ({ n, c, h, w, special, seed }) => {
      const d = { n, c, h, w, ph: h >> 1, pw: w >> 1 };
      const r = rng(seed);
      const z = draw(r, n * c * h * w, special);
      const b = draw(r, c, special / 2);
      const dy = draw(r, n * c * d.ph * d.pw, special);
      const want = unfused(z, b, dy, d);
      const half = want.y.length;
      const packed = new Float32Array(2 * half).fill(NaN);
      biasReluPoolRef(z, b, packed, d);
      assert.deepEqual([...packed.subarray(0, half)], [...want.y]);
      const dz = new Float32Array(z.length).fill(NaN);
      reluPoolBackwardRef(packed, dy, dz, d);
      // Object.is equality: -0 and +0 differ, NaN equals NaN
      assert.deepEqual([...dz], [...want.dz]);
    }),
    { numRuns: 300 },
  );
});

Deno.test("the fused reference kernels in float64 (gradient checks) equal the unfused ones", () => {
  const d = { n: 2, c: 3, h: 7, w: 6, ph: 3, pw: 3 };
  const r = rng(5);
  const z = Float64Array.from({ length: 2 * 3 * 42 }, () => Math.floor(r() * 5) - 2 + r() / 3);
  const b = Float64Array.from([0.25, -0.5, 1 / 3]);
  const dy = Float64Array.from({ length: 2 * 3 * 9 }, () => r() - 0.5);
  const packed = new Float64Array(2 * 54);
  biasReluPoolRef(z, b, packed, d);
  const v = z.map((x, i) => x + b[Math.floor(i / 42) % 3]!);
  const rl = new Float64Array(v.length), y = new Float64Array(54), dr = new Float64Array(v.length);
  reluRef(v, rl);
  const pd = { planes: 6, h: 7, w: 6, oh: 3, ow: 3, size: 2, stride: 2, padding: 0 };
  maxPool2dRef(rl, y, pd);
  maxPool2dBackwardRef(rl, dy, dr, pd);
  const want = new Float64Array(v.length), dz = new Float64Array(v.length);
  reluBackwardRef(v, dr, want);
  reluPoolBackwardRef(packed, dy, dz, d);
  assert.deepEqual([...packed.subarray(0, 54)], [...y]);
  assert.deepEqual([...dz], [...want]);
});

Deno.test("the wasm fused kernels write the reference's packed output and dz on the arena (NaN-prefilled)", () => {
  // kernel scratch for the bias, as a plan reserves it
  const buf = wasmArenaBuffer(1 << 22, 64);
  if (!buf) return; // no WebAssembly SIMD here: the ops run the reference
  fc.assert(
    fc.property(
      sizes.filter(({ w }) => w >= 8),
      ({ n, c, h, w, special, seed }) => {
        const d = { n, c, h, w, ph: h >> 1, pw: w >> 1 };
        const r = rng(seed);
        const len = n * c * h * w, half = n * c * d.ph * d.pw;
        // odd offsets (in floats) too: the arena's tensors start anywhere
        let at = 4 * (1 + Math.floor(r() * 3));
        const view = (k: number) => {
          const a = new Float32Array(buf, at, k);
          at += 4 * k + 4 * Math.floor(r() * 5);
          return a;
        };
        const z = view(len), packed = view(2 * half), dy = view(half), dz = view(len);
        z.set(draw(r, len, special));
        dy.set(draw(r, half, special));
        const b = draw(r, c, special / 2);
        packed.fill(NaN);
        dz.fill(NaN);
        const k = biasReluPoolWasm(d, [z, packed, dy, dz]);
        assert.ok(k);
        assert.ok(k.forward(z, b, packed));
        const want = new Float32Array(2 * half);
        biasReluPoolRef(z, b, want, d);
        // as numbers: a NaN may carry another sign or payload
        assert.deepEqual([...packed], [...want]);
        k.backward(packed, dy, dz);
        const wantDz = new Float32Array(len);
        reluPoolBackwardRef(want, dy, wantDz, d);
        assert.deepEqual([...dz], [...wantDz]);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("biasReluPoolWasm declines what it does not serve: narrow outputs, arrays outside one arena", () => {
  const buf = wasmArenaBuffer(1 << 16);
  if (!buf) return;
  const a = new Float32Array(buf, 0, 64), other = new Float32Array(64);
  assert.equal(biasReluPoolWasm({ n: 1, c: 1, h: 8, w: 7, ph: 4, pw: 3 }, [a]), null);
  assert.equal(biasReluPoolWasm({ n: 1, c: 1, h: 8, w: 8, ph: 4, pw: 4 }, [a, other]), null);
  const k = biasReluPoolWasm({ n: 1, c: 1, h: 8, w: 8, ph: 4, pw: 4 }, [a]);
  assert.ok(k);
  // no kernel scratch past the buffers for the bias: the op runs the reference
  assert.equal(k.forward(a, new Float32Array(1), new Float32Array(buf, 256, 32)), false);
});
