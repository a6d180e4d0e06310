// a: (M, K) or (K, M) when transA, b: (K, N) or (N, K) when transB -> c: (M, N), all row-major
/**
 * Blocked float32 GEMM in plain TypeScript, the layout of BLIS: B is packed
 * into KC×NC panels of NR-wide slivers, A into MC×KC blocks of MR-tall
 * slivers, and an MR×NR micro-kernel keeps its accumulators in registers.
 *
 * @module
 */

import type { GemmDims } from "./gemm_ref.ts";

// A 4×4 tile: 16 accumulators plus 8 operands is about what the JIT keeps in
// the 16 x64 vector registers before it spills; larger tiles measured slower.
const MR = 4;
const NR = 4;
// KC×NR floats of B (16 KiB) stay in L1 while one sliver of A streams past.
const KC = 256;
// An MC×KC block of A (128 KiB) stays in L2 across all the slivers of a panel.
const MC = 128;
// A KC×NC panel of B (2 MiB) stays in L3.
const NC = 2048;

// Panels are packed as float64: the micro-kernel then loads doubles without
// a float32 conversion per operand, which measured ~15% faster. Allocated on
// first use only, so steady-state calls allocate nothing.
let packA = new Float64Array(0);
let packB = new Float64Array(0);

function ensureScratch(): void {
  if (packA.length < MC * KC) packA = new Float64Array(MC * KC);
  if (packB.length < KC * NC) packB = new Float64Array(KC * NC);
}

// Packs op(A)[i0 : i0+mc, p0 : p0+kc] as MR-row slivers, each stored
// p-major (MR values per p), zero-padding the last sliver to MR rows.
function packBlockA(
  a: Float32Array,
  sai: number,
  sap: number,
  i0: number,
  mc: number,
  p0: number,
  kc: number,
  dst: Float64Array,
): void {
  let o = 0;
  for (let ir = 0; ir < mc; ir += MR) {
    const rows = Math.min(MR, mc - ir);
    const base = (i0 + ir) * sai + p0 * sap;
    if (rows === MR) {
      for (let p = 0; p < kc; p++) {
        const q = base + p * sap;
        dst[o] = a[q];
        dst[o + 1] = a[q + sai];
        dst[o + 2] = a[q + 2 * sai];
        dst[o + 3] = a[q + 3 * sai];
        o += MR;
      }
    } else {
      for (let p = 0; p < kc; p++) {
        const q = base + p * sap;
        for (let i = 0; i < MR; i++) dst[o + i] = i < rows ? a[q + i * sai] : 0;
        o += MR;
      }
    }
  }
}

// Packs op(B)[p0 : p0+kc, j0 : j0+nc] as NR-column slivers, each stored
// p-major (NR values per p), zero-padding the last sliver to NR columns.
function packPanelB(
  b: Float32Array,
  sbp: number,
  sbj: number,
  p0: number,
  kc: number,
  j0: number,
  nc: number,
  dst: Float64Array,
): void {
  let o = 0;
  for (let jr = 0; jr < nc; jr += NR) {
    const cols = Math.min(NR, nc - jr);
    const base = p0 * sbp + (j0 + jr) * sbj;
    if (cols === NR) {
      for (let p = 0; p < kc; p++) {
        const q = base + p * sbp;
        dst[o] = b[q];
        dst[o + 1] = b[q + sbj];
        dst[o + 2] = b[q + 2 * sbj];
        dst[o + 3] = b[q + 3 * sbj];
        o += NR;
      }
    } else {
      for (let p = 0; p < kc; p++) {
        const q = base + p * sbp;
        for (let j = 0; j < NR; j++) dst[o + j] = j < cols ? b[q + j * sbj] : 0;
        o += NR;
      }
    }
  }
}

