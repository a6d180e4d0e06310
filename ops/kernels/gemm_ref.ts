// a: (M, K) or (K, M) when transA, b: (K, N) or (N, K) when transB -> c: (M, N), all row-major
/**
 * Reference GEMM: plain loops, generic over the float width. It is the
 * specification the blocked and WebAssembly tiers are tested against, and
 * what finite-difference checks run on in float64.
 *
 * @module
 */

import type { FloatArray } from "../../graph/op.ts";

/**
 * Sizes and layout of one matrix product C = op(A)·op(B).
 *
 * op(A) is m×k (A is stored k×m when `transA`), op(B) is k×n (B is stored
 * n×k when `transB`), C is m×n. All are dense and row-major. With
 * `accumulate` the product is added to C instead of overwriting it.
 */
export interface GemmDims {
  /** Rows of op(A) and of C. */
  m: number;
  /** Columns of op(B) and of C. */
  n: number;
  /** The contracted dimension. */
  k: number;
  /** A is stored k×m and used transposed. */
  transA?: boolean;
  /** B is stored n×k and used transposed. */
  transB?: boolean;
  /** Add the product into C instead of overwriting it. */
  accumulate?: boolean;
}

/**
 * C = op(A)·op(B) (or C += … with `accumulate`) with naive loops.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const a = new Float64Array([1, 2, 3, 4]); // 2×2
 * const b = new Float64Array([5, 6, 7, 8]); // 2×2
 * const c = new Float64Array(4);
 * gemmRef(a, b, c, { m: 2, n: 2, k: 2 });
 * assert.deepEqual([...c], [19, 22, 43, 50]);
 * ```
 */
export function gemmRef<T extends FloatArray>(a: T, b: T, c: T, d: GemmDims): void {
  const { m, n, k } = d;
  // Element (i, p) of op(A) is at i*sai + p*sap; likewise for op(B).
  const sai = d.transA ? 1 : k, sap = d.transA ? m : 1;
  const sbp = d.transB ? 1 : n, sbj = d.transB ? k : 1;
  const accumulate = d.accumulate === true;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * sai + p * sap] * b[p * sbp + j * sbj];
      c[i * n + j] = accumulate ? c[i * n + j] + s : s;
    }
  }
}
