import type { Node } from "../graph/graph.ts";
import { Bin, binaryKernel, broadcastShape } from "./_broadcast.ts";
import { numel, type OpDef, registerOp } from "../graph/op.ts";

/** Attributes of `expand_as`. */
export interface ExpandAsAttrs {
  /** Divide by the expansion factor (the VJP of a mean). */
  mean?: boolean;
}

/**
 * Broadcasts `y` to the shape of `like` (whose values are not read).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { expandAsOp } from "@denograd/denograd";
 * // the mean's gradient spread over its input
 * assert.deepEqual(expandAsOp.shape([[1, 1], [-1, 2]], { mean: true }), [-1, 2]);
 * ```
 */
export const expandAsOp: OpDef<ExpandAsAttrs> = registerOp<ExpandAsAttrs>({
  name: "expand_as",
  inputs: ["y", "like"],
  shape: ([y, like]) => {
    const s = broadcastShape(y!, like!);
    if (s.join() !== like!.join()) throw new Error("y does not broadcast to the shape of like");
    return like!;
  },
  forward([y, like], out, c) {
    binaryKernel(Bin.First, y!, like!, out, {
      a: c.inShapes[0]!,
      b: c.inShapes[1]!,
      out: c.outShape,
    });
    if (c.attrs.mean) {
      const k = 1 / (numel(c.outShape) / numel(c.inShapes[0]!));
      for (let i = 0; i < out.length; i++) out[i] = out[i]! * k;
    }
  },
  // dy_in = sum of dy over the expanded axes (the engine does the sum)
  vjp: ({ out, dy, attrs }) => {
    if (attrs.mean) {
      throw new Error(`expand_as "${out.name}": the derivative of a mean's VJP is not supported`);
    }
    return [dy, null];
  },
});

/**
 * Broadcasts `y` to the shape of `like`; with `mean`, divides by the number of
 * copies made.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { expandAs, Graph } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(expandAs(g.input("b", [1, 3]), g.input("x", [-1, 3])).shape, [-1, 3]);
 * ```
 */
export function expandAs(
  y: Node,
  like: Node,
  opts: { mean?: boolean; name?: string } = {},
): Node {
  return like.graph.apply(expandAsOp, [y, like], opts.mean ? { mean: true } : {}, opts.name);
}
