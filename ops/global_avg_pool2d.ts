import type { Node } from "../graph/graph.ts";
import { mean } from "./mean.ts";

/**
 * Global average pooling, like `torch.nn.AdaptiveAvgPool2d(1)`: the mean of
 * each channel's plane, `[N, C, H, W]` → `[N, C, 1, 1]` (flatten it for a
 * linear layer). Built from {@linkcode mean}, so its VJP is the mean's.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { globalAvgPool2d, tensor, vjp } from "@denograd/denograd";
 * const { out } = vjp((v) => globalAvgPool2d(v), tensor([[[[1, 2], [3, 6]], [[0, 0], [0, 4]]]]));
 * assert.deepEqual([...out.data], [3, 1]);
 * assert.deepEqual(out.shape, [1, 2, 1, 1]);
 * ```
 */
export function globalAvgPool2d(x: Node, opts: { name?: string } = {}): Node {
  if (x.shape.length !== 4) {
    throw new Error(
      `globalAvgPool2d "${opts.name ?? x.name}": x must be 4-D [N,C,H,W], got [${x.shape}]`,
    );
  }
  return mean(x, { axes: [2, 3], keepdims: true, name: opts.name });
}
