import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { type GemmDims, gemmRef } from "../../../ops/kernels/gemm_ref.ts";
import { gemmBlocked } from "../../../ops/kernels/gemm_blocked.ts";
import {
  arenaScratchViews,
  gemmScratch,
  gemmStagedBytes,
  gemmWasm,
  wasmArena,
  wasmAvailable,
  wasmScratch,
} from "../../../ops/kernels/gemm_wasm.ts";
import { wasmArenaBuffer } from "../../../ops/kernels/elementwise_wasm.ts";
import { gemm } from "../../../ops/kernels/gemm.ts";
import { uniformArray } from "../../_rng.ts";
import type { Tier } from "../../../graph/op.ts";

type Gemm32 = (a: Float32Array, b: Float32Array, c: Float32Array, d: GemmDims) => void;

// Deterministic uniform(-1, 1) float32 data from a seed.
function randomF32(len: number, seed: number): Float32Array {
  return new Float32Array(uniformArray(len, seed));
}

// Checks a float32 result against the float64 reference on the same
// (float32) inputs. Each element's error is bounded relative to the sum of
// |products| it came from, which is what float32 rounding scales with.
function checkAgainstRef(kernel: Gemm32, d: GemmDims, seed: number): void {
  const { m, n, k } = d;
  const a = randomF32(m * k, seed), b = randomF32(k * n, seed + 1);
  const c0 = randomF32(m * n, seed + 2);
  const c = c0.slice();
  kernel(a, b, c, d);
  const want = Float64Array.from(c0);
  gemmRef(Float64Array.from(a), Float64Array.from(b), want, d);
  const scale = new Float64Array(m * n);
  gemmRef(Float64Array.from(a, Math.abs), Float64Array.from(b, Math.abs), scale, d);
  for (let i = 0; i < m * n; i++) {
    const bound = 1e-5 * (scale[i] + (d.accumulate ? Math.abs(c0[i]) : 0)) + 1e-30;
    if (!(Math.abs(c[i] - want[i]) <= bound)) {
      assert.fail(
        `element ${i} of ${JSON.stringify(d)}: got ${c[i]}, want ${want[i]} (bound ${bound})`,
      );
    }
  }
}

const dimsArb = fc.record({
  m: fc.integer({ min: 1, max: 70 }),
  n: fc.integer({ min: 1, max: 70 }),
  k: fc.integer({ min: 1, max: 70 }),
  transA: fc.boolean(),
  transB: fc.boolean(),
  accumulate: fc.boolean(),
});

function propertyAgainstRef(kernel: Gemm32): void {
  fc.assert(
    fc.property(dimsArb, fc.integer({ min: 0, max: 2 ** 30 }), (d, seed) => {
      checkAgainstRef(kernel, d, seed);
    }),
    { numRuns: 300 },
  );
}

// Sizes that cross every blocking boundary of both tiers (KC 256, MC 96/128, NC 2048).
const bigCases: GemmDims[] = [
  { m: 131, n: 2051, k: 261 },
  { m: 200, n: 67, k: 515, transA: true, transB: true, accumulate: true },
  { m: 97, n: 129, k: 257, transB: true },
];

Deno.test("gemmRef computes a small product by hand", () => {
  const a = new Float64Array([1, 2, 3, 4, 5, 6]); // 2×3
  const b = new Float64Array([7, 8, 9, 10, 11, 12]); // 3×2
  const c = new Float64Array(4);
  gemmRef(a, b, c, { m: 2, n: 2, k: 3 });
  assert.deepEqual([...c], [58, 64, 139, 154]);
  // Same product from stored transposes, accumulated on top.
  const at = new Float64Array([1, 4, 2, 5, 3, 6]); // 3×2 = Aᵀ
  const bt = new Float64Array([7, 9, 11, 8, 10, 12]); // 2×3 = Bᵀ
  gemmRef(at, bt, c, { m: 2, n: 2, k: 3, transA: true, transB: true, accumulate: true });
  assert.deepEqual([...c], [116, 128, 278, 308]);
});

Deno.test("gemmBlocked matches gemmRef for random shapes and transposes", () => {
  propertyAgainstRef(gemmBlocked);
});

Deno.test("gemmBlocked matches gemmRef across block boundaries", () => {
  bigCases.forEach((d, i) => checkAgainstRef(gemmBlocked, d, 100 + i));
});

Deno.test({
  name: "gemmWasm matches gemmRef for random shapes and transposes",
  ignore: !wasmAvailable(),
  fn() {
    propertyAgainstRef(gemmWasm);
  },
});

