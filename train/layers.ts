/**
 * Layer helpers for {@linkcode defineModel}: each creates its parameters with
 * PyTorch's names (`conv1.weight`, `conv1.bias`) and default initialisation,
 * then applies its op, so a model written with them loads into the PyTorch
 * module with the same attribute names.
 *
 * @module
 */
import type { Graph, Init, Node } from "../graph/graph.ts";
import { fmtShape } from "../graph/op.ts";
import { closestFlag } from "./flag_errors.ts";
import {
  add,
  avgPool2d as avgPool2dOp,
  batchNormParts,
  conv2d as conv2dOp,
  div,
  dropout as dropoutOp,
  flatten as flattenOp,
  gelu as geluOp,
  globalAvgPool2d as globalAvgPool2dOp,
  layerNorm as layerNormOp,
  leakyRelu as leakyReluOp,
  linear as linearOp,
  logSoftmax as logSoftmaxOp,
  maxPool2d as maxPool2dOp,
  mul,
  relu as reluOp,
  reshape,
  scale,
  sigmoid as sigmoidOp,
  softmax as softmaxOp,
  sub,
  tanh as tanhOp,
} from "../ops/mod.ts";

/**
 * PyTorch's default initialiser of `Linear` and `Conv2d` weights and biases
 * alike: `kaiming_uniform_(a=√5)` reduces to U(−1/√fan_in, 1/√fan_in).
 *
 * @example
 * ```ts
 * import { torchDefaultInit } from "@denograd/denograd";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(torchDefaultInit(16), { kind: "uniform", bound: 0.25 });
 * ```
 */
export function torchDefaultInit(fanIn: number): Init {
  return { kind: "uniform", bound: 1 / Math.sqrt(fanIn) };
}

/** Options of {@linkcode nn.linear}. */
export interface LinearLayerOptions {
  /** Layer name, the prefix of its parameters (default `fc1`, `fc2`, …: the first free one). */
  name?: string;
  /** Whether the layer has a bias (default true). */
  bias?: boolean;
}

/** Options of {@linkcode nn.conv2d}. */
export interface Conv2dLayerOptions {
  /** Layer name, the prefix of its parameters (default `conv1`, `conv2`, …: the first free one). */
  name?: string;
  /** Step between filter positions (default 1). */
  stride?: number;
  /** Zeros added on each side (default 0). */
  padding?: number;
  /** Whether the layer has a bias (default true). */
  bias?: boolean;
}

// A misspelt option (`{ paddng: 1 }`) or PyTorch's positional style
// (`nn.conv2d(x, 8, 3, 1)`) was ignored without a word where TypeScript does not
// look (plain JavaScript, options built in a variable): say which and what is known.
function checkOpts(where: string, opts: unknown, known: readonly string[]): void {
  if (opts === undefined) return;
  if (typeof opts !== "object" || opts === null || Array.isArray(opts)) {
    throw new Error(
      `${where}: options must be an object { ${known.join(", ")} }, got ${
        JSON.stringify(opts) ?? String(opts)
      }`,
    );
  }
  for (const k of Object.keys(opts)) {
    if (known.includes(k)) continue;
    const near = closestFlag(k, known)?.slice(2);
    throw new Error(
      `${where}: unknown option ${JSON.stringify(k)}${
        near ? `; did you mean ${near}?` : ""
      } (its options: ${known.join(", ")})`,
    );
  }
}

/** `${base}${k}` for the smallest k ≥ 1 whose node and `.weight` parameter are both free. */
function freeName(g: Graph, base: string): string {
  for (let k = 1;; k++) {
    const name = `${base}${k}`;
    if (!g.has(name) && !g.has(`${name}.weight`)) return name;
  }
}

function positive(who: string, what: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) {
    throw new Error(`${who}: ${what} must be a positive whole number, got ${v}`);
  }
}

