import type { Node } from "../graph/graph.ts";
import { runKernel } from "./kernels/tier.ts";
import { type OpDef, registerOp } from "../graph/op.ts";
import { div } from "./div.ts";
import { logF32 } from "./kernels/activation_fast.ts";

/**
 * The natural logarithm elementwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { logOp } from "@denograd/denograd";
 * assert.deepEqual(logOp.shape([[2, 3]], {}), [2, 3]);
 * assert.equal(typeof logOp.vjp, "function");
 * ```
 */
export const logOp: OpDef = registerOp({
  name: "log",
  inputs: ["x"],
  shape: ([x]) => x!,
  forward([x], y, { tier }) {
    runKernel(y, tier, {
      ref: () => {
        for (let i = 0; i < y.length; i++) y[i] = Math.log(x![i]!);
      },
      ts: (y) => logF32(x as Float32Array, y),
    });
  },
  // dx = dy / x
  vjp: ({ inputs: [x], dy }) => [div(dy, x!)],
});

/**
 * The natural logarithm elementwise, like `torch.log`: `-Infinity` at 0 and
 * NaN below.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { log, tensor, vjp } from "@denograd/denograd";
 * const { out, backward } = vjp((x) => log(x), tensor([1, 4]));
 * assert.deepEqual([...out.data], [0, Math.fround(Math.log(4))]);
 * assert.deepEqual([...backward([1, 1])[0]!.data], [1, 0.25]);
 * ```
 */
export function log(x: Node, opts: { name?: string } = {}): Node {
  return x.graph.apply(logOp, [x], {}, opts.name);
}
