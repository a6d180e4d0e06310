import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import {
  conv2dBackwardInputRef,
  type Conv2dDims,
  conv2dRef,
} from "../../../ops/kernels/conv2d_ref.ts";
import type { WinogradTile } from "../../../ops/kernels/winograd_ref.ts";
import {
  conv2dBackwardInputWinogradWasm,
  conv2dWinogradWasm,
  setWinogradEnabled,
  useWinogradBuild,
  winogradScratch,
  winogradTileFor,
} from "../../../ops/kernels/winograd_wasm.ts";
import { arenaScratch, wasmArenaBuffer } from "../../../ops/kernels/elementwise_wasm.ts";
import { wasmAvailable } from "../../../ops/kernels/gemm_wasm.ts";
import { uniformArray } from "../../_rng.ts";

// Error bounds relative to S = Σ_c max|x over the tile's α×α input patch| · Σ|w[o, c]| (+|b|):
// the transforms mix a whole patch, so an output whose own window sums small can still carry the
// rounding of its neighbours. Over these property tests both variants stayed within 1e-6 of S
// for F(4×4) (points 0, ±1, 2, −½; Lavin's ±2 went past 2e-6) and 2e-7 for F(2×2) in five runs
// each: the bounds keep a 5× margin. Measured against the float64 reference on mnist-net's conv2
// sizes (C 32, OC 64, 26×26, uniform(−1, 1) data), relative to each output's own Σ|x||w|
// (+|b|): at most 2.2e-7 for F(2×2) and 1.9e-6 for F(4×4) (forward 5.5e-7, backward-to-input
// 1.9e-6; im2col + GEMM 1.9e-7), mean 1.2e-8, 4.8e-8 and 1.5e-8. F(4×4)'s transforms carry
// factors up to 8 (Aᵀ) and its filter transform fractions like 1/15, whence its larger error.
const BOUND: Record<WinogradTile, number> = { 2: 1e-6, 4: 5e-6 };

// S (above) of every output of the convolution x (N, CI, IH, IW) -> (N, CO, YH, YW) with the
// filter magnitudes wsum[o][c] = Σ|w| of the pair, padding pad, tiles of m.
function patchScale(
  x: Float32Array,
  wsum: (o: number, c: number) => number,
  b: Float32Array | null,
  [n, ci, ih, iw, co, yh, yw, pad]: number[],
  m: number,
): Float64Array {
  const out = new Float64Array(n! * co! * yh! * yw!);
  const mx = new Float64Array(ci!);
  for (let s = 0; s < n!; s++) {
    for (let i = 0; i < yh!; i++) {
      for (let j = 0; j < yw!; j++) {
        const r0 = Math.floor(i / m) * m - pad!, c0 = Math.floor(j / m) * m - pad!;
        for (let c = 0; c < ci!; c++) {
          let v = 0;
          for (let r = Math.max(r0, 0); r < Math.min(r0 + m + 2, ih!); r++) {
            for (let q = Math.max(c0, 0); q < Math.min(c0 + m + 2, iw!); q++) {
              v = Math.max(v, Math.abs(x[((s * ci! + c) * ih! + r) * iw! + q]!));
            }
          }
          mx[c] = v;
        }
        for (let o = 0; o < co!; o++) {
          let acc = b ? Math.abs(b[o]!) : 0;
          for (let c = 0; c < ci!; c++) acc += mx[c]! * wsum(o, c);
          out[((s * co! + o) * yh! + i) * yw! + j] = acc;
        }
      }
    }
  }
  return out;
}

const absSum = (w: Float32Array, k: number) =>
  Math.abs(w[k]!) + Math.abs(w[k + 1]!) + Math.abs(w[k + 2]!) + Math.abs(w[k + 3]!) +
  Math.abs(w[k + 4]!) + Math.abs(w[k + 5]!) + Math.abs(w[k + 6]!) + Math.abs(w[k + 7]!) +
  Math.abs(w[k + 8]!);

