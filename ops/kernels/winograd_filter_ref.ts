// x: (N, C, H, W), dy: (N, OC, OH, OW) -> dw: (OC, C, 3, 3), 3×3 filter, stride 1, any padding
/**
 * Reference Winograd filter gradient: the transpose of the Winograd forward
 * convolution F(m×m, 3×3), computed in float64. It is the specification of
 * the WebAssembly kernel (`winograd_filter_wasm.ts`), and in exact
 * arithmetic it equals `conv2dBackwardFilterRef`.
 *
 * The forward pass computes, per output tile of m×m pixels and its α×α
 * input tile d (α = m + 2), Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A. The chain rule
 * through that formula gives the filter gradient:
 *
 *   dU[k][c] = Σ_tiles (A dY[k] Aᵀ) ⊙ (Bᵀ d[c] B)   (α×α, one per filter pair)
 *   dw[k][c] = Gᵀ dU[k][c] G                        (3×3)
 *
 * so per transform point ξ (α² of them) the work is one long reduction over
 * N·tiles, a GEMM, between two cheap transforms. Output tiles that stick out
 * of the OH×OW output read dy as zero there, and input pixels outside the
 * image read as zero (the padding).
 *
 * @module
 */

import type { FloatArray } from "../../graph/op.ts";
import { checkConv2dDims, type Conv2dDims } from "./conv2d_ref.ts";
import { winograd, type WinogradTile } from "./winograd_ref.ts";

/**
 * Throws unless `d` describes a convolution the Winograd filter gradient
 * covers: a 3×3 filter with stride 1 (any padding).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const d = { n: 1, c: 1, h: 4, w: 4, oc: 1, kh: 3, kw: 3, oh: 2, ow: 2, stride: 1, padding: 0 };
 * checkWinogradDims("winograd", d);
 * assert.throws(() => checkWinogradDims("winograd", { ...d, stride: 2, oh: 1, ow: 1 }), /stride 1/);
 * ```
 */
export function checkWinogradDims(op: string, d: Conv2dDims): void {
  if (d.kh !== 3 || d.kw !== 3 || d.stride !== 1) {
    throw new Error(
      `${op}: Winograd needs a 3×3 filter with stride 1, got ${d.kh}×${d.kw} with stride ${d.stride}`,
    );
  }
}

/**
 * dw[k, c, u, v] = Σ_{n, i, j} dy[n, k, i, j] · x[n, c, i − p + u, j − p + v]
 * for a 3×3 filter with stride 1, computed the Winograd way (see the module
 * doc) in float64 with output tiles of `tile`×`tile` pixels. Overwrites dw.
 * Equal to `conv2dBackwardFilterRef` up to float64 rounding.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { conv2dBackwardFilterRef } from "./conv2d_ref.ts";
 * const d = { n: 1, c: 1, h: 5, w: 5, oc: 1, kh: 3, kw: 3, oh: 5, ow: 5, stride: 1, padding: 1 };
 * const x = Float64Array.from({ length: 25 }, (_, i) => i % 7 - 3);
 * const dy = Float64Array.from({ length: 25 }, (_, i) => (i * 5) % 11 - 5);
 * const want = new Float64Array(9), got = new Float64Array(9);
 * conv2dBackwardFilterRef(x, dy, want, d);
 * winogradBackwardFilterRef(x, dy, got, d, 4);
 * got.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-12));
 * ```
 */
export function winogradBackwardFilterRef<T extends FloatArray>(
  x: T,
  dy: T,
  dw: T,
  d: Conv2dDims,
  tile: WinogradTile = 4,
): void {
  checkConv2dDims("winogradBackwardFilterRef", d, { x, w: dw, y: dy });
  checkWinogradDims("winogradBackwardFilterRef", d);
  const { m, alpha: a, AT: at, BT: bt, G: g } = winograd(tile);
  const { n: N, c: C, h: H, w: W, oc: OC, oh: OH, ow: OW, padding: p } = d;
  const a2 = a * a;
  const tilesH = Math.ceil(OH / m), tilesW = Math.ceil(OW / m);
  // dU[k][c] (α×α each), accumulated over every tile of every image
  const dU = new Float64Array(OC * C * a2);
  const V = new Float64Array(C * a2), M = new Float64Array(OC * a2);
  const tin = new Float64Array(a2), tmp = new Float64Array(a2);
  for (let n = 0; n < N; n++) {
    for (let ty = 0; ty < tilesH; ty++) {
      for (let tx = 0; tx < tilesW; tx++) {
        // V[c] = Bᵀ d[c] B
        for (let c = 0; c < C; c++) {
          const plane = (n * C + c) * H * W;
          for (let i = 0; i < a; i++) {
            const ih = ty * m - p + i;
            for (let j = 0; j < a; j++) {
              const iw = tx * m - p + j;
              const inside = ih >= 0 && ih < H && iw >= 0 && iw < W;
              tin[i * a + j] = inside ? x[plane + ih * W + iw] : 0;
            }
          }
          sandwich(bt, tin, a, a, tmp, V, c * a2);
        }
        // M[k] = A dY[k] Aᵀ, with dY[k] the m×m tile of dy (zero past the output)
        for (let k = 0; k < OC; k++) {
          const plane = (n * OC + k) * OH * OW;
          for (let i = 0; i < m; i++) {
            const oi = ty * m + i;
            for (let j = 0; j < m; j++) {
              const oj = tx * m + j;
              tin[i * m + j] = oi < OH && oj < OW ? dy[plane + oi * OW + oj] : 0;
            }
          }
          sandwich(transpose(at), tin, a, m, tmp, M, k * a2);
        }
        for (let k = 0; k < OC; k++) {
          for (let c = 0; c < C; c++) {
            const u = (k * C + c) * a2;
            for (let e = 0; e < a2; e++) dU[u + e] += M[k * a2 + e] * V[c * a2 + e];
          }
        }
      }
    }
  }
  // dw[k][c] = Gᵀ dU[k][c] G
  const gt = transpose(g);
  const out = new Float64Array(9);
  for (let kc = 0; kc < OC * C; kc++) {
    sandwich(gt, dU.subarray(kc * a2, (kc + 1) * a2), 3, a, tmp, out, 0);
    for (let e = 0; e < 9; e++) dw[kc * 9 + e] = out[e];
  }
}

const transposed = new Map<number[][], number[][]>();
function transpose(a: number[][]): number[][] {
  let t = transposed.get(a);
  if (!t) {
    t = a[0].map((_, j) => a.map((row) => row[j]));
    transposed.set(a, t);
  }
  return t;
}

// out[o..] = L · X · Lᵀ with L (r × q) and X (q × q) row-major; tmp holds r·q values.
function sandwich(
  l: number[][],
  xs: ArrayLike<number>,
  r: number,
  q: number,
  tmp: Float64Array,
  out: FloatArray,
  o: number,
): void {
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < q; j++) {
      let s = 0;
      for (let t = 0; t < q; t++) s += l[i][t] * xs[t * q + j];
      tmp[i * q + j] = s;
    }
  }
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < r; j++) {
      let s = 0;
      for (let t = 0; t < q; t++) s += tmp[i * q + t] * l[j][t];
      out[o + i * r + j] = s;
    }
  }
}
