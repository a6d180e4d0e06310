import type { Node } from "../graph/graph.ts";
import { fmtShape, type OpDef, registerOp } from "../graph/op.ts";
import { expandAs } from "./expand_as.ts";
import type { Reduction } from "./nll_loss.ts";
import { mul } from "./mul.ts";
import { reshape } from "./reshape.ts";
import { scale } from "./scale.ts";

/** Attributes of `bce_with_logits` and its backward. */
export interface BceAttrs {
  /** How per-element losses are combined. */
  reduction: Reduction;
}

const reductions: readonly string[] = ["mean", "sum", "none"];

function checkReduction(r: unknown): void {
  if (!reductions.includes(r as string)) {
    throw new Error(`reduction must be "mean", "sum" or "none", got ${JSON.stringify(r)}`);
  }
}

function sameShapes(x: readonly number[], t: readonly number[]): void {
  if (x.join() !== t.join()) {
    throw new Error(`target must have the shape of logits ${fmtShape(x)}, got ${fmtShape(t)}`);
  }
}

/**
 * Binary cross-entropy of probabilities `sigmoid(logits)` against targets in [0, 1].
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bceWithLogitsOp } from "@denograd/denograd";
 * assert.deepEqual(bceWithLogitsOp.shape([[-1, 3], [-1, 3]], { reduction: "mean" }), []);
 * ```
 */
export const bceWithLogitsOp: OpDef<BceAttrs> = registerOp<BceAttrs>({
  name: "bce_with_logits",
  inputs: ["logits", "target"],
  shape: ([x, t], { reduction }) => {
    checkReduction(reduction);
    sameShapes(x!, t!);
    return reduction === "none" ? x! : [];
  },
  // x, t: shape -> loss: () or shape; l = max(x, 0) - x t + log(1 + e^-|x|),
  // which neither overflows nor loses the small terms for large |x|
  forward([x, t], out, c) {
    const none = c.attrs.reduction === "none";
    const n = x!.length;
    let acc = 0;
    for (let i = 0; i < n; i++) {
      const v = x![i]!;
      const l = Math.max(v, 0) - v * t![i]! + Math.log1p(Math.exp(-Math.abs(v)));
      if (none) out[i] = l;
      else acc += l;
    }
    if (!none) out[0] = c.attrs.reduction === "mean" ? acc / n : acc;
  },
  // dx = (sigmoid(x) - t) dy, dt = -x dy (each / numel for the mean)
  vjp: ({ inputs: [x, t], dy, attrs, needs }) => {
    let dt: Node | null = null;
    if (needs[1]) {
      // dy spread over every element, divided by their count for the mean
      const g = attrs.reduction === "none" ? dy : expandAs(reshape(dy, x!.shape.map(() => 1)), x!, {
        mean: attrs.reduction === "mean",
      });
      dt = mul(scale(x!, -1), g);
    }
    return [bceWithLogitsBackward(x!, t!, dy, attrs), dt];
  },
});

/**
 * The VJP of `bce_with_logits` in the logits: `(sigmoid(x) - t) * dy` (/ numel for the mean).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bceWithLogitsBackwardOp } from "@denograd/denograd";
 * assert.deepEqual(bceWithLogitsBackwardOp.shape([[-1, 3], [-1, 3], []], { reduction: "mean" }), [-1, 3]);
 * ```
 */
export const bceWithLogitsBackwardOp: OpDef<BceAttrs> = registerOp<BceAttrs>({
  name: "bce_with_logits_backward",
  inputs: ["logits", "target", "dy"],
  shape: ([x, t, dy], { reduction }) => {
    checkReduction(reduction);
    sameShapes(x!, t!);
    const want = reduction === "none" ? x! : [];
    if (dy!.join() !== want.join()) throw new Error("dy must have the shape of the loss");
    return x!;
  },
  forward([x, t, dy], dx, c) {
    const none = c.attrs.reduction === "none";
    const k = c.attrs.reduction === "mean" ? 1 / dx.length : 1;
    for (let i = 0; i < dx.length; i++) {
      const s = 1 / (1 + Math.exp(-x![i]!));
      dx[i] = (s - t![i]!) * dy![none ? i : 0]! * k;
    }
  },
});

/** Options of {@linkcode bceWithLogits}. */
export interface BceOptions {
  /** `"mean"` over every element (default), `"sum"`, or `"none"`. */
  reduction?: Reduction;
  /** Node name. */
  name?: string;
}

/**
 * Binary cross-entropy on logits, like
 * `torch.nn.functional.binary_cross_entropy_with_logits`: the sigmoid and
 * the log-loss fused into `max(x, 0) − x·t + log(1 + e^−|x|)`, stable for any
 * logit; `target` has the shape of `logits` and values in [0, 1].
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bceWithLogits, tensor, vjp } from "@denograd/denograd";
 * const { out, backward } = vjp((x, t) => bceWithLogits(x, t), tensor([0, 100]), tensor([1, 1]));
 * assert.ok(Math.abs(out.data[0]! - Math.LN2 / 2) < 1e-7);
 * assert.deepEqual([...backward([1])[0]!.data], [-0.25, 0]);
 * ```
 */
export function bceWithLogits(logits: Node, target: Node, opts: BceOptions = {}): Node {
  const attrs = { reduction: opts.reduction ?? "mean" };
  return logits.graph.apply(bceWithLogitsOp, [logits, target], attrs, opts.name);
}

/**
 * `(sigmoid(logits) - target) * dy` (divided by the element count for the
 * mean): the backward of {@linkcode bceWithLogits} in its logits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bceWithLogitsBackward, Graph } from "@denograd/denograd";
 * const g = new Graph();
 * const x = g.input("x", [-1, 1]);
 * assert.deepEqual(bceWithLogitsBackward(x, g.input("t", [-1, 1]), g.input("dy", [])).shape, [-1, 1]);
 * ```
 */
export function bceWithLogitsBackward(
  logits: Node,
  target: Node,
  dy: Node,
  opts: BceOptions = {},
): Node {
  const attrs = { reduction: opts.reduction ?? "mean" };
  return logits.graph.apply(bceWithLogitsBackwardOp, [logits, target, dy], attrs, opts.name);
}
