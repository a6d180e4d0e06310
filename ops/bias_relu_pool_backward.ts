import type { Node } from "../graph/graph.ts";
import { fmtShape, type OpDef, registerOp } from "../graph/op.ts";
import { biasReluPoolDims, reluPoolBackwardRef } from "./kernels/bias_relu_pool_ref.ts";
import { biasReluPoolWasm } from "./kernels/bias_relu_pool_wasm.ts";
import { runKernel } from "./kernels/tier.ts";

/** Attributes of `bias_relu_pool_backward`. */
export interface BiasReluPoolBackwardAttrs {
  /** `[H, W]` of z, the convolution's output (the pooled size is ⌊H/2⌋ × ⌊W/2⌋). */
  size: [number, number];
}

/**
 * The gradient dz of {@linkcode biasReluPoolOp}'s pooled output with
 * respect to z (the convolution's output, and so also z + b) from the
 * pooled gradient dy: the max-pool backward and the ReLU backward in one
 * pass, reading which element of each window takes the gradient from the
 * forward's packed codes. dz feeds the convolution's backward ops and the
 * bias-gradient sum.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { biasReluPoolBackwardOp } from "@denograd/denograd";
 * assert.deepEqual(biasReluPoolBackwardOp.shape([[2, -1, 64, 12, 12], [-1, 64, 12, 12]], { size: [24, 24] }), [-1, 64, 24, 24]);
 * ```
 */
export const biasReluPoolBackwardOp: OpDef<BiasReluPoolBackwardAttrs> = registerOp<
  BiasReluPoolBackwardAttrs
>({
  name: "bias_relu_pool_backward",
  inputs: ["packed", "dy"],
  shape([packed, dy], { size }) {
    if (!Array.isArray(size) || size.length !== 2 || !size.every((s) => Number.isInteger(s))) {
      throw new Error(`size must be [H, W], got ${JSON.stringify(size)}`);
    }
    const [h, w] = size;
    if (packed!.length !== 5 || packed![0] !== 2) {
      throw new Error(`packed must be a fused [2, N, C, PH, PW] output, got ${fmtShape(packed!)}`);
    }
    if (packed![3] !== h >> 1 || packed![4] !== w >> 1) {
      throw new Error(`packed ${fmtShape(packed!)} does not pool a ${h}x${w} input`);
    }
    if (dy!.join() !== packed!.slice(1).join()) {
      throw new Error(
        `dy must have the pooled shape ${fmtShape(packed!.slice(1))}, got ${fmtShape(dy!)}`,
      );
    }
    return [packed![1]!, packed![2]!, h, w];
  },
  forward([packed, dy], dz, c) {
    const d = biasReluPoolDims(c.outShape);
    runKernel(dz, c.tier, {
      ref: () => reluPoolBackwardRef(packed!, dy!, dz, d),
      wasm: (dz32) => {
        const [p32, dy32] = [packed, dy] as Float32Array[];
        const k = biasReluPoolWasm(d, [p32!, dy32!, dz32]);
        k?.backward(p32!, dy32!, dz32);
        return k !== null;
      },
    });
  },
});

/**
 * dz `[N, C, H, W]` of `packedFirst(biasReluPool(z, b))` for the pooled
 * gradient `dy`, from the fused forward's packed output; `size` is `[H, W]`.
 *
 * @example
 * ```ts
 * import { biasReluPool, biasReluPoolBackward, Graph } from "@denograd/denograd";
 * import { deepStrictEqual } from "node:assert/strict";
 * const g = new Graph();
 * const z = g.input("z", [-1, 64, 24, 24]);
 * const b = g.param("b", [64], { kind: "constant", value: 0 });
 * const dy = g.input("dy", [-1, 64, 12, 12]);
 * deepStrictEqual(biasReluPoolBackward(biasReluPool(z, b), dy, [24, 24]).shape, [-1, 64, 24, 24]);
 * ```
 */
export function biasReluPoolBackward(
  packed: Node,
  dy: Node,
  size: [number, number],
  opts: { name?: string } = {},
): Node {
  return packed.graph.apply(biasReluPoolBackwardOp, [packed, dy], { size }, opts.name);
}
