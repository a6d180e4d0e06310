// x: (N, C, H, W), w: (OC, C, KH, KW), b: (OC) -> y: (N, OC, OH, OW)
/**
 * Reference 2-D convolution (cross-correlation, as in PyTorch) and its two
 * backward passes: direct loops, generic over the float width. These are
 * the specification the fast kernels are tested against.
 *
 * @module
 */

import type { FloatArray } from "../../graph/op.ts";

/**
 * Sizes of one convolution. Zero padding `padding` and step `stride` apply
 * to both spatial axes; OH = floor((H + 2·padding − KH) / stride) + 1, and
 * likewise OW.
 */
export interface Conv2dDims {
  /** Batch size N. */
  n: number;
  /** Input channels C. */
  c: number;
  /** Input height H. */
  h: number;
  /** Input width W. */
  w: number;
  /** Output channels OC. */
  oc: number;
  /** Kernel height KH. */
  kh: number;
  /** Kernel width KW. */
  kw: number;
  /** Output height OH. */
  oh: number;
  /** Output width OW. */
  ow: number;
  /** Step between windows, ≥ 1. */
  stride: number;
  /** Zeros added on each side, ≥ 0. */
  padding: number;
}

function describe(d: Conv2dDims): string {
  return `x [${d.n},${d.c},${d.h},${d.w}], w [${d.oc},${d.c},${d.kh},${d.kw}], ` +
    `y [${d.n},${d.oc},${d.oh},${d.ow}], stride ${d.stride}, padding ${d.padding}`;
}

/**
 * Throws unless `d` is self-consistent (OH and OW follow from the rest) and
 * each array holds at least as many elements as its shape needs.
 *
 * @example
 * ```ts
 * const d = { n: 1, c: 1, h: 4, w: 4, oc: 1, kh: 3, kw: 3, oh: 2, ow: 2, stride: 1, padding: 0 };
 * import assert from "node:assert/strict";
 * checkConv2dDims("conv2d", d, { x: new Float32Array(16), y: new Float32Array(4) });
 * assert.throws(() => checkConv2dDims("conv2d", { ...d, oh: 3 }, {}), /output should be 2×2/);
 * ```
 */
export function checkConv2dDims(
  op: string,
  d: Conv2dDims,
  arrays: { x?: FloatArray; w?: FloatArray; y?: FloatArray; b?: FloatArray | null },
): void {
  // it runs before every kernel call: no arrays or closures made
  const s = d.stride, p = d.padding;
  if (
    !(natural(d.n) && natural(d.c) && natural(d.h) && natural(d.w) && natural(d.oc) &&
      natural(d.kh) && natural(d.kw) && natural(d.oh) && natural(d.ow) && natural(s) &&
      natural(p)) || s < 1
  ) {
    throw new Error(`${op}: dims must be non-negative integers with stride ≥ 1 (${describe(d)})`);
  }
  const oh = Math.floor((d.h + 2 * p - d.kh) / s) + 1;
  const ow = Math.floor((d.w + 2 * p - d.kw) / s) + 1;
  if (d.oh !== Math.max(oh, 0) || d.ow !== Math.max(ow, 0)) {
    throw new Error(`${op}: output should be ${oh}×${ow} (${describe(d)})`);
  }
  checkLength(op, "x", arrays.x, d.n * d.c * d.h * d.w, d);
  checkLength(op, "w", arrays.w, d.oc * d.c * d.kh * d.kw, d);
  checkLength(op, "y", arrays.y, d.n * d.oc * d.oh * d.ow, d);
  checkLength(op, "b", arrays.b, d.oc, d);
}

function natural(v: number): boolean {
  return Number.isInteger(v) && v >= 0;
}

function checkLength(
  op: string,
  name: string,
  arr: FloatArray | null | undefined,
  len: number,
  d: Conv2dDims,
): void {
  if (arr && arr.length < len) {
    throw new Error(`${op}: ${name} has ${arr.length} elements, needs ${len} (${describe(d)})`);
  }
}

/**
 * y[n, o, i, j] = b[o] + Σ_{c, u, v} x[n, c, i·s − p + u, j·s − p + v] · w[o, c, u, v],
 * with x read as zero outside the image.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const d = { n: 1, c: 1, h: 3, w: 3, oc: 1, kh: 2, kw: 2, oh: 2, ow: 2, stride: 1, padding: 0 };
 * const y = new Float64Array(4);
 * conv2dRef(new Float64Array([1, 2, 3, 4, 5, 6, 7, 8, 9]), new Float64Array([1, 0, 0, 1]), null, y, d);
 * assert.deepEqual([...y], [6, 8, 12, 14]);
 * ```
 */
