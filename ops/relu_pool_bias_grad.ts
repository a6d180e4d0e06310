import type { Node } from "../graph/graph.ts";
import { type OpDef, registerOp } from "../graph/op.ts";
import { biasReluPoolDims, reluPoolBiasGradRef } from "./kernels/bias_relu_pool_ref.ts";
import { reluPoolBiasGradWasm } from "./kernels/bias_relu_pool_wasm.ts";
import { runKernel } from "./kernels/tier.ts";
import {
  type BiasReluPoolBackwardAttrs,
  biasReluPoolBackwardOp,
} from "./bias_relu_pool_backward.ts";

/**
 * The bias gradient of {@linkcode biasReluPoolOp}'s pooled output, `db[c]`
 * = the sum over N, H and W of the dz that `bias_relu_pool_backward`
 * writes, from the forward's packed codes and the pooled gradient dy
 * (a quarter of dz's size each) instead of from dz: what the fusion pass
 * puts in place of `sum(dz, { axes: [0, 2, 3] })`. Each tier adds the same
 * values in the same order as the unfused `sum` does there, so the result
 * is the same bits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { reluPoolBiasGradOp } from "@denograd/denograd";
 * assert.deepEqual(reluPoolBiasGradOp.shape([[2, -1, 64, 12, 12], [-1, 64, 12, 12]], { size: [24, 24] }), [64]);
 * ```
 */
export const reluPoolBiasGradOp: OpDef<BiasReluPoolBackwardAttrs> = registerOp<
  BiasReluPoolBackwardAttrs
>({
  name: "relu_pool_bias_grad",
  inputs: ["packed", "dy"],
  shape: (shapes, attrs) => [biasReluPoolBackwardOp.shape(shapes, attrs)[1]!],
  forward([packed, dy], db, c) {
    const [h, w] = c.attrs.size;
    const d = biasReluPoolDims([c.inShapes[1]![0]!, c.inShapes[1]![1]!, h, w]);
    runKernel(db, c.tier, {
      ref: () => reluPoolBiasGradRef(packed!, dy!, db, d, "ref"),
      wasm: (db32) => {
        const k = reluPoolBiasGradWasm(d, packed as Float32Array, dy as Float32Array, db32);
        if (!k.done) reluPoolBiasGradRef(packed!, dy!, db, d, k.order);
      },
    });
  },
});

/**
 * `db` `[C]` of `packedFirst(biasReluPool(z, b))` for the pooled gradient
 * `dy`, from the fused forward's packed output; `size` is z's `[H, W]`.
 *
 * @example
 * ```ts
 * import { biasReluPool, Graph, reluPoolBiasGrad } from "@denograd/denograd";
 * import { deepStrictEqual } from "node:assert/strict";
 * const g = new Graph();
 * const z = g.input("z", [-1, 64, 24, 24]);
 * const b = g.param("b", [64], { kind: "constant", value: 0 });
 * const dy = g.input("dy", [-1, 64, 12, 12]);
 * deepStrictEqual(reluPoolBiasGrad(biasReluPool(z, b), dy, [24, 24]).shape, [64]);
 * ```
 */
export function reluPoolBiasGrad(
  packed: Node,
  dy: Node,
  size: [number, number],
  opts: { name?: string } = {},
): Node {
  return packed.graph.apply(reluPoolBiasGradOp, [packed, dy], { size }, opts.name);
}
