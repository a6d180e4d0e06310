import type { Node } from "../graph/graph.ts";
import { runKernel } from "./kernels/tier.ts";
import { type OpDef, registerOp, type Shape } from "../graph/op.ts";
import { fill } from "./fill.ts";
import { sigmoidBackwardF32, sigmoidF32 } from "./kernels/activation_fast.ts";
import { mul } from "./mul.ts";
import { scale } from "./scale.ts";
import { sub } from "./sub.ts";

function sameShape([y, dy]: Shape[]): Shape {
  if (y!.join() !== dy!.join()) throw new Error("y and dy must have the same shape");
  return y!;
}

/**
 * The logistic function `1 / (1 + e^-x)` elementwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sigmoidOp } from "@denograd/denograd";
 * assert.deepEqual(sigmoidOp.shape([[-1, 1]], {}), [-1, 1]);
 * assert.equal(typeof sigmoidOp.vjp, "function");
 * ```
 */
export const sigmoidOp: OpDef = registerOp({
  name: "sigmoid",
  inputs: ["x"],
  shape: ([x]) => x!,
  forward([x], y, { tier }) {
    runKernel(y, tier, {
      ref: () => {
        for (let i = 0; i < y.length; i++) y[i] = 1 / (1 + Math.exp(-x![i]!));
      },
      ts: (y) => sigmoidF32(x as Float32Array, y),
    });
  },
  // dx = dy * y * (1 - y), from the output
  vjp: ({ out, dy }) => [sigmoidBackward(out, dy)],
});

/**
 * The VJP of the sigmoid from its output `y`: `dy * y * (1 - y)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sigmoidBackwardOp } from "@denograd/denograd";
 * assert.deepEqual(sigmoidBackwardOp.inputs, ["y", "dy"]); // from the output, not the input
 * assert.throws(() => sigmoidBackwardOp.shape([[2], [3]], {}), /y and dy must have the same shape/);
 * ```
 */
export const sigmoidBackwardOp: OpDef = registerOp({
  name: "sigmoid_backward",
  inputs: ["y", "dy"],
  shape: sameShape,
  forward([y, dy], dx, { tier }) {
    runKernel(dx, tier, {
      ref: () => {
        for (let i = 0; i < dx.length; i++) dx[i] = dy![i]! * y![i]! * (1 - y![i]!);
      },
      ts: (dx) => sigmoidBackwardF32(y as Float32Array, dy as Float32Array, dx),
    });
  },
  // d(dy) = g * y (1 - y); dy' = g * dy * (1 - 2y)
  vjp: ({ inputs: [y, dy], dy: g }) => [
    mul(mul(g, dy!), sub(fill([], 1, y!.graph), scale(y!, 2))),
    sigmoidBackward(y!, g),
  ],
});

/**
 * The logistic sigmoid `1 / (1 + e⁻ˣ)` elementwise, like `torch.sigmoid`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sigmoid, tensor, vjp } from "@denograd/denograd";
 * const { out, backward } = vjp((x) => sigmoid(x), tensor([0, 100]));
 * assert.deepEqual([...out.data], [0.5, 1]);
 * assert.deepEqual([...backward([1, 1])[0]!.data], [0.25, 0]);
 * ```
 */
export function sigmoid(x: Node, opts: { name?: string } = {}): Node {
  return x.graph.apply(sigmoidOp, [x], {}, opts.name);
}

/**
 * `dy * y * (1 - y)` for a sigmoid output `y`: the backward of {@linkcode sigmoid}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, sigmoidBackward } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(sigmoidBackward(g.input("y", [-1, 4]), g.input("dy", [-1, 4])).shape, [-1, 4]);
 * ```
 */
export function sigmoidBackward(y: Node, dy: Node, opts: { name?: string } = {}): Node {
  return y.graph.apply(sigmoidBackwardOp, [y, dy], {}, opts.name);
}
