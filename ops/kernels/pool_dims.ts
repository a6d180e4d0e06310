// The geometry the pooling kernels (max_pool2d_*, avg_pool2d_ref) share.
import type { Shape } from "../../graph/op.ts";

/** Pooling window geometry over N·C planes of one image each. */
export interface PoolDims {
  /** N·C: the planes pooled one by one. */
  planes: number;
  /** Input height and width. */
  h: number;
  w: number;
  /** Output height and width. */
  oh: number;
  ow: number;
  /** Window side, step between windows, padding on each side. */
  size: number;
  stride: number;
  padding: number;
}

/**
 * Pooling dims from the concrete shapes of x `[N,C,H,W]` and y `[N,C,OH,OW]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { poolDims } from "./pool_dims.ts";
 * assert.deepEqual(poolDims([64, 32, 26, 26], [64, 32, 13, 13], { size: 2, stride: 2 }), {
 *   planes: 2048,
 *   h: 26,
 *   w: 26,
 *   oh: 13,
 *   ow: 13,
 *   size: 2,
 *   stride: 2,
 *   padding: 0,
 * });
 * ```
 */
export function poolDims(
  x: Shape,
  y: Shape,
  { size, stride, padding = 0 }: { size: number; stride: number; padding?: number },
): PoolDims {
  const [n, c, h, w] = x as [number, number, number, number];
  return { planes: n * c, h, w, oh: y[2]!, ow: y[3]!, size, stride, padding };
}
