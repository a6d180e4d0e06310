import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { relu } from "../../../ops/relu.ts";
import { grid, runTier as run } from "./_tiers.ts";

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
}
