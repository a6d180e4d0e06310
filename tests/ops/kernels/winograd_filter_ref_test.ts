import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { conv2dBackwardFilterRef, type Conv2dDims } from "../../../ops/kernels/conv2d_ref.ts";
import { winogradBackwardFilterRef } from "../../../ops/kernels/winograd_filter_ref.ts";
import type { WinogradTile } from "../../../ops/kernels/winograd_ref.ts";
import { uniformArray } from "../../_rng.ts";

function dims(n: number, c: number, h: number, w: number, oc: number, padding: number): Conv2dDims {
  const oh = h + 2 * padding - 2, ow = w + 2 * padding - 2;
  return { n, c, h, w, oc, kh: 3, kw: 3, oh, ow, stride: 1, padding };
}

// Random 3×3 stride-1 convolutions, including outputs that are not a
// multiple of the tile and images smaller than one tile.
const convArb = fc
  .record({
    n: fc.integer({ min: 1, max: 3 }),
    c: fc.integer({ min: 1, max: 4 }),
    h: fc.integer({ min: 1, max: 13 }),
    w: fc.integer({ min: 1, max: 13 }),
    oc: fc.integer({ min: 1, max: 5 }),
    padding: fc.integer({ min: 0, max: 2 }),
  })
  .filter((r) => r.h + 2 * r.padding >= 3 && r.w + 2 * r.padding >= 3)
  .map((r) => dims(r.n, r.c, r.h, r.w, r.oc, r.padding));

const tiles: WinogradTile[] = [2, 4];

// The transforms mix all nine taps of a filter pair (k, c), so a tap's
// rounding error scales with the largest Σ|x||dy| among them, not its own
// (a tap that reads only padding has a zero sum and a tiny nonzero error).
function tapMax(scale: Float64Array): Float64Array {
  const out = new Float64Array(scale.length);
  for (let kc = 0; kc < scale.length; kc += 9) {
    out.fill(Math.max(...scale.subarray(kc, kc + 9)), kc, kc + 9);
  }
  return out;
}

// The direct reference, and its value on |x|, |dy|: the scale each entry's
// rounding error is measured against.
function reference(x: Float64Array, dy: Float64Array, d: Conv2dDims): [Float64Array, Float64Array] {
  const want = new Float64Array(d.oc * d.c * 9), scale = new Float64Array(d.oc * d.c * 9);
  conv2dBackwardFilterRef(x, dy, want, d);
  conv2dBackwardFilterRef(x.map(Math.abs), dy.map(Math.abs), scale, d);
  return [want, tapMax(scale)];
}

Deno.test("winogradBackwardFilterRef equals the direct filter gradient within 1e-12·Σ|x||dy|", () => {
  fc.assert(
    fc.property(convArb, fc.integer(), fc.constantFrom(...tiles), (d, seed, tile) => {
      const x = uniformArray(d.n * d.c * d.h * d.w, seed);
      const dy = uniformArray(d.n * d.oc * d.oh * d.ow, seed + 1);
      const [want, scale] = reference(x, dy, d);
      const got = new Float64Array(want.length).fill(NaN);
      winogradBackwardFilterRef(x, dy, got, d, tile);
      for (let i = 0; i < want.length; i++) {
        assert.ok(
          Math.abs(got[i] - want[i]) <= 1e-12 * scale[i] + 1e-300,
          `F(${tile}×${tile}) ${JSON.stringify(d)} dw[${i}]: ${got[i]} vs ${want[i]}`,
        );
      }
    }),
    { numRuns: 150 },
  );
});

Deno.test("winogradBackwardFilterRef: mnist-net conv2 shape, a long reduction (N·tiles = 4·36)", () => {
  const d = dims(4, 3, 26, 26, 5, 0);
  const x = uniformArray(d.n * d.c * d.h * d.w, 7);
  const dy = uniformArray(d.n * d.oc * d.oh * d.ow, 8);
  const [want, scale] = reference(x, dy, d);
  for (const tile of tiles) {
    const got = new Float64Array(want.length);
    winogradBackwardFilterRef(x, dy, got, d, tile);
    for (let i = 0; i < want.length; i++) {
      assert.ok(Math.abs(got[i] - want[i]) <= 1e-12 * scale[i], `F(${tile}) dw[${i}]`);
    }
  }
});

Deno.test("winogradBackwardFilterRef propagates NaN wherever the direct gradient has it", () => {
  fc.assert(
    fc.property(convArb, fc.integer(), fc.nat(), fc.boolean(), fc.constantFrom(...tiles), (
      d,
      seed,
      at,
      inX,
      tile,
    ) => {
      const x = uniformArray(d.n * d.c * d.h * d.w, seed);
      const dy = uniformArray(d.n * d.oc * d.oh * d.ow, seed + 1);
      if (inX) x[at % x.length] = NaN;
      else dy[at % dy.length] = NaN;
      const want = new Float64Array(d.oc * d.c * 9), got = new Float64Array(d.oc * d.c * 9);
      conv2dBackwardFilterRef(x, dy, want, d);
      winogradBackwardFilterRef(x, dy, got, d, tile);
      // The transforms mix the 3×3 taps, so NaN may spread to more taps than
      // the direct sum reaches, never fewer.
      for (let i = 0; i < want.length; i++) {
        if (Number.isNaN(want[i])) assert.ok(Number.isNaN(got[i]), `dw[${i}] should be NaN`);
      }
    }),
    { numRuns: 60 },
  );
});

Deno.test("winogradBackwardFilterRef rejects filters other than 3×3 stride 1", () => {
  const d: Conv2dDims = {
    n: 1,
    c: 1,
    h: 5,
    w: 5,
    oc: 1,
    kh: 3,
    kw: 3,
    oh: 2,
    ow: 2,
    stride: 2,
    padding: 0,
  };
  const f = (dd: Conv2dDims) => () =>
    winogradBackwardFilterRef(
      new Float64Array(25),
      new Float64Array(dd.oh * dd.ow),
      new Float64Array(dd.kh * dd.kw),
      dd,
    );
  assert.throws(f(d), /3×3 filter with stride 1, got 3×3 with stride 2/);
  assert.throws(f({ ...d, kh: 2, kw: 2, stride: 1, oh: 4, ow: 4 }), /got 2×2 with stride 1/);
});
