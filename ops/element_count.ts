import type { Node } from "../graph/graph.ts";
import { numel, type OpDef, registerOp } from "../graph/op.ts";
import { type ReduceAttrs, reduceAxes, reduceShape } from "./_reduce.ts";

/**
 * How many elements of `x` a reduction over `axes` takes into each output,
 * as a scalar known only at run time (the batch axis is bound then).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { elementCountOp } from "@denograd/denograd";
 * // a scalar: the element count, known once the batch is bound
 * assert.deepEqual(elementCountOp.shape([[-1, 3]], {}), []);
 * ```
 */
export const elementCountOp: OpDef<ReduceAttrs> = registerOp<ReduceAttrs>({
  name: "element_count",
  inputs: ["x"],
  shape: ([x], attrs) => {
    reduceShape(x!, attrs);
    return [];
  },
  // x's values are not read, only its run-time shape
  forward(_, out, c) {
    const s = c.inShapes[0]!;
    out[0] = numel(reduceAxes(s, c.attrs.axes).map((a) => s[a]!));
  },
  // a count does not change with x's values
  vjp: () => [null],
});

/**
 * The number of elements of `x` over `axes` (every axis by default), e.g.
 * `N·H·W` for the batch statistics of `[N, C, H, W]` activations: a scalar
 * node whose value follows the batch size bound at run time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { elementCount, Executor, Graph, makePlan } from "@denograd/denograd";
 * const g = new Graph();
 * const n = elementCount(g.input("x", [-1, 3, 4, 4]), { axes: [0, 2, 3] });
 * const ex = new Executor(makePlan(g, { batch: 5, outputs: [n] }));
 * assert.deepEqual([...ex.run({ x: new Float32Array(5 * 48) })[0]!], [80]);
 * ```
 */
export function elementCount(x: Node, opts: ReduceAttrs & { name?: string } = {}): Node {
  const { name, axes } = opts;
  return x.graph.apply(elementCountOp, [x], axes ? { axes } : {}, name);
}
