/**
 * {@linkcode WorkerPool}: data-parallel gradients on several threads. A step's
 * mini-batch is a list of micro-batches that the threads (the main thread
 * and Web Workers) claim from a shared counter until none is left, so a slow
 * or busy core takes fewer (`schedule.ts`); their gradients meet in one
 * fixed tree over micro-batch indices (`reduce.ts`), so the result is the
 * same bits for any thread count and equals `LocalRunner`'s. This module
 * starts, watches and replaces the workers and drives the steps.
 *
 * @module
 */
// full specifier: an import map is ignored when the library is loaded from a URL
// deno-lint-ignore no-import-prefix
import * as Comlink from "npm:comlink@4.4.2";
import type { Tier } from "../../graph/op.ts";
import { GradientShard, type ShardInit } from "./shard.ts";
import { CTRL, CTRL_BYTES } from "./control.ts";
import {
  adoptArenas,
  type ArenaShare,
  type OwnArenas,
  ownArenas,
  type PoolMemory,
  type WorkerApi,
} from "./worker.ts";
import {
  Assist,
  ASSIST_POLL_ALWAYS_MS,
  ASSIST_POLL_MS,
  assistBoard,
  AssistStall,
  helpedChunks,
  setActiveAssist,
} from "../../ops/kernels/assist.ts";
import { faultSeam, type InjectedFault } from "./faults.ts";
import type { TestSeam } from "./seam.ts";
import { GradTree, regionCount, rootRegions, TREE, treeLevels, treeStateLength } from "./reduce.ts";
import { regionMemory, sharedRegions } from "../../ops/kernels/reduce_wasm.ts";
import { publishUpdate, Updater, updateShared } from "./update.ts";
import type { Optimizer } from "../optim/optimizer.ts";
import { isRangeOptimizer, type RangeOptimizer } from "../optim/rules.ts";
import {
  abortStep,
  Lane,
  publishStep,
  SCHED,
  schedLength,
  specLength,
  stepLoss,
} from "./schedule.ts";
import {
  CoreShare,
  hostLoad,
  SoloChoice,
  Spinner,
  spinPause,
  StepClock,
  type WaitPolicy,
  waitPolicyOf,
  Yielder,
} from "./wait.ts";
import { namesOf, Profiler, SPAN } from "./trace.ts";
import {
  checkBatch,
  checkData,
  countOf,
  type GradientRunner,
  type Layout,
  layoutOf,
  messageOf,
  outBuffer,
  type SharedData,
  type TrainGraphSpec,
} from "./spec.ts";

// the names other modules import from here
export type { GradientRunner, SharedData, TrainGraphSpec } from "./spec.ts";
export { LocalRunner, type LocalRunnerOptions } from "./local.ts";
export type { InjectedFault } from "./faults.ts";
export type { TestSeam } from "./seam.ts";

/**
 * Options of {@linkcode WorkerPool.create}.
 *
 * @example
 * ```ts
 * import { allocDataset, initParams, lectureCnn, WorkerPool, type WorkerPoolOptions } from "@denograd/denograd";
 * import assert from "node:assert/strict";
 * const spec = lectureCnn({ channels: 4 });
 * const params = initParams(spec.built, { seed: 1, shared: true }) as Map<string, Float32Array>;
 * const ds = allocDataset({ name: "blank", count: 8, sampleShape: [1, 28, 28], numClasses: 10 });
 * const data = { images: ds.images, labels: ds.labels, sampleSize: 784 };
 * const opts: WorkerPoolOptions = { workers: 2, params, data, maxBatch: 64, microBatch: 16 };
 * // refused before any worker starts, naming the option and the value
 * await assert.rejects(WorkerPool.create(spec, { ...opts, workers: 0 }), /workers must be .* got 0/);
 * await assert.rejects(WorkerPool.create(spec, { ...opts, maxBatch: 1.5 }), /maxBatch .* got 1\.5/);
 * ```
 */
export interface WorkerPoolOptions {
  /** Threads computing micro-batches: Web Workers, plus the main thread unless `mainThread` is false. */
  workers: number;
  /** Parameter buffers by name, SharedArrayBuffer-backed; updated in place between steps. */
  params: Map<string, Float32Array>;
  /** The training set. */
  data: SharedData;
  /** Largest batch `step` will be given. */
  maxBatch: number;
  /** Kernel tier in the workers (default: their process-wide default). */
  tier?: Tier;
  /** Samples per micro-batch (default: `defaultMicroBatch` of the batch and the model), the same split for every thread count. */
  microBatch?: number;
  /**
   * Smallest micro-batch at the end of a step (default: `microBatch`, an even
   * cut): the last micro-batches halve down to it, so threads finish a step
   * closer together (see `cutBatch`).
   */
  microTail?: number;
  /** Run the fusion pass in every shard (default true); false runs the unfused graph. */
  fuse?: boolean;
  /** Winograd convolutions on the wasm tier (default true); false keeps im2col + GEMM. */
  winograd?: boolean;
  /**
   * The gradient reduction's loops in WebAssembly SIMD where they can run
   * (default true); false keeps them in JavaScript. The same bits either way.
   */
  wasmReduce?: boolean;
  /** A step, or a worker's answer to one, that takes longer than this is a fault (default 60000). */
  stepTimeoutMs?: number;
  /**
   * Failures of one worker in a row (it is replaced each time) before the pool
   * gives up (default 3, so at most 4); also the retries of a step that failed
   * with no worker to blame (it timed out while every worker answered).
   */
  maxRetries?: number;
  /**
   * Modules that register ops beyond `ops/mod.ts` (custom ops), imported by
   * the main thread and by every worker before the graph is rebuilt; give
   * absolute URLs, e.g. `new URL("./my_op.ts", import.meta.url)`.
   */
  opModules?: (string | URL)[];
  /**
   * The main thread claims micro-batches too, so `workers: N` starts N − 1
   * Web Workers (default true). It would otherwise sleep through the step.
   * Results are the same bits.
   */
  mainThread?: boolean;
  /** Record a timeline of every thread (see {@linkcode WorkerPool.profiler}). */
  profile?: boolean;
  /**
   * Threads with no micro-batch left to claim help the others finish theirs:
   * they run chunks of the others' kernels (the fused convolution's output
   * channels) on their arenas, which are then shared WebAssembly memories
   * (see `ops/kernels/assist.ts`). Default true: a waiting thread polls for
   * chunks only while the load average is not above the cores, for up to
   * `ASSIST_POLL_MS` without finding one; `"always"` even then, and for up to
   * `ASSIST_POLL_ALWAYS_MS` (for tests). Results are the same bits.
   */
  assist?: boolean | "always";
  /**
   * Run a step on the main thread alone when that is measured to be faster
   * (another process busy on a core; see `SoloChoice` in `wait.ts`); needs
   * `mainThread`. Results are the same bits. Default true, but false when a
   * test seam or faults are given (a test fixes which threads run).
   */
  soloWhenFaster?: boolean;
  /**
   * How threads wait inside a step (see `WaitPolicy` in `wait.ts`): how long
   * they may still spin after a slow step, and what counts as slow. Results
   * are the same bits.
   */
  wait?: WaitPolicy;
  /**
   * Apply the optimizer in the pool, on every thread by parameter ranges,
   * right after the gradients are summed (see `update.ts`): `step` then
   * updates the `trainable` parameters in place and writes only the other
   * entries (buffers) of its `grads`. The optimizer's state moves into
   * shared memory; set its `lr` before each step. The parameters get the
   * very bits of `clipGradNorm` and `optimizer.step` on one thread.
   */
  update?: PoolUpdate;
  /** Test-only fault injection, a shorthand for `testSeam: faultSeam({ faults })` (see `faults.ts`). */
  faults?: InjectedFault[];
  /** Test-only: a module whose hook every worker calls at each step and micro-batch (see `seam.ts`). */
  testSeam?: TestSeam;
}

