// x: (N, C, H, W), w: (OC, C, 3, 3), b: (OC) -> y: (N, OC, OH, OW), stride 1, any padding
/**
 * Winograd minimal filtering F(m×m, 3×3) for 3×3, stride-1 convolutions:
 * the transform matrices of F(2×2, 3×3) and F(4×4, 3×3) and a float64
 * reference convolution built on them (the specification the wasm kernel
 * is tested against, itself tested against the direct `conv2dRef`).
 *
 * Construction (Lavin & Gray 2015, "Fast Algorithms for Convolutional
 * Neural Networks", after Toom–Cook): a correlation y_k = Σ_j g_j d_{k+j}
 * (k < m, j < r = 3, α = m + r − 1 inputs) is the transpose of the
 * polynomial product s(x) = g(x)·d'(x), computed by evaluating g and d' at
 * α − 1 finite points p_i and at ∞ (the leading coefficient), multiplying
 * pointwise and interpolating. Transposed, that gives
 *   y = Aᵀ[(G g) ⊙ (Bᵀ d)]
 * with Aᵀ[k][i] = p_i^k (column ∞: 1 in row m − 1), G[i] = [1, p_i, p_i²] /
 * Π_{j≠i}(p_i − p_j) (row ∞: [0, 0, 1]) and Bᵀ row i the coefficients of
 * Π_{j≠i}(x − p_j) (row ∞: Π_j (x − p_j)), the Lagrange denominators moved
 * into G so that Bᵀ holds small numbers (integers for integer points). In
 * 2-D: Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A. Points: 0, ±1 (F(2×2)); 0, ±1, 2, −½
 * (F(4×4), chosen for its float32 error, see {@link WINOGRAD_F4}); ∞ for both.
 *
 * @module
 */

import type { FloatArray } from "../../graph/op.ts";
import { checkConv2dDims, type Conv2dDims } from "./conv2d_ref.ts";

/** Output tile side m of F(m×m, 3×3): 2 or 4. */
export type WinogradTile = 2 | 4;

/** The three transforms of one F(m×m, 3×3) variant, as row-major number[][]. */
export interface WinogradMatrices {
  /** Output tile side m. */
  m: number;
  /** Input tile side α = m + 2. */
  alpha: number;
  /** Output transform Aᵀ, m×α. */
  AT: number[][];
  /** Filter transform G, α×3. */
  G: number[][];
  /** Input transform Bᵀ, α×α (small integers). */
  BT: number[][];
}

// Coefficients (lowest power first) of Π (x − r) over the roots r.
function polyFromRoots(roots: number[]): number[] {
  let c = [1];
  for (const r of roots) {
    const next = new Array<number>(c.length + 1).fill(0);
    for (let i = 0; i < c.length; i++) {
      next[i + 1]! += c[i]!;
      next[i]! -= r * c[i]!;
    }
    c = next;
  }
  return c;
}

/**
 * The Winograd transforms for output tile `m` from the finite interpolation
 * points `points` (m + 1 distinct values; ∞ is always added), built as the
 * module doc describes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const { AT, G, BT } = winogradMatrices(2, [0, 1, -1]);
 * assert.deepEqual(BT, [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, -1, 0, 1]]);
 * assert.deepEqual(G, [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]);
 * assert.deepEqual(AT, [[1, 1, 1, 0], [0, 1, -1, 1]]);
 * ```
 */
