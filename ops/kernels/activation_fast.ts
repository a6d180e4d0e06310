// Float32 kernels for the elementwise activations and their backwards: one
// monomorphic loop per function, with the math written inline, where the
// references call a scalar function per element over either float type.
// GELU's float32 tier replaces the float64 erf series by Abramowitz and
// Stegun's 7.1.26 (|error| ≤ 1.5e-7, below float32's resolution near 1).
// Each is tested against its op's reference in tests/ops/kernels/activation_fast_test.ts.

/** `y = exp(x)`. */
export function expF32(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < y.length; i++) y[i] = Math.exp(x[i]!);
}

/** `y = log(x)`. */
export function logF32(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < y.length; i++) y[i] = Math.log(x[i]!);
}

// 1/(1+e^-x) overflows e^-x to Infinity for x < -88 and still gives the right 0
/** `y = 1 / (1 + exp(-x))`. */
export function sigmoidF32(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < y.length; i++) y[i] = 1 / (1 + Math.exp(-x[i]!));
}

/** `dx = dy * y * (1 - y)` from the sigmoid's output `y`. */
export function sigmoidBackwardF32(y: Float32Array, dy: Float32Array, dx: Float32Array): void {
  for (let i = 0; i < dx.length; i++) {
    const s = y[i]!;
    dx[i] = dy[i]! * s * (1 - s);
  }
}

/** `y = tanh(x)`. */
export function tanhF32(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < y.length; i++) y[i] = Math.tanh(x[i]!);
}

/** `dx = dy * (1 - y²)` from the tanh's output `y`. */
export function tanhBackwardF32(y: Float32Array, dy: Float32Array, dx: Float32Array): void {
  for (let i = 0; i < dx.length; i++) {
    const t = y[i]!;
    dx[i] = dy[i]! * (1 - t * t);
  }
}

/** `y = x > 0 ? x : slope * x` (NaN stays NaN). */
export function leakyReluF32(x: Float32Array, y: Float32Array, slope: number): void {
  for (let i = 0; i < y.length; i++) {
    const v = x[i]!;
    y[i] = v > 0 ? v : v * slope;
  }
}

/** `dx = x > 0 ? dy : slope * dy`. */
export function leakyReluBackwardF32(
  x: Float32Array,
  dy: Float32Array,
  dx: Float32Array,
  slope: number,
): void {
  for (let i = 0; i < dx.length; i++) dx[i] = x[i]! > 0 ? dy[i]! : dy[i]! * slope;
}

/** `1/√(2π)`, the normal density's factor, as the float32 GELU backward uses it. */
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

/** `y = x Φ(x)`, the exact GELU to float32 precision. */
export function geluF32(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < y.length; i++) {
    const v = x[i]!;
    y[i] = v * cdfApprox(v);
  }
}

/** `dx = dy * (Φ(x) + x φ(x))`. */
export function geluBackwardF32(x: Float32Array, dy: Float32Array, dx: Float32Array): void {
  for (let i = 0; i < dx.length; i++) {
    const v = x[i]!;
    dx[i] = dy[i]! * (cdfApprox(v) + v * INV_SQRT_2PI * Math.exp(-0.5 * v * v));
  }
}
