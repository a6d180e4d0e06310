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
import type { GraphJSON } from "../../graph/graph.ts";
import {
  CTRL,
  CTRL_BYTES,
  CTRL_STEP_BYTE,
  FAULT_CODES,
  GradientShard,
  type ShardInit,
  type WorkerApi,
} from "./worker.ts";

/** A training graph and the names of its parts, as posted to every worker. */
export interface TrainGraphSpec {
  /** Forward + backward graph (grad already applied). */
  graph: GraphJSON;
  /** Name of the image input node, shape `[-1, ...sampleShape]`. */
  input: string;
  /** Name of the label input node, shape `[-1]` (class ids as floats). */
  target: string;
  /** Name of the scalar loss node (mean over the shard). */
  loss: string;
  /** Parameter name -> name of its gradient node. */
  grads: Record<string, string>;
}

/** The training set in shared memory. */
export interface SharedData {
  /** Every sample's `sampleSize` floats, back to back (SharedArrayBuffer-backed). */
  images: Float32Array;
  /** Class id of every sample (SharedArrayBuffer-backed). */
  labels: Uint8Array;
  /** Floats per sample. */
  sampleSize: number;
}

/** Computes the batch-mean loss and gradients of a mini-batch. */
export interface GradientRunner {
  /** Mean loss over the batch `indices` (dataset sample indices) at `step`; writes the batch-mean gradient of every parameter into `grads` (overwrite). */
  step(
    indices: Uint32Array,
    step: number,
    grads: Map<string, Float32Array>,
  ): Promise<{ loss: number }>;
  /** Releases workers and buffers; safe to call more than once. */
  close(): Promise<void>;
}

/** A simulated fault, for tests. */
export interface InjectedFault {
  /** Worker index. */
  worker: number;
  /** Step at which it strikes. */
  step: number;
  /** Uncaught error, `self.close()`, or never answering. */
  kind: "throw" | "exit" | "hang";
  /** Strike on every attempt of the step, not only the first (to test giving up). */
  every?: boolean;
}

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
  /** Test-only fault injection: the worker misbehaves at that step (first attempt only unless `every`). */
  faults?: InjectedFault[];
}

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

const WORKER_URL = new URL("./worker.ts", import.meta.url).href;

// A worker's start-up loads and compiles every module, which on a busy
// machine can take far longer than a short test step timeout.
const MIN_INIT_TIMEOUT_MS = 30_000;
// how long the main thread, its own shard done, spins for a worker before it
// sleeps on the event loop (which lets worker error events in)
const MAIN_SPIN_MS = 5;

interface Layout {
  /** `[parameter, gradient node]` in region order. */
  grads: [string, string][];
  /** Offset of each gradient in a region. */
  offsets: number[];
  /** Element count of each gradient. */
  sizes: number[];
  /** Floats per region. */
  total: number;
}

function layoutOf(spec: TrainGraphSpec, params: Map<string, Float32Array>, who: string): Layout {
  const grads = Object.entries(spec.grads);
  const offsets: number[] = [];
  const sizes: number[] = [];
  let total = 0;
  for (const [name] of grads) {
    const p = params.get(name);
    if (!p) {
      throw new Error(
        `${who}: spec.grads names parameter "${name}" but params has none (params: ${
          [...params.keys()].join(", ")
        })`,
      );
    }
    offsets.push(total);
    sizes.push(p.length);
    total += p.length;
  }
  return { grads, offsets, sizes, total };
}

function checkBatch(
  who: string,
  indices: Uint32Array,
  step: number,
  maxBatch: number,
  count: number,
): void {
  if (!(indices instanceof Uint32Array) || indices.length < 1 || indices.length > maxBatch) {
    throw new Error(
      `${who}: the batch must be a Uint32Array of 1..${maxBatch} sample indices, got ${indices?.length}`,
    );
  }
  if (!Number.isInteger(step) || step < 0) {
    throw new Error(`${who}: step must be a whole number >= 0, got ${step}`);
  }
  // checked here, once: in a worker a bad index would look like a fault and be retried
  for (const i of indices) {
    if (i >= count) {
      throw new Error(`${who}: sample index ${i} is outside the data (${count} samples)`);
    }
  }
}