export function winogradMatrices(m: number, points: readonly number[]): WinogradMatrices {
  const r = 3, alpha = m + r - 1;
  if (points.length !== alpha - 1 || new Set(points).size !== points.length) {
    throw new Error(
      `winogradMatrices: F(${m}×${m}, 3×3) needs ${
        alpha - 1
      } distinct finite points, got [${points}]`,
    );
  }
  const AT: number[][] = [], G: number[][] = [], BT: number[][] = [];
  for (let k = 0; k < m; k++) {
    AT.push([...points.map((p) => p ** k), k === m - 1 ? 1 : 0]);
  }
  points.forEach((p, i) => {
    const others = points.filter((_, j) => j !== i);
    let den = 1;
    for (const q of others) den *= p - q;
    // a positive denominator keeps Bᵀ's signs the conventional ones
    const sign = Math.sign(den);
    BT.push(polyFromRoots(others).concat(0).map((c) => sign * c + 0));
    G.push([1, p, p * p].map((v) => v / Math.abs(den) + 0));
  });
  BT.push(polyFromRoots([...points]));
  G.push([0, 0, 1]);
  return { m, alpha, AT, G, BT };
}

/**
 * F(2×2, 3×3) from the points 0, ±1, ∞ (α = 4: 16 multiplies per 4 outputs).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WINOGRAD_F2 } from "./winograd_ref.ts";
 * // 1-D: Aᵀ[(G g) ⊙ (Bᵀ d)] is the correlation of d with the 3-tap filter g
 * const { AT, G, BT } = WINOGRAD_F2;
 * const mv = (M: number[][], v: number[]) => M.map((r) => r.reduce((s, a, j) => s + a * v[j]!, 0));
 * const d = [1, 2, 3, 4], g = [1, 0, -1];
 * const u = mv(G, g), v = mv(BT, d);
 * const y = mv(AT, u.map((ui, i) => ui * v[i]!));
 * assert.deepEqual(y.map((v) => Math.round(v * 1e9) / 1e9), [-2, -2]);
 * ```
 */
export const WINOGRAD_F2: WinogradMatrices = winogradMatrices(2, [0, 1, -1]);

/**
 * F(4×4, 3×3) from the points 0, ±1, 2, −½, ∞ (α = 6: 36 multiplies per 16
 * outputs). Lavin's 0, ±1, ±2 keep Bᵀ integral and let more of the
 * transforms share sums, but in float32 they err more: on mnist-net's conv2
 * (C 32 → OC 64, 26×26, uniform data) the forward's worst error was 1.5e-6
 * of Σ|x||w| with ±2 and 5.5e-7 with 2, −½ (mean 5.8e-8 and 4.8e-8), and
 * over 3000 random small shapes 4.7e-5 and 2.7e-5 of an output's own
 * window; the speed measured the same within noise (Barabasz et al. 2020
 * also find points like these the most accurate for F(4, 3)).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WINOGRAD_F4 } from "./winograd_ref.ts";
 * // 1-D: Aᵀ[(G g) ⊙ (Bᵀ d)] is the correlation of d with the 3-tap filter g
 * const { AT, G, BT } = WINOGRAD_F4;
 * const mv = (M: number[][], v: number[]) => M.map((r) => r.reduce((s, a, j) => s + a * v[j]!, 0));
 * const d = [1, 2, 3, 4, 5, 6], g = [1, 0, -1];
 * const u = mv(G, g), v = mv(BT, d);
 * const y = mv(AT, u.map((ui, i) => ui * v[i]!));
 * assert.deepEqual(y.map((v) => Math.round(v * 1e9) / 1e9), [-2, -2, -2, -2]);
 * ```
 */
export const WINOGRAD_F4: WinogradMatrices = winogradMatrices(4, [0, 1, -1, 2, -0.5]);

/**
 * The transforms of F(`m`×`m`, 3×3): {@link WINOGRAD_F2} or {@link WINOGRAD_F4}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(winograd(4).alpha, 6);
 * ```
 */
export function winograd(m: WinogradTile): WinogradMatrices {
  if (m === 2) return WINOGRAD_F2;
  if (m === 4) return WINOGRAD_F4;
  throw new Error(`winograd: the output tile must be 2 or 4, got ${m}`);
}

/**
 * Whether a convolution of sizes `d` is one Winograd F(m×m, 3×3) serves:
 * a 3×3 filter, stride 1 and a non-empty output.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const d = { n: 1, c: 1, h: 4, w: 4, oc: 1, kh: 3, kw: 3, oh: 2, ow: 2, stride: 1, padding: 0 };
 * assert.equal(winogradApplies(d), true);
 * assert.equal(winogradApplies({ ...d, stride: 2, oh: 1, ow: 1 }), false);
 * ```
 */
