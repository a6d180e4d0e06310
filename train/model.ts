/**
 * Your own model: {@linkcode defineModel} builds a forward graph from layer
 * helpers and ops, and the resulting {@linkcode Model} predicts, evaluates,
 * saves itself as one safetensors file (parameters in their real shapes under
 * PyTorch names, the graph in the metadata) and is trained by `train()`.
 * {@linkcode loadModel} rebuilds a saved model without the code that built it.
 *
 * @module
 */
// every built-in op registers itself on import, so a saved graph can be rebuilt
import "../ops/mod.ts";
import { Executor } from "../graph/executor.ts";
import { Graph, type GraphJSON, Node } from "../graph/graph.ts";
import { grad } from "../graph/grad.ts";
import { fmtShape, numel, type Tier } from "../graph/op.ts";
import { initParams } from "../graph/params.ts";
import { makePlan } from "../graph/plan.ts";
import type { Tensor } from "../graph/tensor.ts";
import { logSoftmax, mseLoss, nllLoss } from "../ops/mod.ts";
import type { Dataset } from "./data/dataset.ts";
import type { TrainGraphSpec } from "./parallel/pool.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  type StoredTensor,
  writeSafetensorsAtomic,
} from "./safetensors.ts";
import type { EventLoopYield } from "./yield.ts";

/** The losses `train()` and {@linkcode Model.evaluate} know. */
export type LossName = "cross-entropy" | "mse";

/**
 * Samples and targets in memory: `x` is a `Tensor` `[n, ...input]` or `n`
 * samples' values back to back; `y` holds integer class ids (cross-entropy)
 * or, for a regression (MSE), `n` outputs' values back to back.
 */
export interface ModelData {
  /** Samples. */
  x: Tensor | ArrayLike<number>;
  /** Class ids or regression targets. */
  y: Tensor | ArrayLike<number>;
}

/** What {@linkcode Model.evaluate} measures. */
export interface EvaluateResult {
  /** Mean loss over the samples. */
  loss: number;
  /** Fraction classified correctly; `NaN` for a regression. */
  accuracy: number;
  /** Counts `confusion[truth][predicted]`; empty for a regression. */
  confusion: number[][];
}

/** A model's graph with a loss and gradients appended, for runners and evaluation. */
export interface TrainingGraph extends TrainGraphSpec {
  /** The graph itself. */
  built: Graph;
  /** Name of the model's output node. */
  output: string;
  /** Name of the log-probabilities node (cross-entropy), the output otherwise. */
  logp: string;
  /** The loss the graph computes. */
  lossKind: LossName;
  /**
   * Set when the model's output already is `softmax` (or `log_softmax`) over
   * the classes and the loss is cross-entropy: the loss is then the NLL of the
   * model's own probabilities, i.e. cross-entropy on `logits`, the node before
   * it (a cross-entropy on top of probabilities would stay near ln(classes)).
   */
  classesFrom?: { op: "softmax" | "log_softmax"; logits: string };
  /**
   * Buffers (e.g. batch norm's running statistics): their `grads` entry names
   * the node holding their next value, which replaces them after each step
   * instead of an optimizer update.
   */
  buffers: string[];
}

/** Samples and targets ready for the runners: shared buffers, checked against a model. */
export interface TrainSet {
  /** For messages. */
  name: string;
  /** Number of samples. */
  count: number;
  /** Shape of one sample (the model's input). */
  sampleShape: number[];
  /** `count` samples back to back (SharedArrayBuffer-backed). */
  images: Float32Array;
  /** Class ids (cross-entropy) or `targetSize` floats per sample (MSE). */
  labels: Uint8Array | Float32Array;
  /** Target values per sample. */
  targetSize: number;
  /** Classes of a classifier (the model's output size); 0 for a regression. */
  numClasses: number;
}

/** Options of {@linkcode defineModel}. */
export interface DefineModelOptions {
  /** Shape of one sample, without the batch axis, e.g. `[1, 28, 28]`. */
  input: number[];
  /** Seed of the initial parameters, a whole number from 0 to 2³²−1 (default 0). */
  seed?: number;
  /** Name shown in events and summaries (default `"model"`). */
  name?: string;
}

// samples per executor run in predict and evaluate
const CHUNK = 256;
// plans kept per model: a full chunk and a few remainders
const MAX_PLANS = 4;

/**
 * A model: a forward graph from the input node `x` (`[-1, ...input]`) to an
 * output node, and its parameters by name. Make one with
 * {@linkcode defineModel} or {@linkcode loadModel}.
 *
 * @example
 * ```ts
 * import { defineModel, nn, tensor } from "@denograd/denograd";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const model = defineModel({ input: [4] }, (x) => nn.linear(nn.relu(nn.linear(x, 8)), 3));
 * const y = model.predict(tensor(new Float32Array(5 * 4).fill(0.5), [5, 4]));
 * assertEquals(y.shape, [5, 3]);
 * assertEquals(model.outputShape, [3]);
 * ```
 */