/**
 * The optimizer step a pool applies itself (see {@linkcode WorkerPoolOptions.update}).
 *
 * @example
 * ```ts
 * import { allocDataset, initParams, lectureCnn, type PoolUpdate, Sgd, WorkerPool } from "@denograd/denograd";
 * import assert from "node:assert/strict";
 * const spec = lectureCnn({ channels: 4 });
 * const params = initParams(spec.built, { seed: 1, shared: true }) as Map<string, Float32Array>;
 * const ds = allocDataset({ name: "blank", count: 8, sampleShape: [1, 28, 28], numClasses: 10 });
 * const data = { images: ds.images, labels: ds.labels, sampleSize: 784 };
 * const update: PoolUpdate = { optimizer: new Sgd(0.1), trainable: [...params.keys()], clipGradNorm: 1 };
 * const opts = { workers: 2, params, data, maxBatch: 64 };
 * // refused before any worker starts, naming the bad value
 * await assert.rejects(
 *   WorkerPool.create(spec, { ...opts, update: { ...update, trainable: ["fc.weight", "nope"] } }),
 *   /update names parameter "nope"/,
 * );
 * await assert.rejects(
 *   WorkerPool.create(spec, { ...opts, update: { ...update, clipGradNorm: -1 } }),
 *   /clipGradNorm .* got -1/,
 * );
 * ```
 */
export interface PoolUpdate {
  /** A built-in optimizer (its rule is split by ranges). */
  optimizer: Optimizer;
  /** The parameters it updates, in its order; the other gradients are buffers' next values. */
  trainable: string[];
  /** Clip the gradients to this global L2 norm first (as `clipGradNorm`). */
  clipGradNorm?: number;
}

const WORKER_URL = new URL("./worker.ts", import.meta.url).href;

// A worker's start-up loads and compiles every module, which on a busy
// machine can take far longer than a short test step timeout.
const MIN_INIT_TIMEOUT_MS = 30_000;
// how long workers get to leave an aborted step before they count as hung
const ABORT_GRACE_MS = 2000;

interface Slot {
  worker: Worker;
  api: Comlink.Remote<WorkerApi>;
  /** The control block the worker serves steps from. */
  ctrl: Int32Array;
  /** Rejects when the worker dies (uncaught error) or is terminated. */
  dead: Promise<never>;
  /** Rejects `dead` with `reason` and terminates the worker. */
  kill(reason: string): void;
  /** Rejects `dead`: the worker died (a fault, unless it was killed). */
  die(e: Error): void;
  /** Set by `kill`. */
  killed: boolean;
  /** Set once it serves steps. */
  ready: boolean;
  /** The last `GO` number posted to it. */
  lastGo: number;
  /** When the oldest post it has not answered was made, -1 if it answered all. */
  unackedSince: number;
}

/** A fault seen while a step ran: a worker died, or the step timed out. */
class Fault extends Error {}

/** Races `p` against the worker's death and a timeout; the timer never outlives the race. */
function guard<T>(p: Promise<T>, slot: Slot, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, slot.dead, timeout]).finally(() => clearTimeout(timer));
}

/**
 * `Atomics.waitAsync` with a timer beside it: a pending waitAsync alone does
 * not keep the process alive, so with nothing else to do Deno would end.
 */
async function waitAlive(arr: Int32Array, at: number, value: number, ms: number): Promise<void> {
  const w = Atomics.waitAsync(arr, at, value, ms);
  if (!w.async) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([w.value, new Promise((r) => (timer = setTimeout(r, ms + 1)))]);
  clearTimeout(timer);
}

// how long the main thread blocks in one Atomics.wait before it turns its event loop
const BLOCK_SLICE_MS = 10;
let blockable: boolean | undefined;

/** Whether this thread may block in `Atomics.wait` (a web page's main thread may not). */
function canBlock(): boolean {
  if (blockable === undefined) {
    try {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
      blockable = true;
    } catch {
      blockable = false;
    }
  }
  return blockable;
}

