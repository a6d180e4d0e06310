// Reference average-pooling kernels over NCHW planes, generic over the float
// width (the only tier: pooling is a small share of a step).
import type { FloatArray } from "../../graph/op.ts";
import type { PoolDims } from "./pool_dims.ts";

// x: (N, C, H, W) -> y: (N, C, OH, OW); y = Σ window / size², padded zeros
// counted (PyTorch's count_include_pad=True)
/** Average pooling of every plane, padded zeros counted. */
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
/** The backward of average pooling: each `dy / size²` added over its window's real cells. */
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
