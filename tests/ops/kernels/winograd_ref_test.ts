import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import {
  conv2dBackwardInputRef,
  type Conv2dDims,
  conv2dRef,
} from "../../../ops/kernels/conv2d_ref.ts";
import {
  conv2dWinogradRef,
  winograd,
  WINOGRAD_F2,
  WINOGRAD_F4,
  winogradApplies,
  winogradMatrices,
  type WinogradTile,
} from "../../../ops/kernels/winograd_ref.ts";
import { uniformArray } from "../../_rng.ts";

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

// Σ over each output of |x|·|w| (+|b|): the scale rounding errors are relative to.
function absScale(x: Float64Array, w: Float64Array, b: Float64Array | null, d: Conv2dDims) {
  const y = new Float64Array(d.n * d.oc * d.oh * d.ow);
  conv2dRef(x.map(Math.abs), w.map(Math.abs), b && b.map(Math.abs), y, d);
  return y;
}

// 1-D check of the transforms: y_k = Σ_j g_j d_{k+j} for random g, d.
for (const t of [WINOGRAD_F2, WINOGRAD_F4]) {
  Deno.test(`F(${t.m},3) transforms compute a 1-D correlation exactly`, () => {
    const { m, alpha: a, AT, G, BT } = t;
    const g = uniformArray(3, 7 + m), d = uniformArray(a, 11 + m);
    const gg = G.map((row) => row[0]! * g[0]! + row[1]! * g[1]! + row[2]! * g[2]!);
    const bd = BT.map((row) => row.reduce((s, v, l) => s + v * d[l]!, 0));
    for (let k = 0; k < m; k++) {
      const got = AT[k]!.reduce((s, v, i) => s + v * gg[i]! * bd[i]!, 0);
      const want = g[0]! * d[k]! + g[1]! * d[k + 1]! + g[2]! * d[k + 2]!;
      assert.ok(Math.abs(got - want) < 1e-14, `F(${m},3) output ${k}: ${got} vs ${want}`);
    }
  });
}

Deno.test("winogradMatrices: Lavin's F(4,3) from 0, ±1, ±2; ours from 0, ±1, 2, −½ in halves", () => {
  const lavin = winogradMatrices(4, [0, 1, -1, 2, -2]).BT;
  assert.ok(lavin.every((row) => row.every((v) => Number.isInteger(v) && Math.abs(v) <= 5)));
  assert.deepEqual(lavin[0], [4, 0, -5, 0, 1, 0]);
  // exact in float32: every Bᵀ entry a multiple of ½, every Aᵀ one a power of two or 0
  assert.ok(WINOGRAD_F4.BT.every((row) => row.every((v) => Number.isInteger(2 * v))));
  assert.ok(
    WINOGRAD_F4.AT.every((row) =>
      row.every((v) => v === 0 || Number.isInteger(Math.log2(Math.abs(v))))
    ),
  );
  assert.throws(() => winogradMatrices(4, [0, 1, -1, 2]), /needs 5 distinct finite points/);
  assert.throws(() => winogradMatrices(2, [0, 1, 1]), /needs 3 distinct/);
  assert.throws(() => winograd(3 as WinogradTile), /must be 2 or 4, got 3/);
});

const shape = fc.record({
  n: fc.integer({ min: 1, max: 2 }),
  c: fc.integer({ min: 1, max: 4 }),
  oc: fc.integer({ min: 1, max: 4 }),
  h: fc.integer({ min: 3, max: 11 }),
  w: fc.integer({ min: 3, max: 11 }),
  p: fc.integer({ min: 0, max: 2 }),
  m: fc.constantFrom<WinogradTile>(2, 4),
  bias: fc.boolean(),
  seed: fc.integer({ min: 1, max: 1e6 }),
});

