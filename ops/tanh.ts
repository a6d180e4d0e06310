import type { Node } from "../graph/graph.ts";
import { runKernel } from "./kernels/tier.ts";
import { type OpDef, registerOp, type Shape } from "../graph/op.ts";
import { tanhBackwardF32, tanhF32 } from "./kernels/activation_fast.ts";
import { mul } from "./mul.ts";
import { scale } from "./scale.ts";

function sameShape([y, dy]: Shape[]): Shape {
  if (y!.join() !== dy!.join()) throw new Error("y and dy must have the same shape");
  return y!;
}

/**
 * The hyperbolic tangent elementwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tanhOp } from "@denograd/denograd";
 * assert.deepEqual(tanhOp.shape([[-1, 8]], {}), [-1, 8]);
 * assert.equal(typeof tanhOp.vjp, "function");
 * ```
 */
export const tanhOp: OpDef = registerOp({
  name: "tanh",
  inputs: ["x"],
  shape: ([x]) => x!,
  forward([x], y, { tier }) {
    runKernel(y, tier, {
      ref: () => {
        for (let i = 0; i < y.length; i++) y[i] = Math.tanh(x![i]!);
      },
      ts: (y) => tanhF32(x as Float32Array, y),
    });
  },
  // dx = dy * (1 - y²), from the output
  vjp: ({ out, dy }) => [tanhBackward(out, dy)],
});

/**
 * The VJP of tanh from its output `y`: `dy * (1 - y²)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tanhBackwardOp } from "@denograd/denograd";
 * assert.deepEqual(tanhBackwardOp.inputs, ["y", "dy"]); // from the output, not the input
 * assert.throws(() => tanhBackwardOp.shape([[2], [3]], {}), /y and dy must have the same shape/);
 * ```
 */
export const tanhBackwardOp: OpDef = registerOp({
  name: "tanh_backward",
  inputs: ["y", "dy"],
  shape: sameShape,
  forward([y, dy], dx, { tier }) {
    runKernel(dx, tier, {
      ref: () => {
        for (let i = 0; i < dx.length; i++) dx[i] = dy![i]! * (1 - y![i]! * y![i]!);
      },
      ts: (dx) => tanhBackwardF32(y as Float32Array, dy as Float32Array, dx),
    });
  },
  // d(dy) = g (1 - y²); dy' = -2 g dy y
  vjp: ({ inputs: [y, dy], dy: g }) => [scale(mul(mul(g, dy!), y!), -2), tanhBackward(y!, g)],
});

/**
 * The hyperbolic tangent elementwise, like `torch.tanh`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tanh, tensor, vjp } from "@denograd/denograd";
 * const { out, backward } = vjp((x) => tanh(x), tensor([0, 50]));
 * assert.deepEqual([...out.data], [0, 1]);
 * assert.deepEqual([...backward([3, 1])[0]!.data], [3, 0]);
 * ```
 */
export function tanh(x: Node, opts: { name?: string } = {}): Node {
  return x.graph.apply(tanhOp, [x], {}, opts.name);
}

/**
 * `dy * (1 - y²)` for a tanh output `y`: the backward of {@linkcode tanh}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, tanhBackward } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(tanhBackward(g.input("y", [3]), g.input("dy", [3])).shape, [3]);
 * ```
 */
export function tanhBackward(y: Node, dy: Node, opts: { name?: string } = {}): Node {
  return y.graph.apply(tanhBackwardOp, [y, dy], {}, opts.name);
}
