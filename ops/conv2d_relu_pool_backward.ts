import type { Node } from "../graph/graph.ts";
import { fmtShape, type OpDef, registerOp } from "../graph/op.ts";
import {
  conv2dReluPoolBackwardRef,
  convReluPoolDims,
  convReluPoolPackedShape,
  propagateInputNaN,
} from "./kernels/conv2d_relu_pool_ref.ts";
import { convReluPoolWasm } from "./kernels/conv2d_relu_pool_wasm.ts";
import { registerAssistOp } from "./kernels/assist.ts";
import { runKernel } from "./kernels/tier.ts";

/** Attributes of `conv2d_relu_pool_backward`. */
export interface ConvReluPoolBackwardAttrs {
  /** `[KH, KW]` of the filter. */
  kernelSize: [number, number];
}

/**
 * The filter and bias gradients of {@linkcode conv2dReluPoolOp}'s output
 * from the pooled gradient dy, packed as `[dw (OC·C·KH·KW), db (OC)]`: the
 * max-pool backward, the ReLU backward, the bias-gradient sum and the
 * convolution's backward-to-filter in one pass over x, reading which element
 * of each window takes the gradient from the forward's packed codes. Its
 * input x gets no gradient: the fusion pass uses it for a first layer only.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { conv2dReluPoolBackwardOp } from "@denograd/denograd";
 * // the filter (32·1·3·3 = 288) and bias (32) gradients in one buffer
 * assert.deepEqual(conv2dReluPoolBackwardOp.shape([[-1, 1, 28, 28], [2, -1, 32, 13, 13], [-1, 32, 13, 13]], { kernelSize: [3, 3] }), [320]);
 * ```
 */
export const conv2dReluPoolBackwardOp: OpDef<ConvReluPoolBackwardAttrs> = registerOp<
  ConvReluPoolBackwardAttrs
>({
  name: "conv2d_relu_pool_backward",
  inputs: ["x", "packed", "dy"],
  shape([x, packed, dy], { kernelSize: [kh, kw] }) {
    const oc = packed![2]!;
    const y = convReluPoolPackedShape(x!, [oc, x![1]!, kh, kw], [oc]);
    if (packed!.join() !== y.join()) {
      throw new Error(
        `packed must be a fused convolution's output ${fmtShape(y)}, got ${fmtShape(packed!)}`,
      );
    }
    if (dy!.join() !== y.slice(1).join()) {
      throw new Error(
        `dy must have the pooled shape ${fmtShape(y.slice(1))}, got ${fmtShape(dy!)}`,
      );
    }
    return [oc * x![1]! * kh * kw + oc];
  },
  forward([x, packed, dy], out, c) {
    const [kh, kw] = c.attrs.kernelSize;
    const oc = c.inShapes[1]![2]!;
    const d = convReluPoolDims(c.inShapes[0]!, [oc, c.inShapes[0]![1]!, kh, kw]);
    const [x32, p32, dy32] = [x, packed, dy] as Float32Array[];
    let clean = false;
    runKernel(out, c.tier, {
      ref: () => conv2dReluPoolBackwardRef(x!, packed!, dy!, out, d),
      wasm: (out32) => {
        const k = convReluPoolWasm(d, [x32!, p32!, dy32!]);
        k?.backward(x32!, p32!, dy32!, out32);
        clean = k !== null && !k.hasNaN(x32!);
        return k !== null;
      },
    });
    // the unfused backward multiplies NaN inputs by zero gradients too (nothing to do without any)
    if (!clean) propagateInputNaN(x!, out, d);
  },
});

/**
 * `[dw, db]` of `packedFirst(conv2dReluPool(x, w, b))` for the pooled
 * gradient `dy`, flat, from the fused forward's packed output.
 *
 * @example
 * ```ts
 * import { conv2dReluPool, conv2dReluPoolBackward, Graph } from "@denograd/denograd";
 * import { deepStrictEqual } from "node:assert/strict";
 * const g = new Graph();
 * const x = g.input("x", [-1, 1, 28, 28]);
 * const w = g.param("w", [32, 1, 3, 3], { kind: "uniform", bound: 0.3 });
 * const b = g.param("b", [32], { kind: "constant", value: 0 });
 * const packed = conv2dReluPool(x, w, b);
 * const dy = g.input("dy", [-1, 32, 13, 13]);
 * deepStrictEqual(conv2dReluPoolBackward(x, packed, dy, [3, 3]).shape, [32 * 9 + 32]);
 * ```
 */
export function conv2dReluPoolBackward(
  x: Node,
  packed: Node,
  dy: Node,
  kernelSize: [number, number],
  opts: { name?: string } = {},
): Node {
  return x.graph.apply(conv2dReluPoolBackwardOp, [x, packed, dy], { kernelSize }, opts.name);
}

// its wasm kernel opens a job per call that other threads can help with
registerAssistOp(conv2dReluPoolBackwardOp.name);