export function conv2dRef<T extends FloatArray>(
  x: T,
  w: T,
  b: T | null,
  y: T,
  d: Conv2dDims,
): void {
  checkConv2dDims("conv2dRef", d, { x, w, y, b });
  const { n: N, c: C, h: H, w: W, oc: OC, kh: KH, kw: KW, oh: OH, ow: OW } = d;
  const s = d.stride, p = d.padding;
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < OC; o++) {
      for (let i = 0; i < OH; i++) {
        for (let j = 0; j < OW; j++) {
          let acc = b ? b[o] : 0;
          for (let c = 0; c < C; c++) {
            for (let u = 0; u < KH; u++) {
              const ih = i * s - p + u;
              if (ih < 0 || ih >= H) continue;
              for (let v = 0; v < KW; v++) {
                const iw = j * s - p + v;
                if (iw < 0 || iw >= W) continue;
                acc += x[((n * C + c) * H + ih) * W + iw] * w[((o * C + c) * KH + u) * KW + v];
              }
            }
          }
          y[((n * OC + o) * OH + i) * OW + j] = acc;
        }
      }
    }
  }
}

// dy: (N, OC, OH, OW), w: (OC, C, KH, KW) -> dx: (N, C, H, W)
/**
 * Gradient of conv2d with respect to its input: dx = Σ over windows of
 * dy · w scattered back to the pixels each window read. Overwrites dx.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const d = { n: 1, c: 1, h: 3, w: 3, oc: 1, kh: 2, kw: 2, oh: 2, ow: 2, stride: 1, padding: 0 };
 * const dx = new Float64Array(9);
 * conv2dBackwardInputRef(new Float64Array([1, 1, 1, 1]), new Float64Array([1, 0, 0, 1]), dx, d);
 * assert.deepEqual([...dx], [1, 1, 0, 1, 2, 1, 0, 1, 1]);
 * ```
 */
export function conv2dBackwardInputRef<T extends FloatArray>(
  dy: T,
  w: T,
  dx: T,
  d: Conv2dDims,
): void {
  checkConv2dDims("conv2dBackwardInputRef", d, { x: dx, w, y: dy });
  const { n: N, c: C, h: H, w: W, oc: OC, kh: KH, kw: KW, oh: OH, ow: OW } = d;
  const s = d.stride, p = d.padding;
  dx.fill(0, 0, N * C * H * W);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < OC; o++) {
      for (let i = 0; i < OH; i++) {
        for (let j = 0; j < OW; j++) {
          const g = dy[((n * OC + o) * OH + i) * OW + j];
          for (let c = 0; c < C; c++) {
            for (let u = 0; u < KH; u++) {
              const ih = i * s - p + u;
              if (ih < 0 || ih >= H) continue;
              for (let v = 0; v < KW; v++) {
                const iw = j * s - p + v;
                if (iw < 0 || iw >= W) continue;
                dx[((n * C + c) * H + ih) * W + iw] += g * w[((o * C + c) * KH + u) * KW + v];
              }
            }
          }
        }
      }
    }
  }
}

// x: (N, C, H, W), dy: (N, OC, OH, OW) -> dw: (OC, C, KH, KW)
/**
 * Gradient of conv2d with respect to its filter: dw[o, c, u, v] =
 * Σ_{n, i, j} dy[n, o, i, j] · x[n, c, i·s − p + u, j·s − p + v]. Overwrites
 * dw; the bias gradient (a plain sum of dy) is left to the caller.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const d = { n: 1, c: 1, h: 3, w: 3, oc: 1, kh: 2, kw: 2, oh: 2, ow: 2, stride: 1, padding: 0 };
 * const dw = new Float64Array(4);
 * conv2dBackwardFilterRef(new Float64Array([1, 2, 3, 4, 5, 6, 7, 8, 9]), new Float64Array([1, 0, 0, 0]), dw, d);
 * assert.deepEqual([...dw], [1, 2, 4, 5]);
 * ```
 */
export function conv2dBackwardFilterRef<T extends FloatArray>(
  x: T,
  dy: T,
  dw: T,
  d: Conv2dDims,
): void {
  checkConv2dDims("conv2dBackwardFilterRef", d, { x, w: dw, y: dy });
  const { n: N, c: C, h: H, w: W, oc: OC, kh: KH, kw: KW, oh: OH, ow: OW } = d;
  const s = d.stride, p = d.padding;
  dw.fill(0, 0, OC * C * KH * KW);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < OC; o++) {
      for (let i = 0; i < OH; i++) {
        for (let j = 0; j < OW; j++) {
          const g = dy[((n * OC + o) * OH + i) * OW + j];
          for (let c = 0; c < C; c++) {
            for (let u = 0; u < KH; u++) {
              const ih = i * s - p + u;
              if (ih < 0 || ih >= H) continue;
              for (let v = 0; v < KW; v++) {
                const iw = j * s - p + v;
                if (iw < 0 || iw >= W) continue;
                dw[((o * C + c) * KH + u) * KW + v] += g * x[((n * C + c) * H + ih) * W + iw];
              }
            }
          }
        }
      }
    }
  }
}
