import type { Node } from "../graph/graph.ts";
import { Bin, binaryKernel, broadcastShape, operands } from "./_broadcast.ts";
import { type OpDef, registerOp } from "../graph/op.ts";

/**
 * Elementwise `a * b` with broadcasting.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mulOp } from "@denograd/denograd";
 * assert.deepEqual(mulOp.shape([[-1, 8, 2, 2], [8, 1, 1]], {}), [-1, 8, 2, 2]);
 * assert.throws(() => mulOp.shape([[3], [4]], {}), /cannot be broadcast/);
 * ```
 */
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
 * A plain number is a scalar constant: `mul(x, 2)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, mul } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(mul(g.input("a", [-1, 3]), g.input("b", [3])).shape, [-1, 3]);
 * ```
 *
 * @example
 * ```ts
 * import { mul, tensor, vjp } from "@denograd/denograd";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const { out, backward } = vjp((x) => mul(x, 2), tensor([1, 2]));
 * assertEquals([...out.data], [2, 4]);
 * assertEquals([...backward([1, 1])[0]!.data], [2, 2]);
 * ```
 */
export function mul(a: Node | number, b: Node | number, opts: { name?: string } = {}): Node {
  const [x, y] = operands("mul", a, b);
  return x.graph.apply(mulOp, [x, y], {}, opts.name);
}
