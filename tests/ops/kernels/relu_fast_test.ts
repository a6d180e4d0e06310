import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { relu } from "../../../ops/relu.ts";
import { fromBits, grid, runTier as run, SPECIAL_BITS, specialPairs } from "./_tiers.ts";

// "wasm" runs the SIMD module on the executor's arena (the TS kernels where it is missing)
for (const tier of ["ts", "wasm"] as const) {
  Deno.test(`${tier} relu and its backward equal the reference loops, ties, zeros and NaN included`, () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.integer(), (n, seed) => {
        const x = grid(n, seed), w = grid(n, seed + 1);
        x[0] = -0; // the sign of zero must not leak through
        if (seed % 4 === 0) x[Math.abs(seed) % n] = NaN;
        assert.deepEqual(
          run((v) => relu(v), [n], x, w, tier),
          run((v) => relu(v), [n], x, w, "ref"),
        );
      }),
      { numRuns: 60 },
    );
  });

  Deno.test(`${tier} relu and its backward equal the reference on ±Infinity, -0, NaN of either sign and subnormals`, () => {
    const { x, w } = specialPairs(), k = SPECIAL_BITS.length;
    const [y, dx] = run((v) => relu(v), [k * k], x, w, tier);
    const [yr, dxr] = run((v) => relu(v), [k * k], x, w, "ref");
    for (let i = 0; i < k * k; i++) {
      const what = `x ${x[i]} (0x${(SPECIAL_BITS[i % k]! >>> 0).toString(16)}), dy ${w[i]}`;
      assert.ok(Object.is(y[i], yr[i]), `${tier} relu(${what}) = ${y[i]}, reference ${yr[i]}`);
      assert.ok(
        Object.is(dx[i], dxr[i]),
        `${tier} relu backward(${what}) = ${dx[i]}, reference ${dxr[i]}`,
      );
    }
    // any bit pattern at all
    fc.assert(
      fc.property(fc.array(fc.integer(), { minLength: 1, maxLength: 70 }), (bits) => {
        const xb = fromBits(bits), wb = fromBits(bits.map((b) => b ^ 0x80000000));
        assert.deepEqual(
          run((v) => relu(v), [bits.length], xb, wb, tier),
          run((v) => relu(v), [bits.length], xb, wb, "ref"),
        );
      }),
      { numRuns: 100 },
    );
  });
}
