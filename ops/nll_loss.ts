import type { Node } from "../graph/graph.ts";
import { type FloatArray, type OpDef, registerOp } from "../graph/op.ts";

/** How per-sample losses are combined: averaged over the batch, summed, or kept. */
export type Reduction = "mean" | "sum" | "none";

/** Attributes of `nll_loss`. */
export interface NllAttrs {
  /** How per-sample losses are combined. */
  reduction: Reduction;
}

/** Attributes of `nll_loss_backward`. */
export interface NllBackwardAttrs {
  /** The reduction of the forward loss. */
  reduction: Reduction;
  /** Number of classes, the second axis of `logp`. */
  classes: number;
}

const reductions: readonly string[] = ["mean", "sum", "none"];

function checkReduction(r: unknown): void {
  if (!reductions.includes(r as string)) {
    throw new Error(`reduction must be "mean", "sum" or "none", got ${JSON.stringify(r)}`);
  }
}

// Targets are class indices stored as floats; a wrong one is a data bug, so
// the message names the sample within the whole mini-batch and its value.
function classOf(op: string, target: FloatArray, n: number, classes: number, first: number) {
  const t = target[n]!;
  if (!(Number.isInteger(t) && t >= 0 && t < classes)) {
    throw new Error(
      `${op}: target of sample ${first + n} is ${t}, not a class index in 0..${classes - 1}`,
    );
  }
  return t;
}

/**
 * Negative log-likelihood of log-probabilities `logp [N, C]` at class indices `target [N]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nllLossOp } from "@denograd/denograd";
 * assert.deepEqual(nllLossOp.shape([[-1, 10], [-1]], { reduction: "mean" }), []);
 * ```
 */
export const nllLossOp: OpDef<NllAttrs> = registerOp<NllAttrs>({
  name: "nll_loss",
  inputs: ["logp", "target"],
  shape: ([logp, target], { reduction }) => {
    checkReduction(reduction);
    if (logp!.length !== 2) throw new Error("logp must be 2-D [batch, classes]");
    if (target!.length !== 1) throw new Error("target must be 1-D [batch]");
    if (logp![0] !== target![0]) {
      const size = (d: number) => (d < 0 ? "N" : String(d));
      throw new Error(
        `logp holds ${size(logp![0]!)} samples but target holds ${size(target![0]!)}`,
      );
    }
    return reduction === "none" ? [logp![0]!] : [];
  },
  // logp: (N, C), target: (N) -> loss: () or (N)
  forward([logp, target], out, c) {
    const shape = c.inShapes[0]!;
    const n = shape[0]!, classes = shape[1]!;
    const none = c.attrs.reduction === "none";
    let acc = 0;
    for (let i = 0; i < n; i++) {
      const l = -logp![i * classes + classOf("nll_loss", target!, i, classes, c.sampleOffset)]!;
      if (none) out[i] = l;
      else acc += l;
    }
    // N is the batch bound at plan time, so the mean is taken here, not in the graph
    if (!none) out[0] = c.attrs.reduction === "mean" ? acc / n : acc;
  },
  // dlogp = -dy (or -dy/N) at each sample's target class, 0 elsewhere; no gradient for target
  vjp: ({ inputs: [logp, target], dy, attrs: { reduction } }) => [
    nllLossBackward(target!, dy, { reduction, classes: logp!.shape[1]! }),
    null,
  ],
});

/**
 * The VJP of `nll_loss`: `-dy` (or `-dy/N` for the mean) at each sample's
 * target class. It takes the class count as an attribute rather than `logp`,
 * so `logp`'s buffer need not live until the backward pass.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nllLossBackwardOp } from "@denograd/denograd";
 * // one row of class gradients per sample
 * assert.deepEqual(nllLossBackwardOp.shape([[-1], []], { reduction: "mean", classes: 10 }), [-1, 10]);
 * ```
 */
export const nllLossBackwardOp: OpDef<NllBackwardAttrs> = registerOp<NllBackwardAttrs>({
  name: "nll_loss_backward",
  inputs: ["target", "dy"],
  shape: ([target, dy], { reduction, classes }) => {
    checkReduction(reduction);
    if (!(Number.isInteger(classes) && classes > 0)) {
      throw new Error(`classes must be a positive whole number, got ${classes}`);
    }
    if (target!.length !== 1) throw new Error("target must be 1-D [batch]");
    const want = reduction === "none" ? [target![0]!] : [];
    if (dy!.join() !== want.join()) throw new Error(`dy must have the shape of the loss`);
    return [target![0]!, classes];
  },
  // target: (N), dy: () or (N) -> dlogp: (N, C)
  forward([target, dy], dx, c) {
    const n = c.inShapes[0]![0]!;
    const reduction = c.attrs.reduction, classes = c.attrs.classes;
    dx.fill(0);
    const k = reduction === "mean" ? 1 / n : 1;
    for (let i = 0; i < n; i++) {
      const t = classOf("nll_loss_backward", target!, i, classes, c.sampleOffset);
      dx[i * classes + t] = -dy![reduction === "none" ? i : 0]! * k;
    }
  },
  // linear in dy, and its transpose gathers at the targets: d(dy) = nll_loss(g, target)
  vjp: ({ inputs: [target], dy: g, attrs: { reduction } }) => [
    null,
    nllLoss(g, target!, { reduction }),
  ],
});

/**
 * Negative log-likelihood loss, like `torch.nn.functional.nll_loss`:
 * `logp [N, C]` holds log-probabilities (from {@linkcode logSoftmax}),
 * `target [N]` class indices stored as floats. The default `reduction: "mean"`
 * averages `-logp[n, target[n]]` over the batch bound at run time; `"sum"`
 * adds them; `"none"` returns the `[N]` per-sample losses. A target that is
 * not a class index throws when the graph runs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, logSoftmax, nllLoss } from "@denograd/denograd";
 * const g = new Graph();
 * const logits = g.input("logits", [-1, 10]);
 * const loss = nllLoss(logSoftmax(logits), g.input("label", [-1]));
 * assert.deepEqual(loss.shape, []);
 * ```
 */
export function nllLoss(
  logp: Node,
  target: Node,
  opts: { reduction?: Reduction; name?: string } = {},
): Node {
  return logp.graph.apply(
    nllLossOp,
    [logp, target],
    { reduction: opts.reduction ?? "mean" },
    opts.name,
  );
}

/**
 * The backward of {@linkcode nllLoss}: a `[N, classes]` tensor holding `-dy`
 * (divided by `N` for the mean) at each sample's target class.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, nllLossBackward } from "@denograd/denograd";
 * const g = new Graph();
 * const dlogp = nllLossBackward(g.input("label", [-1]), g.input("dy", []), { classes: 10 });
 * assert.deepEqual(dlogp.shape, [-1, 10]);
 * ```
 */
export function nllLossBackward(
  target: Node,
  dy: Node,
  opts: { classes: number; reduction?: Reduction; name?: string },
): Node {
  return target.graph.apply(
    nllLossBackwardOp,
    [target, dy],
    { reduction: opts.reduction ?? "mean", classes: opts.classes },
    opts.name,
  );
}