Deno.test("conv2dWinogradRef equals conv2dRef in float64 to 1e-12 of Σ|x||w|", () => {
  fc.assert(
    fc.property(shape, ({ n, c, oc, h, w, p, m, bias, seed }) => {
      const d = dims(n, c, h, w, oc, p);
      const x = uniformArray(n * c * h * w, seed), wt = uniformArray(oc * c * 9, seed + 1);
      const b = bias ? uniformArray(oc, seed + 2) : null;
      const got = new Float64Array(n * oc * d.oh * d.ow).fill(NaN);
      const want = new Float64Array(got.length);
      conv2dWinogradRef(x, wt, b, got, d, m);
      conv2dRef(x, wt, b, want, d);
      const scale = absScale(x, wt, b, d);
      // each output mixes a whole α×α input patch, so the bound is the tensor's largest Σ|x||w|
      // (a float64 rounding of 3e-16 measured against one small window's 6e-5 failed per output)
      const top = Math.max(...scale);
      for (let i = 0; i < got.length; i++) {
        assert.ok(
          Math.abs(got[i]! - want[i]!) <= 1e-12 * (top + 1e-300),
          `F(${m}) ${JSON.stringify(d)} at ${i}: ${got[i]} vs ${want[i]}`,
        );
      }
    }),
    { numRuns: 60 },
  );
});

Deno.test("conv2dWinogradRef with flip equals conv2dBackwardInputRef to 1e-12", () => {
  fc.assert(
    fc.property(shape, ({ n, c, oc, h, w, p, m, seed }) => {
      const d = dims(n, c, h, w, oc, p);
      const dy = uniformArray(n * oc * d.oh * d.ow, seed), wt = uniformArray(oc * c * 9, seed + 1);
      const got = new Float64Array(n * c * h * w).fill(NaN), want = new Float64Array(got.length);
      conv2dWinogradRef(dy, wt, null, got, d, m, true);
      conv2dBackwardInputRef(dy, wt, want, d);
      const scale = new Float64Array(got.length);
      conv2dBackwardInputRef(dy.map(Math.abs), wt.map(Math.abs), scale, d);
      const top = Math.max(...scale);
      for (let i = 0; i < got.length; i++) {
        assert.ok(
          Math.abs(got[i]! - want[i]!) <= 1e-12 * (top + 1e-300),
          `F(${m}) ${JSON.stringify(d)} at ${i}: ${got[i]} vs ${want[i]}`,
        );
      }
    }),
    { numRuns: 60 },
  );
});

Deno.test("conv2dWinogradRef: NaN and Inf reach the outputs whose window reads them", () => {
  for (const m of [2, 4] as const) {
    const d = dims(1, 1, 8, 8, 1, 0);
    const x = uniformArray(64, 5), w = uniformArray(9, 6);
    x[3 * 8 + 3] = NaN;
    const y = new Float64Array(36);
    conv2dWinogradRef(x, w, null, y, d, m);
    for (let i = 0; i < 6; i++) {
      for (let j = 0; j < 6; j++) {
        const reads = i <= 3 && i + 2 >= 3 && j <= 3 && j + 2 >= 3;
        // the transforms mix a whole tile: a NaN spreads to every output of the tiles it enters
        if (reads) assert.ok(Number.isNaN(y[i * 6 + j]), `F(${m}) (${i},${j}) should be NaN`);
      }
    }
    const xi = uniformArray(64, 5);
    xi[0] = Infinity;
    conv2dWinogradRef(xi, w, null, y, d, m);
    assert.ok(!Number.isFinite(y[0]!), `F(${m}): Inf at x[0] should reach y[0], got ${y[0]}`);
  }
});

Deno.test("conv2dWinogradRef refuses what it does not serve, naming the op", () => {
  const d = dims(1, 1, 5, 5, 1, 0);
  assert.equal(winogradApplies({ ...d, kh: 5, kw: 5, oh: 1, ow: 1 }), false);
  const y = new Float64Array(9);
  assert.throws(
    () =>
      conv2dWinogradRef(new Float64Array(25), new Float64Array(9), null, y, {
        ...d,
        stride: 2,
        oh: 2,
        ow: 2,
      }, 2),
    /conv2dWinogradRef: needs a 3×3 filter, stride 1 \(got 3×3, stride 2/,
  );
  assert.throws(
    () =>
      conv2dWinogradRef(
        new Float64Array(81),
        new Float64Array(9),
        null,
        new Float64Array(25),
        dims(1, 1, 5, 5, 1, 3),
        2,
        true,
      ),
    /conv2dBackwardInputWinogradRef: needs a 3×3 filter, stride 1, padding ≤ 2 and no bias \(got 3×3, stride 1, padding 3\)/,
  );
});