export class Model {
  /** The forward graph. */
  readonly graph: Graph;
  /** Shape of one sample. */
  readonly input: number[];
  /** Name of the output node. */
  readonly output: string;
  /** Parameter buffers by name (updated in place by `train()`). */
  readonly params: Map<string, Float32Array>;
  /** Name shown in events and summaries. */
  name: string;
  /** Kernel tier for predict and evaluate (default: the process-wide one). */
  tier: Tier | undefined;
  /**
   * What the loader found worth saying about the model (e.g. parameter names
   * an ONNX exporter made up); `train()` emits each as a warning event.
   */
  readonly warnings: readonly string[];
  private plans = new Map<number, Executor>();
  private evalGraphs = new Map<LossName, TrainingGraph>();

  /**
   * Wraps a graph whose input node is `x` (`[-1, ...input]`) and whose node
   * `output` is the result; every parameter node needs a buffer of its size.
   * {@linkcode defineModel} and {@linkcode loadModel} call this.
   */
  constructor(
    graph: Graph,
    output: string,
    params: Map<string, Float32Array>,
    opts: { name?: string; warnings?: readonly string[] } = {},
  ) {
    if (!graph.has("x") || graph.node("x").op !== "input") {
      throw new Error('Model: the graph has no input node "x"');
    }
    const x = graph.node("x");
    if (x.shape[0] !== -1) {
      throw new Error(`Model: input "x" has shape ${fmtShape(x.shape)}, expected a batch axis -1`);
    }
    for (const other of graph.inputs()) {
      if (other.name !== "x") {
        throw new Error(`Model: the graph has a second input "${other.name}"`);
      }
    }
    if (!graph.has(output)) throw new Error(`Model: the graph has no output node "${output}"`);
    const out = graph.node(output);
    if (out.shape[0] !== -1) {
      throw new Error(
        `Model: output "${output}" has shape ${
          fmtShape(out.shape)
        }, expected one row per sample ([-1, ...])`,
      );
    }
    for (const p of graph.params()) {
      const buf = params.get(p.name);
      if (!buf || buf.length !== numel(p.shape)) {
        throw new Error(
          `Model: parameter "${p.name}" ${fmtShape(p.shape)} needs ${numel(p.shape)} floats, got ${
            buf ? buf.length : "none"
          }`,
        );
      }
    }
    this.graph = graph;
    this.input = x.shape.slice(1);
    this.output = output;
    this.params = params;
    this.name = opts.name ?? "model";
    this.warnings = [...(opts.warnings ?? [])];
  }

  /** Shape of one sample's output, e.g. `[10]` for a digit classifier. */
  get outputShape(): number[] {
    return this.graph.node(this.output).shape.slice(1);
  }

  /** Each parameter's name and shape, in creation order. */
  paramShapes(): [string, number[]][] {
    return this.graph.params().map((p) => [p.name, [...p.shape]]);
  }

  /**
   * The outputs for `x` (a `Tensor` `[n, ...input]`, or `n` samples' values
   * back to back), always in evaluation mode (dropout off), in chunks of up
   * to 256 samples with a plan cached per chunk size.
   */
  predict(x: Tensor | ArrayLike<number>): Tensor {
    const { data, n } = samplesOf(x, this.input, "Model.predict");
    const outSize = numel(this.outputShape);
    const out = new Float32Array(n * outSize);
    const inSize = numel(this.input);
    for (let start = 0; start < n; start += CHUNK) {
      const m = Math.min(CHUNK, n - start);
      const ex = this.executor(m);
      // parameters may have changed since the last run (train() updates them in place)
      ex.invalidate();
      const [y] = ex.run({ x: data.subarray(start * inSize, (start + m) * inSize) }, {
        training: false,
      });
      out.set(y!.subarray(0, m * outSize), start * outSize);
    }
    return { shape: [n, ...this.outputShape], data: out };
  }

  /**
   * Loss, accuracy and confusion matrix over `data` in evaluation mode. The
   * loss is cross-entropy for integer class ids (the default) and MSE for
   * float targets; see {@linkcode ModelData}.
   */
  evaluate(data: ModelData | Dataset, opts: { loss?: LossName } = {}): EvaluateResult {
    const loss = opts.loss ?? defaultLoss(data);
    const set = isDataset(data)
      ? datasetAsTrainSet(data, this, loss)
      : toTrainSet("data", data, this, loss, false);
    let g = this.evalGraphs.get(loss);
    if (!g) this.evalGraphs.set(loss, g = trainingGraph(this, loss));
    return new Evaluator(g, this.params, this.tier).evaluate(set);
  }

  /**
   * Writes one safetensors file: every parameter in its real shape under its
   * name, and in the metadata the graph (JSON), the input shape and the
   * output node, so {@linkcode loadModel} rebuilds the model in a fresh
   * process and PyTorch's `load_state_dict` reads the tensors.
   */
  async save(path: string): Promise<void> {
    // loadModel reads a .onnx name as ONNX: the file could not be read back
    if (/\.onnx$/i.test(path)) {
      throw new Error(
        `Model.save writes safetensors; "${path}" would be read back as ONNX: name it .safetensors, or write toOnnx(model)'s bytes`,
      );
    }
    const { tensors, metadata } = this.fileContents();
    await writeSafetensorsAtomic(path, tensors, metadata);
  }

