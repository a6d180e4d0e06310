import type { Node } from "../graph/graph.ts";
import { type OpDef, registerOp } from "../graph/op.ts";
import { biasReluRef, biasReluShape } from "./kernels/bias_relu_pool_ref.ts";
import { biasReluWasm } from "./kernels/bias_relu_pool_wasm.ts";
import { runKernel } from "./kernels/tier.ts";

/**
 * Bias + ReLU in one pass over a convolution's output, what the fusion pass
 * puts in place of `relu(conv2d(x, w, b))` when no 2×2 pool follows: the
 * convolution runs without its bias, and this op reads its output z once,
 * writing `max(z + b, 0)` (b along axis 1). Its backward is the ReLU
 * backward of its own output (positive exactly where z + b is).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { biasReluOp } from "@denograd/denograd";
 * assert.deepEqual(biasReluOp.shape([[-1, 32, 26, 26], [32]], {}), [-1, 32, 26, 26]);
 * ```
 */
export const biasReluOp: OpDef = registerOp({
  name: "bias_relu",
  inputs: ["z", "b"],
  shape: ([z, b]) => biasReluShape(z!, b!),
  forward([z, b], y, c) {
    const ch = c.inShapes[0]![1]!;
    const inner = c.inShapes[0]!.slice(2).reduce((a, d) => a * d, 1);
    // the TS tier runs the reference loop: only the wasm kernel is fused for speed
    runKernel(y, c.tier, {
      ref: () => biasReluRef(z!, b!, y, ch, inner),
      wasm: (y32) => biasReluWasm(z as Float32Array, b as Float32Array, y32, ch, inner),
    });
  },
  // the wasm kernel reads the bias from the arena's kernel scratch
  scratch: ([z]) => z![1]!,
});

/**
 * `relu(z + b)` for z `[N, C, ...]` and a bias b `[C]` along axis 1.
 *
 * @example
 * ```ts
 * import { biasRelu, Graph } from "@denograd/denograd";
 * import { deepStrictEqual } from "node:assert/strict";
 * const g = new Graph();
 * const z = g.input("z", [-1, 32, 26, 26]);
 * const b = g.param("b", [32], { kind: "constant", value: 0 });
 * deepStrictEqual(biasRelu(z, b).shape, [-1, 32, 26, 26]);
 * ```
 */
export function biasRelu(z: Node, b: Node, opts: { name?: string } = {}): Node {
  return z.graph.apply(biasReluOp, [z, b], {}, opts.name);
}
