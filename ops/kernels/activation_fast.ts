// Float32 kernels for the elementwise activations and their backwards: one
// monomorphic loop per function, with the math written inline, where the
// references call a scalar function per element over either float type.
// GELU's float32 tier replaces the float64 erf series by Abramowitz and
// Stegun's 7.1.26 (|error| ≤ 1.5e-7, below float32's resolution near 1).
// Each is tested against its op's reference in tests/ops/kernels/activation_fast_test.ts.

/**
 * `y = exp(x)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { expF32 } from "./activation_fast.ts";
 * const y = new Float32Array(2);
 * expF32(new Float32Array([0, 1]), y);
 * assert.deepEqual([...y], [1, Math.fround(Math.E)]);
 * ```
 */
export function expF32(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < y.length; i++) y[i] = Math.exp(x[i]!);
}

/**
 * `y = log(x)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { logF32 } from "./activation_fast.ts";
 * const y = new Float32Array(2);
 * logF32(new Float32Array([1, 8]), y);
 * assert.deepEqual([...y], [0, Math.fround(Math.log(8))]);
 * ```
 */
export function logF32(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < y.length; i++) y[i] = Math.log(x[i]!);
}

// 1/(1+e^-x) overflows e^-x to Infinity for x < -88 and still gives the right 0
/**
 * `y = 1 / (1 + exp(-x))`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sigmoidF32 } from "./activation_fast.ts";
 * const y = new Float32Array(1);
 * sigmoidF32(new Float32Array([0]), y);
 * assert.equal(y[0], 0.5);
 * ```
 */
export function sigmoidF32(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < y.length; i++) y[i] = 1 / (1 + Math.exp(-x[i]!));
}

/**
 * `dx = dy * y * (1 - y)` from the sigmoid's output `y`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sigmoidBackwardF32 } from "./activation_fast.ts";
 * const dx = new Float32Array(1);
 * sigmoidBackwardF32(new Float32Array([0.5]), new Float32Array([2]), dx); // y = σ(0)
 * assert.equal(dx[0], 0.5); // 2 · 0.5 · (1 - 0.5)
 * ```
 */
export function sigmoidBackwardF32(y: Float32Array, dy: Float32Array, dx: Float32Array): void {
  for (let i = 0; i < dx.length; i++) {
    const s = y[i]!;
    dx[i] = dy[i]! * s * (1 - s);
  }
}

/**
 * `y = tanh(x)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tanhF32 } from "./activation_fast.ts";
 * const y = new Float32Array(2);
 * tanhF32(new Float32Array([0, 20]), y);
 * assert.deepEqual([...y], [0, 1]);
 * ```
 */
export function tanhF32(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < y.length; i++) y[i] = Math.tanh(x[i]!);
}

/**
 * `dx = dy * (1 - y²)` from the tanh's output `y`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tanhBackwardF32 } from "./activation_fast.ts";
 * const dx = new Float32Array(1);
 * tanhBackwardF32(new Float32Array([0.5]), new Float32Array([1]), dx);
 * assert.equal(dx[0], 0.75); // 1 - 0.5²
 * ```
 */
export function tanhBackwardF32(y: Float32Array, dy: Float32Array, dx: Float32Array): void {
  for (let i = 0; i < dx.length; i++) {
    const t = y[i]!;
    dx[i] = dy[i]! * (1 - t * t);
  }
}

/**
 * `y = x > 0 ? x : slope * x` (NaN stays NaN).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { leakyReluF32 } from "./activation_fast.ts";
 * const y = new Float32Array(2);
 * leakyReluF32(new Float32Array([-2, 3]), y, 0.5);
 * assert.deepEqual([...y], [-1, 3]);
 * ```
 */
export function leakyReluF32(x: Float32Array, y: Float32Array, slope: number): void {
  for (let i = 0; i < y.length; i++) {
    const v = x[i]!;
    y[i] = v > 0 ? v : v * slope;
  }
}

/**
 * `dx = x > 0 ? dy : slope * dy`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { leakyReluBackwardF32 } from "./activation_fast.ts";
 * const dx = new Float32Array(2);
 * leakyReluBackwardF32(new Float32Array([-2, 3]), new Float32Array([1, 1]), dx, 0.5);
 * assert.deepEqual([...dx], [0.5, 1]);
 * ```
 */
export function leakyReluBackwardF32(
  x: Float32Array,
  dy: Float32Array,
  dx: Float32Array,
  slope: number,
): void {
  for (let i = 0; i < dx.length; i++) dx[i] = x[i]! > 0 ? dy[i]! : dy[i]! * slope;
}

/**
 * `1/√(2π)`, the normal density's factor, as the float32 GELU backward uses it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { INV_SQRT_2PI } from "./activation_fast.ts";
 * assert.ok(Math.abs(INV_SQRT_2PI - 0.3989422804014327) < 1e-15);
 * ```
 */
export const INV_SQRT_2PI: number = 1 / Math.sqrt(2 * Math.PI);

// Φ(x) from A&S 7.1.26 on z = |x|/√2: erfc(z) ≈ t(a1 + t(a2 + …)) e^(-z²),
// t = 1/(1 + p z); for x < 0, Φ = erfc(z)/2 keeps its relative precision
/**
 * The normal CDF Φ(x) of the float32 GELU kernels (A&S 7.1.26, |error| ≤
 * 1.5e-7); the fused elementwise chains call it so that their GELU steps
 * match {@linkcode geluF32} bit for bit.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cdfApprox } from "./activation_fast.ts";
 * assert.ok(Math.abs(cdfApprox(0) - 0.5) < 1e-7);
 * ```
 */
export function cdfApprox(x: number): number {
  const z = Math.abs(x) * Math.SQRT1_2;
  const t = 1 / (1 + 0.3275911 * z);
  const poly = t *
    (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const half = 0.5 * poly * Math.exp(-z * z);
  return x < 0 ? half : 1 - half;
}

/**
 * `y = x Φ(x)`, the exact GELU to float32 precision.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { geluF32 } from "./activation_fast.ts";
 * const y = new Float32Array(2);
 * geluF32(new Float32Array([0, 10]), y);
 * assert.deepEqual([...y], [0, 10]); // Φ(10) = 1 in float32
 * ```
 */
export function geluF32(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < y.length; i++) {
    const v = x[i]!;
    y[i] = v * cdfApprox(v);
  }
}

/**
 * `dx = dy * (Φ(x) + x φ(x))`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { geluBackwardF32 } from "./activation_fast.ts";
 * const dx = new Float32Array(1);
 * geluBackwardF32(new Float32Array([0]), new Float32Array([1]), dx);
 * assert.ok(Math.abs(dx[0]! - 0.5) < 1e-7); // Φ(0) + 0·φ(0)
 * ```
 */
export function geluBackwardF32(x: Float32Array, dy: Float32Array, dx: Float32Array): void {
  for (let i = 0; i < dx.length; i++) {
    const v = x[i]!;
    dx[i] = dy[i]! * (cdfApprox(v) + v * INV_SQRT_2PI * Math.exp(-0.5 * v * v));
  }
}
