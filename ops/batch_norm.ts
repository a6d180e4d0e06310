import type { Node } from "../graph/graph.ts";
import { fmtShape } from "../graph/op.ts";
import { add } from "./add.ts";
import { batchSum } from "./batch_sum.ts";
import { div } from "./div.ts";
import { elementCount } from "./element_count.ts";
import { fill } from "./fill.ts";
import { mul } from "./mul.ts";
import { pow } from "./pow.ts";
import { reshape } from "./reshape.ts";
import { sub } from "./sub.ts";
import { sum } from "./sum.ts";
import { trainingSelect } from "./training_select.ts";

/** Options of {@linkcode batchNorm}. */
export interface BatchNormOptions {
  /** Added to the variance (default 1e-5, PyTorch's). */
  eps?: number;
  /**
   * Running estimates `[C]` used instead of the batch's statistics in
   * evaluation mode (the layer helper keeps them); without them the batch's
   * statistics are used in both modes.
   */
  running?: { mean: Node; var: Node };
  /** Name of the output node. */
  name?: string;
}

/** The nodes of a batch norm: its output and the batch statistics (for running estimates). */
export interface BatchNormParts {
  /** The normalised, scaled and shifted output. */
  y: Node;
  /** Batch mean per channel, `[1, C, 1, …]`. */
  mean: Node;
  /** Biased batch variance per channel, `[1, C, 1, …]`. */
  var: Node;
  /** How many values each channel's statistics are over (`N·H·W` of the whole mini-batch), a scalar. */
  count: Node;
}

/**
 * Batch norm and its statistics: {@linkcode batchNorm}, returning also the
 * batch mean and variance nodes so a layer can update running estimates.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { batchNormParts, Graph } from "@denograd/denograd";
 * const g = new Graph();
 * const { y, mean } = batchNormParts(g.input("x", [-1, 3, 5, 5]), null, null);
 * assert.deepEqual([y.shape, mean.shape], [[-1, 3, 5, 5], [1, 3, 1, 1]]);
 * ```
 */
export function batchNormParts(
  x: Node,
  weight: Node | null = null,
  bias: Node | null = null,
  opts: BatchNormOptions = {},
): BatchNormParts {
  const where = `batchNorm "${opts.name ?? x.name}"`;
  if (x.shape.length < 2) {
    throw new Error(`${where}: x must have a channel axis 1, got ${fmtShape(x.shape)}`);
  }
  const c = x.shape[1]!;
  const checks = [["weight", weight], ["bias", bias], ["running mean", opts.running?.mean], [
    "running var",
    opts.running?.var,
  ]] as const;
  for (const [what, p] of checks) {
    if (p && p.shape.join() !== String(c)) {
      throw new Error(
        `${where}: ${what} has shape ${fmtShape(p.shape)} but x ${
          fmtShape(x.shape)
        } has ${c} channels`,
      );
    }
  }
  const eps = opts.eps ?? 1e-5;
  if (!(eps >= 0)) throw new Error(`${where}: eps must be a number ≥ 0, got ${eps}`);
  // statistics over every axis but the channel axis 1, and over the whole
  // mini-batch: each sum is a batch_sum collective, so micro-batches and
  // threads see the full batch's mean and variance (two collective phases)
  const axes = x.shape.map((_, i) => i).filter((i) => i !== 1);
  const perChannel = x.shape.map((_, i) => (i === 1 ? c : 1));
  const count = batchSum(elementCount(x, { axes }));
  const mu = div(batchSum(sum(x, { axes, keepdims: true })), count);
  let xc = sub(x, mu);
  const variance = div(batchSum(sum(mul(xc, xc), { axes, keepdims: true })), count);
  let v = variance;
  if (opts.running) {
    xc = sub(x, trainingSelect(mu, reshape(opts.running.mean, perChannel)));
    v = trainingSelect(variance, reshape(opts.running.var, perChannel));
  }
  const inv = pow(add(v, fill([], eps, x.graph)), -0.5);
  const last = !weight && !bias ? { name: opts.name } : {};
  let y = mul(xc, inv, last);
  if (weight) y = mul(y, reshape(weight, perChannel), bias ? {} : { name: opts.name });
  if (bias) y = add(y, reshape(bias, perChannel), { name: opts.name });
  return { y, mean: mu, var: variance, count };
}

/**
 * Batch normalisation in training mode, like `torch.nn.functional.batch_norm(x,
 * running_mean, running_var, weight, bias, training=True, eps=eps)`: every
 * channel (axis 1) is normalised with the mean and biased variance over
 * every other axis, then scaled by `weight [C]` and shifted by `bias [C]`
 * (either may be null). Built from sums, elementwise ops and `batchSum`
 * collectives, so its VJP is theirs, and the statistics are the whole
 * mini-batch's even when a runner splits it into micro-batches and threads;
 * with `running`, evaluation mode uses those estimates instead.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { batchNorm, tensor, vjp } from "@denograd/denograd";
 * // two samples, one channel: mean 2, variance 1
 * const { out } = vjp((x) => batchNorm(x, null, null, { eps: 0 }), tensor([[1], [3]]));
 * assert.deepEqual([...out.data], [-1, 1]);
 * ```
 */
export function batchNorm(
  x: Node,
  weight: Node | null = null,
  bias: Node | null = null,
  opts: BatchNormOptions = {},
): Node {
  return batchNormParts(x, weight, bias, opts).y;
}
