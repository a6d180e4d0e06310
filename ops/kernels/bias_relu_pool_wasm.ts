// z, packed, dy, dz: float32 views of one executor arena; b: the bias, anywhere
/**
 * The WebAssembly SIMD tier of the fused bias + ReLU + 2×2 max-pool and its
 * backward: the elementwise module's `bias_relu_pool2` and
 * `relu_pool2_backward` (`wasm/elementwise_kernel.ts`), run on the executor
 * arena in place. {@link biasReluPoolWasm} returns null for sizes the
 * kernels do not serve (a pooled width below 4), for arrays outside one
 * arena, or where WebAssembly SIMD is missing; the ops then run the
 * reference kernels.
 *
 * @module
 */

import {
  arenaScratch,
  arenaZero,
  type ElementwiseExports,
  elementwiseWasm,
} from "./elementwise_wasm.ts";
import type { BiasReluPoolDims } from "./bias_relu_pool_ref.ts";

interface FusedExports extends ElementwiseExports {
  // (z, y, codes, planes, h, w, oh, ow, bias, c)
  bias_relu_pool2(...args: number[]): void;
  // (codes, dy, dz, planes, h, w, oh, ow)
  relu_pool2_backward(...args: number[]): void;
  bias_relu(z: number, y: number, planes: number, inner: number, bias: number, c: number): void;
  // (codes, dy, out, planes, oh, ow, c)
  relu_pool2_bias_grad(...args: number[]): void;
}

/**
 * The bias gradient of the fused bias + ReLU + pool on the wasm tier: the
 * order the unfused `sum` would add dz in there (`"runs"`, its wasm kernel,
 * when packed, dy and db share an arena and H·W ≥ 8; else `"ref"`), and
 * whether the SIMD kernel served it (W a multiple of 8); when not, the op
 * runs `reluPoolBiasGradRef` in that order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reluPoolBiasGradWasm } from "./bias_relu_pool_wasm.ts";
 * const d = { n: 1, c: 1, h: 8, w: 8, ph: 4, pw: 4 };
 * const a = new Float32Array(32);
 * assert.deepEqual(reluPoolBiasGradWasm(d, a, a.subarray(0, 16), new Float32Array(1)), { order: "ref", done: false });
 * ```
 */
export function reluPoolBiasGradWasm(
  d: BiasReluPoolDims,
  packed: Float32Array,
  dy: Float32Array,
  db: Float32Array,
): { order: "ref" | "runs"; done: boolean } {
  const ex = elementwiseWasm(packed, dy, db) as FusedExports | null;
  if (!ex || d.h * d.w < 8) return { order: "ref", done: false };
  if (d.w % 8 !== 0 || typeof ex.relu_pool2_bias_grad !== "function") {
    return { order: "runs", done: false };
  }
  const { n, c, ph, pw } = d;
  db.fill(0);
  const codes = packed.byteOffset + n * c * ph * pw * 4;
  ex.relu_pool2_bias_grad(codes, dy.byteOffset, db.byteOffset, n * c, ph, pw, c);
  return { order: "runs", done: true };
}

/**
 * y = ReLU(z + b) (see `biasReluRef`) by the elementwise module on the
 * arena z and y live in, z of `planes` planes of `inner` floats, the bias
 * of plane p being b[p mod c], staged in the arena's kernel scratch. False
 * (nothing written) when z and y do not share an arena or its scratch cannot
 * hold the bias: the op then runs the reference.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { biasReluWasm } from "./bias_relu_pool_wasm.ts";
 * assert.equal(biasReluWasm(new Float32Array(4), new Float32Array(2), new Float32Array(4), 2, 2), false);
 * ```
 */
export function biasReluWasm(
  z: Float32Array,
  b: Float32Array,
  y: Float32Array,
  c: number,
  inner: number,
): boolean {
  const ex = elementwiseWasm(z, y) as FusedExports | null;
  if (!ex || typeof ex.bias_relu !== "function") return false;
  const scratch = arenaScratch(y.buffer);
  if (!scratch || scratch.byteLength < 4 * c) return false;
  new Float32Array(y.buffer, scratch.byteOffset, c).set(b.subarray(0, c));
  ex.bias_relu(z.byteOffset, y.byteOffset, y.length / inner, inner, scratch.byteOffset, c);
  return true;
}

/** The fused kernels bound to one arena, for one layer's sizes. */
export interface BiasReluPoolKernels {
  /**
   * packed = [y, codes], y = max-pool(ReLU(z + b)); see `biasReluPoolRef`.
   * False when the arena's kernel scratch cannot hold the bias (the op then
   * runs the reference).
   */
  forward(z: Float32Array, b: Float32Array, packed: Float32Array): boolean;
  /** dz from the forward's packed output and the pooled gradient dy; see `reluPoolBackwardRef`. */
  backward(packed: Float32Array, dy: Float32Array, dz: Float32Array): void;
}

/**
 * The wasm kernels for sizes `d` when they serve them (PW ≥ 4) and every
 * array in `arena` lives in one executor arena; otherwise null. The forward
 * copies the bias (a parameter, outside the arena) into the arena's kernel
 * scratch, which the op reserves.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { biasReluPoolWasm } from "./bias_relu_pool_wasm.ts";
 * const d = { n: 1, c: 1, h: 8, w: 8, ph: 4, pw: 4 };
 * // a plain array is not an executor arena: the op falls back to the reference
 * assert.equal(biasReluPoolWasm(d, [new Float32Array(64)]), null);
 * ```
 */
export function biasReluPoolWasm(
  d: BiasReluPoolDims,
  arena: Float32Array[],
): BiasReluPoolKernels | null {
  if (d.pw < 4 || d.ph < 1) return null;
  const ex = elementwiseWasm(...arena) as FusedExports | null;
  if (!ex || typeof ex.bias_relu_pool2 !== "function") return null;
  const { n, c, h, w, ph, pw } = d;
  const half = n * c * ph * pw;
  const buf = arena[0]!.buffer;
  return {
    forward(z, b, packed) {
      const scratch = arenaScratch(buf);
      if (!scratch || scratch.byteLength < 4 * c) return false;
      new Float32Array(buf, scratch.byteOffset, c).set(b.subarray(0, c));
      const y = packed.byteOffset;
      ex.bias_relu_pool2(z.byteOffset, y, y + half * 4, n * c, h, w, ph, pw, scratch.byteOffset, c);
      return true;
    },
    backward(packed, dy, dz) {
      // the odd last row or column is in no window: zero
      if (2 * ph !== h || 2 * pw !== w) arenaZero(dz);
      const codes = packed.byteOffset + half * 4;
      ex.relu_pool2_backward(codes, dy.byteOffset, dz.byteOffset, n * c, h, w, ph, pw);
    },
  };
}
