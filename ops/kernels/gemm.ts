// a: (M, K) or (K, M) when transA, b: (K, N) or (N, K) when transB -> c: (M, N), all row-major
/**
 * The GEMM entry point the ops call: checks sizes once here, so that the
 * kernels themselves stay bare loops, and runs the tier's kernel.
 *
 * @module
 */

import type { FloatArray, Tier } from "../../graph/op.ts";
import { type GemmDims, gemmRef } from "./gemm_ref.ts";
import { gemmBlocked } from "./gemm_blocked.ts";
import { gemmWasm } from "./gemm_wasm.ts";
import { kernelTier } from "./tier.ts";

function shape(rows: number, cols: number, trans: boolean | undefined): string {
  return trans ? `${cols}×${rows} (transposed)` : `${rows}×${cols}`;
}

/**
 * C = op(A)·op(B), or C += … with `accumulate` (see `GemmDims`). Float64
 * operands always run the reference kernel; float32 ones run `tier`,
 * by default the process-wide one (see `runKernel` in `tier.ts`).
 *
 * @throws {Error} when an array is shorter than its dims say, or the arrays mix float widths.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const a = new Float32Array([1, 2, 3, 4, 5, 6]); // 2×3
 * const b = new Float32Array([1, 0, 0, 1, 1, 1]); // 3×2
 * const c = new Float32Array(4);
 * gemm(a, b, c, { m: 2, n: 2, k: 3 });
 * assert.deepEqual([...c], [4, 5, 10, 11]);
 * ```
 */
export function gemm(
  a: FloatArray,
  b: FloatArray,
  c: FloatArray,
  d: GemmDims,
  tier?: Tier,
): void {
  const { m, n, k } = d;
  if (a.length < m * k || b.length < k * n || c.length < m * n) {
    throw new Error(
      `gemm: arrays too short for m=${m} n=${n} k=${k}: A has ${a.length} for ` +
        `${shape(m, k, d.transA)}, B has ${b.length} for ${shape(k, n, d.transB)}, ` +
        `C has ${c.length} for ${m}×${n}`,
    );
  }
  const f64 = a instanceof Float64Array;
  if (f64 !== b instanceof Float64Array || f64 !== c instanceof Float64Array) {
    throw new Error(
      `gemm: operands mix float widths (A ${a.constructor.name}, B ${b.constructor.name}, ` +
        `C ${c.constructor.name})`,
    );
  }
  // runKernel's choice (wasm, else ts, else ref), made without closures:
  // gemm runs several times a step
  const t = kernelTier(c, tier);
  if (t === "wasm") gemmWasm(a as Float32Array, b as Float32Array, c as Float32Array, d);
  else if (t !== "ref") gemmBlocked(a as Float32Array, b as Float32Array, c as Float32Array, d);
  else gemmRef(a, b, c, d);
}
