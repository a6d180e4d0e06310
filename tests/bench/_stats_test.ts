import assert from "node:assert/strict";
import fc from "npm:fast-check@3.23.2";
import { median } from "../../bench/_stats.ts";

Deno.test("median of an even number of values is the mean of the two middle ones", () => {
  assert.equal(median([17782, 21830]), 19806);
  assert.equal(median([4, 1, 3, 2]), 2.5);
});

Deno.test("median of an odd number of values is the middle one, input unchanged", () => {
  const xs = [5, 1, 3];
  assert.equal(median(xs), 3);
  assert.deepEqual(xs, [5, 1, 3]);
});

Deno.test("median lies between the values and splits them in half", () => {
  fc.assert(fc.property(fc.array(fc.integer({ min: -1e6, max: 1e6 }), { minLength: 1 }), (xs) => {
    const m = median(xs);
    assert.ok(m >= Math.min(...xs) && m <= Math.max(...xs));
    assert.ok(xs.filter((x) => x < m).length <= xs.length / 2);
    assert.ok(xs.filter((x) => x > m).length <= xs.length / 2);
  }));
});

Deno.test("median of no values names the argument", () => {
  assert.throws(() => median([]), /xs is empty/);
});