Deno.test({
  name: "gemmWasm matches gemmRef across block boundaries",
  ignore: !wasmAvailable(),
  fn() {
    bigCases.forEach((d, i) => checkAgainstRef(gemmWasm, d, 200 + i));
  },
});

// gemmWasm with C in an executor arena (with the scratch linear's hook
// reserves), A and B inside it or outside as `inside` says; checks that only
// the operands from outside were copied, once.
function onArena(inside: [boolean, boolean]): Gemm32 {
  return (a, b, c, d) => {
    const pad = (len: number) => Math.ceil(len / 16) * 16;
    const bytes = 4 * (pad(a.length) + pad(b.length) + pad(c.length));
    const buf = wasmArenaBuffer(bytes, gemmScratch([a.length, b.length]) * 4)!;
    new Float32Array(buf).fill(NaN);
    let at = 0;
    const put = (x: Float32Array, inArena: boolean) => {
      if (!inArena) return x;
      const v = new Float32Array(buf, at * 4, x.length);
      at += pad(x.length);
      v.set(x);
      return v;
    };
    const a1 = put(a, inside[0]), b1 = put(b, inside[1]), c1 = put(c, true);
    const staged0 = gemmStagedBytes();
    gemmWasm(a1, b1, c1, d);
    const want = (inside[0] ? 0 : d.m * d.k) + (inside[1] ? 0 : d.k * d.n);
    assert.equal(gemmStagedBytes() - staged0, 4 * want, "staged bytes");
    c.set(c1);
  };
}

for (const inside of [[true, true], [false, true], [true, false], [false, false]] as const) {
  Deno.test({
    name: `gemmWasm on an arena matches gemmRef, A ${inside[0] ? "in" : "out"}side, B ${
      inside[1] ? "in" : "out"
    }side`,
    ignore: !wasmAvailable(),
    fn() {
      const kernel = onArena([inside[0], inside[1]]);
      fc.assert(
        fc.property(dimsArb, fc.integer({ min: 0, max: 2 ** 30 }), (d, seed) => {
          checkAgainstRef(kernel, d, seed);
        }),
        { numRuns: 100 },
      );
      bigCases.forEach((d, i) => checkAgainstRef(kernel, d, 300 + i));
    },
  });
}

Deno.test({
  name: "gemmWasm with C outside any arena, or an arena short of scratch, stages everything",
  ignore: !wasmAvailable(),
  fn() {
    const d = { m: 9, n: 11, k: 7 };
    const a = randomF32(63, 1), b = randomF32(77, 2);
    const want = new Float32Array(99);
    gemmBlocked(a, b, want, d);
    const buf = wasmArenaBuffer(4 * (64 + 80 + 112), 0)!; // no scratch reserved
    const a1 = new Float32Array(buf, 0, 63), b1 = new Float32Array(buf, 256, 77);
    const c1 = new Float32Array(buf, 576, 99);
    a1.set(a);
    b1.set(b);
    for (const c of [new Float32Array(99), c1]) {
      const staged0 = gemmStagedBytes();
      gemmWasm(a1, b1, c, d);
      assert.equal(gemmStagedBytes() - staged0, 4 * (63 + 77 + 99));
      for (let i = 0; i < 99; i++) assert.ok(Math.abs(c[i] - want[i]) < 1e-5);
    }
  },
});

Deno.test({
  name: "gemmWasm on an arena copies an outside operand past operands that live in the scratch",
  ignore: !wasmAvailable(),
  fn() {
    const d = { m: 5, n: 6, k: 4 };
    const a = randomF32(20, 3), b = randomF32(24, 4);
    const want = new Float32Array(30);
    gemmBlocked(a, b, want, d);
    const buf = wasmArenaBuffer(64, gemmScratch([24, 30, 20]) * 4)!;
    // B and C in the scratch, as a kernel's views; A from outside
    const [b1, c1] = arenaScratchViews(buf, [24, 30])!;
    b1.set(b);
    gemmWasm(a, b1, c1, d);
    assert.deepEqual([...b1], [...b]);
    for (let i = 0; i < 30; i++) assert.ok(Math.abs(c1[i] - want[i]) < 1e-5);
    assert.equal(arenaScratchViews(buf, [1e6]), null, "too big for the scratch");
  },
});

