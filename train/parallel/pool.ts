/**
 * Data-parallel gradients across Web Workers: each worker runs the same
 * forward + backward graph on one contiguous shard of a mini-batch, reading
 * parameters and data from shared memory, and the main thread reduces the
 * shard gradients in a fixed order. {@linkcode LocalRunner} is the same
 * computation in-process, the reference the pool must match.
 *
 * @module
 */
// full specifier: an import map is ignored when the library is loaded from a URL
// deno-lint-ignore no-import-prefix
import * as Comlink from "npm:comlink@4.4.2";
import type { Tier } from "../../graph/op.ts";
import { GradientShard, type ShardInit } from "./shard.ts";
import { CTRL, CTRL_BYTES, CTRL_STEP_BYTE } from "./control.ts";
import type { WorkerApi } from "./worker.ts";
import { faultSeam, type InjectedFault } from "./faults.ts";
import type { TestSeam } from "./seam.ts";
import { reduceShards } from "./reduce.ts";
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

/** Options of {@linkcode WorkerPool.create}. */
export interface WorkerPoolOptions {
  /** Threads computing shards: Web Workers, plus the main thread unless `mainThread` is false. */
  workers: number;
  /** Parameter buffers by name, SharedArrayBuffer-backed; updated in place between steps. */
  params: Map<string, Float32Array>;
  /** The training set. */
  data: SharedData;
  /** Largest batch `step` will be given. */
  maxBatch: number;
  /** Kernel tier in the workers (default: their process-wide default). */
  tier?: Tier;
  /** Samples per executor run inside a shard (default 32); larger shards run in pieces. */
  microBatch?: number;
  /** A worker that has not answered a step after this long is replaced (default 60000). */
  stepTimeoutMs?: number;
  /** Retries of a failed step before giving up (default 3, so at most 4 attempts). */
  maxRetries?: number;
  /**
   * Modules that register ops beyond `ops/mod.ts` (custom ops), imported by
   * the main thread and by every worker before the graph is rebuilt; give
   * absolute URLs, e.g. `new URL("./my_op.ts", import.meta.url)`.
   */
  opModules?: (string | URL)[];
  /**
   * The main thread computes shard 0 itself while Web Workers compute the
   * rest, so `workers: N` starts N − 1 of them (default true). It would
   * otherwise sleep through the step; on two cores this measured 8% faster
   * at batch 64 and 4% at 256 (bench:train --main-thread false). Results are
   * the same bits.
   */
  mainThread?: boolean;
  /** Test-only fault injection: the worker misbehaves at that step (first attempt only unless `every`); a shorthand for `testSeam: faultSeam({ faults })`. */
  faults?: InjectedFault[];
  /** Test-only: a module whose hook every worker calls at each step and micro-batch (see `seam.ts`). */
  testSeam?: TestSeam;
}

const WORKER_URL = new URL("./worker.ts", import.meta.url).href;

// A worker's start-up loads and compiles every module, which on a busy
// machine can take far longer than a short test step timeout.
const MIN_INIT_TIMEOUT_MS = 30_000;
// how long the main thread, its own shard done, spins for a worker before it
// sleeps on the event loop (which lets worker error events in)
const MAIN_SPIN_MS = 5;

/**
 * Contiguous shards of `n` samples over `w` workers, sizes as equal as
 * possible (the first `n % w` get one more).
 */
function splitBatch(n: number, w: number): [number, number][] {
  const base = Math.floor(n / w);
  const extra = n % w;
  const out: [number, number][] = [];
  let start = 0;
  for (let i = 0; i < w; i++) {
    const end = start + base + (i < extra ? 1 : 0);
    out.push([start, end]);
    start = end;
  }
  return out;
}

