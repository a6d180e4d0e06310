// z: (N, C, H, W), b: (C) -> packed: (2, N, C, PH, PW) = [maxpool2x2(relu(z + b)), codes]
/**
 * Reference kernels of the fused bias + ReLU + 2×2 stride-2 max-pool that
 * follows a convolution of any size (the convolution itself runs without
 * its bias, on its own kernels), and of its backward. They compute, window
 * by window, exactly what the unfused reference ops compute in turn: each
 * value `z + b` rounded to the output's precision; ReLU keeps NaN; the pool
 * takes the maximum and lets NaN win; the backward routes a window's
 * gradient to its first element equal to the maximum (max_pool2d_backward's
 * rule), and ReLU's backward passes it only where that value is positive, so
 * a window whose maximum is NaN or not positive passes nothing. The odd last
 * row or column of z that no window covers gets a zero gradient.
 *
 * @module
 */

import { type FloatArray, fmtShape, type Shape } from "../../graph/op.ts";

/** Sizes of the fused bias + ReLU + pool: the convolution output's and the pooled ones. */
export interface BiasReluPoolDims {
  /** Batch size. */
  n: number;
  /** Channels. */
  c: number;
  /** Height of z (the convolution's output). */
  h: number;
  /** Width of z. */
  w: number;
  /** Pooled height ⌊H / 2⌋. */
  ph: number;
  /** Pooled width ⌊W / 2⌋. */
  pw: number;
}

/**
 * Sizes of the fused op from the shape of z `[N, C, H, W]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { biasReluPoolDims } from "./bias_relu_pool_ref.ts";
 * assert.deepEqual(biasReluPoolDims([8, 64, 24, 25]), { n: 8, c: 64, h: 24, w: 25, ph: 12, pw: 12 });
 * ```
 */
export function biasReluPoolDims(z: Shape): BiasReluPoolDims {
  const [n, c, h, w] = z as number[];
  return { n: n!, c: c!, h: h!, w: w!, ph: h! >> 1, pw: w! >> 1 };
}

/**
 * Checks z `[N, C, H, W]` and b `[C]` for the fused op; returns its packed
 * output shape `[2, N, C, ⌊H/2⌋, ⌊W/2⌋]` (the pooled values, then the codes).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { biasReluPoolPackedShape } from "./bias_relu_pool_ref.ts";
 * assert.deepEqual(biasReluPoolPackedShape([-1, 64, 24, 24], [64]), [2, -1, 64, 12, 12]);
 * assert.throws(() => biasReluPoolPackedShape([-1, 64, 24, 24], [32]), /bias must be \[64\]/);
 * ```
 */
export function biasReluPoolPackedShape(z: Shape, b: Shape): number[] {
  if (z.length !== 4) throw new Error(`z must be 4-D [N,C,H,W], got ${fmtShape(z)}`);
  if (b.length !== 1 || b[0] !== z[1]) {
    throw new Error(`the bias must be [${z[1]}], one value per channel, got ${fmtShape(b)}`);
  }
  if (z[2]! < 2 || z[3]! < 2) {
    throw new Error(`z ${fmtShape(z)} is smaller than one 2x2 window`);
  }
  return [2, z[0]!, z[1]!, z[2]! >> 1, z[3]! >> 1];
}

function rounder(y: FloatArray): (v: number) => number {
  return y instanceof Float32Array ? Math.fround : (v) => v;
}

/**
 * packed = [y, codes]: y = max-pool 2×2 (ReLU (z + b)), the composition of
 * the reference ops one window at a time, and for each window a code saying
 * which element its gradient goes to: 0 when none does (the maximum m is not
 * positive, or NaN), else `1 + 2·[v₂ = m] + 4·[v₁ = m] + 8·[v₀ = m]` over
 * the window's values v₀ v₁ / v₂ v₃, whose highest bit names the first
 * element equal to m (the SIMD kernel forms it without branches). Both
 * halves have the pooled shape (N, C, PH, PW).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { biasReluPoolRef } from "./bias_relu_pool_ref.ts";
 * const d = { n: 1, c: 2, h: 2, w: 2, ph: 1, pw: 1 };
 * const packed = new Float64Array(4);
 * biasReluPoolRef(new Float64Array([1, 3, 3, 2, -5, -4, -3, -2]), new Float64Array([1, 0]), packed, d);
 * // channel 0: [2, 4, 4, 3], max 4 at v₁ and v₂: code 1 + 2 + 4, whose highest
 * // bit names v₁ (top right), the first 4; channel 1: nothing positive, code 0
 * assert.deepEqual([...packed], [4, 0, 7, 0]);
 * ```
 */