export function winogradApplies(d: Conv2dDims): boolean {
  return d.kh === 3 && d.kw === 3 && d.stride === 1 && d.oh > 0 && d.ow > 0;
}

/**
 * The transformed filter U = G g Gᵀ of every (output, input) channel pair,
 * laid out U[ξ][c][o] (ξ = row·α + column of the α×α tile), float64. With
 * `flip`, the filter is first rotated 180° and its channels swapped
 * (g'[c][o] = g[o][c] rotated), the filter of the backward-to-input pass;
 * then U has `oc` rows of `c` (the roles exchange).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * // a filter with a single 1 at its centre transforms to the centre column ⊗ itself
 * const w = new Float64Array(9); w[4] = 1;
 * const u = winogradFilter(w, 1, 1, WINOGRAD_F2, false);
 * assert.deepEqual([...u.slice(0, 4)], [0, 0, 0, 0]);
 * assert.equal(u[5], 0.25);
 * ```
 */
export function winogradFilter(
  w: FloatArray,
  oc: number,
  c: number,
  t: WinogradMatrices,
  flip: boolean,
): Float64Array {
  const { alpha: a, G } = t;
  const [rows, cols] = flip ? [oc, c] : [c, oc];
  const u = new Float64Array(a * a * rows * cols);
  const tmp = new Float64Array(a * 3);
  for (let o = 0; o < oc; o++) {
    for (let ci = 0; ci < c; ci++) {
      const base = (o * c + ci) * 9;
      const g = (i: number, j: number) =>
        flip ? w[base + (2 - i) * 3 + 2 - j]! : w[base + i * 3 + j]!;
      // tmp = G g (α×3), then U = tmp Gᵀ (α×α)
      for (let i = 0; i < a; i++) {
        for (let j = 0; j < 3; j++) {
          tmp[i * 3 + j] = G[i]![0]! * g(0, j) + G[i]![1]! * g(1, j) + G[i]![2]! * g(2, j);
        }
      }
      const [row, col] = flip ? [o, ci] : [ci, o];
      for (let i = 0; i < a; i++) {
        for (let j = 0; j < a; j++) {
          const v = tmp[i * 3]! * G[j]![0]! + tmp[i * 3 + 1]! * G[j]![1]! +
            tmp[i * 3 + 2]! * G[j]![2]!;
          u[((i * a + j) * rows + row) * cols + col] = v;
        }
      }
    }
  }
  return u;
}

/**
 * Winograd F(m×m, 3×3) convolution in float64, same result as `conv2dRef`
 * (up to rounding) for 3×3 filters with stride 1 and any padding: the
 * output is cut into m×m tiles, each read from an α×α input patch (zeros
 * outside the image, and past its end for the partial tiles at the edges).
 * With `flip`, computes the backward-to-input pass instead: `x` is then dy
 * `(N, OC, OH, OW)`, `y` is dx `(N, C, H, W)`, `b` must be null, and `d` is
 * the forward convolution's sizes (padding ≤ 2).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { conv2dRef } from "./conv2d_ref.ts";
 * const d = { n: 1, c: 2, h: 5, w: 6, oc: 3, kh: 3, kw: 3, oh: 5, ow: 6, stride: 1, padding: 1 };
 * const x = Float64Array.from({ length: 60 }, (_, i) => Math.sin(i));
 * const w = Float64Array.from({ length: 54 }, (_, i) => Math.cos(i));
 * const b = new Float64Array([1, 2, 3]);
 * const y = new Float64Array(90), want = new Float64Array(90);
 * conv2dWinogradRef(x, w, b, y, d, 4);
 * conv2dRef(x, w, b, want, d);
 * assert.ok(y.every((v, i) => Math.abs(v - want[i]) < 1e-12));
 * ```
 */
