import type { ParamMap } from "./optimizer.ts";
import { NORM_CHUNK, sumSquares } from "./rules.ts";

/**
 * Clips gradients by their global norm, as PyTorch's
 * `torch.nn.utils.clip_grad_norm_`: when the L2 norm over every gradient
 * exceeds `maxNorm`, all are scaled by `maxNorm / (norm + 1e-6)`. Returns
 * the norm before clipping. The sum of squares runs in float64 over chunks
 * of {@linkcode NORM_CHUNK} elements of each gradient, the chunks' sums added
 * in the map's order: the worker pool's parallel update sums the same chunks
 * on several threads and gets the same bits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { clipGradNorm } from "@denograd/denograd";
 * const grads = new Map([["a", new Float32Array([3])], ["b", new Float32Array([4])]]);
 * assert.equal(clipGradNorm(grads, 1), 5);
 * assert.ok(Math.abs(grads.get("a")![0]! - 0.6) < 1e-6);
 * assert.ok(Math.abs(grads.get("b")![0]! - 0.8) < 1e-6);
 * ```
 */
export function clipGradNorm(grads: ParamMap, maxNorm: number): number {
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm)) {
    throw new Error(
      `clipGradNorm: the maximum norm must be a finite number above 0, got ${maxNorm}`,
    );
  }
  let sq = 0;
  for (const g of grads.values()) {
    for (let lo = 0; lo < g.length; lo += NORM_CHUNK) {
      sq += sumSquares(g, lo, Math.min(g.length, lo + NORM_CHUNK));
    }
  }
  const norm = Math.sqrt(sq);
  const k = maxNorm / (norm + 1e-6);
  if (k < 1) {
    for (const g of grads.values()) for (let i = 0; i < g.length; i++) g[i] = g[i]! * k;
  }
  return norm;
}