/** A turn of the event loop (timers, signals, worker events). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function isShared(a: ArrayBufferView): boolean {
  return a.buffer instanceof SharedArrayBuffer;
}

function sharedF32(n: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(4 * Math.max(1, n)));
}

/**
 * Data-parallel gradients on `workers` threads: Web Workers, and the main
 * thread unless `mainThread` is false. Each step is cut into micro-batches of
 * `microBatch` samples (the same cut for any thread count) that the threads
 * claim from a shared counter; each micro-batch's gradient joins one fixed
 * reduction tree over micro-batch indices, so a run gives the very bits of
 * `LocalRunner` whatever the thread count and whichever thread was slow.
 * Steps are signalled through shared control blocks (`Atomics`), not
 * messages; waits spin only while spinning pays and the machine is not
 * oversubscribed. A worker that crashes, exits or does not answer in time is
 * replaced; a step it was part of is run again, and since a step is a pure
 * function of (parameters, indices, step), the result equals a run without
 * the fault. The main thread yields to its event loop once a step.
 *
 * @example
 * ```ts
 * import { allocDataset, initParams, lectureCnn, WorkerPool } from "@denograd/denograd";
 * import assert from "node:assert/strict";
 * const spec = lectureCnn({ channels: 4 });
 * // workers read parameters and data in place, so both live in SharedArrayBuffers
 * const params = initParams(spec.built, { seed: 1, shared: true }) as Map<string, Float32Array>;
 * const ds = allocDataset({ name: "blank", count: 8, sampleShape: [1, 28, 28], numClasses: 10 });
 * const data = { images: ds.images, labels: ds.labels, sampleSize: 784 };
 * const pool = await WorkerPool.create(spec, { workers: 2, params, data, maxBatch: 64 });
 * try {
 *   const grads = new Map<string, Float32Array>();
 *   const { loss } = await pool.step(new Uint32Array([0, 1, 2, 3]), 0, grads);
 *   assert.ok(Number.isFinite(loss));
 *   assert.equal(grads.get("fc.weight")!.length, 6760);
 * } finally {
 *   await pool.close();
 * }
 * ```
 */
export class WorkerPool implements GradientRunner {
  private spec: TrainGraphSpec;
  private opts: WorkerPoolOptions;
  private layout: Layout;
  private slots: (Slot | null)[];
  /** The main thread's copy of the graph (checks, phases, weights). */
  private shard: GradientShard;
  /** The main thread's lane, when it takes part. */
  private lane: Lane | null = null;
  private indices: Uint32Array;
  private mem: PoolMemory;
  private tree: GradTree;
  private regions: number;
  private seq = 0;
  private stepTimeoutMs: number;
  private maxRetries: number;
  private modules: string[];
  private busy = false;
  private closed = false;
  private closedBecause = "it was closed";
  /** How many times each worker index was started. */
  private generations: number[];
  /** Failures of each worker index since it last answered a step. */
  private failures: number[];
  private seam: TestSeam | undefined;
  /** Set while `runMain` runs: a fault then goes to `pending`. */
  private stepping = false;
  /** A fault that struck the step running (a worker died, the pool was closed), seen at its next wait. */
  private pending: Fault | null = null;
  /** When the step running times out (`performance.now()` time). */
  private deadline = Infinity;
  /** Worker deaths not yet dealt with: index -> reason. */
  private deaths = new Map<number, string>();
  private spinner: Spinner;
  /** Watches step times; sets the shared calm counter every thread's spinner reads. */
  private clock: StepClock;
  private clockBatch = 0;
  /** Whether a step runs on the main thread alone (null: always on every thread). */
  private choice: SoloChoice | null = null;
  /** Milliseconds the main thread waited for other threads in the step running. */
  private waited = 0;
  /** Steps run on the main thread alone, over the pool's life. */
  private soloCount = 0;
  /** Whether the pool owns its cores, measured (with `wait.ownCores`), else null. */
  private cores: CoreShare | null = null;
  /** A retired worker may still hold a gradient region: free them all once no thread is in a step. */
  private regionsLost = false;
  /** Whether the last step ran on the main thread alone. */
  private lastSolo = false;
  /** The main thread's part of the parallel update, when the pool applies the optimizer. */
  private updater: Updater | null = null;
  private optimizer: RangeOptimizer | null = null;
  /** Per layout entry: the caller's buffer when it is not a trainable parameter's, else null (set with `outs`). */
  private bufferOuts: (Float32Array | null)[] = [];
  /** Per layout entry: whether the pool's update applies it (a trainable parameter's gradient). */
  private updated: boolean[] = [];
  /** The caller's gradient buffers, layout order, as resolved from `outsMap` (see {@linkcode WorkerPool.outsOf}). */
  private outs: Float32Array[] = [];
  /** The map `outs` was resolved from, null before the first step. */
  private outsMap: Map<string, Float32Array> | null = null;
  /** The first worker index (1 when the main thread takes part: its lane is thread 0). */
  private firstWorker = 0;
  /** Whether a wait of the step running has turned the event loop (see {@linkcode WorkerPool.waitAsync}). */
  private turned = false;
  private yielder = new Yielder();
  /** The timeline of every thread when created with `profile`, else null: thread 0 is the main thread, worker `i` is thread `i + 1`. */
  readonly profiler: Profiler | null;
  /** Whether the threads share their arenas and help with each other's kernels (see {@linkcode WorkerPoolOptions.assist}). */
  private sharing: boolean;
  /** The main thread's side of the board of kernel jobs, when it computes and the threads share arenas. */
  private assist: Assist | null = null;
  /** Every thread's shared arena, as posted to a worker that starts. */
  private shares: ArenaShare[] = [];
  private nextArena = 1;
  /** Help whatever the machine's load (see {@linkcode WorkerPoolOptions.assist}). */
  private assistAlways: boolean;