  /**
   * The bytes {@linkcode Model.save} writes, for where there is no file
   * system (a web page offers them as a download); {@linkcode modelFromBytes}
   * reads them back.
   *
   * @example
   * ```ts
   * import { defineModel, modelFromBytes, nn } from "@denograd/denograd";
   * import { deepStrictEqual as assertEquals } from "node:assert/strict";
   * const model = defineModel({ input: [3], seed: 3 }, (x) => nn.linear(x, 2, { name: "fc" }));
   * const again = modelFromBytes(model.toBytes());
   * const x = new Float32Array([1, 2, 3]);
   * assertEquals(again.predict(x).data, model.predict(x).data);
   * ```
   */
  toBytes(): Uint8Array {
    const { tensors, metadata } = this.fileContents();
    return encodeSafetensors(tensors, metadata);
  }

  /** The tensors and metadata a model file holds (shared by `save` and `toBytes`). */
  private fileContents(): {
    tensors: Record<string, StoredTensor>;
    metadata: Record<string, string>;
  } {
    const tensors: Record<string, StoredTensor> = {};
    for (const [name, shape] of this.paramShapes()) {
      tensors[name] = { shape, data: this.params.get(name)! };
    }
    const metadata = {
      format: "denograd.model",
      name: this.name,
      input: JSON.stringify(this.input),
      output: this.output,
      graph: JSON.stringify(this.graph.toJSON()),
    };
    return { tensors, metadata };
  }

  /**
   * Copies parameters from a safetensors file (e.g. one saved from PyTorch;
   * metadata is ignored): every parameter of the model must be there with
   * its shape and no other tensor may be, and each mismatch is named.
   */
  async loadWeights(path: string): Promise<void> {
    const { tensors } = await readSafetensors(path);
    setFromTensors(this, tensors, `Cannot load weights from "${path}"`);
  }

  /** The forward plan's executor for `n` samples, from the cache (least recently used out). */
  private executor(n: number): Executor {
    let ex = this.plans.get(n);
    if (ex) {
      this.plans.delete(n);
      this.plans.set(n, ex);
      return ex;
    }
    if (this.plans.size >= MAX_PLANS) this.plans.delete(this.plans.keys().next().value!);
    const out = this.graph.node(this.output);
    const plan = makePlan(this.graph, { batch: n, outputs: [out], prune: true });
    ex = new Executor(plan, { params: this.params, tier: this.tier });
    this.plans.set(n, ex);
    return ex;
  }
}

/**
 * Defines a model: `build` receives the input node `x` (`[-1, ...input]`),
 * creates parameters with the layer helpers of {@linkcode nn} (or
 * `x.graph.param`) and returns the output node (class scores, i.e. logits,
 * for a classifier). Parameters start from their initialisers and `seed`.
 *
 * @example
 * ```ts
 * import { defineModel, nn } from "@denograd/denograd";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const model = defineModel({ input: [1, 28, 28] }, (x) => {
 *   const h = nn.maxPool2d(nn.relu(nn.conv2d(x, 4, 3, { name: "conv1" })), 2);
 *   return nn.linear(nn.flatten(h), 10, { name: "fc" });
 * });
 * assertEquals(model.paramShapes(), [
 *   ["conv1.weight", [4, 1, 3, 3]],
 *   ["conv1.bias", [4]],
 *   ["fc.weight", [10, 676]],
 *   ["fc.bias", [10]],
 * ]);
 * assertEquals(model.predict(new Float32Array(3 * 784)).shape, [3, 10]);
 * ```
 */
export function defineModel(opts: DefineModelOptions, build: (x: Node) => Node): Model {
  const input = opts.input;
  if (!Array.isArray(input) || !input.every((d) => Number.isInteger(d) && d > 0)) {
    throw new Error(
      `defineModel: input must be the shape of one sample (positive whole sizes), got ${
        JSON.stringify(input)
      }`,
    );
  }
  // as train()'s seed: a negative or fractional one was taken without a word
  const seed = opts.seed;
  if (seed !== undefined && !(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff)) {
    throw new Error(
      `defineModel: seed must be a whole number from 0 to 4294967295, got ${
        typeof seed === "number" ? seed : `${JSON.stringify(seed)} (${typeof seed})`
      }`,
    );
  }
  const g = new Graph();
  const x = g.input("x", [-1, ...input]);
  const out = build(x);
  if (!(out instanceof Node) || out.graph !== g) {
    throw new Error("defineModel: build must return a node of the graph it was given");
  }
  // in shared memory where there is some, so train() updates them in place
  const params = initParams(g, { seed: opts.seed ?? 0, shared: canShare() }) as Map<
    string,
    Float32Array
  >;
  return new Model(g, out.name, params, { name: opts.name });
}

/**
 * Reads a file written by {@linkcode Model.save} and rebuilds the model from
 * the graph in its metadata. Custom ops must be registered (their module
 * imported) first. A path ending in `.onnx` is read as ONNX (`fromOnnx`).
 *
 * @example
 * ```ts
 * import { defineModel, loadModel, nn } from "@denograd/denograd";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const model = defineModel({ input: [3] }, (x) => nn.linear(x, 2, { name: "fc" }));
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await model.save(path);
 * const again = await loadModel(path);
 * const x = new Float32Array([1, 2, 3]);
 * assertEquals(again.predict(x).data, model.predict(x).data);
 * await Deno.remove(path);
 * ```
 */
