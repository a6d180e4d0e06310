/**
 * Synthetic data for the lecture's first example: fitting a degree-2
 * polynomial `y = w0 + w1·x + w2·x²` to noisy samples by regression.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { polynomialData } from "./synthetic.ts";
 * const { x, t } = polynomialData({ count: 100, coefficients: [1, -2, 3], noise: 0.1, seed: 0 });
 * assert.deepEqual([x.length, t.length], [100, 100]);
 * ```
 *
 * @module
 */

import { Rng } from "../random.ts";

/**
 * Draws `count` inputs `x` uniformly from `xRange` (default [-1, 1]) and
 * targets `t = w0 + w1·x + w2·x² + noise·ε` with ε standard normal, all from
 * `new Rng(seed)`, so equal options give equal data.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { polynomialData } from "./synthetic.ts";
 * const { x, t } = polynomialData({
 *   count: 3,
 *   coefficients: [0, 0, 1],
 *   noise: 0,
 *   seed: 1,
 *   xRange: [0, 2],
 * });
 * assert.ok(t.every((ti, i) => ti === Math.fround(x[i]! ** 2))); // t = x², rounded to float32
 * ```
 */
export function polynomialData(
  opts: {
    count: number;
    coefficients: [number, number, number];
    noise: number;
    seed: number;
    xRange?: [number, number];
  },
): { x: Float32Array; t: Float32Array } {
  const { count, coefficients, noise, seed } = opts;
  const [lo, hi] = opts.xRange ?? [-1, 1];
  if (!Number.isInteger(count) || count < 0) {
    throw new RangeError(`polynomialData: count must be a non-negative integer, got ${count}`);
  }
  if (coefficients.length !== 3 || !coefficients.every(Number.isFinite)) {
    throw new RangeError(
      `polynomialData: coefficients must be 3 finite numbers [w0, w1, w2], got [${
        coefficients.join(", ")
      }]`,
    );
  }
  if (!Number.isFinite(noise) || noise < 0) {
    throw new RangeError(`polynomialData: noise must be a finite number >= 0, got ${noise}`);
  }
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || !(lo < hi)) {
    throw new RangeError(`polynomialData: xRange must be finite with lo < hi, got [${lo}, ${hi}]`);
  }
  const [w0, w1, w2] = coefficients;
  const rng = new Rng(seed);
  const x = new Float32Array(count);
  const t = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    // Round x first so the target is the polynomial of the float32 input a model will see.
    const xi = Math.fround(lo + (hi - lo) * rng.uniform());
    x[i] = xi;
    t[i] = w0 + w1 * xi + w2 * xi * xi + noise * rng.normal();
  }
  return { x, t };
}
