// x: (N, C, H, W), w: (OC, C, KH, KW), b: (OC) -> y: (N, OC, PH, PW) = maxpool2x2(relu(conv(x) + b))
/**
 * Reference kernels of the fused convolution + bias + ReLU + 2×2 max-pool
 * (stride 1, no padding) and of its backward to the filter and the bias.
 * They compute, window by window, exactly what the unfused reference ops
 * compute in turn: each convolution value is summed as `conv2dRef` sums it
 * (bias first, then c, u, v) and rounded to the output's precision; ReLU
 * keeps NaN; the pool takes the first strict maximum and lets NaN win; the
 * backward routes a window's gradient to its first element equal to the
 * maximum, and ReLU's backward passes it only where that value is positive,
 * so a window whose maximum is NaN or not positive passes nothing.
 *
 * @module
 */

import { type FloatArray, fmtShape, type Shape } from "../../graph/op.ts";

/** Sizes of the fused convolution: the convolution's own, and the pooled output. */
export interface ConvReluPoolDims {
  /** Batch size. */
  n: number;
  /** Input channels. */
  c: number;
  /** Input height. */
  h: number;
  /** Input width. */
  w: number;
  /** Output channels. */
  oc: number;
  /** Filter height. */
  kh: number;
  /** Filter width. */
  kw: number;
  /** Pooled height ⌊(H − KH + 1) / 2⌋. */
  ph: number;
  /** Pooled width ⌊(W − KW + 1) / 2⌋. */
  pw: number;
}

/**
 * Sizes of a fused convolution from its input and filter shapes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { convReluPoolDims } from "./conv2d_relu_pool_ref.ts";
 * assert.equal(convReluPoolDims([8, 1, 28, 28], [32, 1, 3, 3]).pw, 13);
 * ```
 */
export function convReluPoolDims(x: Shape, w: Shape): ConvReluPoolDims {
  // index reads, not destructuring: it runs every step, and unoptimised
  // destructuring makes an iterator per array
  const h = x[2]!, wd = x[3]!, kh = w[2]!, kw = w[3]!;
  return {
    n: x[0]!,
    c: x[1]!,
    h,
    w: wd,
    oc: w[0]!,
    kh,
    kw,
    ph: Math.floor((h - kh + 1) / 2),
    pw: Math.floor((wd - kw + 1) / 2),
  };
}

/**
 * Checks x [N,C,H,W], w [OC,C,KH,KW], b [OC] for a fused convolution;
 * returns the pooled shape.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { convReluPoolShape } from "./conv2d_relu_pool_ref.ts";
 * assert.deepEqual(convReluPoolShape([8, 1, 28, 28], [32, 1, 3, 3], [32]), [8, 32, 13, 13]);
 * assert.throws(() => convReluPoolShape([8, 1, 28, 28], [32, 1, 3, 3], [4]), /bias/);
 * ```
 */
export function convReluPoolShape(x: Shape, w: Shape, b: Shape): number[] {
  if (x.length !== 4) throw new Error(`x must be 4-D [N,C,H,W], got ${fmtShape(x)}`);
  if (w.length !== 4) throw new Error(`w must be 4-D [OC,C,KH,KW], got ${fmtShape(w)}`);
  if (x[1] !== w[1]) throw new Error(`input has ${x[1]} channels but the filter expects ${w[1]}`);
  if (b.length !== 1 || b[0] !== w[0]) {
    throw new Error(`the bias must be [${w[0]}], one value per output channel, got ${fmtShape(b)}`);
  }
  const oh = x[2]! - w[2]! + 1, ow = x[3]! - w[3]! + 1;
  if (oh < 2 || ow < 2) {
    throw new Error(`the ${w[2]}x${w[3]} filter leaves no 2x2 window in the ${x[2]}x${x[3]} input`);
  }
  return [x[0]!, w[0]!, Math.floor(oh / 2), Math.floor(ow / 2)];
}

/**
 * The packed output of a fused convolution: `[2, ...pooled shape]`, y then
 * the gradient codes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { convReluPoolPackedShape } from "./conv2d_relu_pool_ref.ts";
 * assert.deepEqual(convReluPoolPackedShape([8, 1, 28, 28], [32, 1, 3, 3], [32]), [2, 8, 32, 13, 13]);
 * ```
 */
