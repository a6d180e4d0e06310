import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { maxPool2d } from "../../../ops/max_pool2d.ts";
import { fromBits, grid, type In, runTier as run } from "./_tiers.ts";

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
          const f = (v: In) => maxPool2d(v, { size: 2 });
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
  const f = (v: In) => maxPool2d(v, { size: 2 });
  assert.deepEqual(run(f, shape, x, w, "ts"), run(f, shape, x, w, "ref"));
  // eight wide, so the wasm kernel takes it
  const wide = Float32Array.from({ length: 2 * 8 * 3 }, (_, i) => x[i % x.length]! * (i % 5 - 2));
  const ww = Float32Array.from({ length: 4 * 3 }, (_, i) => i - 4);
  const g = (v: In) => maxPool2d(v, { size: 2 });
  assert.deepEqual(run(g, [1, 3, 2, 8], wide, ww, "wasm"), run(g, [1, 3, 2, 8], wide, ww, "ref"));
});

for (const tier of ["ts", "wasm"] as const) {
  Deno.test(`${tier} 2x2 max-pool equals the reference on every window of ±Infinity, ±0, NaN of either sign, ±1`, () => {
    const values = fromBits([0x7f800000, 0xff800000, 0, 0x80000000, 0x7fc00000, 0xffc00000]);
    const vals = [...values, 1, -1];
    const k = vals.length, windows = k ** 4;
    // one row of windows, 2 × 2·windows wide, so the wasm kernel's 4-window groups take it
    const x = new Float32Array(4 * windows);
    for (let c = 0; c < windows; c++) {
      const [a, b, e, f] = [0, 1, 2, 3].map((d) => vals[Math.floor(c / k ** d) % k]!);
      x.set([a!, b!], 2 * c);
      x.set([e!, f!], 2 * windows + 2 * c);
    }
    const w = Float32Array.from({ length: windows }, (_, i) => [1, -2, 0.5][i % 3]!);
    const g = (v: In) => maxPool2d(v, { size: 2 });
    const shape = [1, 1, 2, 2 * windows];
    assert.deepEqual(run(g, shape, x, w, tier), run(g, shape, x, w, "ref"));
  });
}
