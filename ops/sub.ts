import type { Node } from "../graph/graph.ts";
import { Bin, binaryKernel, broadcastShape, operands } from "./_broadcast.ts";
import { type OpDef, registerOp } from "../graph/op.ts";
import { scale } from "./scale.ts";

/**
 * Elementwise `a - b` with broadcasting.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { subOp } from "@denograd/denograd";
 * assert.deepEqual(subOp.shape([[4, 1], [1, 5]], {}), [4, 5]);
 * assert.deepEqual(subOp.inputs, ["a", "b"]);
 * ```
 */
export const subOp: OpDef = registerOp({
  name: "sub",
  inputs: ["a", "b"],
  shape: ([a, b]) => broadcastShape(a!, b!),
  forward([a, b], out, c) {
    binaryKernel(Bin.Sub, a!, b!, out, { a: c.inShapes[0]!, b: c.inShapes[1]!, out: c.outShape });
  },
  // da = dy, db = -dy
  vjp: ({ dy }) => [dy, scale(dy, -1)],
});

/**
 * Elementwise difference with NumPy broadcasting.
 * A plain number is a scalar constant: `sub(1, x)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, sub } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(sub(g.input("a", [2, 3]), g.input("b", [1, 3])).shape, [2, 3]);
 * ```
 */
export function sub(a: Node | number, b: Node | number, opts: { name?: string } = {}): Node {
  const [x, y] = operands("sub", a, b);
  return x.graph.apply(subOp, [x, y], {}, opts.name);
}
