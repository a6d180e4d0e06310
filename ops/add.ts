import type { Node } from "../graph/graph.ts";
import { Bin, binaryKernel, broadcastShape, operands } from "./_broadcast.ts";
import { type OpDef, registerOp } from "../graph/op.ts";

/**
 * Elementwise `a + b` with broadcasting.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addOp } from "@denograd/denograd";
 * assert.deepEqual(addOp.shape([[-1, 3], [3]], {}), [-1, 3]); // b broadcast over the batch
 * assert.throws(() => addOp.shape([[2, 3], [2]], {}), /cannot be broadcast/);
 * ```
 */
export const addOp: OpDef = registerOp({
  name: "add",
  inputs: ["a", "b"],
  shape: ([a, b]) => broadcastShape(a!, b!),
  forward([a, b], out, c) {
    binaryKernel(Bin.Add, a!, b!, out, { a: c.inShapes[0]!, b: c.inShapes[1]!, out: c.outShape });
  },
  // da = dy, db = dy (the engine sums over broadcast axes)
  vjp: ({ dy }) => [dy, dy],
});

/**
 * Elementwise sum with NumPy broadcasting.
 * A plain number is a scalar constant: `add(x, 1)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { add, Graph } from "@denograd/denograd";
 * const g = new Graph();
 * const y = add(g.input("x", [-1, 3]), g.input("b", [3]));
 * assert.deepEqual(y.shape, [-1, 3]);
 * ```
 */
export function add(a: Node | number, b: Node | number, opts: { name?: string } = {}): Node {
  const [x, y] = operands("add", a, b);
  return x.graph.apply(addOp, [x, y], {}, opts.name);
}
