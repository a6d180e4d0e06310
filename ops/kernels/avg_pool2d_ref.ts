// Reference average-pooling kernels over NCHW planes, generic over the float
// width (the only tier: pooling is a small share of a step).
import type { FloatArray } from "../../graph/op.ts";
import type { PoolDims } from "./pool_dims.ts";

// x: (N, C, H, W) -> y: (N, C, OH, OW); y = Σ window / size², padded zeros
// counted (PyTorch's count_include_pad=True)
/**
 * Average pooling of every plane, padded zeros counted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { avgPool2dRef } from "./avg_pool2d_ref.ts";
 * import { poolDims } from "./pool_dims.ts";
 * // one 2×4 plane, two 2×2 windows
 * const d = poolDims([1, 1, 2, 4], [1, 1, 1, 2], { size: 2, stride: 2 });
 * const x = new Float32Array([1, 5, 2, 0, 3, 4, 8, 6]);
 * const y = new Float32Array(2);
 * avgPool2dRef(x, y, d);
 * assert.deepEqual([...y], [3.25, 4]);
 * ```
 */
export function avgPool2dRef(x: FloatArray, y: FloatArray, d: PoolDims): void {
  const { h, w, oh, ow, size, stride, padding } = d;
  const k = 1 / (size * size);
  for (let p = 0; p < d.planes; p++) {
    const xb = p * h * w, yb = p * oh * ow;
    for (let r = 0; r < oh; r++) {
      const r0 = Math.max(r * stride - padding, 0), r1 = Math.min(r * stride - padding + size, h);
      for (let c = 0; c < ow; c++) {
        const c0 = Math.max(c * stride - padding, 0);
        const c1 = Math.min(c * stride - padding + size, w);
        let s = 0;
        for (let i = r0; i < r1; i++) for (let j = c0; j < c1; j++) s += x[xb + i * w + j]!;
        y[yb + r * ow + c] = s * k;
      }
    }
  }
}

// dy: (N, C, OH, OW) -> dx: (N, C, H, W); each dy / size² spread over its
// window's real cells (the transpose of avgPool2dRef)
/**
 * The backward of average pooling: each `dy / size²` added over its window's real cells.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { avgPool2dBackwardRef } from "./avg_pool2d_ref.ts";
 * import { poolDims } from "./pool_dims.ts";
 * const d = poolDims([1, 1, 2, 4], [1, 1, 1, 2], { size: 2, stride: 2 });
 * const dx = new Float32Array(8);
 * avgPool2dBackwardRef(new Float32Array([4, 8]), dx, d);
 * assert.deepEqual([...dx], [1, 1, 2, 2, 1, 1, 2, 2]);
 * ```
 */
export function avgPool2dBackwardRef(dy: FloatArray, dx: FloatArray, d: PoolDims): void {
  const { h, w, oh, ow, size, stride, padding } = d;
  const k = 1 / (size * size);
  dx.fill(0);
  for (let p = 0; p < d.planes; p++) {
    const xb = p * h * w, yb = p * oh * ow;
    for (let r = 0; r < oh; r++) {
      const r0 = Math.max(r * stride - padding, 0), r1 = Math.min(r * stride - padding + size, h);
      for (let c = 0; c < ow; c++) {
        const c0 = Math.max(c * stride - padding, 0);
        const c1 = Math.min(c * stride - padding + size, w);
        const g = dy[yb + r * ow + c]! * k;
        for (let i = r0; i < r1; i++) {
          for (let j = c0; j < c1; j++) dx[xb + i * w + j] = dx[xb + i * w + j]! + g;
        }
      }
    }
  }
}
