// Reference max-pooling kernels over NCHW planes: the specification the
// fast 2×2 kernels (max_pool2d_fast.ts) are tested against, generic over the
// float width. NaN wins its window, ties go to the window's first maximum,
// and padded cells never win, as in PyTorch.
import type { FloatArray } from "../../graph/op.ts";
import type { PoolDims } from "./pool_dims.ts";

// The window's first maximum in row-major order (strict `>`), which is the
// element PyTorch routes the gradient to on ties. The window at (r0, c0) in
// padded coordinates is clipped to the input: padded cells never win, and
// padding ≤ size/2 leaves every window at least one real cell.
function argmaxOfWindow(x: FloatArray, base: number, r0: number, c0: number, d: PoolDims): number {
  const i0 = Math.max(r0 - d.padding, 0), i1 = Math.min(r0 - d.padding + d.size, d.h);
  const j0 = Math.max(c0 - d.padding, 0), j1 = Math.min(c0 - d.padding + d.size, d.w);
  let best = base + i0 * d.w + j0;
  let bestV = x[best]!;
  for (let i = i0; i < i1; i++) {
    const row = base + i * d.w;
    for (let j = j0; j < j1; j++) {
      const v = x[row + j]!;
      // NaN wins, as in PyTorch, so a diverging run is not hidden
      if (v > bestV || v !== v) {
        best = row + j;
        bestV = v;
      }
    }
  }
  return best;
}

// x: (N, C, H, W) -> y: (N, C, OH, OW), y = max over each size x size window
/**
 * Max pooling of every plane: `y` = the maximum of each window of `x`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { maxPool2dRef } from "./max_pool2d_ref.ts";
 * import { poolDims } from "./pool_dims.ts";
 * // one 2×4 plane, two 2×2 windows
 * const d = poolDims([1, 1, 2, 4], [1, 1, 1, 2], { size: 2, stride: 2 });
 * const x = new Float32Array([1, 5, 2, 0, 3, 4, 8, 6]);
 * const y = new Float32Array(2);
 * maxPool2dRef(x, y, d);
 * assert.deepEqual([...y], [5, 8]);
 * ```
 */
export function maxPool2dRef(x: FloatArray, y: FloatArray, d: PoolDims): void {
  const { h, w, oh, ow, size, stride } = d;
  if (size === 2 && stride === 2 && d.padding === 0) {
    // the lecture's 2x2 pooling: four loads per output, no inner window loops
    for (let p = 0; p < d.planes; p++) {
      const xb = p * h * w;
      const yb = p * oh * ow;
      for (let r = 0; r < oh; r++) {
        const top = xb + 2 * r * w;
        const bot = top + w;
        const yr = yb + r * ow;
        for (let c = 0; c < ow; c++) {
          const a = x[top + 2 * c]!, b = x[top + 2 * c + 1]!;
          const e = x[bot + 2 * c]!, f = x[bot + 2 * c + 1]!;
          // `x !== x` lets NaN through, as PyTorch does
          const m1 = a >= b || a !== a ? a : b;
          const m2 = e >= f || e !== e ? e : f;
          y[yr + c] = m1 >= m2 || m1 !== m1 ? m1 : m2;
        }
      }
    }
    return;
  }
  const pad = d.padding;
  for (let p = 0; p < d.planes; p++) {
    const xb = p * h * w;
    const yb = p * oh * ow;
    for (let r = 0; r < oh; r++) {
      const i0 = Math.max(r * stride - pad, 0), i1 = Math.min(r * stride - pad + size, h);
      for (let c = 0; c < ow; c++) {
        const j0 = Math.max(c * stride - pad, 0), j1 = Math.min(c * stride - pad + size, w);
        let m = -Infinity;
        for (let i = i0; i < i1; i++) {
          const row = xb + i * w;
          for (let j = j0; j < j1; j++) {
            const v = x[row + j]!;
            if (v > m || v !== v) m = v;
          }
        }
        y[yb + r * ow + c] = m;
      }
    }
  }
}