export function biasReluPoolRef(
  z: FloatArray,
  b: FloatArray,
  packed: FloatArray,
  d: BiasReluPoolDims,
): void {
  const round = rounder(packed);
  const { h: H, w: W, ph: PH, pw: PW } = d;
  const v = [0, 0, 0, 0];
  const half = d.n * d.c * PH * PW;
  let at = 0;
  for (let n = 0; n < d.n; n++) {
    for (let o = 0; o < d.c; o++) {
      const bias = b[o]!;
      const plane = (n * d.c + o) * H * W;
      for (let i = 0; i < PH; i++) {
        for (let j = 0; j < PW; j++) {
          const top = plane + 2 * i * W + 2 * j;
          v[0] = round(z[top]! + bias);
          v[1] = round(z[top + 1]! + bias);
          v[2] = round(z[top + W]! + bias);
          v[3] = round(z[top + W + 1]! + bias);
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
          packed[half + at] = m > 0
            ? 1 + (v[2] === m ? 2 : 0) + (v[1] === m ? 4 : 0) + (v[0] === m ? 8 : 0)
            : 0;
          at++;
        }
      }
    }
  }
}

// The window element (0 top left, 1 top right, 2, 3 the bottom row) a
// nonzero code names: its highest bit.
function firstOfCode(code: number): number {
  return code >= 8 ? 0 : code >= 4 ? 1 : code >= 2 ? 2 : 3;
}

/**
 * dz = the gradient of `sum(dy · y)` for y of {@link biasReluPoolRef} with
 * respect to z (and so to the convolution's output): dy of each window at
 * the element its code names, zero everywhere else, from the forward's
 * packed output and dy (N, C, PH, PW); dz has z's shape (N, C, H, W).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reluPoolBackwardRef } from "./bias_relu_pool_ref.ts";
 * const d = { n: 1, c: 1, h: 2, w: 3, ph: 1, pw: 1 };
 * const dz = new Float64Array(6).fill(9);
 * reluPoolBackwardRef(new Float64Array([4, 3]), new Float64Array([5]), dz, d);
 * // code 3 = 1 + 2: the bottom-left element; the third column is in no window
 * assert.deepEqual([...dz], [0, 0, 0, 5, 0, 0]);
 * ```
 */
export function reluPoolBackwardRef(
  packed: FloatArray,
  dy: FloatArray,
  dz: FloatArray,
  d: BiasReluPoolDims,
): void {
  const { h: H, w: W, ph: PH, pw: PW } = d;
  const half = d.n * d.c * PH * PW;
  dz.fill(0);
  let at = 0;
  for (let p = 0; p < d.n * d.c; p++) {
    const plane = p * H * W;
    for (let i = 0; i < PH; i++) {
      for (let j = 0; j < PW; j++, at++) {
        const code = packed[half + at]!;
        if (code === 0) continue;
        const q = firstOfCode(code);
        dz[plane + (2 * i + (q >> 1)) * W + 2 * j + (q & 1)] = dy[at]!;
      }
    }
  }
}

/**
 * Checks z `[N, C, ...]` and b `[C]` for the fused bias + ReLU; returns z's shape.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { biasReluShape } from "./bias_relu_pool_ref.ts";
 * assert.deepEqual(biasReluShape([-1, 32, 26, 26], [32]), [-1, 32, 26, 26]);
 * assert.throws(() => biasReluShape([-1, 32, 26, 26], [26]), /bias must be \[32\]/);
 * ```
 */
export function biasReluShape(z: Shape, b: Shape): Shape {
  if (z.length < 2) throw new Error(`z must be at least 2-D [N, C, ...], got ${fmtShape(z)}`);
  if (b.length !== 1 || b[0] !== z[1]) {
    throw new Error(`the bias must be [${z[1]}], one value per channel, got ${fmtShape(b)}`);
  }
  return z;
}