export async function loadModel(path: string): Promise<Model> {
  if (path.toLowerCase().endsWith(".onnx")) {
    // imported here, not at the top: from_onnx.ts imports this module for Model
    const { fromOnnx } = await import("./onnx/from_onnx.ts");
    const name = path.replace(/^.*[\\/]/, "").replace(/\.onnx$/i, "");
    // imported here so that a page importing mod.ts never loads the Deno file code
    const { readBytes } = await import("./files.ts");
    try {
      return fromOnnx(await readBytes(path), { name });
    } catch (e) {
      throw new Error(`Cannot load model "${path}": ${(e as Error).message.split("\n")[0]}`);
    }
  }
  const { tensors, metadata } = await readSafetensors(path);
  return modelFromTensors(tensors, metadata, `Cannot load model "${path}"`);
}

/**
 * Rebuilds a model from the bytes of a file {@linkcode Model.save} wrote
 * (or {@linkcode Model.toBytes} returned), as {@linkcode loadModel} does from
 * a path; `source` names the bytes in errors (default "bytes"), e.g. the
 * name of a file dropped on a web page.
 *
 * @example
 * ```ts
 * import { lectureCnnModel, modelFromBytes } from "@denograd/denograd";
 * import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
 * const model = modelFromBytes(lectureCnnModel({ channels: 2 }).toBytes());
 * assertEquals(model.outputShape, [10]);
 * throws(() => modelFromBytes(new Uint8Array(3), { source: "x.bin" }), /x\.bin/);
 * ```
 */
export function modelFromBytes(bytes: Uint8Array, opts: { source?: string } = {}): Model {
  const source = opts.source ?? "bytes";
  const { tensors, metadata } = decodeSafetensors(bytes, source);
  return modelFromTensors(tensors, metadata, `Cannot load model "${source}"`);
}

function modelFromTensors(
  tensors: Record<string, StoredTensor>,
  metadata: Record<string, string>,
  context: string,
): Model {
  const fail = (why: string) => new Error(`${context}: ${why}`);
  if (metadata.format !== "denograd.model") {
    throw fail(
      metadata.format === "denograd.checkpoint"
        ? "it is a training checkpoint (resume it with --resume), not a model file (--save-model)"
        : "it holds no model graph (a file of parameters only loads with train({ init }) or Model.loadWeights)",
    );
  }
  let json: GraphJSON;
  try {
    json = JSON.parse(metadata.graph ?? "");
  } catch (e) {
    throw fail(`its graph metadata is not JSON (${(e as Error).message})`);
  }
  let g: Graph;
  try {
    g = Graph.fromJSON(json);
  } catch (e) {
    const msg = (e as Error).message;
    const unknown = /Unknown op "([^"]+)"/.exec(msg);
    throw fail(
      unknown
        ? `the graph uses op "${
          unknown[1]
        }", which is not registered: import the module that registers it (registerOp) before loadModel`
        : msg,
    );
  }
  const params = new Map<string, Float32Array>();
  for (const p of g.params()) {
    params.set(p.name, sharedCopy((b) => new Float32Array(b), 4 * numel(p.shape)));
  }
  const model = new Model(g, metadata.output ?? "", params, { name: metadata.name });
  setFromTensors(model, tensors, context);
  return model;
}

/**
 * Every mismatch between the tensors `got` and the `expected` names and
 * shapes, one sentence each: missing, wrong shape, or not expected.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tensorMismatches } from "./model.ts";
 * const t = (shape: number[]) => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
 * const expected: [string, number[]][] = [["fc.weight", [3, 2]], ["fc.bias", [3]]];
 * assert.deepEqual(tensorMismatches(expected, { "fc.weight": t([2, 3]), "fc1.bias": t([3]) }), [
 *   '"fc.weight" has shape [2,3] but the model needs [3,2]',
 *   '"fc.bias" [3] is missing',
 *   '"fc1.bias" is not a parameter of the model',
 * ]);
 * ```
 */
export function tensorMismatches(
  expected: [string, number[]][],
  got: Record<string, StoredTensor>,
  opts: { ignore?: (name: string) => boolean } = {},
): string[] {
  const out: string[] = [];
  const names = new Set<string>();
  for (const [name, shape] of expected) {
    names.add(name);
    const t = got[name];
    if (!t) out.push(`"${name}" ${fmtShape(shape)} is missing`);
    else if (t.shape.join() !== shape.join()) {
      out.push(`"${name}" has shape ${fmtShape(t.shape)} but the model needs ${fmtShape(shape)}`);
    }
  }
  for (const name of Object.keys(got)) {
    if (!names.has(name) && !opts.ignore?.(name)) {
      out.push(`"${name}" is not a parameter of the model`);
    }
  }
  return out;
}

