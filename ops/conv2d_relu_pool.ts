import type { Node } from "../graph/graph.ts";
import { type OpDef, registerOp } from "../graph/op.ts";
import {
  conv2dReluPoolRef,
  convReluPoolDims,
  convReluPoolPackedShape,
} from "./kernels/conv2d_relu_pool_ref.ts";
import { convReluPoolWasm } from "./kernels/conv2d_relu_pool_wasm.ts";
import { registerAssistOp } from "./kernels/assist.ts";
import { runKernel } from "./kernels/tier.ts";

/**
 * Convolution (stride 1, no padding) + bias + ReLU + 2×2 stride-2 max-pool
 * in one kernel, what the fusion pass puts in place of
 * `max_pool2d(relu(conv2d(x, w, b)))`: it writes the pooled output y and,
 * for the backward, one code per window saying which element (if any) its
 * gradient goes to, packed as `[2, N, OC, PH, PW]`; nothing of the
 * convolution's full size is stored. `packedFirst` reads y out of it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { conv2dReluPoolOp } from "@denograd/denograd";
 * // the pooled output and its argmax, packed as [2, ...]
 * assert.deepEqual(conv2dReluPoolOp.shape([[-1, 1, 28, 28], [32, 1, 3, 3], [32]], {}), [2, -1, 32, 13, 13]);
 * ```
 */
export const conv2dReluPoolOp: OpDef = registerOp({
  name: "conv2d_relu_pool",
  inputs: ["x", "w", "b"],
  shape: ([x, w, b]) => convReluPoolPackedShape(x!, w!, b!),
  forward([x, w, b], y, c) {
    const d = convReluPoolDims(c.inShapes[0]!, c.inShapes[1]!);
    // the TS tier runs the reference loops: only the wasm kernel is fused for speed
    runKernel(y, c.tier, {
      ref: () => conv2dReluPoolRef(x!, w!, b!, y, d),
      wasm: (y32) => {
        const k = convReluPoolWasm(d, [x as Float32Array, y32]);
        k?.forward(x as Float32Array, w as Float32Array, b as Float32Array, y32);
        return k !== null;
      },
    });
  },
});

/**
 * `max_pool2d(relu(conv2d(x, w, b)), { size: 2 })` and its gradient codes
 * as one node of shape `[2, N, OC, PH, PW]` (see
 * {@linkcode conv2dReluPoolOp}); the convolution has stride 1 and no padding.
 *
 * @example
 * ```ts
 * import { conv2dReluPool, Graph } from "@denograd/denograd";
 * import { deepStrictEqual } from "node:assert/strict";
 * const g = new Graph();
 * const x = g.input("x", [-1, 1, 28, 28]);
 * const w = g.param("w", [32, 1, 3, 3], { kind: "uniform", bound: 0.3 });
 * const b = g.param("b", [32], { kind: "constant", value: 0 });
 * deepStrictEqual(conv2dReluPool(x, w, b).shape, [2, -1, 32, 13, 13]);
 * ```
 */
export function conv2dReluPool(x: Node, w: Node, b: Node, opts: { name?: string } = {}): Node {
  return x.graph.apply(conv2dReluPoolOp, [x, w, b], {}, opts.name);
}

// its wasm kernel opens a job per call that other threads can help with
registerAssistOp(conv2dReluPoolOp.name);
