/**
 * {@linkcode LocalRunner}: the computation of the worker pool in-process,
 * the reference a pool must match.
 *
 * @module
 */
import type { Tier } from "../../graph/op.ts";
import { GradientShard } from "./shard.ts";
import { GradTree, regionCount, treeStateLength } from "./reduce.ts";
import { sharedRegions } from "../../ops/kernels/reduce_wasm.ts";
import { Yielder } from "./wait.ts";
import { namesOf, Profiler, SPAN } from "./trace.ts";
import { Lane, publishStep, schedLength, stepLoss, type StepMemory } from "./schedule.ts";
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

/**
 * Options of {@linkcode LocalRunner}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { allocDataset, initParams, lectureCnn, LocalRunner } from "@denograd/denograd";
 * import type { LocalRunnerOptions } from "./local.ts";
 * const spec = lectureCnn({ channels: 2 });
 * const ds = allocDataset({ name: "blank", count: 8, sampleShape: [1, 28, 28], numClasses: 10 });
 * const opts: LocalRunnerOptions = {
 *   params: initParams(spec.built, { seed: 1 }) as Map<string, Float32Array>,
 *   data: { images: ds.images, labels: ds.labels, sampleSize: 784 },
 *   maxBatch: 8,
 *   microBatch: 2,
 *   profile: true,
 * };
 * const runner = new LocalRunner(spec, opts);
 * await runner.step(new Uint32Array([0, 1, 2, 3, 4]), 0, new Map());
 * const spans = runner.profiler!.toChromeTrace().traceEvents.filter((e) => e.ph === "X");
 * // 5 samples in micro-batches of 2: 2, 2 and 1, in one step
 * assert.equal(spans.filter((e) => e.cat === "micro-batch").length, 3);
 * assert.equal(spans.filter((e) => e.cat === "step").length, 1);
 * assert.throws(
 *   () => new LocalRunner(spec, { ...opts, maxBatch: 0 }),
 *   /maxBatch must be a positive whole number, got 0/,
 * );
 * await runner.close();
 * ```
 */
export interface LocalRunnerOptions {
  /** Parameter buffers by name (any memory). */
  params: Map<string, Float32Array>;
  /** The training set (any memory). */
  data: SharedData;
  /** Largest batch `step` will be given. */
  maxBatch: number;
  /** Kernel tier (default: the process-wide default). */
  tier?: Tier;
  /** Samples per micro-batch (default: `defaultMicroBatch` of the batch and the model). */
  microBatch?: number;
  /** Smallest micro-batch at the end of a step (default: `microBatch`); see `cutBatch`. */
  microTail?: number;
  /** Run the fusion pass (default true); false runs the unfused graph. */
  fuse?: boolean;
  /** Winograd convolutions on the wasm tier (default true); false keeps im2col + GEMM. */
  winograd?: boolean;
  /**
   * The gradient reduction's loops in WebAssembly SIMD where they can run
   * (default true); false keeps them in JavaScript. The same bits either way.
   */
  wasmReduce?: boolean;
  /** Record a timeline (see {@linkcode LocalRunner.profiler}). */
  profile?: boolean;
}

/**
 * The same computation as `WorkerPool`, in-process, on one thread: the same
 * micro-batches, phases and reduction tree, so a pool gives its very bits;
 * the runner to use when workers do not pay (small models, one core).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { allocDataset, initParams, lectureCnn, LocalRunner } from "@denograd/denograd";
 * const spec = lectureCnn({ channels: 4 });
 * const params = initParams(spec.built, { seed: 1 }) as Map<string, Float32Array>;
 * const ds = allocDataset({ name: "blank", count: 8, sampleShape: [1, 28, 28], numClasses: 10 });
 * const data = { images: ds.images, labels: ds.labels, sampleSize: 784 };
 * const runner = new LocalRunner(spec, { params, data, maxBatch: 64 });
 * const grads = new Map<string, Float32Array>();
 * const { loss } = await runner.step(new Uint32Array([0, 1, 2, 3]), 0, grads);
 * assert.ok(Number.isFinite(loss));
 * // the batch-mean gradient of every parameter, in buffers it made
 * assert.deepEqual([...grads.keys()], ["conv1.weight", "conv1.bias", "fc.weight", "fc.bias"]);
 * const lengths = (m: Map<string, Float32Array>) => [...m.values()].map((a) => a.length);
 * assert.deepEqual(lengths(grads), lengths(params));
 * await runner.close();
 * ```
 */