  private constructor(
    spec: TrainGraphSpec,
    opts: WorkerPoolOptions,
    layout: Layout,
    modules: string[],
  ) {
    this.spec = spec;
    this.modules = modules;
    this.opts = opts;
    this.layout = layout;
    this.slots = new Array<Slot | null>(opts.workers).fill(null);
    this.indices = new Uint32Array(new SharedArrayBuffer(4 * opts.maxBatch));
    this.profiler = opts.profile ? new Profiler(opts.workers + 1, namesOf(spec), true) : null;
    this.sharing = (opts.assist ?? true) !== false && opts.workers > 1;
    this.assistAlways = opts.assist === "always";
    // report a bad spec here, with its own message, before any worker starts
    this.shard = new GradientShard(this.shardInit(0));
    // a shared arena costs its kernels 1-3%: only where some kernel takes help
    if (this.sharing && !this.shard.takesHelpAt(this.shard.microFor(opts.maxBatch))) {
      this.sharing = false;
      this.shard = new GradientShard(this.shardInit(0));
    }
    if (this.profiler) this.profiler.names = this.shard.traceNames();
    const maxK = this.shard.maxCount(opts.maxBatch);
    // with backups the micro-batches finish out of order: a stalled one holds up the partial sums
    // along its path (up to one a level) while the others build the next subtree (as many
    // again), and a lane that finds no free region would wait instead of backing it up
    const speculate = waitPolicyOf(opts.wait).speculate && opts.workers > 1;
    this.regions = Math.min(
      31,
      regionCount(maxK, opts.workers) + (speculate ? treeLevels(maxK) : 0),
    );
    this.mem = {
      sched: new Int32Array(new SharedArrayBuffer(4 * schedLength(this.shard.phases))),
      stepNo: new Float64Array(new SharedArrayBuffer(8)),
      losses: new Float64Array(new SharedArrayBuffer(8 * maxK)),
      partials: sharedF32(maxK * this.shard.partialSize),
      tree: new Int32Array(new SharedArrayBuffer(4 * treeStateLength(maxK))),
      regions: sharedRegions(this.regions * layout.total, opts.wasmReduce ?? true),
      maxK,
      layout,
      // slot 0: the calm counter (StepClock); slot OWNED: the cores are the pool's (CoreShare)
      calm: new Int32Array(new SharedArrayBuffer(8)),
      // each thread's sleep in Atomics.wait (the main thread's slot 0, worker i's i + 1; two values each)
      asleep: new Float64Array(new SharedArrayBuffer(16 * (opts.workers + 1))),
      wait: waitPolicyOf(opts.wait),
    };
    // backups of stalled micro-batches need another thread to make them
    if (speculate) {
      this.mem.spec = new Int32Array(new SharedArrayBuffer(4 * specLength(maxK)));
      this.mem.claimedAt = new Float64Array(new SharedArrayBuffer(8 * (maxK + 1)));
    }
    // posted with the regions, so that the workers' trees run the loops in wasm too
    this.mem.regionMemory = regionMemory(this.mem.regions.buffer);
    if (this.sharing) this.mem.assist = assistBoard(opts.workers + 1);
    this.spinner = new Spinner(undefined, this.mem.calm, {
      minSpinMs: this.mem.wait.minSpinMs,
      pause: this.mem.wait.pause,
      ownCores: this.mem.wait.ownCores,
      asleep: { at: this.mem.asleep, slot: 0 },
    });
    this.clock = new StepClock(this.mem.calm, this.mem.wait.slowStep);
    const up = opts.update;
    if (up) {
      if (!isRangeOptimizer(up.optimizer)) {
        throw new Error(
          `WorkerPool.create: update: the optimizer "${up.optimizer.name}" has no elementwise rule to split by ranges (use a built-in optimizer, or no update option)`,
        );
      }
      const clip = up.clipGradNorm ?? 0;
      if (!(clip >= 0 && Number.isFinite(clip))) {
        throw new Error(
          `WorkerPool.create: update.clipGradNorm must be a finite number above 0, got ${clip}`,
        );
      }
      const opt = this.optimizer = up.optimizer;
      const state = up.trainable.map((name) => {
        const p = opts.params.get(name);
        if (!p) {
          throw new Error(
            `WorkerPool.create: update names parameter "${name}", which has no buffer`,
          );
        }
        return opt.buffers(name, p.length, true);
      });
      this.mem.update = updateShared(layout, opt.rule, up.trainable, state, clip, opts.workers);
      this.bufferOuts = layout.grads.map(() => null);
      this.updated = layout.grads.map(([name]) => up.trainable.includes(name));
    }
    this.tree = new GradTree(layout, this.mem.regions, this.mem.tree, maxK, !!up);
    this.tree.resetFree(this.regions);
    if (this.mem.update) {
      this.updater = new Updater(
        this.mem.update,
        layout,
        opts.params,
        this.mem.regions,
        this.shard.recorder,
      );
    }
    if (opts.mainThread ?? true) {
      const backupAfter = this.mem.wait.speculate ? this.mem.wait.backupAfter : 0;
      this.lane = new Lane(this.shard, this.tree, this.mem, null, this.updater, backupAfter);
      this.firstWorker = 1;
      const own = this.sharing ? ownArenas(this.shard, opts.maxBatch) : new Map() as OwnArenas;
      if (own.size > 0) {
        this.assist = new Assist(this.mem.assist!, 0);
        const shares = this.sharesOf(0, own);
        this.shares.push(...shares);
        adoptArenas(this.assist, shares, own);
      }
    }
    // the main thread is one of the pool's threads whether or not it computes
    if (this.mem.wait.ownCores) {
      this.cores = new CoreShare(
        this.mem.calm,
        this.mem.asleep,
        opts.workers - this.firstWorker + 1,
      );
    }
    this.stepTimeoutMs = opts.stepTimeoutMs ?? 60_000;
    this.maxRetries = opts.maxRetries ?? 3;
    this.generations = new Array<number>(opts.workers).fill(0);
    this.failures = new Array<number>(opts.workers).fill(0);
    this.seam = opts.testSeam ?? (opts.faults ? faultSeam({ faults: opts.faults }) : undefined);
    if (this.lane && opts.workers > 1 && (opts.soloWhenFaster ?? this.seam === undefined)) {
      this.choice = new SoloChoice(this.mem.wait.slowProbes, {
        host: this.mem.wait.hostLoad ? hostLoad() : null,
        threads: opts.workers - this.firstWorker + 1,
        earlyEnd: this.mem.wait.probeEarlyEnd,
      });
    }
  }

  /**
   * Checks the spec and buffers, starts the workers and waits until each has
   * rebuilt the graph. Rejects (with every worker terminated) if one fails.
   */
  static async create(spec: TrainGraphSpec, opts: WorkerPoolOptions): Promise<WorkerPool> {
    const who = "WorkerPool.create";
    if (!Number.isInteger(opts.workers) || opts.workers < 1) {
      throw new Error(`${who}: workers must be a positive whole number, got ${opts.workers}`);
    }
    if (!Number.isInteger(opts.maxBatch) || opts.maxBatch < 1) {
      throw new Error(`${who}: maxBatch must be a positive whole number, got ${opts.maxBatch}`);
    }
    checkData(who, opts.data);
    for (const [name, p] of opts.params) {
      // a worker would receive a copy and never see the optimizer's updates
      if (!isShared(p)) {
        throw new Error(`${who}: parameter "${name}" is not in a SharedArrayBuffer`);
      }
    }
    if (!isShared(opts.data.images) || !isShared(opts.data.labels)) {
      throw new Error(`${who}: data.images and data.labels must be in SharedArrayBuffers`);
    }
    const mainThread = opts.mainThread ?? true;
    for (const f of opts.faults ?? []) {
      if (
        !Number.isInteger(f.worker) || f.worker < (mainThread ? 1 : 0) || f.worker >= opts.workers
      ) {
        throw new Error(
          `${who}: a fault names worker ${f.worker}, but the workers are ${mainThread ? 1 : 0}..${
            opts.workers - 1
          }${mainThread ? " (lane 0 is the main thread's)" : ""}`,
        );
      }
    }
    const layout = layoutOf(spec, opts.params, who);
    const modules = (opts.opModules ?? []).map((u) => new URL(u).href);
    for (const m of modules) await import(m);
    const pool = new WorkerPool(spec, opts, layout, modules);
    try {
      // every worker's arena is known before any serves: each gets the others' to help with
      await Promise.all(pool.workerIndices().map((i) => pool.spawn(i)));
      await Promise.all(pool.workerIndices().map((i) => pool.start(i)));
    } catch (e) {
      pool.closed = true;
      pool.closedBecause = "its workers could not start";
      pool.terminateAll("WorkerPool.create failed");
      throw new Error(`${who}: could not start the workers: ${messageOf(e)}`);
    }
    return pool;
  }

