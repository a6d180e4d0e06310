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
import {
  conv2d as conv2dOp,
  dropout as dropoutOp,
  flatten as flattenOp,
  linear as linearOp,
  maxPool2d as maxPool2dOp,
  relu as reluOp,
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
  maxPool2d(x: Node, size?: number, opts?: { stride?: number; name?: string }): Node;
  /** Every axis after the batch axis flattened into one: `[N, ...]` → `[N, features]`. */
  flatten(x: Node, opts?: { name?: string }): Node;
  /**
   * Dropout with probability `p` in training, the identity in evaluation
   * (`Model.predict` always evaluates). The mask's seed defaults to the
   * node's position in the graph, so two dropouts differ.
   */
  dropout(x: Node, p: number, opts?: { seed?: number; name?: string }): Node;
}

/**
 * Layer helpers in the manner of `torch.nn`: `linear` and `conv2d` create
 * their parameters (PyTorch names and default initialisation) and apply their
 * op; `relu`, `maxPool2d`, `flatten` and `dropout` are the parameter-free ops
 * with short signatures.
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
    return reluOp(x, opts);
  },

  /** Max pooling over `[N, C, H, W]` with a `size`×`size` window (stride `size` unless given). */
  maxPool2d(x: Node, size = 2, opts: { stride?: number; name?: string } = {}): Node {
    return maxPool2dOp(x, { size, stride: opts.stride, name: opts.name });
  },

  /** Every axis after the batch axis flattened into one: `[N, ...]` → `[N, features]`. */
  flatten(x: Node, opts: { name?: string } = {}): Node {
    return flattenOp(x, opts);
  },

  /**
   * Dropout with probability `p` in training, the identity in evaluation
   * (`Model.predict` always evaluates). The mask's seed defaults to one drawn
   * from the node's position, so two dropouts differ.
   */
  dropout(x: Node, p: number, opts: { seed?: number; name?: string } = {}): Node {
    return dropoutOp(x, { p, seed: opts.seed ?? x.graph.nodes.length, name: opts.name });
  },
};
