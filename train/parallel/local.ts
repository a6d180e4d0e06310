/**
 * {@linkcode LocalRunner}: the computation of the worker pool in-process,
 * the reference a pool must match.
 *
 * @module
 */
import type { Tier } from "../../graph/op.ts";
import { GradientShard } from "./shard.ts";
import {
  checkBatch,
  checkData,
  countOf,
  type GradientRunner,
  type Layout,
  layoutOf,
  outBuffer,
  type SharedData,
  type TrainGraphSpec,
} from "./spec.ts";

/** Options of {@linkcode LocalRunner}. */
export interface LocalRunnerOptions {
  /** Parameter buffers by name (any memory). */
  params: Map<string, Float32Array>;
  /** The training set (any memory). */
  data: SharedData;
  /** Largest batch `step` will be given. */
  maxBatch: number;
  /** Kernel tier (default: the process-wide default). */
  tier?: Tier;
  /** Samples per executor run (default 32); larger shards run in pieces. */
  microBatch?: number;
}

/**
 * The same computation as {@linkcode WorkerPool}, in-process, as one shard:
 * the reference a pool must match, and the runner to use when workers do not
 * pay (small models, one core).
 *
 * @example
 * ```ts
 * import { allocDataset, initParams, lectureCnn, LocalRunner } from "@denograd/denograd";
 * const spec = lectureCnn({ channels: 4 });
 * const params = initParams(spec.built, { seed: 1 }) as Map<string, Float32Array>;
 * const ds = allocDataset({ name: "blank", count: 8, sampleShape: [1, 28, 28], numClasses: 10 });
 * const data = { images: ds.images, labels: ds.labels, sampleSize: 784 };
 * const runner = new LocalRunner(spec, { params, data, maxBatch: 64 });
 * const grads = new Map<string, Float32Array>();
 * const { loss } = await runner.step(new Uint32Array([0, 1, 2, 3]), 0, grads);
 * console.log(Number.isFinite(loss), [...grads.keys()]); // true ["conv1.weight", "conv1.bias", "fc.weight", "fc.bias"]
 * await runner.close();
 * ```
 */
export class LocalRunner implements GradientRunner {
  private shard: GradientShard;
  private layout: Layout;
  private indices: Uint32Array;
  private region: Float32Array;
  private maxBatch: number;
  private count: number;

  /** Rebuilds the graph from `spec` and checks it against the buffers; plans are made per batch size on first use. */
  constructor(spec: TrainGraphSpec, opts: LocalRunnerOptions) {
    checkData("LocalRunner", opts.data);
    if (!Number.isInteger(opts.maxBatch) || opts.maxBatch < 1) {
      throw new Error(
        `LocalRunner: maxBatch must be a positive whole number, got ${opts.maxBatch}`,
      );
    }
    this.maxBatch = opts.maxBatch;
    this.count = countOf(opts.data);
    this.layout = layoutOf(spec, opts.params, "LocalRunner");
    this.indices = new Uint32Array(opts.maxBatch);
    this.region = new Float32Array(this.layout.total);
    this.shard = new GradientShard({
      graph: spec.graph,
      input: spec.input,
      target: spec.target,
      loss: spec.loss,
      grads: this.layout.grads,
      params: opts.params,
      images: opts.data.images,
      labels: opts.data.labels,
      sampleSize: opts.data.sampleSize,
      targetSize: opts.data.targetSize,
      indices: this.indices,
      gradients: this.region,
      lossOut: new Float64Array(1),
      tier: opts.tier,
      microBatch: opts.microBatch,
    });
  }

  /** Loss and gradients of the batch `indices` at `step`; see {@linkcode GradientRunner.step}. */
  step(
    indices: Uint32Array,
    step: number,
    grads: Map<string, Float32Array>,
  ): Promise<{ loss: number }> {
    try {
      checkBatch("LocalRunner.step", indices, step, this.maxBatch, this.count);
      this.indices.set(indices);
      const loss = this.shard.run(step, 0, indices.length);
      const { grads: names, offsets, sizes } = this.layout;
      names.forEach(([name], k) => {
        const off = offsets[k]!;
        outBuffer("LocalRunner.step", grads, name, sizes[k]!).set(
          this.region.subarray(off, off + sizes[k]!),
        );
      });
      return Promise.resolve({ loss });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Nothing to release; present for {@linkcode GradientRunner}. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
