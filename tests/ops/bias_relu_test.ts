// The fused bias + ReLU against the unfused add and ReLU reference kernels,
// with ties, zeros, signed zeros, infinities and NaN.
import "../../ops/mod.ts";
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { Graph } from "../../graph/graph.ts";
import { biasRelu } from "../../ops/bias_relu.ts";
import { biasReluRef } from "../../ops/kernels/bias_relu_pool_ref.ts";
import { biasReluWasm } from "../../ops/kernels/bias_relu_pool_wasm.ts";
import { wasmArenaBuffer } from "../../ops/kernels/elementwise_wasm.ts";
import { reluRef } from "../../ops/kernels/relu_ref.ts";
import { rng } from "../_grad_check.ts";

Deno.test("biasRelu: z's shape, and errors that name the bad shapes", () => {
  const g = new Graph();
  const z = g.input("z", [-1, 4, 5, 3]);
  assert.deepEqual(biasRelu(z, g.param("b", [4], { kind: "constant", value: 0 })).shape, [
    -1,
    4,
    5,
    3,
  ]);
  const b3 = g.param("b3", [3], { kind: "constant", value: 0 });
  assert.throws(() => biasRelu(z, b3), /bias must be \[4\].*\[3\]/);
  assert.throws(() => biasRelu(g.input("v", [4]), b3), /at least 2-D/);
});

function draw(r: () => number, n: number, special: number): Float32Array {
  const pick = [NaN, Infinity, -Infinity, -0, 0];
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = r() < special ? pick[Math.floor(r() * pick.length)]! : Math.floor(r() * 7) - 3 + r();
  }
  return out;
}

const sizes = fc.record({
  n: fc.integer({ min: 1, max: 3 }),
  c: fc.integer({ min: 1, max: 5 }),
  inner: fc.integer({ min: 1, max: 40 }),
  special: fc.constantFrom(0, 0.05, 0.3),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
});

/** The unfused add (bias broadcast along axis 1, float32) then ReLU. */
function unfused(z: Float32Array, b: Float32Array, c: number, inner: number): Float32Array {
  const v = new Float32Array(z.length);
  for (let i = 0; i < z.length; i++) v[i] = z[i]! + b[Math.floor(i / inner) % c]!;
  const y = new Float32Array(z.length);
  reluRef(v, y);
  return y;
}

Deno.test("the fused bias + ReLU reference equals add then ReLU bit for bit (±0, ±inf, NaN)", () => {
  fc.assert(
    fc.property(sizes, ({ n, c, inner, special, seed }) => {
      const r = rng(seed);
      const z = draw(r, n * c * inner, special), b = draw(r, c, special / 2);
      const y = new Float32Array(z.length).fill(NaN);
      biasReluRef(z, b, y, c, inner);
      assert.deepEqual([...y], [...unfused(z, b, c, inner)]);
    }),
    { numRuns: 300 },
  );
});

Deno.test("the wasm bias + ReLU writes the reference's values on the arena (NaN-prefilled)", () => {
  const buf = wasmArenaBuffer(1 << 20, 64);
  if (!buf) return; // no WebAssembly SIMD here: the op runs the reference
  fc.assert(
    fc.property(sizes, ({ n, c, inner, special, seed }) => {
      const r = rng(seed);
      const len = n * c * inner;
      const z = new Float32Array(buf, 4 * (1 + Math.floor(r() * 4)), len);
      const y = new Float32Array(buf, z.byteOffset + 4 * len + 4 * Math.floor(r() * 4), len);
      z.set(draw(r, len, special));
      y.fill(NaN);
      const b = draw(r, c, special / 2);
      assert.ok(biasReluWasm(z, b, y, c, inner));
      const want = new Float32Array(len);
      biasReluRef(z, b, want, c, inner);
      assert.deepEqual([...y], [...want]);
    }),
    { numRuns: 200 },
  );
});

Deno.test("the wasm bias + ReLU declines arrays outside one arena and an arena without scratch", () => {
  const buf = wasmArenaBuffer(1 << 16);
  if (!buf) return;
  const z = new Float32Array(buf, 0, 8), y = new Float32Array(buf, 64, 8);
  assert.equal(biasReluWasm(z, new Float32Array(2), new Float32Array(8), 2, 4), false);
  // the 64 KiB memory is all buffers: no room to stage the bias
  assert.equal(biasReluWasm(z, new Float32Array(2), y, 2, 4), false);
});
