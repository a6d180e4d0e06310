import type { Node } from "../graph/graph.ts";
import { type FloatArray, type OpDef, registerOp } from "../graph/op.ts";
import type { Reduction } from "./nll_loss.ts";

/** Attributes of `cross_entropy` and its backward. */
export interface CrossEntropyAttrs {
  /** How per-sample losses are combined. */
  reduction: Reduction;
}

const reductions: readonly string[] = ["mean", "sum", "none"];

function checkShapes(
  logits: readonly number[],
  target: readonly number[],
  reduction: unknown,
): void {
  if (!reductions.includes(reduction as string)) {
    throw new Error(`reduction must be "mean", "sum" or "none", got ${JSON.stringify(reduction)}`);
  }
  if (logits.length !== 2) throw new Error("logits must be 2-D [batch, classes]");
  if (target.length !== 1) throw new Error("target must be 1-D [batch]");
  if (logits[0] !== target[0]) {
    const size = (d: number) => (d < 0 ? "N" : String(d));
    throw new Error(`logits hold ${size(logits[0]!)} samples but target holds ${size(target[0]!)}`);
  }
}

// a wrong target is a data bug: name the sample within the whole mini-batch
function classOf(op: string, target: FloatArray, i: number, classes: number, first: number) {
  const t = target[i]!;
  if (!(Number.isInteger(t) && t >= 0 && t < classes)) {
    throw new Error(
      `${op}: target of sample ${first + i} is ${t}, not a class index in 0..${classes - 1}`,
    );
  }
  return t;
}

/**
 * Cross-entropy of logits `[N, C]` at class indices `target [N]`: log-softmax and NLL fused.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { crossEntropyOp } from "@denograd/denograd";
 * assert.deepEqual(crossEntropyOp.shape([[-1, 3], [-1]], { reduction: "mean" }), []);
 * ```
 */
export const crossEntropyOp: OpDef<CrossEntropyAttrs> = registerOp<CrossEntropyAttrs>({
  name: "cross_entropy",
  inputs: ["logits", "target"],
  shape: ([logits, target], { reduction }) => {
    checkShapes(logits!, target!, reduction);
    return reduction === "none" ? [logits![0]!] : [];
  },
  // logits: (N, C), target: (N) -> loss: () or (N);
  // loss_i = log Σ_c exp(x_ic - max_i) - (x_i,target - max_i): finite for any finite logits
  forward([x, target], out, c) {
    const [n, classes] = c.inShapes[0] as [number, number];
    const none = c.attrs.reduction === "none";
    let acc = 0;
    for (let i = 0; i < n; i++) {
      const row = i * classes;
      let m = -Infinity;
      for (let k = 0; k < classes; k++) if (x![row + k]! > m) m = x![row + k]!;
      let s = 0;
      for (let k = 0; k < classes; k++) s += Math.exp(x![row + k]! - m);
      const t = classOf("cross_entropy", target!, i, classes, c.sampleOffset);
      // (x_t - m) first: with m + log s first, log s vanishes beside a huge m
      const l = Math.log(s) - (x![row + t]! - m);
      if (none) out[i] = l;
      else acc += l;
    }
    if (!none) out[0] = c.attrs.reduction === "mean" ? acc / n : acc;
  },
  // dlogits = (softmax(logits) - onehot(target)) * dy (/ N for the mean); no gradient for target
  vjp: ({ inputs: [logits, target], dy, attrs }) => [
    crossEntropyBackward(logits!, target!, dy, attrs),
    null,
  ],
});

/**
 * The VJP of `cross_entropy`: `(softmax(logits) - onehot(target)) * dy`,
 * divided by `N` for the mean. It has no VJP of its own (no second derivatives).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { crossEntropyBackwardOp } from "@denograd/denograd";
 * assert.deepEqual(crossEntropyBackwardOp.shape([[-1, 3], [-1], []], { reduction: "mean" }), [-1, 3]);
 * ```
 */
export const crossEntropyBackwardOp: OpDef<CrossEntropyAttrs> = registerOp<CrossEntropyAttrs>({
  name: "cross_entropy_backward",
  inputs: ["logits", "target", "dy"],
  shape: ([logits, target, dy], { reduction }) => {
    checkShapes(logits!, target!, reduction);
    const want = reduction === "none" ? [target![0]!] : [];
    if (dy!.join() !== want.join()) throw new Error("dy must have the shape of the loss");
    return logits!;
  },
  // logits: (N, C), target: (N), dy: () or (N) -> dlogits: (N, C)
  forward([x, target, dy], dx, c) {
    const [n, classes] = c.inShapes[0] as [number, number];
    const none = c.attrs.reduction === "none";
    const k = c.attrs.reduction === "mean" ? 1 / n : 1;
    for (let i = 0; i < n; i++) {
      const row = i * classes;
      const g = dy![none ? i : 0]! * k;
      let m = -Infinity;
      for (let j = 0; j < classes; j++) if (x![row + j]! > m) m = x![row + j]!;
      let s = 0;
      for (let j = 0; j < classes; j++) {
        const e = Math.exp(x![row + j]! - m);
        dx[row + j] = e;
        s += e;
      }
      const gs = g / s;
      for (let j = 0; j < classes; j++) dx[row + j] = dx[row + j]! * gs;
      const t = classOf("cross_entropy_backward", target!, i, classes, c.sampleOffset);
      dx[row + t] = dx[row + t]! - g;
    }
  },
});

/** Options of {@linkcode crossEntropy}. */
export interface CrossEntropyOptions {
  /** `"mean"` over the batch (default), `"sum"`, or `"none"` for per-sample losses. */
  reduction?: Reduction;
  /** Node name. */
  name?: string;
}

/**
 * Cross-entropy from raw logits, like `torch.nn.functional.cross_entropy`:
 * `logits [N, C]`, `target [N]` class indices stored as floats. One fused,
 * numerically stable op (log-sum-exp with the row maximum taken out), the
 * same value as `nllLoss(logSoftmax(logits), target)` with fewer buffers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { crossEntropy, tensor, vjp } from "@denograd/denograd";
 * const { out, backward } = vjp(
 *   (x, t) => crossEntropy(x, t),
 *   tensor([[0, 0], [1000, 0]]),
 *   tensor([1, 0]),
 * );
 * // ln 2 for the undecided sample, 0 for the sure one: (ln 2 + 0) / 2
 * assert.ok(Math.abs(out.data[0]! - Math.LN2 / 2) < 1e-7);
 * assert.deepEqual([...backward([1])[0]!.data], [0.25, -0.25, 0, 0]);
 * ```
 */
export function crossEntropy(logits: Node, target: Node, opts: CrossEntropyOptions = {}): Node {
  const attrs = { reduction: opts.reduction ?? "mean" };
  return logits.graph.apply(crossEntropyOp, [logits, target], attrs, opts.name);
}

/**
 * `(softmax(logits) - onehot(target)) * dy` (divided by `N` for the mean):
 * the backward of {@linkcode crossEntropy}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { crossEntropyBackward, Graph } from "@denograd/denograd";
 * const g = new Graph();
 * const d = crossEntropyBackward(g.input("x", [-1, 10]), g.input("t", [-1]), g.input("dy", []));
 * assert.deepEqual(d.shape, [-1, 10]);
 * ```
 */
export function crossEntropyBackward(
  logits: Node,
  target: Node,
  dy: Node,
  opts: CrossEntropyOptions = {},
): Node {
  const attrs = { reduction: opts.reduction ?? "mean" };
  return logits.graph.apply(crossEntropyBackwardOp, [logits, target, dy], attrs, opts.name);
}