const ignore = !wasmAvailable();

function dims(n: number, c: number, h: number, w: number, oc: number, p: number): Conv2dDims {
  return {
    n,
    c,
    h,
    w,
    oc,
    kh: 3,
    kw: 3,
    oh: h + 2 * p - 2,
    ow: w + 2 * p - 2,
    stride: 1,
    padding: p,
  };
}

// float32-representable data, so the float64 reference sees the kernel's inputs
const data = (len: number, seed: number) => new Float32Array(uniformArray(len, seed));
const f64 = (a: Float32Array) => Float64Array.from(a);

function assertWithin(
  got: Float32Array,
  want: Float64Array,
  scale: Float64Array,
  bound: number,
  what: string,
): void {
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    assert.ok(
      err <= bound * scale[i]! + 1e-30,
      `${what} at ${i}: ${got[i]} vs ${want[i]} (error ${err}, bound ${bound * scale[i]!})`,
    );
  }
}

const shape = fc.record({
  n: fc.integer({ min: 1, max: 3 }),
  c: fc.integer({ min: 1, max: 9 }),
  oc: fc.integer({ min: 1, max: 11 }),
  h: fc.integer({ min: 3, max: 14 }),
  w: fc.integer({ min: 3, max: 14 }),
  p: fc.integer({ min: 0, max: 2 }),
  m: fc.constantFrom<WinogradTile>(2, 4),
  bias: fc.boolean(),
  seed: fc.integer({ min: 1, max: 1e6 }),
});

function checkForward(d: Conv2dDims, m: WinogradTile, bias: boolean, seed: number) {
  const x = data(d.n * d.c * d.h * d.w, seed), w = data(d.oc * d.c * 9, seed + 1);
  const b = bias ? data(d.oc, seed + 2) : null;
  const y = new Float32Array(d.n * d.oc * d.oh * d.ow).fill(NaN);
  assert.equal(
    conv2dWinogradWasm(x, w, b, y, d, m),
    true,
    `F(${m}) should serve ${JSON.stringify(d)}`,
  );
  const want = new Float64Array(y.length);
  conv2dRef(f64(x), f64(w), b && f64(b), want, d);
  const scale = patchScale(
    x,
    (o, c) => absSum(w, (o * d.c + c) * 9),
    b,
    [d.n, d.c, d.h, d.w, d.oc, d.oh, d.ow, d.padding],
    m,
  );
  assertWithin(y, want, scale, BOUND[m], `forward F(${m}) ${JSON.stringify(d)}`);
}

function checkBackwardInput(d: Conv2dDims, m: WinogradTile, seed: number) {
  const dy = data(d.n * d.oc * d.oh * d.ow, seed), w = data(d.oc * d.c * 9, seed + 1);
  const dx = new Float32Array(d.n * d.c * d.h * d.w).fill(NaN);
  assert.equal(conv2dBackwardInputWinogradWasm(dy, w, dx, d, m), true);
  const want = new Float64Array(dx.length);
  conv2dBackwardInputRef(f64(dy), f64(w), want, d);
  // the pass run: dy (N, OC, OH, OW) padded by 2 − p -> dx (N, C, H, W), channel pairs swapped
  const scale = patchScale(
    dy,
    (c, o) => absSum(w, (o * d.c + c) * 9),
    null,
    [d.n, d.oc, d.oh, d.ow, d.c, d.h, d.w, 2 - d.padding],
    m,
  );
  assertWithin(dx, want, scale, BOUND[m], `backward-input F(${m}) ${JSON.stringify(d)}`);
}

Deno.test({
  name: "conv2dWinogradWasm matches the float64 direct conv within the per-variant bound",
  ignore,
  fn() {
    fc.assert(
      fc.property(shape, ({ n, c, oc, h, w, p, m, bias, seed }) => {
        checkForward(dims(n, c, h, w, oc, p), m, bias, seed);
      }),
      { numRuns: 150 },
    );
  },
});