/** The caller's gradient buffer for entry `k`, created when missing. */
function outBuffer(
  who: string,
  grads: Map<string, Float32Array>,
  name: string,
  size: number,
): Float32Array {
  let out = grads.get(name);
  if (!out) grads.set(name, out = new Float32Array(size));
  else if (out.length !== size) {
    throw new Error(
      `${who}: grads buffer for "${name}" holds ${out.length} floats but the parameter has ${size}`,
    );
  }
  return out;
}

function checkData(who: string, data: SharedData): void {
  if (!Number.isInteger(data.sampleSize) || data.sampleSize < 1) {
    throw new Error(
      `${who}: data.sampleSize must be a positive whole number, got ${data.sampleSize}`,
    );
  }
  if (data.images.length !== data.labels.length * data.sampleSize) {
    throw new Error(
      `${who}: data.images holds ${data.images.length} floats but ${data.labels.length} labels × ${data.sampleSize} need ${
        data.labels.length * data.sampleSize
      }`,
    );
  }
}

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

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
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
    this.count = opts.data.labels.length;
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
    checkBatch(who, indices, step, this.opts.maxBatch, this.opts.data.labels.length);
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
        const settled = await this.runShards(pending, step, shards, attempt);
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
    const { offsets, sizes, total } = this.layout;
    const g = this.gradients;
    const lanes = this.laneScratch;
    const ws = this.weightScratch;
    let count = 0;
    let loss = 0;
    for (let i = 0; i < shards.length; i++) {
      const [s, e] = shards[i]!;
      if (e === s) continue;
      ws[count] = (e - s) / n;
      lanes[count++] = i * total;
      loss += ((e - s) / n) * this.losses[i]!;
    }
    for (let k = 0; k < outs.length; k++) {
      const out = outs[k]!;
      const size = sizes[k]!, off = offsets[k]!;
      const a = lanes[0]! + off, wa = ws[0]!;
      // 1 · g is exact, so one shard gives the very bits LocalRunner gives
      if (count === 1 && wa === 1) out.set(g.subarray(a, a + size));
      else if (count === 1) { for (let j = 0; j < size; j++) out[j] = wa * g[a + j]!; }
      else {
        // two shards at a time, rounded to float32 once per pair: one pass for two workers
        const b = lanes[1]! + off, wb = ws[1]!;
        for (let j = 0; j < size; j++) out[j] = wa * g[a + j]! + wb * g[b + j]!;
        let i = 2;
        for (; i + 1 < count; i += 2) {
          const c = lanes[i]! + off, wc = ws[i]!, d = lanes[i + 1]! + off, wd = ws[i + 1]!;
          for (let j = 0; j < size; j++) out[j] = out[j]! + (wc * g[c + j]! + wd * g[d + j]!);
        }
        if (i < count) {
          const c = lanes[i]! + off, wc = ws[i]!;
          for (let j = 0; j < size; j++) out[j] = out[j]! + wc * g[c + j]!;
        }
      }
    }
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
    attempt: number,
  ): Promise<PromiseSettledResult<number>[]> {
    const remote = lanes.filter((i) => i > 0 || !this.local);
    const slots = await Promise.allSettled(
      remote.map((i) => this.slots[i] ? Promise.resolve(this.slots[i]!) : this.spawn(i)),
    );
    const seqs = remote.map((i, k) => {
      const r = slots[k]!;
      return r.status === "fulfilled" ? this.post(r.value, i, step, shards[i]!, attempt) : 0;
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
    i: number,
    step: number,
    [start, end]: [number, number],
    attempt: number,
  ): number {
    const fault = this.opts.faults?.find((f) =>
      f.worker === i && f.step === step && (attempt === 0 || f.every)
    )?.kind;
    const c = slot.ctrl;
    c[CTRL.START] = start;
    c[CTRL.END] = end;
    slot.stepAt[0] = step;
    c[CTRL.FAULT] = fault ? FAULT_CODES[fault] : 0;
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
        slot.api.init(this.initFor(i), this.modules),
        slot,
        Math.max(this.stepTimeoutMs, MIN_INIT_TIMEOUT_MS),
        `worker ${i} start-up`,
      );
      // serves until it is terminated: ending any other way is a failure
      slot.api.serve(ctrl, Atomics.load(ctrl, CTRL.GO)).then(
        () => die(new Error(`worker ${i} stopped serving`)),
        (e) => die(e instanceof Error ? e : new Error(String(e))),
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