/**
 * Copies `tensors` into the model's parameters after checking every name and shape.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defineModel, setFromTensors } from "./model.ts";
 * import { nn } from "./layers.ts";
 * const model = defineModel({ input: [2] }, (x) => nn.linear(x, 1, { name: "fc" }));
 * const w = { shape: [1, 2], data: new Float32Array([3, 4]) };
 * setFromTensors(model, { "fc.weight": w, "fc.bias": { shape: [1], data: new Float32Array([5]) } }, "demo");
 * assert.deepEqual([...model.predict([1, 1]).data], [12]);
 * assert.throws(() => setFromTensors(model, { "fc.weight": w }, "demo"), { message: 'demo: "fc.bias" [1] is missing' });
 * ```
 */
export function setFromTensors(
  model: { paramShapes(): [string, number[]][]; params: Map<string, Float32Array> },
  tensors: Record<string, StoredTensor>,
  what: string,
): void {
  const bad = tensorMismatches(model.paramShapes(), tensors);
  if (bad.length) throw new Error(`${what}: ${bad.join("; ")}`);
  for (const [name] of model.paramShapes()) model.params.get(name)!.set(tensors[name]!.data);
}

/**
 * The model's graph with a loss appended: cross-entropy over class scores
 * (`logp = logSoftmax(output)`, NLL against integer labels in `target`) or
 * MSE against `target` of the output's shape, and the gradient of the loss
 * for every parameter.
 *
 * @example
 * ```ts
 * import { defineModel, nn, trainingGraph } from "@denograd/denograd";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const model = defineModel({ input: [2] }, (x) => nn.linear(x, 3, { name: "fc" }));
 * const t = trainingGraph(model, "cross-entropy");
 * assertEquals([t.input, t.target, t.loss, t.logp], ["x", "target", "loss", "logp"]);
 * assertEquals(Object.keys(t.grads), ["fc.weight", "fc.bias"]);
 * ```
 */
export function trainingGraph(model: Model, loss: LossName): TrainingGraph {
  const g = Graph.fromJSON(model.graph.toJSON());
  const out = g.node(model.output);
  const free = (base: string) => {
    let name = base;
    for (let k = 1; g.has(name); k++) name = `${base}_${k}`;
    return name;
  };
  let lossNode: Node, logp: Node;
  let target: Node;
  let classesFrom: TrainingGraph["classesFrom"];
  if (loss === "cross-entropy") {
    if (out.shape.length !== 2) {
      throw new Error(
        `cross-entropy needs class scores [N, classes] but the model's output "${model.output}" is ${
          fmtShape(out.shape)
        } (use loss "mse" for a regression)`,
      );
    }
    // a model that ends in softmax/log_softmax over the classes gives probabilities: a
    // cross-entropy on top of them is flat near ln(classes) and learns nothing. Its scores are
    // the softmax's input, and the NLL of the model's own probabilities is the loss on them.
    const ax = out.record.attrs.axis;
    const overClasses = ax === 1 || ax === -1;
    if (out.op === "softmax" && overClasses) {
      const logits = new Node(g, out.record.inputs[0]!);
      logp = logSoftmax(logits, { axis: 1, name: free("logp") });
      classesFrom = { op: "softmax", logits: logits.name };
    } else if (out.op === "log_softmax" && overClasses) {
      logp = out;
      classesFrom = { op: "log_softmax", logits: new Node(g, out.record.inputs[0]!).name };
    } else logp = logSoftmax(out, { axis: 1, name: free("logp") });
    target = g.input(free("target"), [-1]);
    lossNode = nllLoss(logp, target, { name: free("loss") });
  } else if (loss === "mse") {
    logp = out;
    target = g.input(free("target"), out.shape);
    lossNode = mseLoss(out, target, { name: free("loss") });
  } else throw new Error(`Unknown loss "${loss}" (expected cross-entropy or mse)`);
  const isBuffer = (p: Node) => typeof p.record.attrs.update === "string";
  const params = g.params().filter((p) => !isBuffer(p));
  const buffers = g.params().filter(isBuffer);
  const grads = grad(lossNode, params);
  const updates = buffers.map((b) => {
    const u = g.node(b.record.attrs.update as string);
    if (u.shape.join() !== b.shape.join()) {
      throw new Error(
        `buffer "${b.name}" has shape ${fmtShape(b.shape)} but its update "${u.name}" has ${
          fmtShape(u.shape)
        }`,
      );
    }
    return [b.name, u.name];
  });
  return {
    graph: g.toJSON(),
    built: g,
    input: "x",
    target: target.name,
    loss: lossNode.name,
    logp: logp.name,
    output: model.output,
    lossKind: loss,
    ...(classesFrom ? { classesFrom } : {}),
    // a parameter the loss does not reach has no gradient: evaluation needs none, and
    // train() refuses it by name (checkTrainable)
    grads: Object.fromEntries([
      ...params.flatMap((p, i) => grads[i] ? [[p.name, grads[i]!.name]] : []),
      ...updates,
    ]),
    buffers: buffers.map((b) => b.name),
  };
}

/**
 * Checks that the loss of `spec` depends on every parameter of `model` (a
 * buffer counts by its update): one that it does not reach has no gradient
 * to train it with, and is named.
 *
 * @example
 * ```ts
 * import { checkTrainable, defineModel, trainingGraph } from "./model.ts";
 * import { nn } from "./layers.ts";
 * import assert from "node:assert/strict";
 * const model = defineModel({ input: [4] }, (x) => {
 *   nn.linear(x, 3, { name: "dead" });
 *   return nn.linear(x, 2, { name: "fc" });
 * });
 * assert.throws(
 *   () => checkTrainable(model, trainingGraph(model, "cross-entropy")),
 *   /parameters "dead\.weight", "dead\.bias"/,
 * );
 * ```
 */
