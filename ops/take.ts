import type { Node } from "../graph/graph.ts";
import { fmtShape, numel, type OpDef, registerOp } from "../graph/op.ts";

/** Attributes of `take`. */
export interface TakeAttrs {
  /** First element taken from the flat input. */
  offset: number;
  /** Shape of the result (no batch axis). */
  shape: number[];
}

/**
 * A contiguous run of a flat input, reshaped: `x.flat()[offset, offset +
 * numel(shape))`. The fusion pass splits a packed gradient with it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { takeOp } from "@denograd/denograd";
 * // a parameter's gradient out of a packed buffer (conv2d_relu_pool_backward's 320 values)
 * assert.deepEqual(takeOp.shape([[320]], { offset: 0, shape: [32, 1, 3, 3] }), [32, 1, 3, 3]);
 * ```
 */
export const takeOp: OpDef<TakeAttrs> = registerOp<TakeAttrs>({
  name: "take",
  inputs: ["x"],
  shape([x], { offset, shape }) {
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new Error(`shape must be whole sizes, got ${JSON.stringify(shape)}`);
    }
    if (x!.some((d) => d < 0)) throw new Error(`x cannot have a batch axis, got ${fmtShape(x!)}`);
    const n = numel(x!);
    if (!Number.isInteger(offset) || offset < 0 || offset + numel(shape) > n) {
      throw new Error(`offset ${offset} and shape ${fmtShape(shape)} run past the ${n} elements`);
    }
    return shape;
  },
  forward([x], y, { attrs: { offset } }) {
    y.set(x!.subarray(offset, offset + y.length));
  },
  // the adjoint scatters back into zeros; the pass only takes gradients, which need none
});

/**
 * Elements `[offset, offset + numel(shape))` of `x`, with shape `shape`.
 *
 * @example
 * ```ts
 * import { Executor, Graph, makePlan, take } from "@denograd/denograd";
 * import { deepStrictEqual } from "node:assert/strict";
 * const g = new Graph();
 * const y = take(g.input("x", [6]), { offset: 2, shape: [2, 2] });
 * const ex = new Executor(makePlan(g, { outputs: [y] }));
 * deepStrictEqual([...ex.run({ x: [0, 1, 2, 3, 4, 5] })[0]!], [2, 3, 4, 5]);
 * ```
 */
export function take(x: Node, attrs: TakeAttrs, opts: { name?: string } = {}): Node {
  return x.graph.apply(takeOp, [x], attrs, opts.name);
}