export function convReluPoolPackedShape(x: Shape, w: Shape, b: Shape): number[] {
  return [2, ...convReluPoolShape(x, w, b)];
}

// The four convolution values of pooled window (i, j) of image n, channel o,
// rounded like the unfused conv's output buffer.
function windowValues(
  x: FloatArray,
  w: FloatArray,
  b: FloatArray,
  d: ConvReluPoolDims,
  n: number,
  o: number,
  i: number,
  j: number,
  round: (v: number) => number,
  out: number[],
): void {
  const { c: C, h: H, w: W, kh: KH, kw: KW } = d;
  for (let q = 0; q < 4; q++) {
    const oi = 2 * i + (q >> 1), oj = 2 * j + (q & 1);
    let acc = b[o]!;
    for (let c = 0; c < C; c++) {
      for (let u = 0; u < KH; u++) {
        const row = ((n * C + c) * H + oi + u) * W + oj;
        const wr = ((o * C + c) * KH + u) * KW;
        for (let v = 0; v < KW; v++) acc += x[row + v]! * w[wr + v]!;
      }
    }
    out[q] = round(acc);
  }
}

// float64 sums of the backward, grown as needed so a step allocates nothing
let scratch = new Float64Array(0);

function rounder(y: FloatArray): (v: number) => number {
  return y instanceof Float32Array ? Math.fround : (v) => v;
}

/**
 * packed = [y, codes]: y = max-pool 2×2 (ReLU (conv2d(x, w) + b)), the
 * composition of the reference ops one window at a time, and for each
 * window `codes` = 1 + the index (0 top left, 1 top right, 2, 3 the bottom
 * row) of the element its gradient goes to, or 0 when none does (the
 * maximum is not positive, or NaN). Both halves have y's shape (N, OC, PH, PW).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { conv2dReluPoolRef } from "./conv2d_relu_pool_ref.ts";
 * const d = { n: 1, c: 1, h: 3, w: 3, oc: 1, kh: 2, kw: 2, ph: 1, pw: 1 };
 * const packed = new Float64Array(2);
 * conv2dReluPoolRef(new Float64Array([1, 2, 3, 4, 5, 6, 7, 8, 9]), new Float64Array([1, 0, 0, 1]), new Float64Array([-10]), packed, d);
 * // the convolution is [6, 8, 12, 14] - 10: y = [4] from the bottom right, code 4
 * assert.deepEqual([...packed], [4, 4]);
 * ```
 */
export function conv2dReluPoolRef(
  x: FloatArray,
  w: FloatArray,
  b: FloatArray,
  packed: FloatArray,
  d: ConvReluPoolDims,
): void {
  const round = rounder(packed);
  const v = [0, 0, 0, 0];
  const half = d.n * d.oc * d.ph * d.pw;
  let at = 0;
  for (let n = 0; n < d.n; n++) {
    for (let o = 0; o < d.oc; o++) {
      for (let i = 0; i < d.ph; i++) {
        for (let j = 0; j < d.pw; j++) {
          windowValues(x, w, b, d, n, o, i, j, round, v);
          let best = v[0]! > 0 || v[0] !== v[0] ? v[0]! : 0;
          let m = v[0]!;
          for (let q = 1; q < 4; q++) {
            const r = v[q]! > 0 || v[q] !== v[q] ? v[q]! : 0;
            if (r > best || r !== r) best = r;
            if (v[q]! > m || v[q] !== v[q]) m = v[q]!;
          }
          packed[at] = best;
          // the unfused backward: the pool routes to the first element equal
          // to the maximum, ReLU's backward passes it where that is positive
          packed[half + at] = m > 0 ? 1 + v.indexOf(m) : 0;
          at++;
        }
      }
    }
  }
}

