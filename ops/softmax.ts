import type { Node } from "../graph/graph.ts";
import { numel, type OpDef, registerOp, type Shape } from "../graph/op.ts";
import { reduceAxes } from "./_reduce.ts";
import { mul } from "./mul.ts";
import { sub } from "./sub.ts";
import { sum } from "./sum.ts";

/** Attributes of softmax and its backward. */
export interface SoftmaxAttrs {
  /** The normalised axis; negative counts from the end. */
  axis: number;
}

/** `[outer, n, inner]`: the axis of length `n` sits between blocks of `outer` and `inner`. */
function split(shape: Shape, axis: number): [number, number, number] {
  const a = reduceAxes(shape, [axis])[0]!;
  return [numel(shape.slice(0, a)), shape[a]!, numel(shape.slice(a + 1))];
}

function sameShape([y, dy]: Shape[], { axis }: SoftmaxAttrs): Shape {
  reduceAxes(y!, [axis]);
  if (y!.join() !== dy!.join()) throw new Error("y and dy must have the same shape");
  return y!;
}

/**
 * Softmax along one axis, stable for any input range: the row maximum is subtracted first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { softmaxOp } from "@denograd/denograd";
 * assert.deepEqual(softmaxOp.shape([[-1, 3]], { axis: 1 }), [-1, 3]);
 * ```
 */
export const softmaxOp: OpDef<SoftmaxAttrs> = registerOp<SoftmaxAttrs>({
  name: "softmax",
  inputs: ["x"],
  shape: ([x], { axis }) => {
    reduceAxes(x!, [axis]);
    return x!;
  },
  // x: shape -> y: shape, normalised along `axis`
  forward([x], y, c) {
    const [outer, n, inner] = split(c.inShapes[0]!, c.attrs.axis);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const base = o * n * inner + i;
        const end = base + n * inner;
        let m = -Infinity;
        for (let p = base; p < end; p += inner) if (x![p]! > m) m = x![p]!;
        let s = 0;
        for (let p = base; p < end; p += inner) {
          const e = Math.exp(x![p]! - m);
          y[p] = e;
          s += e;
        }
        const r = 1 / s;
        for (let p = base; p < end; p += inner) y[p] = y[p]! * r;
      }
    }
  },
  // dx = y * (dy - Σ_axis dy*y)
  vjp: ({ out, dy, attrs }) => [softmaxBackward(out, dy, { axis: attrs.axis })],
});

/**
 * The VJP of softmax from its output: `y * (dy - Σ_axis dy*y)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { softmaxBackwardOp } from "@denograd/denograd";
 * assert.deepEqual(softmaxBackwardOp.shape([[-1, 3], [-1, 3]], { axis: 1 }), [-1, 3]);
 * ```
 */
export const softmaxBackwardOp: OpDef<SoftmaxAttrs> = registerOp<SoftmaxAttrs>({
  name: "softmax_backward",
  inputs: ["y", "dy"],
  shape: sameShape,
  // y, dy: shape -> dx: shape
  forward([y, dy], dx, c) {
    const [outer, n, inner] = split(c.inShapes[0]!, c.attrs.axis);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const base = o * n * inner + i;
        const end = base + n * inner;
        let s = 0;
        for (let p = base; p < end; p += inner) s += dy![p]! * y![p]!;
        for (let p = base; p < end; p += inner) dx[p] = y![p]! * (dy![p]! - s);
      }
    }
  },
  // dx is linear in dy with a symmetric Jacobian, so d(dy) = softmax_backward(y, g);
  // d(y) = g * (dy - Σ dy*y) - dy * Σ g*y
  vjp: ({ inputs: [y, dy], dy: g, attrs: { axis } }) => {
    const dot = (a: Node, b: Node) => sum(mul(a, b), { axes: [axis], keepdims: true });
    return [
      sub(mul(g, sub(dy!, dot(dy!, y!))), mul(dy!, dot(g, y!))),
      softmaxBackward(y!, g, { axis }),
    ];
  },
});

/**
 * Softmax along `axis` (default the last), like `torch.softmax`:
 * `exp(x) / Σ exp(x)`, computed as `exp(x - max) / Σ exp(x - max)` so large
 * inputs do not overflow.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, softmax } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(softmax(g.input("logits", [-1, 10])).shape, [-1, 10]);
 * ```
 */
export function softmax(x: Node, opts: { axis?: number; name?: string } = {}): Node {
  return x.graph.apply(softmaxOp, [x], { axis: opts.axis ?? -1 }, opts.name);
}

/**
 * `y * (dy - Σ_axis dy*y)` for a softmax output `y`: the backward of
 * {@linkcode softmax}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, softmaxBackward } from "@denograd/denograd";
 * const g = new Graph();
 * assert.deepEqual(softmaxBackward(g.input("y", [2, 3]), g.input("dy", [2, 3])).shape, [2, 3]);
 * ```
 */
export function softmaxBackward(
  y: Node,
  dy: Node,
  opts: { axis?: number; name?: string } = {},
): Node {
  return y.graph.apply(softmaxBackwardOp, [y, dy], { axis: opts.axis ?? -1 }, opts.name);
}
