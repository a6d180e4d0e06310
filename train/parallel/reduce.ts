/**
 * The gradient reduction of the worker pool: the batch-mean gradient from
 * the shard-mean gradients in their regions, in a fixed order.
 *
 * @module
 */
import type { Layout } from "./spec.ts";

/**
 * `out_k = Σ_i w_i · g_i` for every gradient `k` of `layout`, where shard `i`'s
 * region starts at `lanes[i]` in `g` and `w_i` is `weights[i]`, for the first
 * `count` shards, always in that order: two shards at a time, rounded to
 * float32 once per pair (one pass for two workers). One shard of weight 1
 * copies its region, so it gives the very bits of an in-process run.
 */
export function reduceShards(
  layout: Layout,
  g: Float32Array,
  lanes: Int32Array,
  weights: Float64Array,
  count: number,
  outs: Float32Array[],
): void {
  const { offsets, sizes } = layout;
  for (let k = 0; k < outs.length; k++) {
    const out = outs[k]!;
    const size = sizes[k]!, off = offsets[k]!;
    const a = lanes[0]! + off, wa = weights[0]!;
    if (count === 1 && wa === 1) out.set(g.subarray(a, a + size));
    else if (count === 1) { for (let j = 0; j < size; j++) out[j] = wa * g[a + j]!; }
    else {
      const b = lanes[1]! + off, wb = weights[1]!;
      for (let j = 0; j < size; j++) out[j] = wa * g[a + j]! + wb * g[b + j]!;
      let i = 2;
      for (; i + 1 < count; i += 2) {
        const c = lanes[i]! + off, wc = weights[i]!, d = lanes[i + 1]! + off, wd = weights[i + 1]!;
        for (let j = 0; j < size; j++) out[j] = out[j]! + (wc * g[c + j]! + wd * g[d + j]!);
      }
      if (i < count) {
        const c = lanes[i]! + off, wc = weights[i]!;
        for (let j = 0; j < size; j++) out[j] = out[j]! + wc * g[c + j]!;
      }
    }
  }
}