export class LocalRunner implements GradientRunner {
  private shard: GradientShard;
  private lane: Lane;
  private tree: GradTree;
  private mem: StepMemory;
  private indices: Uint32Array;
  private maxBatch: number;
  private count: number;
  private layout: Layout;
  private seq = 0;
  private regions: number;
  private lastK = 0;
  private yielder = new Yielder();
  private outs: Float32Array[] = [];
  /** The timeline when created with `profile`, else null. */
  readonly profiler: Profiler | null;

  /** Rebuilds the graph from `spec` and checks it against the buffers; plans are made per micro-batch size on first use. */
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
    this.profiler = opts.profile ? new Profiler(1, namesOf(spec), false) : null;
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
      tier: opts.tier,
      microBatch: opts.microBatch,
      microTail: opts.microTail,
      fuse: opts.fuse,
      winograd: opts.winograd,
      trace: this.profiler?.threads[0],
    });
    if (this.profiler) this.profiler.names = this.shard.traceNames();
    const maxK = this.shard.maxCount(opts.maxBatch);
    this.regions = regionCount(maxK, 1);
    this.mem = {
      sched: new Int32Array(schedLength(this.shard.phases)),
      stepNo: new Float64Array(1),
      losses: new Float64Array(maxK),
      partials: new Float32Array(maxK * this.shard.partialSize),
    };
    this.tree = new GradTree(
      this.layout,
      // a page that is not cross-origin isolated has no shared memory: a plain array, the JS loops
      typeof SharedArrayBuffer === "function"
        ? sharedRegions(this.regions * this.layout.total, opts.wasmReduce ?? true)
        : new Float32Array(this.regions * this.layout.total),
      new Int32Array(treeStateLength(maxK)),
      maxK,
    );
    this.tree.resetFree(this.regions);
    this.lane = new Lane(this.shard, this.tree, this.mem, null);
  }

  /** Loss and gradients of the batch `indices` at `step`; see {@linkcode GradientRunner.step}. */
  async step(
    indices: Uint32Array,
    step: number,
    grads: Map<string, Float32Array>,
  ): Promise<{ loss: number }> {
    this.yielder.arm();
    const t0 = performance.now();
    try {
      const who = "LocalRunner.step";
      checkBatch(who, indices, step, this.maxBatch, this.count);
      // the gradient buffers, in a list kept from step to step (no array per step)
      const outs = this.outs;
      const list = this.layout.grads;
      for (let k = 0; k < list.length; k++) {
        outs[k] = outBuffer(who, grads, list[k]![0], this.layout.sizes[k]!);
      }
      this.indices.set(indices);
      const n = indices.length;
      const k = this.lastK = this.shard.count(n);
      const seq = this.seq = (this.seq + 1) & 0x7fffffff;
      this.tree.resetStep(k);
      publishStep(this.mem, seq, step, n, k, this.shard.phases);
      this.lane.begin(seq);
      if (!this.lane.advance()) {
        throw new Error(`${who}: the schedule waited with one thread (a bug)`);
      }
      this.tree.takeRoot(outs);
      this.profiler?.main.span(SPAN.STEP, step, t0, performance.now());
    } catch (e) {
      // a failed run may hold regions: start the next step with all free
      this.tree.resetFree(this.regions);
      throw e;
    }
    // signals and timers run here, once a step
    await this.yielder.settle();
    return { loss: stepLoss(this.mem, this.shard, indices.length, this.lastK) };
  }

  /** Nothing to release; present for {@linkcode GradientRunner}. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
