import type { Graph, Node } from "../graph/graph.ts";
import { fmtShape, type OpDef, registerOp } from "../graph/op.ts";

/** Attributes of `fill`. */
export interface FillAttrs {
  /** Concrete output shape (no batch axis `-1`). */
  shape: number[];
  /** The value of every element. */
  value: number;
}

/**
 * A constant tensor with every element equal to `value`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fillOp } from "@denograd/denograd";
 * // a constant: no inputs, its shape is an attribute
 * assert.deepEqual(fillOp.shape([], { shape: [], value: 1 }), []);
 * ```
 */
export const fillOp: OpDef<FillAttrs> = registerOp<FillAttrs>({
  name: "fill",
  inputs: [],
  shape: (_, { shape }) => {
    if (shape.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new Error(`shape ${fmtShape(shape)} must be concrete`);
    }
    return shape;
  },
  forward(_, out, { attrs }) {
    out.fill(attrs.value);
  },
  vjp: () => [],
});

/**
 * A constant node of the given (concrete) shape filled with `value`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fill, Graph } from "@denograd/denograd";
 * const ones = fill([2, 2], 1, new Graph());
 * assert.deepEqual(ones.shape, [2, 2]);
 * ```
 */
export function fill(
  shape: number[],
  value: number,
  graph: Graph,
  opts: { name?: string } = {},
): Node {
  return graph.apply(fillOp, [], { shape, value }, opts.name);
}