// z: (N, C, inner), b: (C) -> y: (N, C, inner) = relu(z + b)
/**
 * y = ReLU(z + b), b added along axis 1 of z `[N, C, inner…]` and each sum
 * rounded to y's precision, as the unfused add and ReLU give it: NaN kept,
 * -0 and negatives to +0.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { biasReluRef } from "./bias_relu_pool_ref.ts";
 * const y = new Float64Array(4);
 * biasReluRef(new Float64Array([1, -2, 3, NaN]), new Float64Array([1, -3]), y, 2, 2);
 * assert.deepEqual([...y], [2, 0, 0, NaN]);
 * ```
 */
export function biasReluRef(
  z: FloatArray,
  b: FloatArray,
  y: FloatArray,
  c: number,
  inner: number,
): void {
  const round = rounder(y);
  for (let at = 0, p = 0; at < y.length; p++) {
    const bias = b[p % c]!;
    for (let i = 0; i < inner; i++, at++) {
      const v = round(z[at]! + bias);
      y[at] = v > 0 || v !== v ? v : 0;
    }
  }
}

/**
 * db = the sum over N, H and W of the dz that {@link reluPoolBackwardRef}
 * writes, without writing dz: each nonzero of dz added exactly where and in
 * the order the unfused `sum` adds it, so the result is the same bits.
 * `order` names that `sum` kernel: `"ref"` its reference (four float64
 * chains by position mod 4 per plane, the last H·W mod 4 values on the
 * first), `"runs"` the wasm `sum_runs` (eight float32 lanes by position mod
 * 8, folded as (l₀+l₄ + l₁+l₅) + (l₂+l₆ + l₃+l₇), then the last H·W mod 8
 * values one by one); each plane's sum is then added to db[c] in
 * db's precision. Zeros of dz change no sum, so only the windows' chosen
 * elements are visited, row by row.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reluPoolBiasGradRef } from "./bias_relu_pool_ref.ts";
 * const d = { n: 2, c: 1, h: 2, w: 2, ph: 1, pw: 1 };
 * const db = new Float64Array(1);
 * // packed [y0, y1, code0, code1]: the first image's window passes its 5, the second's nothing
 * reluPoolBiasGradRef(new Float64Array([1, 0, 8, 0]), new Float64Array([5, 7]), db, d, "ref");
 * assert.deepEqual([...db], [5]);
 * ```
 */
export function reluPoolBiasGradRef(
  packed: FloatArray,
  dy: FloatArray,
  db: FloatArray,
  d: BiasReluPoolDims,
  order: "ref" | "runs",
): void {
  const { h: H, w: W, ph: PH, pw: PW, c: C } = d;
  const half = d.n * C * PH * PW;
  const inner = H * W;
  const runs = order === "runs";
  const f32 = runs ? Math.fround : (v: number) => v;
  // the accumulators a plain element goes to, and where the tail starts
  const lanes = runs ? 8 : 4, body = inner - inner % lanes;
  const acc = [0, 0, 0, 0, 0, 0, 0, 0];
  const tail: number[] = [];
  db.fill(0);
  let at = 0;
  for (let p = 0; p < d.n * C; p++) {
    acc.fill(0);
    tail.length = 0;
    for (let i = 0; i < PH; i++) {
      for (const row of [0, 1]) {
        for (let j = 0; j < PW; j++) {
          const code = packed[half + at + i * PW + j]!;
          if (code === 0) continue;
          const q = firstOfCode(code);
          if (q >> 1 !== row) continue;
          const idx = (2 * i + row) * W + 2 * j + (q & 1);
          const g = dy[at + i * PW + j]!;
          if (idx < body) acc[idx % lanes] = f32(acc[idx % lanes]! + g);
          else if (runs) tail.push(g);
          else acc[0] += g;
        }
      }
    }
    let t: number;
    if (runs) {
      const v = [0, 1, 2, 3].map((l) => f32(acc[l]! + acc[l + 4]!));
      t = f32(f32(v[0]! + v[1]!) + f32(v[2]! + v[3]!));
      for (const g of tail) t = f32(t + g);
    } else {
      t = (acc[0]! + acc[1]!) + (acc[2]! + acc[3]!);
    }
    db[p % C] = db[p % C]! + t;
    at += PH * PW;
  }
}
