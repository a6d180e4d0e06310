import type { Node } from "../graph/graph.ts";
import { type OpDef, registerOp } from "./_op.ts";
import { keptShape, type ReduceAttrs, reduceAxes, reduceShape, sumKernel } from "./_reduce.ts";
import { expandAs } from "./expand_as.ts";
import { reshape } from "./reshape.ts";

/** Sum over axes (all by default). */
export const sumOp: OpDef<ReduceAttrs> = registerOp<ReduceAttrs>({
  name: "sum",
  inputs: ["x"],
  shape: ([x], attrs) => reduceShape(x!, attrs),
  forward([x], out, c) {
    sumKernel(x!, c.inShapes[0]!, reduceAxes(c.inShapes[0]!, c.attrs.axes), out);
  },
  // dx = dy broadcast back over the summed axes
  vjp: ({ inputs: [x], dy, attrs }) => [expandAs(reshape(dy, keptShape(x!.shape, attrs)), x!)],
});

/**
 * Sums `x` over `axes` (every axis by default), like `torch.sum`.
 *
 * @example
 * ```ts
 * import { Graph, sum } from "@denograd/denograd";
 * const g = new Graph();
 * console.log(sum(g.input("x", [-1, 10]), { axes: [1] }).shape); // [-1]
 * ```
 */
export function sum(x: Node, opts: ReduceAttrs & { name?: string } = {}): Node {
  const { name, ...attrs } = opts;
  return x.graph.apply(sumOp, [x], attrs, name);
}
