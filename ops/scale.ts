import type { Node } from "../graph/graph.ts";
import { type OpDef, registerOp } from "../graph/op.ts";

/** Attributes of `scale`. */
export interface ScaleAttrs {
  /** The constant every element is multiplied by. */
  factor: number;
}

/**
 * `x * factor` for a constant factor.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { scaleOp } from "@denograd/denograd";
 * assert.deepEqual(scaleOp.shape([[-1, 4]], { factor: -1 }), [-1, 4]);
 * assert.deepEqual(scaleOp.inputs, ["x"]); // the factor is an attribute
 * ```
 */
export const scaleOp: OpDef<ScaleAttrs> = registerOp<ScaleAttrs>({
  name: "scale",
  inputs: ["x"],
  shape: ([x]) => x!,
  forward([x], y, { attrs: { factor } }) {
    for (let i = 0; i < y.length; i++) y[i] = x![i]! * factor;
  },
  // dx = dy * factor
  vjp: ({ dy, attrs }) => [scale(dy, attrs.factor)],
});

/**
 * Multiplies every element by a constant.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, scale } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(scale(g.input("x", [3]), -1).shape, [3]);
 * ```
 */
export function scale(x: Node, factor: number, opts: { name?: string } = {}): Node {
  return x.graph.apply(scaleOp, [x], { factor }, opts.name);
}
