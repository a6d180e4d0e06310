import type { Node } from "../graph/graph.ts";
import { Bin, binaryKernel, broadcastShape, operands } from "./_broadcast.ts";
import { type OpDef, registerOp } from "../graph/op.ts";
import { mul } from "./mul.ts";
import { scale } from "./scale.ts";

/**
 * Elementwise `a / b` with broadcasting.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { divOp } from "@denograd/denograd";
 * assert.deepEqual(divOp.shape([[-1, 10], []], {}), [-1, 10]); // by a scalar
 * assert.equal(divOp.name, "div");
 * ```
 */
export const divOp: OpDef = registerOp({
  name: "div",
  inputs: ["a", "b"],
  shape: ([a, b]) => broadcastShape(a!, b!),
  forward([a, b], out, c) {
    binaryKernel(Bin.Div, a!, b!, out, { a: c.inShapes[0]!, b: c.inShapes[1]!, out: c.outShape });
  },
  // da = dy / b, db = -dy * (a / b) / b
  vjp: ({ inputs: [, b], out, dy }) => {
    const da = div(dy, b!);
    return [da, scale(div(mul(dy, out), b!), -1)];
  },
});

/**
 * Elementwise quotient with NumPy broadcasting.
 * A plain number is a scalar constant: `div(x, 255)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { div, Graph } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(div(g.input("a", [2, 3]), g.input("b", [3])).shape, [2, 3]);
 * ```
 */
export function div(a: Node | number, b: Node | number, opts: { name?: string } = {}): Node {
  const [x, y] = operands("div", a, b);
  return x.graph.apply(divOp, [x, y], {}, opts.name);
}