/** The layer helpers of {@linkcode nn}. */
export interface Layers {
  /**
   * Fully connected layer like `torch.nn.Linear(in, out)`: parameters
   * `NAME.weight` `[out, in]` and `NAME.bias` `[out]`, `in` read from the
   * input's last axis; `x` is `[N, in]`.
   */
  linear(x: Node, outFeatures: number, opts?: LinearLayerOptions): Node;
  /**
   * 2-D convolution like `torch.nn.Conv2d(in, out, kernel, stride, padding)`:
   * parameters `NAME.weight` `[out, in, k, k]` and `NAME.bias` `[out]`, `in`
   * read from the input's channel axis; `x` is `[N, C, H, W]`.
   */
  conv2d(x: Node, outChannels: number, kernelSize: number, opts?: Conv2dLayerOptions): Node;
  /** `max(x, 0)` elementwise. */
  relu(x: Node, opts?: { name?: string }): Node;
  /** Max pooling over `[N, C, H, W]` with a `size`×`size` window (stride `size` unless given). */
  maxPool2d(
    x: Node,
    size?: number,
    opts?: { stride?: number; padding?: number; name?: string },
  ): Node;
  /** Average pooling like `torch.nn.AvgPool2d(size, stride, padding)` (padded zeros count). */
  avgPool2d(
    x: Node,
    size?: number,
    opts?: { stride?: number; padding?: number; name?: string },
  ): Node;
  /** Global average pooling like `torch.nn.AdaptiveAvgPool2d(1)`: `[N, C, H, W]` → `[N, C, 1, 1]`. */
  globalAvgPool2d(x: Node, opts?: { name?: string }): Node;
  /** GELU (exact erf form), like `torch.nn.GELU()`. */
  gelu(x: Node, opts?: { name?: string }): Node;
  /** Leaky ReLU like `torch.nn.LeakyReLU(slope)` (default 0.01). */
  leakyRelu(x: Node, slope?: number, opts?: { name?: string }): Node;
  /** The logistic sigmoid, like `torch.nn.Sigmoid()`. */
  sigmoid(x: Node, opts?: { name?: string }): Node;
  /** The hyperbolic tangent, like `torch.nn.Tanh()`. */
  tanh(x: Node, opts?: { name?: string }): Node;
  /**
   * Softmax over `axis` (default 1, the classes of `[N, classes]`), like
   * `torch.nn.Softmax(dim=1)`. A model that ends in it predicts
   * probabilities; `train()` with cross-entropy then trains on the scores
   * before it (the negative log-likelihood of those probabilities) and says so
   * in a warning event.
   */
  softmax(x: Node, opts?: { axis?: number; name?: string }): Node;
  /** Log-softmax over `axis` (default 1), like `torch.nn.LogSoftmax(dim=1)`; see `softmax`. */
  logSoftmax(x: Node, opts?: { axis?: number; name?: string }): Node;
  /** Every axis after the batch axis flattened into one: `[N, ...]` → `[N, features]`. */
  flatten(x: Node, opts?: { name?: string }): Node;
  /**
   * Dropout with probability `p` in training, the identity in evaluation
   * (`Model.predict` always evaluates). The mask's seed defaults to the
   * node's position in the graph, so two dropouts differ.
   */
  dropout(x: Node, p: number, opts?: { seed?: number; name?: string }): Node;
  /**
   * Batch norm like `torch.nn.BatchNorm2d(C)` over `[N, C, H, W]`: the
   * batch's statistics in training, running estimates in evaluation.
   */
  batchNorm2d(x: Node, opts?: BatchNormLayerOptions): Node;
  /** Batch norm like `torch.nn.BatchNorm1d(C)` over `[N, C]` (see {@linkcode Layers.batchNorm2d}). */
  batchNorm1d(x: Node, opts?: BatchNormLayerOptions): Node;
  /**
   * Layer norm like `torch.nn.LayerNorm(normalizedShape)` over the trailing
   * axes (default: the last one), parameters `NAME.weight` and `NAME.bias`.
   */
  layerNorm(x: Node, normalizedShape?: number[], opts?: { eps?: number; name?: string }): Node;
}

