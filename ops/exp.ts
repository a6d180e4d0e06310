import type { Node } from "../graph/graph.ts";
import { runKernel } from "./kernels/tier.ts";
import { type OpDef, registerOp } from "../graph/op.ts";
import { expF32 } from "./kernels/activation_fast.ts";
import { mul } from "./mul.ts";

/**
 * `e ** x` elementwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { expOp } from "@denograd/denograd";
 * assert.deepEqual(expOp.shape([[-1, 10]], {}), [-1, 10]);
 * assert.equal(typeof expOp.vjp, "function");
 * ```
 */
export const expOp: OpDef = registerOp({
  name: "exp",
  inputs: ["x"],
  shape: ([x]) => x!,
  forward([x], y, { tier }) {
    runKernel(y, tier, {
      ref: () => {
        for (let i = 0; i < y.length; i++) y[i] = Math.exp(x![i]!);
      },
      ts: (y) => expF32(x as Float32Array, y),
    });
  },
  // dx = dy * exp(x), read from the output
  vjp: ({ out, dy }) => [mul(dy, out)],
});

/**
 * The exponential `eˣ` elementwise, like `torch.exp`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { exp, tensor, vjp } from "@denograd/denograd";
 * const { out, backward } = vjp((x) => exp(x), tensor([0, 1]));
 * assert.deepEqual([...out.data], [1, Math.fround(Math.E)]);
 * assert.deepEqual([...backward([2, 1])[0]!.data], [2, Math.fround(Math.E)]);
 * ```
 */
export function exp(x: Node, opts: { name?: string } = {}): Node {
  return x.graph.apply(expOp, [x], {}, opts.name);
}