  /** Number of Web Workers running (0 after {@linkcode WorkerPool.close} or a failure). */
  get liveWorkers(): number {
    return this.slots.filter((s) => s !== null).length;
  }

  /** Workers started to replace failed ones, over the pool's life. */
  get restarts(): number {
    return this.generations.reduce((a, g) => a + Math.max(0, g - 1), 0);
  }

  /** Whether `step` applies the optimizer (see {@linkcode WorkerPoolOptions.update}). */
  get updates(): boolean {
    return this.updater !== null;
  }

  /** Whether the way chosen now is the main thread alone (see `SoloChoice` in `wait.ts`; false without a choice). */
  get soloChosen(): boolean {
    return this.choice?.solo ?? false;
  }

  /** Probes of the other way of running (see `SoloChoice` in `wait.ts`) over the pool's life, and how many ended early. */
  get soloProbes(): { probes: number; earlyEnds: number } {
    return { probes: this.choice?.probes ?? 0, earlyEnds: this.choice?.earlyEnds ?? 0 };
  }

  /** Steps run on the main thread alone (see {@linkcode WorkerPoolOptions.soloWhenFaster}), over the pool's life. */
  get soloSteps(): number {
    return this.soloCount;
  }

  /**
   * With `wait.ownCores`: the last share of CPU the pool's threads got while
   * runnable, and how many of the periods measured found the cores the
   * pool's (see `CoreShare` in `wait.ts`); null without the option.
   */
  get coreShare(): { share: number; periods: number; ownedPeriods: number } | null {
    const c = this.cores;
    return c && { share: c.share, periods: c.periods, ownedPeriods: c.ownedPeriods };
  }

  /** Whether the threads' arenas are shared memories that others help on: with `assist` on, and a kernel in the graph that takes help (the fused convolution). */
  get sharedArenas(): boolean {
    return this.sharing;
  }

  /** Chunks of kernels that threads ran for other threads, over the pool's life (see {@linkcode WorkerPoolOptions.assist}). */
  get assistedChunks(): number {
    return this.mem.assist ? helpedChunks(this.mem.assist) : 0;
  }

  /**
   * Micro-batches a thread with nothing left to claim recomputed because the
   * thread that claimed them had not finished (see `WaitPolicy.speculate`),
   * over the pool's life: `started`, and `won`, those where the backup
   * published first (the other copy was dropped either way).
   */
  get backups(): { started: number; won: number } {
    return Lane.backups(this.mem);
  }

  /** Micro-batches the main thread computed in the last step (all phases); the rest were the workers'. */
  get mainThreadMicroBatches(): number {
    return this.lane?.claimed ?? 0;
  }

  /** Bytes of shared memory the step machinery holds (gradient regions, partials, tree). */
  get sharedBytes(): number {
    const m = this.mem;
    return m.regions.byteLength + m.partials.byteLength + m.tree.byteLength +
      m.losses.byteLength + m.sched.byteLength + this.indices.byteLength;
  }

  /** Loss and gradients of the batch `indices` at `step`; see {@linkcode GradientRunner.step}. */
  async step(
    indices: Uint32Array,
    step: number,
    grads: Map<string, Float32Array>,
  ): Promise<{ loss: number }> {
    const who = "WorkerPool.step";
    if (this.closed) throw new Error(`${who}: the pool is closed: ${this.closedBecause}`);
    if (this.busy) throw new Error(`${who}: step ${step} called while another step is running`);
    checkBatch(who, indices, step, this.opts.maxBatch, countOf(this.opts.data));
    const outs = this.outsOf(who, grads);
    this.busy = true;
    this.turned = false;
    this.yielder.arm();
    const t0 = performance.now();
    try {
      // workers read the batch from here; it must not change until the step ends
      this.indices.set(indices);
      const n = indices.length;
      const k = this.shard.count(n);
      const upd = this.mem.update;
      if (upd) this.optimizer!.begin(upd.scalars);
      let fresh = true;
      if (n !== this.clockBatch) {
        this.clock.reset();
        this.choice?.reset();
        this.clockBatch = n;
      }
      // the main thread alone: the workers are not told of the step
      const solo = this.choice?.next() ?? false;
      if (this.lane) this.lane.alone = solo;
      this.cores?.begin(t0, solo !== this.lastSolo);
      this.lastSolo = solo;
      this.waited = 0;
      // failed attempts of this step that no worker was blamed for (every one left the step in time)
      let unblamed = 0;
      for (;;) {
        this.watch(step);
        // no promise to await in a steady step: every worker serves
        if (this.missing()) await this.replaceMissing(step);
        if (this.closed) throw new Error(`${who}: the pool was closed during step ${step}`);
        const seq = this.seq = (this.seq + 1) & 0x3fffffff;
        // after a fault in the update: the gradients are summed, re-run the update's rest alone
        const updateOnly = !fresh && upd !== undefined && this.tree.root() >= 0;
        if (updateOnly) this.tree.prepare(k);
        else this.tree.resetStep(k);
        publishStep(this.mem, seq, step, n, k, this.shard.phases, updateOnly);
        if (upd) this.publishUpdate(upd, seq, !updateOnly, step);
        fresh = false;
        if (!solo) { for (const slot of this.slots) if (slot?.ready) this.post(slot, seq); }
        const fault = await this.runMain(seq);
        if (!fault) {
          // the step is over: a worker that woke late for it (the other threads did all its
          // micro-batches and ranges) must leave rather than wait for a root that was taken
          abortStep(this.mem, seq);
          break;
        }
        if (!(await this.recover(seq, step, fault)) && ++unblamed > this.maxRetries) {
          // e.g. a step that outlasts the step timeout every time: retrying would never end
          this.closed = true;
          this.closedBecause = `step ${step} failed ${unblamed} times in a row (${fault.message})`;
          this.terminateAll(`step ${step} failed`);
          throw new Error(`WorkerPool.step: ${this.closedBecause}, giving up`);
        }
      }
      const ms = performance.now() - t0;
      // a step alone has no other thread to spin for
      if (!solo) this.clock.record(ms);
      else this.soloCount++;
      // nor a share to measure: alone beside a busy process the main thread owns its core, all
      // threads would not (a change of the threads starts a new period, see CoreShare.begin)
      if (!solo) this.cores?.check(performance.now());
      this.choice?.record(ms / n, this.waited / ms, Atomics.load(this.mem.calm, 0) > 0);
      const loss = stepLoss(this.mem, this.shard, n, k);
      if (upd && Number.isFinite(loss)) this.tree.releaseRoot(this.bufferOuts);
      else this.tree.takeRoot(outs);
      this.profiler?.main.span(SPAN.STEP, step, t0, performance.now());
      // signals and timers run here, once a step. The first turn after a step's work costs
      // 60-100 µs (LocalRunner too), a second one ~6: a wait in the step took the first (see
      // waitAsync) while the other threads computed, so this one is short and runs the
      // listeners of signals that came since
      await this.yielder.settle();
      return { loss };
    } finally {
      this.busy = false;
    }
  }

