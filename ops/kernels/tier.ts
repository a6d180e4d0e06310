/**
 * The one place that picks a kernel for an op's output: the reference loop
 * for float64 buffers (gradient checks) and the `"ref"` tier, the fast
 * TypeScript kernel or the WebAssembly SIMD one for float32. An op's
 * `forward` names its kernels per tier and calls {@linkcode runKernel}.
 *
 * @module
 */

import type { FloatArray, Tier } from "../../graph/op.ts";
import { wasmAvailable } from "./gemm_wasm.ts";

export type { Tier };
export { wasmAvailable };

let currentTier: Tier | null = null;

function checkTier(t: unknown, what: string): asserts t is Tier {
  if (t !== "ref" && t !== "ts" && t !== "wasm") {
    throw new Error(`${what}: unknown tier "${t}" (expected "ref", "ts" or "wasm")`);
  }
}

/**
 * Sets the tier float32 kernels use when an executor or a kernel call is not
 * told one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getKernelTier, setKernelTier } from "@denograd/denograd";
 * const saved = getKernelTier();
 * setKernelTier("ts"); // e.g. to compare against the wasm tier
 * assert.equal(getKernelTier(), "ts");
 * setKernelTier(saved);
 * ```
 */
export function setKernelTier(t: Tier): void {
  checkTier(t, "setKernelTier");
  currentTier = t;
}

/**
 * The default tier: `"wasm"` when WebAssembly SIMD is available, else `"ts"`,
 * unless {@linkcode setKernelTier} chose another.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getKernelTier } from "@denograd/denograd";
 * assert.ok(["ref", "ts", "wasm"].includes(getKernelTier()));
 * ```
 */
export function getKernelTier(): Tier {
  if (currentTier === null) currentTier = wasmAvailable() ? "wasm" : "ts";
  return currentTier;
}

/**
 * The tier that computes `out`: `"ref"` for a float64 buffer, else `tier`
 * (the process-wide {@linkcode getKernelTier} when undefined), with `"ts"`
 * standing in for `"wasm"` where WebAssembly SIMD is missing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kernelTier } from "./tier.ts";
 * assert.equal(kernelTier(new Float64Array(4), "wasm"), "ref");
 * assert.equal(kernelTier(new Float32Array(4), "ts"), "ts");
 * ```
 */
export function kernelTier(out: FloatArray, tier: Tier | undefined): Tier {
  if (out instanceof Float64Array) return "ref";
  const t = tier ?? getKernelTier();
  checkTier(t, "kernelTier");
  return t === "wasm" && !wasmAvailable() ? "ts" : t;
}

/**
 * An op's kernels for one output buffer, one per tier. Only `ref` sees
 * float64 buffers; `ts` and `wasm` run for float32 ones only, and are
 * handed the output typed as such.
 */
export interface TierKernels {
  /** The naive reference loop: float64 buffers and the `"ref"` tier. */
  ref(): void;
  /** The fast TypeScript kernel (when absent, `ref` serves float32 too). */
  ts?(out: Float32Array): void;
  /**
   * The WebAssembly kernel (when absent, `ts` serves). It returns `false`
   * when it cannot serve these operands (e.g. one lies outside the wasm
   * arena), and then `ts` runs.
   */
  wasm?(out: Float32Array): boolean | void;
}

/**
 * Runs the kernel of `k` that the tier of `out` calls for (see
 * {@linkcode kernelTier}): wasm, falling back to ts, falling back to ref.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { runKernel } from "./tier.ts";
 * const ran: string[] = [];
 * const k = { ref: () => void ran.push("ref"), ts: () => void ran.push("ts") };
 * runKernel(new Float64Array(1), "ts", k);
 * runKernel(new Float32Array(1), "ts", k);
 * runKernel(new Float32Array(1), "ref", k);
 * assert.deepEqual(ran, ["ref", "ts", "ref"]);
 * ```
 */
export function runKernel(out: FloatArray, tier: Tier | undefined, k: TierKernels): void {
  const t = kernelTier(out, tier);
  if (t === "wasm" && k.wasm && k.wasm(out as Float32Array) !== false) return;
  if (t !== "ref" && k.ts) return k.ts(out as Float32Array);
  k.ref();
}