// C[i0.., j0..] (mr×nr valid of the MR×NR tile) = or += packed sliver products.
function microKernel(
  kc: number,
  pa: Float64Array,
  ao: number,
  pb: Float64Array,
  bo: number,
  c: Float32Array,
  co: number,
  ldc: number,
  mr: number,
  nr: number,
  add: boolean,
): void {
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
  let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
  let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
  let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
  for (let p = 0; p < kc; p++) {
    const a0 = pa[ao], a1 = pa[ao + 1], a2 = pa[ao + 2], a3 = pa[ao + 3];
    const b0 = pb[bo], b1 = pb[bo + 1], b2 = pb[bo + 2], b3 = pb[bo + 3];
    c00 += a0 * b0;
    c01 += a0 * b1;
    c02 += a0 * b2;
    c03 += a0 * b3;
    c10 += a1 * b0;
    c11 += a1 * b1;
    c12 += a1 * b2;
    c13 += a1 * b3;
    c20 += a2 * b0;
    c21 += a2 * b1;
    c22 += a2 * b2;
    c23 += a2 * b3;
    c30 += a3 * b0;
    c31 += a3 * b1;
    c32 += a3 * b2;
    c33 += a3 * b3;
    ao += MR;
    bo += NR;
  }
  // Every tile, full or edge, leaves through a small buffer: the kernel stays
  // small enough for the JIT, which measured ~6% faster than an unrolled
  // store of full tiles; edge tiles write only their valid mr×nr corner.
  const t = tileBuf;
  t[0] = c00, t[1] = c01, t[2] = c02, t[3] = c03;
  t[4] = c10, t[5] = c11, t[6] = c12, t[7] = c13;
  t[8] = c20, t[9] = c21, t[10] = c22, t[11] = c23;
  t[12] = c30, t[13] = c31, t[14] = c32, t[15] = c33;
  for (let i = 0; i < mr; i++) {
    for (let j = 0; j < nr; j++) {
      const v = t[i * NR + j];
      c[co + i * ldc + j] = add ? c[co + i * ldc + j] + v : v;
    }
  }
}

const tileBuf = new Float64Array(MR * NR);

/**
 * C = op(A)·op(B), or C += … with `accumulate`, for float32 row-major
 * matrices; see {@link GemmDims} for the layout. Arrays may be subarray views
 * into a shared arena. Allocates only when it first meets a larger block.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const a = new Float32Array([1, 2, 3, 4]);
 * const b = new Float32Array([5, 6, 7, 8]);
 * const c = new Float32Array(4);
 * gemmBlocked(a, b, c, { m: 2, n: 2, k: 2 });
 * assert.deepEqual([...c], [19, 22, 43, 50]);
 * ```
 */
export function gemmBlocked(a: Float32Array, b: Float32Array, c: Float32Array, d: GemmDims): void {
  const { m, n, k } = d;
  if (m === 0 || n === 0) return;
  const accumulate = d.accumulate === true;
  if (k === 0) {
    if (!accumulate) c.fill(0, 0, m * n);
    return;
  }
  ensureScratch();
  const sai = d.transA ? 1 : k, sap = d.transA ? m : 1;
  const sbp = d.transB ? 1 : n, sbj = d.transB ? k : 1;
  const pa = packA, pb = packB;
  for (let jc = 0; jc < n; jc += NC) {
    const nc = Math.min(NC, n - jc);
    for (let pc = 0; pc < k; pc += KC) {
      const kc = Math.min(KC, k - pc);
      // The first K block overwrites C unless the caller asked to accumulate.
      const add = accumulate || pc > 0;
      packPanelB(b, sbp, sbj, pc, kc, jc, nc, pb);
      for (let ic = 0; ic < m; ic += MC) {
        const mc = Math.min(MC, m - ic);
        packBlockA(a, sai, sap, ic, mc, pc, kc, pa);
        for (let jr = 0; jr < nc; jr += NR) {
          const nr = Math.min(NR, nc - jr);
          const bo = jr * kc;
          for (let ir = 0; ir < mc; ir += MR) {
            const mr = Math.min(MR, mc - ir);
            microKernel(kc, pa, ir * kc, pb, bo, c, (ic + ir) * n + jc + jr, n, mr, nr, add);
          }
        }
      }
    }
  }
}