/**
 * Gradients of `sum(dy · y)` for y of {@link conv2dReluPoolRef} with
 * respect to w and b, packed as out = [dw (OC·C·KH·KW), db (OC)], from x,
 * the forward's packed output (its codes) and dy.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { conv2dReluPoolBackwardRef } from "./conv2d_relu_pool_ref.ts";
 * const d = { n: 1, c: 1, h: 3, w: 3, oc: 1, kh: 2, kw: 2, ph: 1, pw: 1 };
 * const out = new Float64Array(5);
 * const x = new Float64Array([1, 2, 3, 4, 5, 6, 7, 8, 9]);
 * conv2dReluPoolBackwardRef(x, new Float64Array([4, 4]), new Float64Array([2]), out, d);
 * // the gradient goes to the window at (1, 1): dw = 2·[5, 6, 8, 9], db = 2
 * assert.deepEqual([...out], [10, 12, 16, 18, 2]);
 * ```
 */
export function conv2dReluPoolBackwardRef(
  x: FloatArray,
  packed: FloatArray,
  dy: FloatArray,
  out: FloatArray,
  d: ConvReluPoolDims,
): void {
  const { c: C, h: H, w: W, kh: KH, kw: KW, oc: OC } = d;
  const round = rounder(out);
  const nw = OC * C * KH * KW;
  if (scratch.length < nw + OC) scratch = new Float64Array(nw + OC);
  const acc = scratch.fill(0, 0, nw + OC);
  const half = d.n * OC * d.ph * d.pw;
  for (let n = 0; n < d.n; n++) {
    for (let o = 0; o < OC; o++) {
      for (let i = 0; i < d.ph; i++) {
        for (let j = 0; j < d.pw; j++) {
          const at = ((n * OC + o) * d.ph + i) * d.pw + j;
          const code = packed[half + at]!;
          if (code === 0) continue;
          const g = dy[at]!;
          const q = code - 1;
          const oi = 2 * i + (q >> 1), oj = 2 * j + (q & 1);
          acc[nw + o] += g;
          for (let c = 0; c < C; c++) {
            for (let u = 0; u < KH; u++) {
              const row = ((n * C + c) * H + oi + u) * W + oj;
              const wr = ((o * C + c) * KH + u) * KW;
              for (let k = 0; k < KW; k++) acc[wr + k] += g * x[row + k]!;
            }
          }
        }
      }
    }
  }
  for (let k = 0; k < nw + OC; k++) out[k] = round(acc[k]!);
}

/**
 * Makes the packed `[dw, db]` of {@link conv2dReluPoolBackwardRef} NaN where
 * the unfused backward's is: there, dw[o, c, u, v] sums dconv · x over every
 * output position, and a zero dconv times a NaN input is NaN, so a NaN
 * anywhere in x[n, c, u…u+OH−1, v…v+OW−1] makes dw[·, c, u, v] NaN for every
 * output channel. The fused kernels only visit the positions that take a
 * gradient; this pass over x (nothing to do without NaN) restores the rest.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { propagateInputNaN } from "./conv2d_relu_pool_ref.ts";
 * const d = { n: 1, c: 1, h: 3, w: 3, oc: 1, kh: 2, kw: 2, ph: 1, pw: 1 };
 * const out = new Float64Array(5);
 * propagateInputNaN(new Float64Array([NaN, 0, 0, 0, 0, 0, 0, 0, 0]), out, d);
 * // x[0, 0] is read only by tap (0, 0)
 * assert.deepEqual([...out], [NaN, 0, 0, 0, 0]);
 * ```
 */
export function propagateInputNaN(x: FloatArray, out: FloatArray, d: ConvReluPoolDims): void {
  const { c: C, h: H, w: W, kh: KH, kw: KW, oc: OC } = d;
  const oh = H - KH + 1, ow = W - KW + 1;
  const len = d.n * C * H * W;
  for (let at = 0; at < len; at++) {
    if (x[at] === x[at]) continue;
    const j = at % W, i = Math.floor(at / W) % H, c = Math.floor(at / (W * H)) % C;
    for (let u = 0; u < KH; u++) {
      if (i - u < 0 || i - u >= oh) continue;
      for (let v = 0; v < KW; v++) {
        if (j - v < 0 || j - v >= ow) continue;
        for (let o = 0; o < OC; o++) out[((o * C + c) * KH + u) * KW + v] = NaN;
      }
    }
  }
}