/** Options of {@linkcode Layers.batchNorm2d} and {@linkcode Layers.batchNorm1d}. */
export interface BatchNormLayerOptions {
  /** Layer name, the prefix of its tensors (default `bn1`, `bn2`, …: the first free one). */
  name?: string;
  /** Added to the variance (default 1e-5). */
  eps?: number;
  /** Weight of the new batch statistic in the running estimates (default 0.1, PyTorch's). */
  momentum?: number;
}

// The layer's tensors carry PyTorch's names: weight (ones), bias (zeros) and
// the buffers running_mean (zeros), running_var (ones), num_batches_tracked.
// Each buffer names the node that holds its value after a step, so training
// replaces it there: running = (1 - momentum)·running + momentum·batch value,
// with the unbiased variance, as PyTorch's BatchNorm does in training mode.
function batchNormLayer(x: Node, rank: number, opts: BatchNormLayerOptions): Node {
  const g = x.graph;
  const name = opts.name ?? freeName(g, "bn");
  const kind = rank === 4 ? "batchNorm2d" : "batchNorm1d";
  if (x.shape.length !== rank) {
    throw new Error(
      `${kind} "${name}": input "${x.name}" has shape ${fmtShape(x.shape)}, expected ${
        rank === 4 ? "[N, C, H, W]" : "[N, C]"
      }`,
    );
  }
  const m = opts.momentum ?? 0.1;
  if (!(m >= 0 && m <= 1)) {
    throw new Error(`${kind} "${name}": momentum must be a number from 0 to 1, got ${m}`);
  }
  const c = x.shape[1]!;
  const constant = (value: number): Init => ({ kind: "constant", value });
  const buffer = (what: string, shape: number[], value: number) =>
    g.param(`${name}.${what}`, shape, constant(value), { update: `${name}.${what}.next` });
  const w = g.param(`${name}.weight`, [c], constant(1));
  const b = g.param(`${name}.bias`, [c], constant(0));
  const runningMean = buffer("running_mean", [c], 0);
  const runningVar = buffer("running_var", [c], 1);
  const tracked = buffer("num_batches_tracked", [], 0);
  const parts = batchNormParts(x, w, b, {
    eps: opts.eps,
    running: { mean: runningMean, var: runningVar },
    name,
  });
  const blend = (old: Node, batch: Node, what: string) =>
    add(scale(old, 1 - m), scale(reshape(batch, [c]), m), { name: `${name}.${what}.next` });
  blend(runningMean, parts.mean, "running_mean");
  const unbiased = mul(parts.var, div(parts.count, sub(parts.count, 1)));
  blend(runningVar, unbiased, "running_var");
  add(tracked, 1, { name: `${name}.num_batches_tracked.next` });
  return parts.y;
}

/**
 * Layer helpers in the manner of `torch.nn`: `linear`, `conv2d`,
 * `batchNorm2d`/`batchNorm1d` and `layerNorm` create their parameters (and
 * batch norm its running statistics) with PyTorch's names and default
 * initialisation and apply their op; `relu`, `gelu`, `leakyRelu`, `sigmoid`,
 * `tanh`, `maxPool2d`, `avgPool2d`, `globalAvgPool2d`, `flatten` and
 * `dropout` are the parameter-free ops with short signatures.
 *
 * @example
 * ```ts
 * import { defineModel, nn } from "@denograd/denograd";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const model = defineModel({ input: [1, 28, 28] }, (x) => {
 *   x = nn.maxPool2d(nn.relu(nn.conv2d(x, 8, 3, { padding: 1 })), 2);
 *   return nn.linear(nn.flatten(x), 10);
 * });
 * assertEquals([...model.params.keys()], ["conv1.weight", "conv1.bias", "fc1.weight", "fc1.bias"]);
 * assertEquals(model.graph.node("conv1.weight").shape, [8, 1, 3, 3]);
 * ```
 */
