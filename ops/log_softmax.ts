import type { Node } from "../graph/graph.ts";
import { type FloatArray, type OpDef, registerOp, type Shape } from "../graph/op.ts";
import { reduceAxes } from "./_reduce.ts";

/** Attributes of log-softmax and its backward. */
export interface LogSoftmaxAttrs {
  /** The normalised axis; negative counts from the end. */
  axis: number;
}

/**
 * The product of the dimensions of `shape` before `axis` (a negative one
 * counts from the end; `shape` checks it), or after it with `after`; runs in
 * each forward call, so it makes no arrays (the axis of length `n` sits
 * between blocks of `outer` and `inner`).
 */
function blockOf(shape: Shape, axis: number, after: boolean): number {
  const a = axis < 0 ? axis + shape.length : axis;
  let p = 1;
  for (let i = after ? a + 1 : 0; i < (after ? shape.length : a); i++) p *= shape[i]!;
  return p;
}

/** The axis's length in `shape`. */
function axisLength(shape: Shape, axis: number): number {
  return shape[axis < 0 ? axis + shape.length : axis]!;
}

// x -> y, log-normalised along the middle axis of [outer, n, inner]; a
// function of numbers only, so that it is optimised and boxes none
function logSoftmaxBlocks(
  x: FloatArray,
  y: FloatArray,
  outer: number,
  n: number,
  inner: number,
): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      const end = base + n * inner;
      let m = -Infinity;
      for (let p = base; p < end; p += inner) if (x[p]! > m) m = x[p]!;
      let s = 0;
      for (let p = base; p < end; p += inner) s += Math.exp(x[p]! - m);
      const lse = m + Math.log(s);
      for (let p = base; p < end; p += inner) y[p] = x[p]! - lse;
    }
  }
}

// y, dy -> dx = dy - exp(y) * Σ_axis dy over [outer, n, inner]
function logSoftmaxBackwardBlocks(
  y: FloatArray,
  dy: FloatArray,
  dx: FloatArray,
  outer: number,
  n: number,
  inner: number,
): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      const end = base + n * inner;
      let s = 0;
      for (let p = base; p < end; p += inner) s += dy[p]!;
      for (let p = base; p < end; p += inner) dx[p] = dy[p]! - Math.exp(y[p]!) * s;
    }
  }
}

/**
 * `log(softmax(x))` along one axis as `x - max - log Σ exp(x - max)`: finite for any finite input.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { logSoftmaxOp } from "@denograd/denograd";
 * assert.deepEqual(logSoftmaxOp.shape([[-1, 10]], { axis: 1 }), [-1, 10]);
 * ```
 */
export const logSoftmaxOp: OpDef<LogSoftmaxAttrs> = registerOp<LogSoftmaxAttrs>({
  name: "log_softmax",
  inputs: ["x"],
  shape: ([x], { axis }) => {
    reduceAxes(x!, [axis]);
    return x!;
  },
  // x: shape -> y: shape, log-normalised along `axis`
  forward([x], y, c) {
    const shape = c.inShapes[0]!, axis = c.attrs.axis;
    const outer = blockOf(shape, axis, false), inner = blockOf(shape, axis, true);
    logSoftmaxBlocks(x!, y, outer, axisLength(shape, axis), inner);
  },
  // dx = dy - exp(y) * Σ_axis dy
  vjp: ({ out, dy, attrs }) => [logSoftmaxBackward(out, dy, { axis: attrs.axis })],
});

/**
 * The VJP of log-softmax from its output: `dy - exp(y) * Σ_axis dy`. Reading
 * the output rather than `x` means the input's buffer need not live until the
 * backward pass. It has no VJP of its own (no second derivatives).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { logSoftmaxBackwardOp } from "@denograd/denograd";
 * assert.deepEqual(logSoftmaxBackwardOp.shape([[-1, 10], [-1, 10]], { axis: 1 }), [-1, 10]);
 * ```
 */
export const logSoftmaxBackwardOp: OpDef<LogSoftmaxAttrs> = registerOp<LogSoftmaxAttrs>({
  name: "log_softmax_backward",
  inputs: ["y", "dy"],
  shape: ([y, dy], { axis }) => {
    reduceAxes(y!, [axis]);
    if (y!.join() !== dy!.join()) throw new Error("y and dy must have the same shape");
    return y!;
  },
  // y, dy: shape -> dx: shape
  forward([y, dy], dx, c) {
    const shape = c.inShapes[0]!, axis = c.attrs.axis;
    const outer = blockOf(shape, axis, false), inner = blockOf(shape, axis, true);
    logSoftmaxBackwardBlocks(y!, dy!, dx, outer, axisLength(shape, axis), inner);
  },
});

/**
 * Log-softmax along `axis` (default the last), like `torch.log_softmax`;
 * feed it to {@linkcode nllLoss} for the cross-entropy of the lecture.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, logSoftmax } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(logSoftmax(g.input("logits", [-1, 10])).shape, [-1, 10]);
 * ```
 */
export function logSoftmax(x: Node, opts: { axis?: number; name?: string } = {}): Node {
  return x.graph.apply(logSoftmaxOp, [x], { axis: opts.axis ?? -1 }, opts.name);
}

/**
 * `dy - exp(y) * Σ_axis dy` for a log-softmax output `y`: the backward of
 * {@linkcode logSoftmax}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, logSoftmaxBackward } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(logSoftmaxBackward(g.input("y", [2, 3]), g.input("dy", [2, 3])).shape, [2, 3]);
 * ```
 */
export function logSoftmaxBackward(
  y: Node,
  dy: Node,
  opts: { axis?: number; name?: string } = {},
): Node {
  return y.graph.apply(logSoftmaxBackwardOp, [y, dy], { axis: opts.axis ?? -1 }, opts.name);
}
