import type { Node } from "../graph/graph.ts";
import { Bin, binaryKernel, broadcastShape } from "./_broadcast.ts";
import { type OpDef, registerOp } from "../graph/op.ts";

/** Elementwise `a * b` with broadcasting. */
export const mulOp: OpDef = registerOp({
  name: "mul",
  inputs: ["a", "b"],
  shape: ([a, b]) => broadcastShape(a!, b!),
  forward([a, b], out, c) {
    binaryKernel(Bin.Mul, a!, b!, out, { a: c.inShapes[0]!, b: c.inShapes[1]!, out: c.outShape });
  },
  // da = dy * b, db = dy * a
  vjp: ({ inputs: [a, b], dy }) => [mul(dy, b!), mul(dy, a!)],
});

/**
 * Elementwise product with NumPy broadcasting.
 *
 * @example
 * ```ts
 * import { Graph, mul } from "@denograd/denograd";
 * const g = new Graph();
 * console.log(mul(g.input("a", [-1, 3]), g.input("b", [3])).shape); // [-1, 3]
 * ```
 */
export function mul(a: Node, b: Node, opts: { name?: string } = {}): Node {
  return a.graph.apply(mulOp, [a, b], {}, opts.name);
}
