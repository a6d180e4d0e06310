import type { Node } from "../graph/graph.ts";
import { type OpDef, registerOp } from "../graph/op.ts";
import { mul } from "./mul.ts";
import { scale } from "./scale.ts";

/** Attributes of `pow`. */
export interface PowAttrs {
  /** The constant exponent. */
  exponent: number;
}

/**
 * `x ** exponent` elementwise for a constant exponent.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { powOp } from "@denograd/denograd";
 * assert.deepEqual(powOp.shape([[-1]], { exponent: 2 }), [-1]);
 * assert.throws(() => powOp.shape([[3]], { exponent: NaN }), /exponent must be a finite number, got NaN/);
 * ```
 */
export const powOp: OpDef<PowAttrs> = registerOp<PowAttrs>({
  name: "pow",
  inputs: ["x"],
  shape: ([x], { exponent }) => {
    if (typeof exponent !== "number" || !Number.isFinite(exponent)) {
      throw new Error(`exponent must be a finite number, got ${exponent}`);
    }
    return x!;
  },
  forward([x], y, { attrs: { exponent: p } }) {
    // squares are what losses and polynomial features use: skip Math.pow for them
    if (p === 2) { for (let i = 0; i < y.length; i++) y[i] = x![i]! * x![i]!; }
    else if (p === 1) y.set(x!);
    else for (let i = 0; i < y.length; i++) y[i] = x![i]! ** p;
  },
  // dx = dy * p * x^(p-1)
  vjp: ({ inputs: [x], dy, attrs: { exponent: p } }) => {
    // the special cases avoid x^-1 (infinite at 0) for p = 0 and extra nodes for p = 1, 2
    if (p === 0) return [scale(dy, 0)];
    if (p === 1) return [dy];
    if (p === 2) return [mul(dy, scale(x!, 2))];
    return [mul(dy, scale(pow(x!, p - 1), p))];
  },
});

/**
 * Raises every element to a constant power, like `torch.pow(x, exponent)`;
 * a fractional power of a negative number is NaN.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, pow } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(pow(g.input("x", [-1, 1]), 3).shape, [-1, 1]);
 * ```
 */
export function pow(x: Node, exponent: number, opts: { name?: string } = {}): Node {
  return x.graph.apply(powOp, [x], { exponent }, opts.name);
}

/**
 * `x * x` elementwise: {@linkcode pow} with exponent 2.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, square } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(square(g.input("err", [-1])).shape, [-1]);
 * ```
 */
export function square(x: Node, opts: { name?: string } = {}): Node {
  return pow(x, 2, opts);
}