  /** Terminates every worker; later steps reject. Safe to call more than once. */
  close(): Promise<void> {
    this.closed = true;
    this.terminateAll("WorkerPool closed");
    if (this.stepping) this.pending ??= new Fault("the pool was closed");
    return Promise.resolve();
  }

  /** Publishes the update of step `seq`; a unit a dead thread left half done closes the pool. */
  private publishUpdate(
    upd: NonNullable<PoolMemory["update"]>,
    seq: number,
    fresh: boolean,
    step: number,
  ): void {
    try {
      publishUpdate(upd, seq, fresh, rootRegions(this.tree.root())[1] >= 0);
    } catch (e) {
      this.closed = true;
      this.closedBecause = `step ${step} failed: ${messageOf(e)}`;
      this.terminateAll(`step ${step} failed`);
      throw new Error(`WorkerPool.step: ${this.closedBecause}`);
    }
  }

  /** The worker indices (all but 0 when the main thread takes part). */
  private workerIndices(): number[] {
    return this.slots.map((_, i) => i).filter((i) => i >= this.firstWorker);
  }

  /** Whether a worker is to be started (one was retired, or none has started yet). */
  private missing(): boolean {
    for (let i = this.firstWorker; i < this.slots.length; i++) if (!this.slots[i]) return true;
    return false;
  }

  /**
   * The caller's gradient buffers in layout order: those resolved at the
   * last step when `grads` is the same map holding the same buffers (no
   * allocation in a steady step), else resolved again (missing ones
   * created, wrong sizes rejected).
   */
  private outsOf(who: string, grads: Map<string, Float32Array>): Float32Array[] {
    const { grads: entries, sizes } = this.layout;
    const outs = this.outs;
    if (this.outsMap === grads) {
      let e = 0;
      while (e < entries.length && grads.get(entries[e]![0]) === outs[e]) e++;
      if (e === entries.length) return outs;
    }
    this.outsMap = null;
    for (let e = 0; e < entries.length; e++) {
      outs[e] = outBuffer(who, grads, entries[e]![0], sizes[e]!);
      if (this.updater) this.bufferOuts[e] = this.updated[e] ? null : outs[e]!;
    }
    this.outsMap = grads;
    return outs;
  }

  /**
   * The main thread's part of step `seq`: its lane, then waiting for the
   * reduction's root. Returns the fault that struck meanwhile, if any. No
   * timer or promise per step: the waits check the step's deadline and the
   * fault a worker's death or `close` left (see {@linkcode WorkerPool.waitAsync}).
   */
  private async runMain(seq: number): Promise<Fault | null> {
    this.pending = null;
    this.deadline = performance.now() + this.stepTimeoutMs;
    this.stepping = true;
    try {
      // a death seen between steps
      if (this.deaths.size > 0) return new Fault("a worker died");
      const lane = this.lane;
      if (lane && lane.begin(seq)) {
        for (;;) {
          // another pool's step may run on this thread while this one waits: set at each call;
          // a step alone opens no kernel job (nobody would help, the board's claims only cost)
          setActiveAssist(lane.alone ? null : this.assist);
          const done = lane.advance();
          setActiveAssist(null);
          if (done) break;
          await this.waitAsync(lane.waitOn, lane.waitAt, lane.waitFor, lane.waitUntil);
        }
        // a backup of a stalled thread's micro-batch stands in for a wait for it: SoloChoice
        // reads both as signs that the other threads are held up
        this.waited += lane.stalledMs;
      }
      while (this.tree.root() < 0) await this.waitAsync(this.mem.tree, TREE.ROOT, -1);
      const u = this.updater;
      if (
        u &&
        Number.isFinite(
          stepLoss(this.mem, this.shard, this.mem.sched[SCHED.N]!, this.mem.sched[SCHED.K]!),
        )
      ) {
        const ctl = this.mem.update!.ctl;
        for (;;) {
          // the count first, then the test: a count read after the test could be the final one, never to change
          const done = Atomics.load(ctl, u.lastDoneSlot);
          if (done >= u.units) break;
          await this.waitAsync(ctl, u.lastDoneSlot, done);
        }
      }
      return null;
    } catch (e) {
      setActiveAssist(null);
      if (e instanceof Fault) return e;
      // a helper left a chunk of this thread's kernel unfinished: it died, or stalls
      if (e instanceof AssistStall) return new Fault(e.message);
      // a micro-batch that throws on the main thread is a bug in the graph or its ops
      abortStep(this.mem, seq);
      this.tree.resetFree(this.regions);
      throw e;
    } finally {
      this.stepping = false;
      this.pending = null;
    }
  }

  /** Throws the fault that struck the step running: a worker's death, `close`, or the step's deadline passed. */
  private checkFault(): void {
    if (this.pending) throw this.pending;
    if (performance.now() > this.deadline) {
      throw new Fault(`the step timed out after ${this.stepTimeoutMs} ms`);
    }
  }