export function conv2dWinogradRef<T extends FloatArray>(
  x: T,
  w: T,
  b: T | null,
  y: T,
  d: Conv2dDims,
  m: WinogradTile,
  flip = false,
): void {
  const op = flip ? "conv2dBackwardInputWinogradRef" : "conv2dWinogradRef";
  if (flip) checkConv2dDims(op, d, { x: y, w, y: x });
  else checkConv2dDims(op, d, { x, w, y, b });
  if (!winogradApplies(d) || (flip && (d.padding > 2 || b))) {
    throw new Error(
      `${op}: needs a 3×3 filter, stride 1${flip ? ", padding ≤ 2 and no bias" : ""} ` +
        `(got ${d.kh}×${d.kw}, stride ${d.stride}, padding ${d.padding})`,
    );
  }
  const t = winograd(m);
  const { alpha: a, AT, BT } = t;
  // the convolution actually run: (N, CI, IH, IW) -> (N, CO, YH, YW) with padding pad
  const [ci, ih, iw, co, yh, yw, pad] = flip
    ? [d.oc, d.oh, d.ow, d.c, d.h, d.w, 2 - d.padding]
    : [d.c, d.h, d.w, d.oc, d.oh, d.ow, d.padding];
  const u = winogradFilter(w, d.oc, d.c, t, flip); // U[ξ][ci][co]
  const th = Math.ceil(yh / m), tw = Math.ceil(yw / m);
  const v = new Float64Array(a * a * ci); // V[ξ][c] of one tile
  const mm = new Float64Array(a * a); // M[ξ] of one tile and output channel
  const dd = new Float64Array(a * a), tmp = new Float64Array(a * a);
  for (let n = 0; n < d.n; n++) {
    for (let ti = 0; ti < th; ti++) {
      for (let tj = 0; tj < tw; tj++) {
        for (let c = 0; c < ci; c++) {
          for (let i = 0; i < a; i++) {
            for (let j = 0; j < a; j++) {
              const r = ti * m - pad + i, s = tj * m - pad + j;
              dd[i * a + j] = r >= 0 && r < ih && s >= 0 && s < iw
                ? x[((n * ci + c) * ih + r) * iw + s]!
                : 0;
            }
          }
          // V = Bᵀ d B
          for (let i = 0; i < a; i++) {
            for (let j = 0; j < a; j++) {
              let acc = 0;
              for (let k = 0; k < a; k++) acc += BT[i]![k]! * dd[k * a + j]!;
              tmp[i * a + j] = acc;
            }
          }
          for (let i = 0; i < a; i++) {
            for (let j = 0; j < a; j++) {
              let acc = 0;
              for (let k = 0; k < a; k++) acc += tmp[i * a + k]! * BT[j]![k]!;
              v[(i * a + j) * ci + c] = acc;
            }
          }
        }
        for (let o = 0; o < co; o++) {
          for (let xi = 0; xi < a * a; xi++) {
            let acc = 0;
            for (let c = 0; c < ci; c++) acc += v[xi * ci + c]! * u[(xi * ci + c) * co + o]!;
            mm[xi] = acc;
          }
          // Y = Aᵀ M A, the part inside the output
          for (let i = 0; i < m; i++) {
            for (let j = 0; j < a; j++) {
              let acc = 0;
              for (let k = 0; k < a; k++) acc += AT[i]![k]! * mm[k * a + j]!;
              tmp[i * a + j] = acc;
            }
          }
          for (let i = 0; i < m && ti * m + i < yh; i++) {
            for (let j = 0; j < m && tj * m + j < yw; j++) {
              let acc = b ? b[o]! : 0;
              for (let k = 0; k < a; k++) acc += tmp[i * a + k]! * AT[j]![k]!;
              y[((n * co + o) * yh + ti * m + i) * yw + tj * m + j] = acc;
            }
          }
        }
      }
    }
  }
}