// x: (N, C, H, W), dy: (N, C, OH, OW) -> dx: (N, C, H, W), dy added at each
// window's argmax (added, because overlapping windows can share an argmax)
/**
 * The backward of max pooling: `dx` = `dy` added at each window's first maximum, zero elsewhere.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { maxPool2dBackwardRef } from "./max_pool2d_ref.ts";
 * import { poolDims } from "./pool_dims.ts";
 * // one 2×4 plane, two 2×2 windows
 * const d = poolDims([1, 1, 2, 4], [1, 1, 1, 2], { size: 2, stride: 2 });
 * const x = new Float32Array([1, 5, 2, 0, 3, 4, 8, 6]);
 * const dx = new Float32Array(8);
 * maxPool2dBackwardRef(x, new Float32Array([10, 20]), dx, d);
 * assert.deepEqual([...dx], [0, 10, 0, 0, 0, 0, 20, 0]);
 * ```
 */
export function maxPool2dBackwardRef(
  x: FloatArray,
  dy: FloatArray,
  dx: FloatArray,
  d: PoolDims,
): void {
  dx.fill(0);
  const { h, w, oh, ow, stride } = d;
  if (d.size === 2 && stride === 2 && d.padding === 0) {
    // windows do not overlap: each dx element is written at most once
    for (let p = 0; p < d.planes; p++) {
      const xb = p * h * w;
      const yb = p * oh * ow;
      for (let r = 0; r < oh; r++) {
        const top = xb + 2 * r * w;
        const bot = top + w;
        for (let c = 0; c < ow; c++) {
          const i0 = top + 2 * c, i2 = bot + 2 * c;
          // same comparisons as the forward's first-max rule, in window order
          let k = i0, m = x[i0]!;
          let v = x[i0 + 1]!;
          if (v > m || v !== v) (k = i0 + 1), (m = v);
          v = x[i2]!;
          if (v > m || v !== v) (k = i2), (m = v);
          v = x[i2 + 1]!;
          if (v > m || v !== v) k = i2 + 1;
          dx[k] = dy[yb + r * ow + c]!;
        }
      }
    }
    return;
  }
  for (let p = 0; p < d.planes; p++) {
    const xb = p * h * w;
    const yb = p * oh * ow;
    for (let r = 0; r < oh; r++) {
      for (let c = 0; c < ow; c++) {
        const k = argmaxOfWindow(x, xb, r * stride, c * stride, d);
        dx[k] = dx[k]! + dy[yb + r * ow + c]!;
      }
    }
  }
}

// x: (N, C, H, W), g: (N, C, H, W) -> out: (N, C, OH, OW), g read at each
// window's argmax: the adjoint of the scatter in maxPool2dBackwardRef
/**
 * `out` = `g` read at each window's first maximum of `x`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { maxPool2dGatherRef } from "./max_pool2d_ref.ts";
 * import { poolDims } from "./pool_dims.ts";
 * // one 2×4 plane, two 2×2 windows
 * const d = poolDims([1, 1, 2, 4], [1, 1, 1, 2], { size: 2, stride: 2 });
 * const x = new Float32Array([1, 5, 2, 0, 3, 4, 8, 6]);
 * const out = new Float32Array(2);
 * maxPool2dGatherRef(x, new Float32Array([0, 1, 2, 3, 4, 5, 6, 7]), out, d);
 * assert.deepEqual([...out], [1, 6]); // g at the maxima 5 and 8
 * ```
 */
export function maxPool2dGatherRef(
  x: FloatArray,
  g: FloatArray,
  out: FloatArray,
  d: PoolDims,
): void {
  const { h, w, oh, ow, stride } = d;
  for (let p = 0; p < d.planes; p++) {
    const xb = p * h * w;
    const yb = p * oh * ow;
    for (let r = 0; r < oh; r++) {
      for (let c = 0; c < ow; c++) {
        const k = argmaxOfWindow(x, xb, r * stride, c * stride, d);
        out[yb + r * ow + c] = g[k]!;
      }
    }
  }
}