export const nn: Layers = {
  /**
   * Fully connected layer like `torch.nn.Linear(in, out)`: parameters
   * `NAME.weight` `[out, in]` and `NAME.bias` `[out]`, `in` read from the
   * input's last axis; `x` is `[N, in]`.
   */
  linear(x: Node, outFeatures: number, opts: LinearLayerOptions = {}): Node {
    checkOpts("nn.linear", opts, ["name", "bias"]);
    const g = x.graph;
    const name = opts.name ?? freeName(g, "fc");
    positive(`linear "${name}"`, "outFeatures", outFeatures);
    if (x.shape.length !== 2) {
      throw new Error(
        `linear "${name}": input "${x.name}" has shape ${
          fmtShape(x.shape)
        }, expected [N, features] (use nn.flatten first)`,
      );
    }
    const inF = x.shape[1]!;
    const init = torchDefaultInit(inF);
    const w = g.param(`${name}.weight`, [outFeatures, inF], init);
    const b = opts.bias === false ? null : g.param(`${name}.bias`, [outFeatures], init);
    return linearOp(x, w, b ?? undefined, { name });
  },

  /**
   * 2-D convolution like `torch.nn.Conv2d(in, out, kernel, stride, padding)`:
   * parameters `NAME.weight` `[out, in, k, k]` and `NAME.bias` `[out]`, `in`
   * read from the input's channel axis; `x` is `[N, C, H, W]`.
   */
  conv2d(
    x: Node,
    outChannels: number,
    kernelSize: number,
    opts: Conv2dLayerOptions = {},
  ): Node {
    checkOpts("nn.conv2d", opts, ["name", "stride", "padding", "bias"]);
    const g = x.graph;
    const name = opts.name ?? freeName(g, "conv");
    positive(`conv2d "${name}"`, "outChannels", outChannels);
    positive(`conv2d "${name}"`, "kernelSize", kernelSize);
    if (x.shape.length !== 4) {
      throw new Error(
        `conv2d "${name}": input "${x.name}" has shape ${fmtShape(x.shape)}, expected [N, C, H, W]`,
      );
    }
    const ic = x.shape[1]!;
    const k = kernelSize;
    const init = torchDefaultInit(ic * k * k);
    const w = g.param(`${name}.weight`, [outChannels, ic, k, k], init);
    const b = opts.bias === false ? null : g.param(`${name}.bias`, [outChannels], init);
    return conv2dOp(x, w, b, { stride: opts.stride, padding: opts.padding, name });
  },

  /** `max(x, 0)` elementwise. */
  relu(x: Node, opts: { name?: string } = {}): Node {
    checkOpts("nn.relu", opts, ["name"]);
    return reluOp(x, opts);
  },

  /** Max pooling over `[N, C, H, W]` with a `size`×`size` window (stride `size` unless given). */
  maxPool2d(
    x: Node,
    size = 2,
    opts: { stride?: number; padding?: number; name?: string } = {},
  ): Node {
    checkOpts("nn.maxPool2d", opts, ["stride", "padding", "name"]);
    return maxPool2dOp(x, { size, stride: opts.stride, padding: opts.padding, name: opts.name });
  },

  /** Average pooling like `torch.nn.AvgPool2d(size, stride, padding)` (padded zeros count). */
  avgPool2d(
    x: Node,
    size = 2,
    opts: { stride?: number; padding?: number; name?: string } = {},
  ): Node {
    checkOpts("nn.avgPool2d", opts, ["stride", "padding", "name"]);
    return avgPool2dOp(x, { size, stride: opts.stride, padding: opts.padding, name: opts.name });
  },

  /** Global average pooling like `torch.nn.AdaptiveAvgPool2d(1)`. */
  globalAvgPool2d(x: Node, opts: { name?: string } = {}): Node {
    checkOpts("nn.globalAvgPool2d", opts, ["name"]);
    return globalAvgPool2dOp(x, opts);
  },

  /** GELU (exact erf form), like `torch.nn.GELU()`. */
  gelu(x: Node, opts: { name?: string } = {}): Node {
    checkOpts("nn.gelu", opts, ["name"]);
    return geluOp(x, opts);
  },

  /** Leaky ReLU like `torch.nn.LeakyReLU(slope)` (default 0.01). */
  leakyRelu(x: Node, slope = 0.01, opts: { name?: string } = {}): Node {
    checkOpts("nn.leakyRelu", opts, ["name"]);
    return leakyReluOp(x, { slope, name: opts.name });
  },

  /** The logistic sigmoid, like `torch.nn.Sigmoid()`. */
  sigmoid(x: Node, opts: { name?: string } = {}): Node {
    checkOpts("nn.sigmoid", opts, ["name"]);
    return sigmoidOp(x, opts);
  },

  /** The hyperbolic tangent, like `torch.nn.Tanh()`. */
  tanh(x: Node, opts: { name?: string } = {}): Node {
    checkOpts("nn.tanh", opts, ["name"]);
    return tanhOp(x, opts);
  },

  /** Softmax over `axis` (default 1), like `torch.nn.Softmax(dim=1)`. */
  softmax(x: Node, opts: { axis?: number; name?: string } = {}): Node {
    checkOpts("nn.softmax", opts, ["axis", "name"]);
    return softmaxOp(x, { axis: opts.axis ?? 1, name: opts.name });
  },

  /** Log-softmax over `axis` (default 1), like `torch.nn.LogSoftmax(dim=1)`. */
  logSoftmax(x: Node, opts: { axis?: number; name?: string } = {}): Node {
    checkOpts("nn.logSoftmax", opts, ["axis", "name"]);
    return logSoftmaxOp(x, { axis: opts.axis ?? 1, name: opts.name });
  },

  /** Every axis after the batch axis flattened into one: `[N, ...]` → `[N, features]`. */
  flatten(x: Node, opts: { name?: string } = {}): Node {
    checkOpts("nn.flatten", opts, ["name"]);
    return flattenOp(x, opts);
  },

  /**
   * Dropout with probability `p` in training, the identity in evaluation
   * (`Model.predict` always evaluates). The mask's seed defaults to one drawn
   * from the node's position, so two dropouts differ.
   */
  dropout(x: Node, p: number, opts: { seed?: number; name?: string } = {}): Node {
    checkOpts("nn.dropout", opts, ["seed", "name"]);
    return dropoutOp(x, { p, seed: opts.seed ?? x.graph.nodes.length, name: opts.name });
  },

  /**
   * Batch norm like `torch.nn.BatchNorm2d(C)` over `[N, C, H, W]`: the
   * batch's statistics in training, running estimates in evaluation.
   */
  batchNorm2d(x: Node, opts: BatchNormLayerOptions = {}): Node {
    checkOpts("nn.batchNorm2d", opts, ["name", "eps", "momentum"]);
    return batchNormLayer(x, 4, opts);
  },

  /** Batch norm like `torch.nn.BatchNorm1d(C)` over `[N, C]`. */
  batchNorm1d(x: Node, opts: BatchNormLayerOptions = {}): Node {
    checkOpts("nn.batchNorm1d", opts, ["name", "eps", "momentum"]);
    return batchNormLayer(x, 2, opts);
  },

  /**
   * Layer norm like `torch.nn.LayerNorm(normalizedShape)` over the trailing
   * axes (default: the last one), parameters `NAME.weight` (ones) and
   * `NAME.bias` (zeros).
   */
  layerNorm(x: Node, normalizedShape?: number[], opts: { eps?: number; name?: string } = {}) {
    checkOpts("nn.layerNorm", opts, ["eps", "name"]);
    const g = x.graph;
    const name = opts.name ?? freeName(g, "ln");
    const shape = normalizedShape ?? [x.shape.at(-1)!];
    const trailing = x.shape.slice(x.shape.length - shape.length);
    if (shape.length === 0 || trailing.join() !== shape.join()) {
      throw new Error(
        `layerNorm "${name}": normalized shape [${shape}] must be the trailing axes of "${x.name}" ${
          fmtShape(x.shape)
        }`,
      );
    }
    const w = g.param(`${name}.weight`, shape, { kind: "constant", value: 1 });
    const b = g.param(`${name}.bias`, shape, { kind: "constant", value: 0 });
    return layerNormOp(x, w, b, { eps: opts.eps, name });
  },
};