  /**
   * Until `arr[at]` is no longer `value`: a turn of the event loop at the
   * step's first wait (where a turn is a `setImmediate`), a short spin (within the spinner's
   * budget), then a blocking `Atomics.wait` in slices of
   * {@linkcode BLOCK_SLICE_MS} with a turn of the event loop between them (a
   * worker's death, `close` or the step's deadline is seen there: throws the
   * fault). Where the main thread cannot block (a web page),
   * `Atomics.waitAsync` in the same slices. Returns at `until` (a
   * `performance.now()` time) at the latest: the lane may then back up a
   * micro-batch.
   */
  private async waitAsync(
    arr: Int32Array,
    at: number,
    value: number,
    until = Infinity,
  ): Promise<void> {
    let t0 = performance.now();
    // a turn of the event loop while this thread has nothing else to do, once a step: the
    // first turn after a step's work is the long one (measured 60-100 µs, batch 256), and
    // taken here it leaves the turn at the step's end short, where every thread waits for it
    if (!this.turned && this.yielder.immediate && Atomics.load(arr, at) === value) {
      this.turned = true;
      await this.yielder.settle();
      this.checkFault();
      // the turn is this thread's own work, not a wait for the others: SoloChoice reads
      // `waited` as a sign that they are held up, and the spinner learns the waits' lengths
      t0 = performance.now();
    }
    // run chunks of the workers' kernels while they compute: that time is not a wait, for
    // SoloChoice (`waited`) or the spinner, which count from its end
    if (this.assist && (this.assistAlways || this.spinner.mayAssist(t0))) {
      const poll = Math.min(
        this.assistAlways ? ASSIST_POLL_ALWAYS_MS : ASSIST_POLL_MS,
        until - performance.now(),
      );
      if (poll > 0 && this.assist.waitHelping(arr, at, value, poll) > 0) {
        const t1 = performance.now();
        this.profiler?.main.span(SPAN.ASSIST, 0, t0, t1);
        t0 = t1;
      }
    }
    const spin = this.spinner.budget(t0);
    const spinUntil = Math.min(until, performance.now() + spin);
    if (this.spinner.pause) {
      while (Atomics.load(arr, at) === value && performance.now() < spinUntil) spinPause(16);
    } else while (Atomics.load(arr, at) === value && performance.now() < spinUntil);
    while (Atomics.load(arr, at) === value) {
      const slice = Math.min(BLOCK_SLICE_MS, until - performance.now());
      if (!(slice > 0)) break;
      if (canBlock()) {
        // wakes at once, where a waitAsync's wake-up waits for the event loop
        this.spinner.sleep();
        const woke = Atomics.wait(arr, at, value, slice) !== "timed-out";
        this.spinner.wake();
        if (woke) break;
        // the lane's own deadline: back to it at once (the event loop turns at the step's end)
        if (performance.now() >= until) break;
        await nextTurn();
      } else {
        const w = Atomics.waitAsync(arr, at, value, slice);
        if (w.async) await w.value;
      }
      this.checkFault();
    }
    const t1 = performance.now();
    this.waited += t1 - t0;
    this.spinner.record(t1 - t0, spin);
    this.profiler?.main.span(SPAN.WAIT, 0, t0, t1);
  }

  /**
   * After a fault in step `seq`: ends the step in every thread, retires the
   * workers that died or do not leave it, frees every gradient region, and
   * gives up when a worker failed more than `maxRetries` times in a row.
   * Returns whether a worker was blamed.
   */
  private async recover(seq: number, step: number, fault: Fault): Promise<boolean> {
    abortStep(this.mem, seq);
    const blamed = new Map(this.deaths);
    const deadline = performance.now() + ABORT_GRACE_MS;
    for (const i of this.workerIndices()) {
      const slot = this.slots[i];
      if (!slot?.ready || blamed.has(i)) continue;
      const done = () => Atomics.load(slot.ctrl, CTRL.DONE) === slot.lastGo;
      while (!done() && !slot.killed && !this.deaths.has(i)) {
        const left = deadline - performance.now();
        if (left <= 0) break;
        await waitAlive(
          slot.ctrl,
          CTRL.DONE,
          Atomics.load(slot.ctrl, CTRL.DONE),
          Math.min(left, 50),
        );
      }
      if (!done()) {
        blamed.set(i, this.deaths.get(i) ?? `did not answer step ${step} (${fault.message})`);
      }
    }
    this.deaths.clear();
    if (blamed.size === 0) blamed.set(-1, fault.message);
    // the summed gradients of a step whose update was cut short are kept for its retry
    const root = this.tree.root();
    if (this.updater && root >= 0) this.tree.keepOnly(this.regions, root);
    else this.tree.resetFree(this.regions);
    for (const [i, why] of blamed) if (i >= 0) this.fail(i, why, step);
    return !blamed.has(-1);
  }

  /** Worker `i` failed: it is retired, and the pool gives up after too many failures in a row. */
  private fail(i: number, why: string, step: number): void {
    this.retire(i, why);
    if (++this.failures[i]! > this.maxRetries) {
      this.closed = true;
      this.closedBecause = `step ${step} failed ${
        this.failures[i]
      } times in a row (worker ${i}: ${why})`;
      this.terminateAll(`step ${step} failed`);
      throw new Error(`WorkerPool.step: ${this.closedBecause}, giving up`);
    }
  }

  /**
   * Between steps: deals with deaths seen since the last step, counts a
   * worker that answered as healthy again, and retires one that has not
   * answered a post for longer than the step timeout.
   */
  private watch(step: number): void {
    if (this.deaths.size > 0) {
      // with backups a step can finish without a worker that died holding a micro-batch
      this.regionsLost = true;
      for (const [i, why] of this.deaths) this.fail(i, why, step);
      this.deaths.clear();
    }
    const now = performance.now();
    let answered = true;
    for (let i = this.firstWorker; i < this.slots.length; i++) {
      const slot = this.slots[i];
      if (!slot?.ready) continue;
      if (Atomics.load(slot.ctrl, CTRL.DONE) === slot.lastGo) {
        slot.unackedSince = -1;
        this.failures[i] = 0;
      } else if (slot.unackedSince >= 0 && now - slot.unackedSince > this.stepTimeoutMs) {
        this.regionsLost = true;
        this.fail(i, `did not answer a step within ${this.stepTimeoutMs} ms`, step);
      } else answered = false;
    }
    // a retired worker may have held a gradient region (its micro-batch was backed up and the
    // steps went on): once every live worker is out of every step, all regions are free again
    if (this.regionsLost && answered && this.tree.root() < 0) {
      this.tree.resetFree(this.regions);
      this.regionsLost = false;
    }
  }