interface Slot {
  worker: Worker;
  api: Comlink.Remote<WorkerApi>;
  /** The control block the worker serves steps from. */
  ctrl: Int32Array;
  /** Its step number slot. */
  stepAt: Float64Array;
  /** Rejects when the worker dies (uncaught error) or is terminated. */
  dead: Promise<never>;
  /** Rejects `dead` with `reason` and terminates the worker. */
  kill(reason: string): void;
  /** Set by `kill`. */
  killed: boolean;
}

/** Races `p` against the worker's death and a timeout; the timer never outlives the race. */
function guard<T>(p: Promise<T>, slot: Slot, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, slot.dead, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves when the worker of `slot` sets `DONE` to `seq`, or when it is killed. */
async function untilDone(slot: Slot, seq: number): Promise<void> {
  const c = slot.ctrl;
  while (!slot.killed) {
    const v = Atomics.load(c, CTRL.DONE);
    if (v === seq) return;
    const w = Atomics.waitAsync(c, CTRL.DONE, v);
    if (w.async) await w.value;
  }
}

function isShared(a: ArrayBufferView): boolean {
  return a.buffer instanceof SharedArrayBuffer;
}

/**
 * Data-parallel gradients on `workers` threads: Web Workers, and the main
 * thread as shard 0 unless `mainThread` is false. A step splits the batch
 * into contiguous shards, one per thread; each writes its shard-mean
 * gradient into its own region of a shared buffer, and the main thread sums
 * `Σ_i (n_i / N) · g_i` in shard order, so a run is bit-reproducible for a
 * given worker count. Steps are signalled through shared control blocks
 * (`Atomics`), not messages. A worker that crashes, exits or does not answer
 * in time is replaced and its shard recomputed; the step is a pure function
 * of (parameters, indices, step), so the result equals a run without the fault.
 *
 * @example
 * ```ts
 * import { allocDataset, initParams, lectureCnn, WorkerPool } from "@denograd/denograd";
 * const spec = lectureCnn({ channels: 4 });
 * // workers read parameters and data in place, so both live in SharedArrayBuffers
 * const params = initParams(spec.built, { seed: 1, shared: true }) as Map<string, Float32Array>;
 * const ds = allocDataset({ name: "blank", count: 8, sampleShape: [1, 28, 28], numClasses: 10 });
 * const data = { images: ds.images, labels: ds.labels, sampleSize: 784 };
 * const pool = await WorkerPool.create(spec, { workers: 2, params, data, maxBatch: 64 });
 * try {
 *   const grads = new Map<string, Float32Array>();
 *   const { loss } = await pool.step(new Uint32Array([0, 1, 2, 3]), 0, grads);
 *   console.log(Number.isFinite(loss), grads.get("fc.weight")!.length); // true 6760
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
  /** Lane 0 on the main thread, when it takes part. */
  private local: GradientShard | null = null;
  private indices: Uint32Array;
  private gradients: Float32Array;
  private losses: Float64Array;
  private stepTimeoutMs: number;
  private maxRetries: number;
  private modules: string[];
  private busy = false;
  /** Region offsets and weights of a step's non-empty shards, for `reduce`. */
  private laneScratch: Int32Array;
  private weightScratch: Float64Array;
  private closed = false;
  private closedBecause = "it was closed";
  /** How many times each worker index was started. */
  private generations: number[];
  private seam: TestSeam | undefined;

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
    this.gradients = new Float32Array(new SharedArrayBuffer(4 * opts.workers * layout.total));
    this.losses = new Float64Array(new SharedArrayBuffer(8 * opts.workers));
    this.laneScratch = new Int32Array(opts.workers);
    this.weightScratch = new Float64Array(opts.workers);
    this.stepTimeoutMs = opts.stepTimeoutMs ?? 60_000;
    this.maxRetries = opts.maxRetries ?? 3;
    this.generations = new Array<number>(opts.workers).fill(0);
    this.seam = opts.testSeam ?? (opts.faults ? faultSeam({ faults: opts.faults }) : undefined);
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
          }${mainThread ? " (shard 0 is the main thread's)" : ""}`,
        );
      }
    }
    const layout = layoutOf(spec, opts.params, who);
    const modules = (opts.opModules ?? []).map((u) => new URL(u).href);
    for (const m of modules) await import(m);
    const pool = new WorkerPool(spec, opts, layout, modules);
    // report a bad spec here, with its own message, before any worker starts
    const here = new GradientShard(pool.initFor(0));
    if (mainThread) pool.local = here;
    try {
      await Promise.all(pool.slots.map((_, i) => i === 0 && pool.local ? null : pool.spawn(i)));
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
    const outs = this.layout.grads.map(([name], k) =>
      outBuffer(who, grads, name, this.layout.sizes[k]!)
    );
    this.busy = true;
    try {
      // workers read the batch from here; it must not change until they answer
      this.indices.set(indices);
      const n = indices.length;
      const shards = splitBatch(n, this.slots.length);
      let pending = shards.flatMap(([s, e], i) => (e > s ? [i] : []));
      for (let attempt = 0;; attempt++) {
        const settled = await this.runShards(pending, step, shards);
        if (this.closed) throw new Error(`${who}: the pool was closed during step ${step}`);
        const failed: [number, string][] = [];
        settled.forEach((r, k) => {
          if (r.status === "rejected") failed.push([pending[k]!, messageOf(r.reason)]);
        });
        if (failed.length === 0) break;
        for (const [i, why] of failed) this.retire(i, why);
        if (attempt >= this.maxRetries) {
          const causes = failed.map(([i, why]) => `worker ${i}: ${why}`).join("; ");
          this.closed = true;
          this.closedBecause = `step ${step} failed ${attempt + 1} times in a row (${causes})`;
          this.terminateAll(`step ${step} failed`);
          throw new Error(`${who}: ${this.closedBecause}, giving up`);
        }
        pending = failed.map(([i]) => i);
      }
      return { loss: this.reduce(shards, n, outs) };
    } finally {
      this.busy = false;
    }
  }

  /** Terminates every worker; later steps reject. Safe to call more than once. */
  close(): Promise<void> {
    this.closed = true;
    this.terminateAll("WorkerPool closed");
    return Promise.resolve();
  }

  /** `grad = Σ_i (n_i / N) · g_i` and the loss likewise, always in worker order. */
  private reduce(shards: [number, number][], n: number, outs: Float32Array[]): number {
    const lanes = this.laneScratch;
    const ws = this.weightScratch;
    let count = 0;
    let loss = 0;
    for (let i = 0; i < shards.length; i++) {
      const [s, e] = shards[i]!;
      if (e === s) continue;
      ws[count] = (e - s) / n;
      lanes[count++] = i * this.layout.total;
      loss += ((e - s) / n) * this.losses[i]!;
    }
    reduceShards(this.layout, this.gradients, lanes, ws, count, outs);
    return loss;
  }

  /**
   * Shards `lanes` of a step: starts replacements for retired workers, posts
   * every worker its shard, runs lane 0 here when the main thread takes part,
   * then waits for the workers.
   */
  private async runShards(
    lanes: number[],
    step: number,
    shards: [number, number][],
  ): Promise<PromiseSettledResult<number>[]> {
    const remote = lanes.filter((i) => i > 0 || !this.local);
    const slots = await Promise.allSettled(
      remote.map((i) => this.slots[i] ? Promise.resolve(this.slots[i]!) : this.spawn(i)),
    );
    const seqs = remote.map((i, k) => {
      const r = slots[k]!;
      return r.status === "fulfilled" ? this.post(r.value, step, shards[i]!) : 0;
    });
    const out = new Map<number, PromiseSettledResult<number>>();
    if (this.local && lanes[0] === 0) {
      const [start, end] = shards[0]!;
      // a shard that throws here is a bug in the graph or its ops, not a fault to retry
      out.set(0, { status: "fulfilled", value: this.local.run(step, start, end) });
    }
    const waits = await Promise.allSettled(remote.map((i, k) => {
      const r = slots[k]!;
      if (r.status === "rejected") return Promise.reject(r.reason);
      return this.waitDone(r.value, seqs[k]!, `worker ${i} at step ${step}`)
        .then(() => this.losses[i]!);
    }));
    remote.forEach((i, k) => out.set(i, waits[k]!));
    return lanes.map((i) => out.get(i)!);
  }

  /** Posts worker `i` its shard of `step` and returns the step number it will answer with. */
  private post(
    slot: Slot,
    step: number,
    [start, end]: [number, number],
  ): number {
    const c = slot.ctrl;
    c[CTRL.START] = start;
    c[CTRL.END] = end;
    slot.stepAt[0] = step;
    const seq = (Atomics.load(c, CTRL.GO) + 1) | 0;
    Atomics.store(c, CTRL.GO, seq);
    Atomics.notify(c, CTRL.GO);
    return seq;
  }

  /** Until the worker sets `DONE` to `seq`; rejects if it dies or takes longer than the step timeout. */
  private async waitDone(slot: Slot, seq: number, what: string): Promise<void> {
    const c = slot.ctrl;
    if (this.local) {
      // the other core is this worker's: spinning a little costs nothing and
      // saves waking up through the event loop
      const until = performance.now() + MAIN_SPIN_MS;
      while (Atomics.load(c, CTRL.DONE) !== seq && performance.now() < until);
    }
    if (Atomics.load(c, CTRL.DONE) === seq) return;
    // a pending Atomics.waitAsync does not keep the process alive: guard's timer does
    await guard(untilDone(slot, seq), slot, this.stepTimeoutMs, what);
  }

  /** What worker `i` is started with: shared views, its own gradient region and loss slot. */
  private initFor(i: number): ShardInit {
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
      gradients: this.gradients.subarray(i * layout.total, (i + 1) * layout.total),
      lossOut: this.losses.subarray(i, i + 1),
      tier: opts.tier,
      microBatch: opts.microBatch,
    };
  }

  /** Starts worker `i` and waits for its init; the slot is registered at once so close() reaches it. */
  private async spawn(i: number): Promise<Slot> {
    if (this.closed) throw new Error("the pool is closed");
    const worker = new Worker(WORKER_URL, { type: "module" });
    let die!: (e: Error) => void;
    const dead = new Promise<never>((_, reject) => (die = reject));
    // nobody may be racing against it when it rejects
    dead.catch(() => {});
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
      stepAt: new Float64Array(ctrl.buffer, CTRL_STEP_BYTE, 1),
      dead,
      killed: false,
      kill(reason) {
        slot.killed = true;
        die(new Error(reason));
        // a worker asleep in Atomics.wait may not see terminate(): wake it to quit
        Atomics.store(ctrl, CTRL.QUIT, 1);
        Atomics.add(ctrl, CTRL.GO, 1);
        Atomics.notify(ctrl, CTRL.GO);
        worker.terminate();
        // wakes a step still waiting on it
        Atomics.notify(ctrl, CTRL.DONE);
      },
    };
    this.slots[i] = slot;
    try {
      await guard(
        slot.api.init(
          this.initFor(i),
          this.modules,
          { worker: i, generation: this.generations[i]++ },
          this.seam,
        ),
        slot,
        Math.max(this.stepTimeoutMs, MIN_INIT_TIMEOUT_MS),
        `worker ${i} start-up`,
      );
      // serves until it is terminated: ending any other way is a failure
      slot.api.serve(ctrl, Atomics.load(ctrl, CTRL.GO)).then(
        () => die(new Error(`worker ${i} stopped serving`)),
        (e) => die(new Error(`worker ${i} crashed: ${messageOf(e)}`)),
      );
    } catch (e) {
      if (this.slots[i] === slot) this.slots[i] = null;
      slot.kill(messageOf(e));
      throw e;
    }
    return slot;
  }

  /** Terminates worker `i` (a later shard on it starts a replacement). */
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
