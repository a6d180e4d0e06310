import assert from "node:assert/strict";
import fc from "npm:fast-check@3.23.2";
import { clipGradNorm } from "../../../train/optim/clip.ts";

Deno.test("clipGradNorm scales every gradient by max/(norm + 1e-6) above the limit only", () => {
  const grads = new Map([["a", new Float32Array([3, 0])], ["b", new Float32Array([0, -4])]]);
  assert.equal(clipGradNorm(grads, 10), 5);
  assert.deepEqual([...grads.get("a")!, ...grads.get("b")!], [3, 0, 0, -4]);
  assert.equal(clipGradNorm(grads, 2.5), 5);
  const k = 2.5 / (5 + 1e-6);
  assert.deepEqual([...grads.get("a")!, ...grads.get("b")!], [
    Math.fround(3 * k),
    0,
    0,
    Math.fround(-4 * k),
  ]);
  assert.throws(
    () => clipGradNorm(grads, 0),
    /maximum norm must be a finite number above 0, got 0/,
  );
});

Deno.test("clipGradNorm leaves a norm at most the limit, direction unchanged", () => {
  fc.assert(
    fc.property(
      fc.array(fc.float({ min: -100, max: 100, noNaN: true }), { minLength: 1, maxLength: 20 }),
      fc.double({ min: 0.01, max: 50, noNaN: true }),
      (vals, max) => {
        const g = Float32Array.from(vals);
        const before = g.slice();
        const norm = clipGradNorm(new Map([["g", g]]), max);
        const after = Math.hypot(...g);
        assert.ok(after <= Math.max(max, norm) * (1 + 1e-6) + 1e-30);
        if (norm > max) assert.ok(Math.abs(after - max) <= 1e-5 * max + 1e-6);
        // same direction: g = c·before with one c ≥ 0
        const c = norm > max ? max / (norm + 1e-6) : 1;
        g.forEach((v, i) =>
          assert.ok(Math.abs(v - before[i]! * c) <= 1e-6 * Math.abs(before[i]!) + 1e-30)
        );
      },
    ),
    { numRuns: 100 },
  );
});
