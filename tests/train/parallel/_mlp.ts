/**
 * The small classifier and data the pool tests share: flatten -> linear ->
 * relu -> [more] -> linear -> logSoftmax -> nllLoss on `side`×`side` inputs,
 * and a deterministic training set in SharedArrayBuffers.
 *
 * @module
 */
import { Graph, type Node } from "../../../graph/graph.ts";
import { grad } from "../../../graph/grad.ts";
import { linear } from "../../../ops/linear.ts";
import { logSoftmax } from "../../../ops/log_softmax.ts";
import { nllLoss } from "../../../ops/nll_loss.ts";
import { relu } from "../../../ops/relu.ts";
import { flatten } from "../../../ops/reshape.ts";
import type { SharedData, TrainGraphSpec } from "../../../train/parallel/spec.ts";

/** Sizes and the uniform init bounds of fc1's weight and bias, then fc2's. */
export interface MlpShape {
  side: number;
  hidden: number;
  classes: number;
  bounds: [number, number, number, number];
}

/** The classifier of `shape`, with `more` applied after the hidden ReLU (e.g. dropout). */
export function mlp(
  shape: MlpShape,
  more?: (h: Node) => Node,
): { spec: TrainGraphSpec; graph: Graph } {
  const { side, hidden, classes, bounds } = shape;
  const g = new Graph();
  const x = g.input("x", [-1, side, side]);
  const w1 = g.param("fc1.weight", [hidden, side * side], { kind: "uniform", bound: bounds[0] });
  const b1 = g.param("fc1.bias", [hidden], { kind: "uniform", bound: bounds[1] });
  const w2 = g.param("fc2.weight", [classes, hidden], { kind: "uniform", bound: bounds[2] });
  const b2 = g.param("fc2.bias", [classes], { kind: "uniform", bound: bounds[3] });
  let h: Node = relu(linear(flatten(x), w1, b1));
  if (more) h = more(h);
  const loss = nllLoss(logSoftmax(linear(h, w2, b2)), g.input("y", [-1]), { name: "loss" });
  const params = [w1, b1, w2, b2];
  const gs = grad(loss, params);
  const grads: Record<string, string> = {};
  params.forEach((w, i) => (grads[w.name] = gs[i]!.name));
  return { spec: { graph: g.toJSON(), input: "x", target: "y", loss: "loss", grads }, graph: g };
}

/** `samples` inputs of `side`×`side` with labels `n·7 mod classes`, in SharedArrayBuffers. */
export function sharedData(samples: number, side: number, classes: number): SharedData {
  const ss = side * side;
  const images = new Float32Array(new SharedArrayBuffer(4 * samples * ss));
  const labels = new Uint8Array(new SharedArrayBuffer(samples));
  for (let n = 0; n < samples; n++) {
    labels[n] = (n * 7) % classes;
    for (let e = 0; e < ss; e++) images[n * ss + e] = Math.sin(n * 1.3 + e * 0.7) + labels[n]! / 5;
  }
  return { images, labels, sampleSize: ss };
}
