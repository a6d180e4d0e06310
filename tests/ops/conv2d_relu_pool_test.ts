import "../../ops/mod.ts";
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { Graph } from "../../graph/graph.ts";
import { conv2dReluPool } from "../../ops/conv2d_relu_pool.ts";
import { conv2dReluPoolRef } from "../../ops/kernels/conv2d_relu_pool_ref.ts";
import { convReluPoolWasm } from "../../ops/kernels/conv2d_relu_pool_wasm.ts";
import { wasmArenaBuffer } from "../../ops/kernels/elementwise_wasm.ts";
import { rng } from "../_grad_check.ts";

Deno.test("conv2dReluPool: packed [2, N, OC, PH, PW] shape, and errors that name the bad shapes", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 1, 9, 8]);
  const w = g.param("w", [4, 1, 3, 3], { kind: "constant", value: 0 });
  const b = g.param("b", [4], { kind: "constant", value: 0 });
  assert.deepEqual(conv2dReluPool(x, w, b).shape, [2, -1, 4, 3, 3]);
  const b5 = g.param("b5", [5], { kind: "constant", value: 0 });
  assert.throws(() => conv2dReluPool(x, w, b5), /bias must be \[4\].*\[5\]/);
  const w2 = g.param("w2", [4, 2, 3, 3], { kind: "constant", value: 0 });
  assert.throws(() => conv2dReluPool(x, w2, b), /1 channels but the filter expects 2/);
});

Deno.test("the wasm fused forward writes the reference's pooled values and codes (ties, zeros, NaN)", () => {
  const buf = wasmArenaBuffer(1 << 20);
  if (!buf) return; // no WebAssembly SIMD here: the op runs the reference
  fc.assert(
    fc.property(
      fc.record({
        n: fc.integer({ min: 1, max: 3 }),
        oc: fc.integer({ min: 1, max: 4 }),
        h: fc.integer({ min: 4, max: 20 }),
        w: fc.integer({ min: 10, max: 30 }),
        nans: fc.integer({ min: 0, max: 2 }),
        seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      }),
      ({ n, oc, h, w, nans, seed }) => {
        const d = { n, c: 1, h, w, oc, kh: 3, kw: 3, ph: (h - 2) >> 1, pw: (w - 2) >> 1 };
        const r = rng(seed);
        const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
        // NaN-prefilled output: every element must be written
        const x = new Float32Array(buf, 64, n * h * w);
        for (let i = 0; i < x.length; i++) x[i] = int(-2, 2);
        for (let i = 0; i < nans; i++) x[int(0, x.length - 1)] = NaN;
        const len = 2 * n * oc * d.ph * d.pw;
        const at = 64 + Math.ceil(x.length / 16) * 64;
        const packed = new Float32Array(buf, at, len).fill(NaN);
        const wt = new Float32Array(oc * 9).map(() => int(-1, 1));
        const bias = new Float32Array(oc).map(() => int(-1, 1));
        const k = convReluPoolWasm(d, [x, packed]);
        assert.ok(k);
        k.forward(x, wt, bias, packed);
        const want = new Float32Array(len);
        conv2dReluPoolRef(x, wt, bias, want, d);
        // as numbers: a NaN may carry another sign or payload
        assert.deepEqual([...packed], [...want]);
      },
    ),
    { numRuns: 80 },
  );
});

Deno.test("the wasm kernels' hasNaN finds a NaN anywhere in x, the last few floats too", () => {
  const buf = wasmArenaBuffer(1 << 20);
  if (!buf) return; // no WebAssembly SIMD here
  const d = { n: 1, c: 1, h: 10, w: 10, oc: 1, kh: 3, kw: 3, ph: 4, pw: 4 };
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 3000 }),
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      (len, nans, seed) => {
        const r = rng(seed);
        // an odd start: the scan must not need aligned vectors
        const x = new Float32Array(buf, 4 * (1 + Math.floor(r() * 7)), len);
        for (let i = 0; i < len; i++) {
          x[i] = [0, -0, 1.5, Infinity, -Infinity][Math.floor(r() * 5)]!;
        }
        for (let k = 0; k < nans; k++) x[Math.floor(r() * len)] = NaN;
        const k = convReluPoolWasm(d, [x])!;
        assert.equal(k.hasNaN(x), x.some(Number.isNaN));
      },
    ),
    { numRuns: 300 },
  );
  const x = new Float32Array(buf, 0, 16);
  assert.throws(() => convReluPoolWasm(d, [x])!.hasNaN(new Float32Array(16)), /outside the arena/);
});
