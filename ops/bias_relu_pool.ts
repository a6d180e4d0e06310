import type { Node } from "../graph/graph.ts";
import { type OpDef, registerOp } from "../graph/op.ts";
import {
  biasReluPoolDims,
  biasReluPoolPackedShape,
  biasReluPoolRef,
} from "./kernels/bias_relu_pool_ref.ts";
import { biasReluPoolWasm } from "./kernels/bias_relu_pool_wasm.ts";
import { runKernel } from "./kernels/tier.ts";

/**
 * Bias + ReLU + 2×2 stride-2 max-pool in one pass over a convolution's
 * output, what the fusion pass puts in place of
 * `max_pool2d(relu(conv2d(x, w, b)))` for a layer of any size: the
 * convolution runs without its bias on its own kernels, and this op reads
 * its output z once, writing the pooled output y and, for the backward, one
 * code per window saying which element (if any) its gradient goes to, packed
 * as `[2, N, C, PH, PW]`. `packedFirst` reads y out of it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { biasReluPoolOp } from "@denograd/denograd";
 * // the pooled output and its argmax, packed as [2, ...]
 * assert.deepEqual(biasReluPoolOp.shape([[-1, 64, 24, 24], [64]], {}), [2, -1, 64, 12, 12]);
 * ```
 */
export const biasReluPoolOp: OpDef = registerOp({
  name: "bias_relu_pool",
  inputs: ["z", "b"],
  shape: ([z, b]) => biasReluPoolPackedShape(z!, b!),
  forward([z, b], y, c) {
    const d = biasReluPoolDims(c.inShapes[0]!);
    // the TS tier runs the reference loops: only the wasm kernel is fused for speed
    runKernel(y, c.tier, {
      ref: () => biasReluPoolRef(z!, b!, y, d),
      wasm: (y32) => {
        const k = biasReluPoolWasm(d, [z as Float32Array, y32]);
        return k !== null && k.forward(z as Float32Array, b as Float32Array, y32);
      },
    });
  },
  // the wasm kernel reads the bias from the arena's kernel scratch
  scratch: ([z]) => z![1]!,
});

/**
 * `max_pool2d(relu(z + b), { size: 2 })` and its gradient codes as one node
 * of shape `[2, N, C, ⌊H/2⌋, ⌊W/2⌋]` (see {@linkcode biasReluPoolOp}), for z
 * `[N, C, H, W]` and a bias b `[C]`.
 *
 * @example
 * ```ts
 * import { biasReluPool, Graph } from "@denograd/denograd";
 * import { deepStrictEqual } from "node:assert/strict";
 * const g = new Graph();
 * const z = g.input("z", [-1, 64, 24, 24]);
 * const b = g.param("b", [64], { kind: "constant", value: 0 });
 * deepStrictEqual(biasReluPool(z, b).shape, [2, -1, 64, 12, 12]);
 * ```
 */
export function biasReluPool(z: Node, b: Node, opts: { name?: string } = {}): Node {
  return z.graph.apply(biasReluPoolOp, [z, b], {}, opts.name);
}