Deno.test({
  name: "conv2dBackwardInputWinogradWasm matches the float64 direct gradient within the bound",
  ignore,
  fn() {
    fc.assert(
      fc.property(shape, ({ n, c, oc, h, w, p, m, seed }) => {
        checkBackwardInput(dims(n, c, h, w, oc, p), m, seed);
      }),
      { numRuns: 150 },
    );
  },
});

Deno.test({
  name: "Winograd wasm on mnist-net's conv2 sizes (many channels, blocks of tiles, cut tiles)",
  ignore,
  fn() {
    for (const m of [2, 4] as const) {
      checkForward(dims(2, 32, 26, 26, 64, 0), m, true, 3);
      checkForward(dims(1, 20, 27, 13, 24, 1), m, true, 4);
      checkBackwardInput(dims(2, 32, 26, 26, 64, 0), m, 5);
      checkBackwardInput(dims(1, 12, 15, 30, 17, 2), m, 6);
    }
  },
});

Deno.test({
  name: "Winograd wasm: NaN and Inf reach the outputs whose windows read them, others stay finite",
  ignore,
  fn() {
    for (const m of [2, 4] as const) {
      const d = dims(1, 4, 12, 12, 4, 1);
      for (const bad of [NaN, Infinity]) {
        const x = data(4 * 144, 9), w = data(4 * 4 * 9, 10);
        x[2 * 144 + 5 * 12 + 6] = bad; // channel 2, row 5, column 6
        const y = new Float32Array(4 * 144);
        assert.ok(conv2dWinogradWasm(x, w, null, y, d, m));
        for (let o = 0; o < 4; o++) {
          for (let i = 0; i < 12; i++) {
            for (let j = 0; j < 12; j++) {
              const v = y[(o * 12 + i) * 12 + j]!;
              const reads = Math.abs(i - 5) <= 1 && Math.abs(j - 6) <= 1;
              // a tile's transforms mix its whole input patch: a non-finite value spreads to
              // every output of the tiles whose patch holds it, no further
              const ti = Math.floor(i / m) * m - 1, tj = Math.floor(j / m) * m - 1;
              const tileReads = ti <= 5 && 5 <= ti + m + 1 && tj <= 6 && 6 <= tj + m + 1;
              if (reads) {
                assert.ok(!Number.isFinite(v), `F(${m}) ${bad} should reach (${o},${i},${j})`);
              }
              if (!tileReads) {
                assert.ok(Number.isFinite(v), `F(${m}) ${bad} leaked to (${o},${i},${j})`);
              }
            }
          }
        }
      }
    }
  },
});

Deno.test("Winograd wasm declines what it does not serve, and when switched off", () => {
  const x = data(2 * 100, 1), w = data(2 * 2 * 9, 2), y = new Float32Array(2 * 100).fill(7);
  const d = dims(1, 2, 10, 10, 2, 1);
  assert.equal(conv2dWinogradWasm(x, w, null, y, { ...d, stride: 2, oh: 5, ow: 5 }, 2), false);
  assert.equal(
    conv2dWinogradWasm(x, data(2 * 2 * 25, 3), null, y, { ...d, kh: 5, kw: 5, oh: 8, ow: 8 }, 2),
    false,
  );
  const d3 = dims(1, 2, 10, 10, 2, 3);
  const dy = data(2 * d3.oh * d3.ow, 4);
  assert.equal(conv2dBackwardInputWinogradWasm(dy, w, y, d3, 2), false);
  // the default rule keeps few channels on im2col + GEMM
  assert.equal(conv2dWinogradWasm(x, w, null, y, d), false);
  assert.ok(y.every((v) => v === 7), "a declined call must leave its output alone");
  const was = setWinogradEnabled(false);
  try {
    assert.equal(conv2dWinogradWasm(x, w, null, y, d, 2), false);
    assert.equal(conv2dBackwardInputWinogradWasm(x, w, y, d, 2), false);
  } finally {
    setWinogradEnabled(was);
  }
});

