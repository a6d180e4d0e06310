import type { Node } from "../graph/graph.ts";
import { reluBackwardF32, reluF32 } from "./kernels/pointwise_fast.ts";
import { pointwiseWasm } from "./kernels/pointwise_wasm.ts";
import { type OpDef, registerOp, type Shape } from "../graph/op.ts";

function sameShape([x, dy]: Shape[]): Shape {
  if (x!.join() !== dy!.join()) throw new Error("x and dy must have the same shape");
  return x!;
}

/** `max(x, 0)` elementwise. */
export const reluOp: OpDef = registerOp({
  name: "relu",
  inputs: ["x"],
  shape: ([x]) => x!,
  forward([x], y, { tier }) {
    if (y instanceof Float32Array && tier !== "ref") {
      const x32 = x as Float32Array;
      const k = pointwiseWasm(tier, x32, y);
      if (k) return k.relu(x32.byteOffset, y.byteOffset, y.length);
      return reluF32(x32, y);
    }
    // the reference: NaN passes through, as in PyTorch
    for (let i = 0; i < y.length; i++) {
      const v = x![i]!;
      y[i] = v > 0 || v !== v ? v : 0;
    }
  },
  // dx = dy * (x > 0)
  vjp: ({ inputs: [x], dy }) => [reluBackward(x!, dy)],
});

/** The VJP of ReLU: `dy` where `x > 0`, else 0. */
export const reluBackwardOp: OpDef = registerOp({
  name: "relu_backward",
  inputs: ["x", "dy"],
  shape: sameShape,
  forward([x, dy], dx, { tier }) {
    if (dx instanceof Float32Array && tier !== "ref") {
      const x32 = x as Float32Array, dy32 = dy as Float32Array;
      const k = pointwiseWasm(tier, x32, dy32, dx);
      if (k) return k.relu_backward(x32.byteOffset, dy32.byteOffset, dx.byteOffset, dx.length);
      return reluBackwardF32(x32, dy32, dx);
    }
    for (let i = 0; i < dx.length; i++) dx[i] = x![i]! > 0 ? dy![i]! : 0;
  },
  // piecewise linear in dy: d(dy) = ddx * (x > 0); no gradient flows to x
  vjp: ({ inputs: [x], dy }) => [null, reluBackward(x!, dy)],
});

/**
 * Rectified linear unit, `max(x, 0)`.
 *
 * @example
 * ```ts
 * import { Graph, relu } from "@denograd/denograd";
 * const g = new Graph();
 * console.log(relu(g.input("x", [-1, 8])).shape); // [-1, 8]
 * ```
 */
export function relu(x: Node, opts: { name?: string } = {}): Node {
  return x.graph.apply(reluOp, [x], {}, opts.name);
}

/**
 * `dy * (x > 0)`, the backward of {@linkcode relu}.
 *
 * @example
 * ```ts
 * import { Graph, reluBackward } from "@denograd/denograd";
 * const g = new Graph();
 * console.log(reluBackward(g.input("x", [4]), g.input("dy", [4])).shape); // [4]
 * ```
 */
export function reluBackward(x: Node, dy: Node, opts: { name?: string } = {}): Node {
  return x.graph.apply(reluBackwardOp, [x, dy], {}, opts.name);
}