export function checkTrainable(model: Model, spec: TrainingGraph): void {
  const unused = [...model.params.keys()].filter((name) => !(name in spec.grads));
  if (unused.length === 0) return;
  throw new Error(
    `The loss does not depend on the parameter${unused.length > 1 ? "s" : ""} ${
      unused.map((n) => `"${n}"`).join(", ")
    }: the model's output "${model.output}" does not use ${
      unused.length > 1 ? "them" : "it"
    }; build the model without ${unused.length > 1 ? "them" : "it"}`,
  );
}

function describe(v: unknown): string {
  if (v === null || typeof v !== "object") return String(v);
  return `an object with keys [${Object.keys(v).join(", ")}]`;
}

/**
 * The loss a data source implies: cross-entropy for integer class ids, MSE
 * for float targets (a `Tensor`, a `Float32Array` or `Float64Array`, or
 * numbers that are not all whole).
 *
 * @example
 * ```ts
 * import { defaultLoss } from "./model.ts";
 * import assert from "node:assert/strict";
 * assert.equal(defaultLoss({ x: [0, 0], y: [1, 2] }), "cross-entropy");
 * assert.equal(defaultLoss({ x: [0, 0], y: [0.5, 2] }), "mse");
 * // a Float32Array is taken for targets even when it holds whole numbers
 * assert.equal(defaultLoss({ x: [0, 0], y: new Float32Array([1, 2]) }), "mse");
 * ```
 */
export function defaultLoss(data: ModelData | Dataset | string, name?: string): LossName {
  if (typeof data === "string" || isDataset(data)) return "cross-entropy";
  // plain JavaScript can hand anything over: say what was expected, not "reading 'length'"
  if (
    !data || typeof data !== "object" || !("x" in data) || typeof data.y !== "object" ||
    data.y === null
  ) {
    throw new Error(`data: expected { x, y } arrays or a Dataset, got ${describe(data)}`);
  }
  const y = data.y;
  if (isTensor(y) || y instanceof Float32Array || y instanceof Float64Array) return "mse";
  // a string label made the loss MSE and surfaced as a count of target values
  for (let i = 0; i < y.length; i++) {
    const v: unknown = y[i];
    if (typeof v !== "number") {
      throw new Error(
        `data${name === undefined ? "" : ` "${name}"`}: y[${i}] is ${
          JSON.stringify(v) ?? String(v)
        } (${typeof v}), expected a number (a class id, or a target value)`,
      );
    }
  }
  for (let i = 0; i < y.length; i++) if (!Number.isInteger(y[i])) return "mse";
  return "cross-entropy";
}

function isTensor(v: unknown): v is Tensor {
  return typeof v === "object" && v !== null && "shape" in v && "data" in v;
}

function isDataset(v: unknown): v is Dataset {
  return typeof v === "object" && v !== null && "images" in v && "labels" in v;
}

/** `x` as flat float32 samples of `sample` shape, checked. */
function samplesOf(
  x: Tensor | ArrayLike<number>,
  sample: number[],
  who: string,
): { data: Float32Array; n: number } {
  const size = numel(sample);
  if (isTensor(x)) {
    const s = x.shape;
    if (s.length !== sample.length + 1 || s.slice(1).join() !== sample.join()) {
      throw new Error(
        `${who}: samples of shape ${fmtShape(s)} do not match the model's input [n,${
          sample.join(",")
        }]`,
      );
    }
    const data = x.data instanceof Float32Array ? x.data : Float32Array.from(x.data);
    return { data, n: s[0]! };
  }
  if (!x || typeof x.length !== "number") {
    throw new Error(`${who}: expected a Tensor or an array of numbers, got ${typeof x}`);
  }
  // number[][] (one array per sample) read as one sample of NaN each: say what to pass
  if (Array.isArray(x)) {
    for (let i = 0; i < x.length; i++) {
      const v: unknown = x[i];
      if (typeof v === "number") continue;
      throw new Error(
        Array.isArray(v)
          ? `${who}: x[${i}] is an array; pass the samples' values back to back (x.flat(${sample.length})) or a Tensor (tensor(x))`
          : `${who}: x[${i}] is ${JSON.stringify(v) ?? String(v)} (${typeof v}), expected a number`,
      );
    }
  }
  if (x.length % size !== 0) {
    throw new Error(
      `${who}: ${x.length} values are not a whole number of samples of shape ${
        fmtShape(sample)
      } (${size} values each)`,
    );
  }
  const data = x instanceof Float32Array ? x : Float32Array.from(x);
  return { data, n: x.length / size };
}

// workers read the same memory; where there is no SharedArrayBuffer (a page that is not
// cross-origin isolated) training runs on one thread and a plain buffer does
function canShare(): boolean {
  return typeof SharedArrayBuffer === "function";
}

