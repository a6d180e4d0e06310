/**
 * The lecture's models, written with the public layer helpers and
 * {@linkcode defineModel}: the degree-2 polynomial, the
 * lecture CNN `softmax(W1 maxpool(ReLU(W0 * x)))`, and the course code's
 * fuller MNIST network.
 *
 * @module
 */
import { Graph, type Node } from "../graph/graph.ts";
import { grad } from "../graph/grad.ts";
import { linear, mseLoss, pow, reshape, stack } from "../ops/mod.ts";
import { nn } from "./layers.ts";
import { defineModel, type Model, type TrainingGraph, trainingGraph } from "./model.ts";

/**
 * Model names understood by `--model` and `train({ model })`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MODELS } from "@denograd/denograd";
 * assert.deepEqual([...MODELS], ["lecture-cnn", "mnist-net", "poly"]);
 * ```
 */
export const MODELS = ["lecture-cnn", "mnist-net", "poly"] as const;

/** One of {@linkcode MODELS}. */
export type ModelName = typeof MODELS[number];

/** A classifier's training graph: forward, cross-entropy loss and gradients, named for runners and checkpoints. */
export type Classifier = TrainingGraph;

/**
 * The lecture's digit classifier as a {@linkcode Model}: conv 1→C 3×3, ReLU,
 * 2×2 max-pool, flatten, linear → 10 class scores.
 *
 * @example
 * ```ts
 * import { lectureCnnModel } from "@denograd/denograd";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const m = lectureCnnModel({ channels: 8 });
 * assertEquals(m.paramShapes()[0], ["conv1.weight", [8, 1, 3, 3]]);
 * assertEquals(m.outputShape, [10]);
 * ```
 */
export function lectureCnnModel(opts: { channels?: number; seed?: number } = {}): Model {
  const c = opts.channels ?? 32;
  return defineModel({ input: [1, 28, 28], seed: opts.seed, name: "lecture-cnn" }, (x) => {
    const h = nn.relu(nn.conv2d(x, c, 3, { name: "conv1" }), { name: "relu1" });
    const p = nn.maxPool2d(h, 2, { name: "pool1" });
    return nn.linear(nn.flatten(p, { name: "flat" }), 10, { name: "fc" });
  });
}

/**
 * The lecture's digit classifier's training graph: {@linkcode lectureCnnModel}
 * with log-softmax and NLL.
 *
 * @example
 * ```ts
 * import { lectureCnn } from "@denograd/denograd";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const m = lectureCnn({ channels: 8 });
 * assertEquals(Object.keys(m.grads), ["conv1.weight", "conv1.bias", "fc.weight", "fc.bias"]);
 * ```
 */
export function lectureCnn(opts: { channels?: number } = {}): Classifier {
  return trainingGraph(lectureCnnModel(opts), "cross-entropy");
}

/**
 * The course code's network (the PyTorch MNIST example) as a {@linkcode Model}:
 * two convolutions, max-pool, dropout 0.25, linear 9216→128, dropout 0.5,
 * linear 128→10. `seed` draws the parameters and the dropout masks.
 *
 * @example
 * ```ts
 * import { mnistNetModel } from "@denograd/denograd";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(mnistNetModel().paramShapes()[4], ["fc1.weight", [128, 9216]]);
 * ```
 */
export function mnistNetModel(opts: { seed?: number } = {}): Model {
  const seed = opts.seed ?? 0;
  return defineModel({ input: [1, 28, 28], seed, name: "mnist-net" }, (x) => {
    let h = nn.relu(nn.conv2d(x, 32, 3, { name: "conv1" }), { name: "relu1" });
    h = nn.relu(nn.conv2d(h, 64, 3, { name: "conv2" }), { name: "relu2" });
    h = nn.maxPool2d(h, 2, { name: "pool" });
    h = nn.dropout(h, 0.25, { seed: seed * 2 + 1, name: "dropout1" });
    h = nn.relu(nn.linear(nn.flatten(h, { name: "flat" }), 128, { name: "fc1" }), {
      name: "relu3",
    });
    h = nn.dropout(h, 0.5, { seed: seed * 2 + 2, name: "dropout2" });
    return nn.linear(h, 10, { name: "fc2" });
  });
}

/**
 * The training graph of {@linkcode mnistNetModel}.
 *
 * @example
 * ```ts
 * import { mnistNet } from "@denograd/denograd";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(Object.keys(mnistNet({ seed: 1 }).grads).length, 8);
 * ```
 */
export function mnistNet(opts: { seed?: number } = {}): Classifier {
  return trainingGraph(mnistNetModel(opts), "cross-entropy");
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
 * import assert from "node:assert/strict";
 * import { polynomialModel } from "@denograd/denograd";
 * const p = polynomialModel();
 * assert.deepEqual(p.y.shape, [-1]); // one prediction per sample
 * assert.deepEqual(p.grads.map((g) => g.shape), [[1, 2], [1]]); // of w and b
 * ```
 */
export function polynomialModel(): Polynomial {
  const g = Graph.fromJSON(polyModel().graph.toJSON());
  const y = g.node("y");
  const t = g.input("t", [-1]);
  const loss = mseLoss(y, t, { name: "loss" });
  const grads = grad(loss, [g.node("w"), g.node("b")]) as Node[];
  return { graph: g, loss, y, grads };
}

/**
 * The lecture's polynomial `w2·x² + w1·x + w0` as a {@linkcode Model} of
 * scalar samples (input shape `[]`): parameters `w` ([w1, w2]) and `b`
 * ([w0]), both starting at zero.
 *
 * @example
 * ```ts
 * import { polyModel } from "@denograd/denograd";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const m = polyModel();
 * m.params.get("w")!.set([-2, 3]);
 * m.params.get("b")!.set([0.5]);
 * assertEquals([...m.predict([0, 1, 2]).data], [0.5, 1.5, 8.5]);
 * ```
 */
export function polyModel(): Model {
  return defineModel({ input: [], name: "poly" }, (x) => {
    const g = x.graph;
    const features = stack([x, pow(x, 2, { name: "x_squared" })], { axis: 1, name: "features" });
    const w = g.param("w", [1, 2], { kind: "constant", value: 0 });
    const b = g.param("b", [1], { kind: "constant", value: 0 });
    return reshape(linear(features, w, b, { name: "poly" }), [-1], { name: "y" });
  });
}
