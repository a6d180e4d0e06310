import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { hash4, hash4Finish, hash4Prefix, hashUniform } from "../../graph/hash.ts";

const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });

Deno.test("hash4Finish(hash4Prefix(a, b, c), d) is hash4(a, b, c, d)", () => {
  fc.assert(
    fc.property(int32, int32, int32, int32, (a, b, c, d) => {
      assert.equal(hash4Finish(hash4Prefix(a, b, c), d), hash4(a, b, c, d));
    }),
    { numRuns: 2000 },
  );
});

Deno.test("hashUniform >= p exactly when the uint32 hash >= p·2³² (dropout's integer test)", () => {
  fc.assert(
    fc.property(int32, int32, int32, fc.double({ min: 0, max: 1, noNaN: true }), (a, b, c, p) => {
      const h = hash4(a, b, c, 5);
      assert.equal(hashUniform(a, b, c, 5) >= p, h >= p * 4294967296);
    }),
    { numRuns: 2000 },
  );
});