function sharedCopy<T extends Float32Array | Uint8Array>(
  make: (b: ArrayBuffer | SharedArrayBuffer) => T,
  bytes: number,
): T {
  return make(canShare() ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes));
}

/** Index of the first NaN or infinity in `a`, or -1. */
function firstNonFinite(a: ArrayLike<number>): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) return i;
  return -1;
}

/**
 * In-memory samples and targets checked against `model` and copied into
 * shared memory: the sample shape must be the model's input; class ids must
 * be whole numbers below the model's output size (cross-entropy), targets
 * must hold the output's size per sample (MSE); samples and targets must be
 * finite (a NaN or an infinity is named with its sample).
 *
 * @example
 * ```ts
 * import { defineModel, toTrainSet } from "./model.ts";
 * import { nn } from "./layers.ts";
 * import assert from "node:assert/strict";
 * const model = defineModel({ input: [2] }, (x) => nn.linear(x, 3));
 * const set = toTrainSet("train", { x: [0, 1, 2, 3], y: [2, 0] }, model, "cross-entropy");
 * assert.deepEqual([set.count, set.numClasses, [...set.labels]], [2, 3, [2, 0]]);
 * assert.throws(
 *   () => toTrainSet("train", { x: [0, NaN], y: [1] }, model, "cross-entropy"),
 *   { message: 'data "train": sample 0 holds NaN at index 1 of its 2 values' },
 * );
 * ```
 */
export function toTrainSet(
  name: string,
  d: ModelData,
  model: Model,
  loss: LossName,
  shared = true,
): TrainSet {
  if (!d || typeof d !== "object" || !("x" in d) || !("y" in d)) {
    throw new Error(`data "${name}": expected { x, y }`);
  }
  const { data: x, n } = samplesOf(d.x, model.input, `data "${name}"`);
  const yv = isTensor(d.y) ? d.y.data : d.y;
  const size = numel(model.input);
  // a NaN in the data would otherwise surface steps later as "the loss is NaN: lower --lr"
  const bad = firstNonFinite(x);
  if (bad >= 0) {
    throw new Error(
      `data "${name}": sample ${Math.floor(bad / size)} holds ${x[bad]} at index ${
        bad % size
      } of its ${size} values`,
    );
  }
  const images = shared ? sharedCopy((b) => new Float32Array(b), x.length * 4) : x;
  if (shared) images.set(x);
  if (loss === "cross-entropy") {
    const k = model.outputShape[0]!;
    if (yv.length !== n) {
      const oneHot = n > 0 && yv.length === n * k
        ? `; one-hot rows? pass one class id (0..${k - 1}) per sample`
        : "";
      throw new Error(`data "${name}": ${n} samples but ${yv.length} labels${oneHot}`);
    }
    if (k > 256) throw new Error(`data "${name}": at most 256 classes, the model has ${k}`);
    const labels = shared ? sharedCopy((b) => new Uint8Array(b), n) : new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const c = yv[i]!;
      if (!Number.isInteger(c) || c < 0 || c >= k) {
        throw new Error(
          `data "${name}": label ${i} is ${c}, expected a class id in 0..${
            k - 1
          } (the model has ${k} outputs)`,
        );
      }
      labels[i] = c;
    }
    return {
      name,
      count: n,
      sampleShape: [...model.input],
      images,
      labels,
      targetSize: 1,
      numClasses: k,
    };
  }
  const ts = numel(model.outputShape);
  if (yv.length !== n * ts) {
    throw new Error(
      `data "${name}": ${n} samples need ${n * ts} target values (${ts} per sample, the output ${
        fmtShape(model.outputShape)
      }) but y holds ${yv.length}`,
    );
  }
  const labels = shared ? sharedCopy((b) => new Float32Array(b), n * ts * 4) : new Float32Array(
    n * ts,
  );
  labels.set(yv);
  const badTarget = firstNonFinite(labels);
  if (badTarget >= 0) {
    throw new Error(
      `data "${name}": the target of sample ${Math.floor(badTarget / ts)} holds ${
        labels[badTarget]
      } at index ${badTarget % ts} of its ${ts} values`,
    );
  }
  if (x.length !== n * size) throw new Error(`data "${name}": bad sample count`);
  return {
    name,
    count: n,
    sampleShape: [...model.input],
    images,
    labels,
    targetSize: ts,
    numClasses: 0,
  };
}

/**
 * A labelled image dataset checked against a classifier model.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { allocDataset, lectureCnnModel } from "@denograd/denograd";
 * import { datasetAsTrainSet } from "./model.ts";
 * const ds = allocDataset({ name: "digits", count: 2, sampleShape: [1, 28, 28], numClasses: 10 });
 * assert.equal(datasetAsTrainSet(ds, lectureCnnModel(), "cross-entropy").numClasses, 10);
 * const small = allocDataset({ name: "small", count: 2, sampleShape: [1, 14, 14], numClasses: 10 });
 * assert.throws(() => datasetAsTrainSet(small, lectureCnnModel(), "cross-entropy"), /\[1,14,14\] do not match the model's input \[1,28,28\]/);
 * ```
 */
