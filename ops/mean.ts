import type { Node } from "../graph/graph.ts";
import { numel, type OpDef, registerOp } from "../graph/op.ts";
import { keptShape, type ReduceAttrs, reduceAxes, reduceShape, sumKernel } from "./_reduce.ts";
import { expandAs } from "./expand_as.ts";
import { reshape } from "./reshape.ts";

/**
 * Mean over axes (all by default); the count is taken at run time, so a batch axis may be reduced.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { meanOp } from "@denograd/denograd";
 * assert.deepEqual(meanOp.shape([[-1, 2]], {}), []);
 * ```
 */
export const meanOp: OpDef<ReduceAttrs> = registerOp<ReduceAttrs>({
  name: "mean",
  inputs: ["x"],
  shape: ([x], attrs) => reduceShape(x!, attrs),
  forward([x], out, c) {
    sumKernel(x!, c.inShapes[0]!, reduceAxes(c.inShapes[0]!, c.attrs.axes), out);
    const k = out.length / numel(c.inShapes[0]!);
    for (let i = 0; i < out.length; i++) out[i] = out[i]! * k;
  },
  // dx = dy broadcast back over the reduced axes, divided by their element count
  vjp: ({ inputs: [x], dy, attrs }) => [
    expandAs(reshape(dy, keptShape(x!.shape, attrs)), x!, { mean: true }),
  ],
});

/**
 * Mean of `x` over `axes` (every axis by default), like `torch.mean`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, mean } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(mean(g.input("x", [-1, 10])).shape, []);
 * ```
 */
export function mean(x: Node, opts: ReduceAttrs & { name?: string } = {}): Node {
  const { name, ...attrs } = opts;
  return x.graph.apply(meanOp, [x], attrs, name);
}