Deno.test({
  name: "gemmWasm uses operands that live in its memory in place",
  ignore: !wasmAvailable(),
  fn() {
    const d = { m: 13, n: 21, k: 17, transB: true };
    const a = randomF32(13 * 17, 1), b = randomF32(21 * 17, 2);
    const want = new Float32Array(13 * 21);
    gemmBlocked(a, b, want, d);
    const [wa, wb, wc] = wasmScratch([a.length, b.length, want.length])!;
    wa.set(a);
    wb.set(b);
    gemmWasm(wa, wb, wc, d);
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(wc[i] - want[i]) < 1e-5);
    // A foreign C next to in-memory A and B must not overwrite them.
    const c = new Float32Array(13 * 21);
    gemmWasm(wa, wb, c, d);
    assert.deepEqual([...wa], [...a]);
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(c[i] - want[i]) < 1e-5);
  },
});

Deno.test({
  name: "wasmArena regions survive memory growth and serve gemmWasm in place",
  ignore: !wasmAvailable(),
  fn() {
    const d = { m: 7, n: 5, k: 3 };
    const a = randomF32(21, 1), b = randomF32(15, 2);
    const ra = wasmArena(21)!, rb = wasmArena(15)!, rc = wasmArena(35)!;
    ra.view().set(a);
    rb.view().set(b);
    const before = ra.view();
    // A big foreign product grows the memory past the arena.
    const big = 700;
    gemmWasm(
      new Float32Array(big * big),
      new Float32Array(big * big),
      new Float32Array(big * big),
      {
        m: big,
        n: big,
        k: big,
      },
    );
    assert.notEqual(ra.view(), before, "a grown memory hands out a fresh view");
    assert.deepEqual([...ra.view()], [...a]);
    gemmWasm(ra.view(), rb.view(), rc.view(), d);
    const want = new Float32Array(35);
    gemmBlocked(a, b, want, d);
    for (let i = 0; i < 35; i++) assert.ok(Math.abs(rc.view()[i] - want[i]) < 1e-5);
    // Scratch regions come after the arena and do not overwrite it.
    wasmScratch([1000])![0].fill(7);
    assert.deepEqual([...ra.view()], [...a]);
  },
});

Deno.test("fast gemm tiers honour subarray views and leave the rest alone", () => {
  const tiers: Gemm32[] = [gemmBlocked, ...(wasmAvailable() ? [gemmWasm] : [])];
  for (const kernel of tiers) {
    const arena = randomF32(1000, 7);
    const before = arena.slice();
    const a = arena.subarray(3, 3 + 5 * 6), b = arena.subarray(40, 40 + 6 * 7);
    const c = arena.subarray(101, 101 + 5 * 7);
    const want = Float64Array.from(c);
    gemmRef(Float64Array.from(a), Float64Array.from(b), want, {
      m: 5,
      n: 7,
      k: 6,
      accumulate: true,
    });
    kernel(a, b, c, { m: 5, n: 7, k: 6, accumulate: true });
    for (let i = 0; i < 35; i++) assert.ok(Math.abs(c[i] - want[i]) < 1e-5);
    for (let i = 0; i < 1000; i++) {
      if (i < 101 || i >= 136) assert.equal(arena[i], before[i], `element ${i} changed`);
    }
  }
});

Deno.test("fast gemm tiers handle empty dimensions", () => {
  const tiers: Gemm32[] = [gemmBlocked, ...(wasmAvailable() ? [gemmWasm] : [])];
  for (const kernel of tiers) {
    const c = new Float32Array([1, 2, 3, 4]);
    kernel(new Float32Array(0), new Float32Array(0), c, { m: 2, n: 2, k: 0, accumulate: true });
    assert.deepEqual([...c], [1, 2, 3, 4]);
    kernel(new Float32Array(0), new Float32Array(0), c, { m: 2, n: 2, k: 0 });
    assert.deepEqual([...c], [0, 0, 0, 0]);
    kernel(new Float32Array(0), new Float32Array(6), c, { m: 0, n: 2, k: 3 });
  }
});

Deno.test("gemm dispatches by tier and width and checks sizes", () => {
  const a = new Float32Array([1, 2, 3, 4, 5, 6]);
  const b = new Float32Array([1, 0, 0, 1, 1, 1]);
  for (const tier of ["ref", "ts", "wasm"] as Tier[]) {
    const c = new Float32Array(4);
    gemm(a, b, c, { m: 2, n: 2, k: 3 }, tier);
    assert.deepEqual([...c], [4, 5, 10, 11]);
  }
  const c64 = new Float64Array(4);
  gemm(Float64Array.from(a), Float64Array.from(b), c64, { m: 2, n: 2, k: 3 }, "wasm");
  assert.deepEqual([...c64], [4, 5, 10, 11]);
  assert.throws(() => gemm(a, b, new Float32Array(3), { m: 2, n: 2, k: 3 }), /too short/);
  assert.throws(() => gemm(a, b, c64, { m: 2, n: 2, k: 3 }), /mix float widths/);
});