export function datasetAsTrainSet(ds: Dataset, model: Model, loss: LossName): TrainSet {
  if (ds.sampleShape.join() !== model.input.join()) {
    // an MLP's input [784] for the [1, 28, 28] digits is the usual case
    const same = numel(ds.sampleShape) === numel(model.input)
      ? `; the same ${numel(model.input)} values: define the model with input ${
        fmtShape(ds.sampleShape)
      } and nn.flatten(x) first`
      : "";
    throw new Error(
      `data "${ds.name}": samples of shape ${
        fmtShape(ds.sampleShape)
      } do not match the model's input ${fmtShape(model.input)}${same}`,
    );
  }
  if (loss !== "cross-entropy") {
    // said "train it with …" from Model.evaluate too
    throw new Error(
      `data "${ds.name}" holds class labels, which need loss "cross-entropy", not ${
        JSON.stringify(loss)
      }`,
    );
  }
  const k = model.outputShape.length === 1 ? model.outputShape[0]! : 0;
  if (k < ds.numClasses) {
    throw new Error(
      `data "${ds.name}" has ${ds.numClasses} classes but the model's output is ${
        fmtShape(model.outputShape)
      }`,
    );
  }
  return { ...ds, targetSize: 1, numClasses: k };
}

/**
 * Test-set loss, accuracy and confusion matrix, in evaluation mode, in process.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defineModel, Evaluator, toTrainSet, trainingGraph } from "./model.ts";
 * import { nn } from "./layers.ts";
 * const model = defineModel({ input: [2] }, (x) => nn.linear(x, 2, { name: "fc" }));
 * // scores equal to the inputs: the class is the larger input
 * model.params.get("fc.weight")!.set([1, 0, 0, 1]);
 * model.params.get("fc.bias")!.fill(0);
 * const set = toTrainSet("test", { x: [3, 1, 0, 2, 5, 4], y: [0, 1, 1] }, model, "cross-entropy");
 * const r = new Evaluator(trainingGraph(model, "cross-entropy"), model.params, "ref").evaluate(set);
 * assert.equal(r.accuracy, 2 / 3); // [5, 4] is scored 0, labelled 1
 * assert.deepEqual(r.confusion, [[1, 0], [1, 1]]); // confusion[truth][predicted]
 * ```
 */
export class Evaluator {
  private plans = new Map<number, Executor>();
  /** Evaluates `spec` with `params` (read at each call). */
  constructor(
    private spec: TrainingGraph,
    private params: Map<string, Float32Array>,
    private tier: Tier | undefined,
  ) {}

  /** Mean loss, accuracy and confusion matrix over `ds`. */
  evaluate(ds: TrainSet): EvaluateResult {
    const it = this.chunks(ds);
    for (;;) {
      const r = it.next();
      if (r.done) return r.value;
    }
  }

  /**
   * {@linkcode Evaluator.evaluate} yielding to the event loop after each
   * chunk of samples, so a Ctrl-C during a long evaluation is seen within a
   * chunk; `null` once `signal` is aborted.
   */
  async evaluateYielding(
    ds: TrainSet,
    pause: EventLoopYield,
    signal?: AbortSignal,
  ): Promise<EvaluateResult | null> {
    const it = this.chunks(ds);
    for (;;) {
      const r = it.next();
      if (r.done) return r.value;
      await pause.next();
      if (signal?.aborted) return null;
    }
  }

  // the evaluation, pausing (yield) after each chunk
  private *chunks(ds: TrainSet): Generator<void, EvaluateResult> {
    const s = numel(ds.sampleShape);
    const ts = ds.targetSize;
    const classify = this.spec.lossKind === "cross-entropy";
    const k = ds.numClasses;
    const confusion = classify ? Array.from({ length: k }, () => new Array<number>(k).fill(0)) : [];
    let lossSum = 0, correct = 0;
    const target = new Float32Array(CHUNK * ts);
    for (let start = 0; start < ds.count; start += CHUNK) {
      const n = Math.min(CHUNK, ds.count - start);
      const ex = this.executor(n);
      for (let i = 0; i < n * ts; i++) target[i] = ds.labels[start * ts + i]!;
      ex.invalidate();
      const [lp, l] = ex.run(
        {
          [this.spec.input]: ds.images.subarray(start * s, (start + n) * s),
          [this.spec.target]: target.subarray(0, n * ts),
        },
        { training: false },
      );
      lossSum += l![0]! * n;
      if (classify) {
        for (let i = 0; i < n; i++) {
          let best = 0;
          for (let c = 1; c < k; c++) if (lp![i * k + c]! > lp![i * k + best]!) best = c;
          const truth = ds.labels[start + i]!;
          confusion[truth]![best]!++;
          if (best === truth) correct++;
        }
      }
      yield;
    }
    return {
      loss: lossSum / ds.count,
      accuracy: classify ? correct / ds.count : NaN,
      confusion,
    };
  }

  private executor(n: number): Executor {
    let ex = this.plans.get(n);
    if (!ex) {
      const g = this.spec.built;
      const plan = makePlan(g, {
        batch: n,
        outputs: [g.node(this.spec.logp), g.node(this.spec.loss)],
        prune: true,
      });
      ex = new Executor(plan, { params: this.params, tier: this.tier });
      this.plans.set(n, ex);
    }
    return ex;
  }
}
