/**
 * Statistics the bench scripts share.
 *
 * @module
 */

/**
 * The median of `xs`: the middle value of the sorted values, or the mean of
 * the two middle values when there is an even number of them (so the median
 * of two reps is their mean, not the faster one). `xs` is not changed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { median } from "./_stats.ts";
 * assert.equal(median([3, 1, 2]), 2);
 * assert.equal(median([17782, 21830]), 19806);
 * ```
 */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error("median of no values: xs is empty");
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}