Deno.test("winogradTileFor: F(4×4) from 8×8 outputs, F(2×2) below, none under 4 channels", () => {
  assert.equal(winogradTileFor(32, 64, 24, 24), 4);
  assert.equal(winogradTileFor(64, 32, 26, 26), 4);
  assert.equal(winogradTileFor(32, 32, 7, 12), 2);
  assert.equal(winogradTileFor(1, 32, 26, 26), null);
  assert.equal(winogradTileFor(4, 4, 26, 26), 4);
  assert.equal(winogradTileFor(3, 64, 26, 26), null);
  assert.equal(winogradTileFor(64, 2, 26, 26), null);
});

Deno.test({
  name: "Winograd wasm on an executor arena: in place, bit for bit the staged result",
  ignore,
  fn() {
    // OC 8 writes y in place, OC 6 stages it in the scratch; the last arena's scratch is too small
    for (const [oc, room] of [[8, 1], [6, 1], [8, 0]] as const) {
      for (const flip of [false, true]) {
        const d = dims(3, 12, 11, 9, oc, 1);
        const pass = flip ? "input" : "forward";
        const [xl, yl] = flip
          ? [d.n * d.oc * d.oh * d.ow, d.n * d.c * d.h * d.w]
          : [d.n * d.c * d.h * d.w, d.n * d.oc * d.oh * d.ow];
        const need = winogradScratch(d, pass);
        assert.ok(need > 0);
        // short: the buffers fill two pages but for 64 bytes of scratch
        const buf = room
          ? wasmArenaBuffer((xl + yl + 64) * 4, need * 4)
          : wasmArenaBuffer(2 * 65536 - 128, 64);
        if (!buf) continue;
        const x = new Float32Array(buf, 0, xl), y = new Float32Array(buf, (xl + 16) * 4, yl);
        x.set(data(xl, 21));
        const w = data(d.oc * d.c * 9, 22), b = flip ? null : data(d.oc, 23);
        const own = new Float32Array(yl).fill(NaN);
        y.fill(NaN);
        for (const m of [2, 4] as const) {
          if (flip) {
            assert.ok(conv2dBackwardInputWinogradWasm(x, w, y, d, m));
            assert.ok(conv2dBackwardInputWinogradWasm(x.slice(), w, own, d, m));
          } else {
            assert.ok(conv2dWinogradWasm(x, w, b, y, d, m));
            assert.ok(conv2dWinogradWasm(x.slice(), w, b, own, d, m));
          }
          assert.deepEqual(
            y,
            own,
            `OC ${oc}, ${pass}, F(${m}), scratch ${room ? "enough" : "short"}`,
          );
          // the transformed filter starts the scratch when the arena path ran
          const sc = arenaScratch(buf)!;
          const u0: number = new Float32Array(buf, sc.byteOffset, 1)[0]!;
          assert.equal(u0 !== 0, room === 1, "the arena path should run iff the scratch has room");
        }
      }
    }
  },
});

// The runtime picks the relaxed-simd build where it validates: the plain SIMD one must be right too.
for (const build of ["simd", "relaxed-simd"] as const) {
  Deno.test({
    name: `embedded ${build} Winograd build matches the float64 direct conv`,
    ignore,
    fn() {
      if (!useWinogradBuild(build)) return;
      try {
        for (const m of [2, 4] as const) {
          checkForward(dims(2, 12, 13, 10, 9, 1), m, true, 31);
          checkForward(dims(1, 32, 26, 26, 64, 0), m, true, 32);
          checkBackwardInput(dims(2, 12, 13, 10, 9, 1), m, 33);
          checkBackwardInput(dims(1, 32, 26, 26, 64, 0), m, 34);
        }
      } finally {
        useWinogradBuild(null);
      }
    },
  });
}