  /** Starts replacements for retired workers and waits until they serve (a step runs on every thread asked for). */
  private async replaceMissing(step: number): Promise<void> {
    const missing = this.workerIndices().filter((i) => !this.slots[i]);
    // all started before any serves, so that each gets the others' new arenas
    const spawned = await Promise.allSettled(missing.map((i) => this.spawn(i)));
    const started = await Promise.allSettled(
      missing.map((i, k) => {
        const r = spawned[k]!;
        return r.status === "fulfilled" ? this.start(i) : Promise.reject(r.reason);
      }),
    );
    started.forEach((r, k) => {
      if (r.status === "rejected") {
        this.fail(missing[k]!, `could not restart: ${messageOf(r.reason)}`, step);
      }
    });
  }

  /** Tells a worker that step `seq` is published. */
  private post(slot: Slot, seq: number): void {
    const c = slot.ctrl;
    if (slot.unackedSince < 0) slot.unackedSince = performance.now();
    c[CTRL.SEQ] = seq;
    slot.lastGo = (Atomics.load(c, CTRL.GO) + 1) | 0;
    Atomics.store(c, CTRL.GO, slot.lastGo);
    Atomics.notify(c, CTRL.GO);
  }

  /** What every thread's shard is built from. */
  private shardInit(thread: number): ShardInit {
    const { spec, opts, layout } = this;
    return {
      graph: spec.graph,
      input: spec.input,
      target: spec.target,
      loss: spec.loss,
      grads: layout.grads,
      params: opts.params,
      images: opts.data.images,
      labels: opts.data.labels,
      sampleSize: opts.data.sampleSize,
      targetSize: opts.data.targetSize,
      indices: this.indices,
      sharedArena: this.sharing,
      assistThreads: opts.workers + 1,
      tier: opts.tier,
      microBatch: opts.microBatch,
      microTail: opts.microTail,
      fuse: opts.fuse,
      winograd: opts.winograd,
      trace: this.profiler?.threads[thread],
    };
  }

  /** Starts worker `i` and waits for its init; the slot is registered at once so close() reaches it. */
  private async spawn(i: number): Promise<Slot> {
    if (this.closed) throw new Error("the pool is closed");
    const worker = new Worker(WORKER_URL, { type: "module" });
    let die!: (e: Error) => void;
    const dead = new Promise<never>((_, reject) => (die = reject));
    // without preventDefault an uncaught error in the worker kills this process
    worker.onerror = (e) => {
      e.preventDefault();
      die(new Error(`worker ${i} crashed: ${e.message}`));
    };
    worker.onmessageerror = () => die(new Error(`worker ${i} sent a message that cannot be read`));
    const ctrl = new Int32Array(new SharedArrayBuffer(CTRL_BYTES));
    const slot: Slot = {
      worker,
      api: Comlink.wrap<WorkerApi>(worker),
      ctrl,
      dead,
      killed: false,
      ready: false,
      lastGo: 0,
      unackedSince: -1,
      die: (e) => die(e),
      kill(reason) {
        slot.killed = true;
        die(new Error(reason));
        // a worker asleep in Atomics.wait may not see terminate(): wake it to quit
        Atomics.store(ctrl, CTRL.QUIT, 1);
        Atomics.add(ctrl, CTRL.GO, 1);
        Atomics.notify(ctrl, CTRL.GO);
        worker.terminate();
      },
    };
    // a death that is not the pool's doing is a fault of the step running, if any
    dead.catch((e) => {
      if (slot.killed) return;
      this.deaths.set(i, messageOf(e));
      if (this.stepping) this.pending ??= new Fault(messageOf(e));
    });
    this.slots[i] = slot;
    try {
      const own = await guard(
        slot.api.init(
          this.shardInit(i + 1),
          this.mem,
          this.modules,
          { worker: i, generation: this.generations[i]++ },
          this.seam,
        ),
        slot,
        Math.max(this.stepTimeoutMs, MIN_INIT_TIMEOUT_MS),
        `worker ${i} start-up`,
      );
      // a replacement's arena is a new memory: the threads that hold the old one cannot help it
      this.shares = this.shares.filter((s) => s.thread !== i + 1);
      const shares = this.sharesOf(i + 1, own);
      this.shares.push(...shares);
      if (this.assist) adoptArenas(this.assist, shares, new Map());
    } catch (e) {
      if (this.slots[i] === slot) this.slots[i] = null;
      slot.kill(messageOf(e));
      throw e;
    }
    return slot;
  }

  /** Thread `thread`'s arenas `own` under new ids. */
  private sharesOf(thread: number, own: OwnArenas): ArenaShare[] {
    return [...own].map(([micro, a]) => ({ id: this.nextArena++, thread, micro, ...a }));
  }

  /** Gives worker `i` (started by `spawn`) every thread's arena, then has it serve steps. */
  private async start(i: number): Promise<void> {
    const slot = this.slots[i];
    if (!slot) throw new Error(`worker ${i} is not running`);
    try {
      await guard(
        slot.api.adopt(i + 1, this.shares, this.assistAlways),
        slot,
        Math.max(this.stepTimeoutMs, MIN_INIT_TIMEOUT_MS),
        `worker ${i} start-up`,
      );
      // serves until it is terminated: ending any other way is a failure
      slot.api.serve(slot.ctrl, Atomics.load(slot.ctrl, CTRL.GO)).then(
        () => slot.die(new Error(`worker ${i} stopped serving`)),
        (e) => slot.die(new Error(`worker ${i} crashed: ${messageOf(e)}`)),
      );
      slot.ready = true;
    } catch (e) {
      if (this.slots[i] === slot) this.slots[i] = null;
      slot.kill(messageOf(e));
      throw e;
    }
  }

  /** Terminates worker `i` (a later step starts a replacement). */
  private retire(i: number, reason: string): void {
    const slot = this.slots[i];
    if (!slot) return;
    this.slots[i] = null;
    slot.kill(reason);
  }

  /** Terminates every worker. */
  private terminateAll(reason: string): void {
    for (let i = 0; i < this.slots.length; i++) this.retire(i, reason);
  }
}
