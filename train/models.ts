/**
 * The lecture's models as graph builders: the degree-2 polynomial, the
 * lecture CNN `softmax(W1 maxpool(ReLU(W0 * x)))`, and the course code's
 * fuller MNIST network.
 *
 * @module
 */
import { Graph, type Init, type Node } from "../graph/graph.ts";
import { grad } from "../graph/grad.ts";
import type { TrainGraphSpec } from "./parallel/pool.ts";
import {
  conv2d,
  dropout,
  flatten,
  linear,
  logSoftmax,
  maxPool2d,
  mseLoss,
  nllLoss,
  pow,
  relu,
  reshape,
  stack,
} from "../ops/mod.ts";

/** Model names understood by `--model`. */
export const MODELS = ["lecture-cnn", "mnist-net", "poly"] as const;

/** One of {@linkcode MODELS}. */
export type ModelName = typeof MODELS[number];

/** A classifier graph: its forward and backward nodes, named for runners and checkpoints. */
export interface Classifier extends TrainGraphSpec {
  /** Name of the log-probabilities node [N, 10]. */
  logp: string;
  /** The graph itself. */
  built: Graph;
}

// PyTorch's default for Conv2d and Linear weights and biases alike:
// kaiming_uniform(a=√5) gives the bound 1/√fan_in.
function torchInit(fanIn: number): Init {
  return { kind: "uniform", bound: 1 / Math.sqrt(fanIn) };
}

function convLayer(g: Graph, x: Node, name: string, ic: number, oc: number, k: number): Node {
  const w = g.param(`${name}.weight`, [oc, ic, k, k], torchInit(ic * k * k));
  const b = g.param(`${name}.bias`, [oc], torchInit(ic * k * k));
  return conv2d(x, w, b, { name });
}

function linearLayer(g: Graph, x: Node, name: string, inF: number, outF: number): Node {
  const w = g.param(`${name}.weight`, [outF, inF], torchInit(inF));
  const b = g.param(`${name}.bias`, [outF], torchInit(inF));
  return linear(x, w, b, { name });
}

function finish(g: Graph, logits: Node): Classifier {
  const logp = logSoftmax(logits, { axis: 1, name: "logp" });
  const target = g.input("target", [-1]);
  const loss = nllLoss(logp, target, { name: "loss" });
  const params = g.params();
  const grads = grad(loss, params);
  return {
    graph: g.toJSON(),
    built: g,
    input: "x",
    target: "target",
    loss: loss.name,
    logp: logp.name,
    grads: Object.fromEntries(params.map((p, i) => [p.name, grads[i]!.name])),
  };
}

/**
 * The lecture's digit classifier: conv 1→C 3×3, ReLU, 2×2 max-pool, flatten,
 * linear → 10, log-softmax, NLL.
 *
 * @example
 * ```ts
 * import { lectureCnn } from "@denograd/denograd";
 * const m = lectureCnn({ channels: 8 });
 * console.log(Object.keys(m.grads)); // ["conv1.weight", "conv1.bias", "fc.weight", "fc.bias"]
 * ```
 */
export function lectureCnn(opts: { channels?: number } = {}): Classifier {
  const c = opts.channels ?? 32;
  const g = new Graph();
  const x = g.input("x", [-1, 1, 28, 28]);
  const h = maxPool2d(relu(convLayer(g, x, "conv1", 1, c, 3), { name: "relu1" }), {
    size: 2,
    name: "pool1",
  });
  return finish(g, linearLayer(g, flatten(h, { name: "flat" }), "fc", c * 13 * 13, 10));
}

/**
 * The course code's network (the PyTorch MNIST example): two convolutions,
 * max-pool, dropout 0.25, linear 9216→128, dropout 0.5, linear 128→10.
 *
 * @example
 * ```ts
 * import { mnistNet } from "@denograd/denograd";
 * console.log(Object.keys(mnistNet({ seed: 1 }).grads).length); // 8
 * ```
 */
export function mnistNet(opts: { seed?: number } = {}): Classifier {
  const seed = opts.seed ?? 0;
  const g = new Graph();
  const x = g.input("x", [-1, 1, 28, 28]);
  let h = relu(convLayer(g, x, "conv1", 1, 32, 3), { name: "relu1" });
  h = relu(convLayer(g, h, "conv2", 32, 64, 3), { name: "relu2" });
  h = maxPool2d(h, { size: 2, name: "pool" });
  h = dropout(h, { p: 0.25, seed: seed * 2 + 1, name: "dropout1" });
  h = relu(linearLayer(g, flatten(h, { name: "flat" }), "fc1", 9216, 128), { name: "relu3" });
  h = dropout(h, { p: 0.5, seed: seed * 2 + 2, name: "dropout2" });
  return finish(g, linearLayer(g, h, "fc2", 128, 10));
}

/** The polynomial-regression graph. */
export interface Polynomial {
  /** The graph. */
  graph: Graph;
  /** Loss node: mean squared error. */
  loss: Node;
  /** Prediction node. */
  y: Node;
  /** Gradient of the loss with respect to `w` ([w1, w2]) and `b` ([w0]). */
  grads: Node[];
}

/**
 * The lecture's regression `f(x) = w2·x² + w1·x + w0` with squared error:
 * the features [x, x²] are stacked into columns and a linear layer holds
 * [w1, w2] as its weight and w0 as its bias.
 *
 * @example
 * ```ts
 * import { polynomialModel } from "@denograd/denograd";
 * const p = polynomialModel();
 * console.log(p.y.shape); // [-1]
 * ```
 */
export function polynomialModel(): Polynomial {
  const g = new Graph();
  const x = g.input("x", [-1]);
  const t = g.input("t", [-1]);
  const features = stack([x, pow(x, 2, { name: "x_squared" })], { axis: 1, name: "features" });
  const w = g.param("w", [1, 2], { kind: "constant", value: 0 });
  const b = g.param("b", [1], { kind: "constant", value: 0 });
  const y = reshape(linear(features, w, b, { name: "poly" }), [-1], { name: "y" });
  const loss = mseLoss(y, t, { name: "loss" });
  const grads = grad(loss, [w, b]) as Node[];
  return { graph: g, loss, y, grads };
}
