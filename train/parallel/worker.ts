/**
 * The worker's serve loop: loaded as a module worker by `WorkerPool`, it
 * rebuilds the training graph once ({@linkcode workerApi.init}) and then
 * serves steps from a shared control block ({@linkcode workerApi.serve}),
 * taking micro-batches of each step as a `Lane` of the schedule. Comlink
 * carries the two calls.
 *
 * @module
 */
// full specifier: an import map is ignored when the library is loaded from a URL
// deno-lint-ignore no-import-prefix
import * as Comlink from "npm:comlink@4.4.2";
import { GradientShard, type ShardInit } from "./shard.ts";
import { CTRL } from "./control.ts";
import { GradTree } from "./reduce.ts";
import { adoptRegionMemory } from "../../ops/kernels/reduce_wasm.ts";
import { Lane, SCHED, type StepMemory } from "./schedule.ts";
import { ASSIST_UNIT, loadHook, type TestSeam, type ThreadHook, type ThreadId } from "./seam.ts";
import type { Layout } from "./spec.ts";
import { Spinner, waitChange, type WaitPolicy } from "./wait.ts";
import { SPAN, type TraceRecorder } from "./trace.ts";
import {
  Assist,
  ASSIST_POLL_ALWAYS_MS,
  ASSIST_POLL_MS,
  type AssistBoard,
  setActiveAssist,
} from "../../ops/kernels/assist.ts";
import { adoptArenaMemory } from "../../ops/kernels/elementwise_wasm.ts";
import { Updater, type UpdateShared } from "./update.ts";

/**
 * The shared memory of a pool's steps, as posted to a worker.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { PoolMemory } from "./worker.ts";
 * import { CALM_STEPS, OWNED, Spinner, StepClock, waitPolicyOf } from "./wait.ts";
 * // the fields of how threads wait, as the pool fills them
 * const mem: Pick<PoolMemory, "calm" | "asleep" | "wait"> = {
 *   calm: new Int32Array(new SharedArrayBuffer(4 * (OWNED + 1))),
 *   asleep: new Float64Array(new SharedArrayBuffer(16 * 2)),
 *   wait: waitPolicyOf(),
 * };
 * // the main thread's clock and worker 0's spinner share `calm`
 * const clock = new StepClock(mem.calm, mem.wait.slowStep);
 * const spinner = new Spinner(1e9, mem.calm, { asleep: { at: mem.asleep, slot: 1 } });
 * spinner.record(0.1);
 * for (let i = 0; i < 8; i++) clock.record(10);
 * assert.ok(spinner.budget(0) > 0);
 * clock.record(30); // a slow step: the worker stops spinning
 * assert.equal(Atomics.load(mem.calm, 0), CALM_STEPS);
 * assert.equal(spinner.budget(0), 0);
 * ```
 */
export interface PoolMemory extends StepMemory {
  /** The gradient tree's state. */
  tree: Int32Array;
  /** The gradient regions. */
  regions: Float32Array;
  /** The shared WebAssembly memory `regions` spans, when it is one (see `sharedRegions`). */
  regionMemory?: WebAssembly.Memory;
  /** Largest number of micro-batches in a step. */
  maxK: number;
  /** Where each gradient sits in a region. */
  layout: Layout;
  /**
   * Steps left to run without spinning, slot 0 (set by the main thread's
   * `StepClock`); slot `OWNED`: 1 while the pool owns its cores (`CoreShare`).
   */
  calm: Int32Array;
  /** Each thread's sleep in `Atomics.wait` (see `SpinnerOptions.asleep`): the main thread's slot 0, worker i's i + 1. */
  asleep: Float64Array;
  /** How threads wait inside a step, every default filled in (see `waitPolicyOf`). */
  wait: Required<WaitPolicy>;
  /** The parallel update's memory, when the pool applies the optimizer (see `update.ts`). */
  update?: UpdateShared;
  /** The board of kernel jobs threads help with, when they share their arenas (see `ops/kernels/assist.ts`). */
  assist?: AssistBoard;
}

/**
 * A thread's shared arena (its micro-batches' executor's), as posted to the
 * other threads so that they can help with its kernels.
 */
export interface ArenaShare {
  /** The pool's id of the arena, the same in every thread. */
  id: number;
  /** The thread (board slot) whose arena it is: 0 the main thread, worker i's i + 1. */
  thread: number;
  /** The micro-batch size whose plan the arena is (a thread has one per size of a step's cut). */
  micro: number;
  /** The shared memory. */
  memory: WebAssembly.Memory;
  /** Where its kernel scratch starts (bytes). */
  scratchStart: number;
}

/** A thread's shared arenas by micro-batch size, as `GradientShard.arenaFor` gives them. */
export type OwnArenas = Map<number, { memory: WebAssembly.Memory; scratchStart: number }>;

/**
 * Makes the arenas `shares` known to `assist` (this thread's side of the
 * board): its own (`thread === assist.me`, found in `own` by micro-batch
 * size) as arenas its kernels open jobs on, the others' as arenas it can
 * help on.
 */
export function adoptArenas(assist: Assist, shares: ArenaShare[], own: OwnArenas): void {
  for (const s of shares) {
    if (s.thread === assist.me) {
      const mine = own.get(s.micro);
      if (mine) assist.adopt(s.id, mine.memory.buffer, true);
    } else assist.adopt(s.id, adoptArenaMemory(s.memory, s.scratchStart));
  }
}

/**
 * This thread's shared arenas for steps of up to `maxBatch` samples: one per
 * micro-batch size of that batch's cut (a step's tail micro-batches run on
 * a plan of their own), none unless the shard shares its arenas.
 */
export function ownArenas(shard: GradientShard, maxBatch: number): OwnArenas {
  const own: OwnArenas = new Map();
  for (const micro of shard.cutSizes(maxBatch)) {
    const a = shard.arenaFor(micro);
    if (a) own.set(micro, a);
  }
  return own;
}

// a lane waiting on another thread re-checks for an aborted step this often
const WAIT_SLICE_MS = 20;
let lane: Lane | null = null;
let hook: ThreadHook | null = null;
let stepNo: Float64Array | null = null;
let recorder: TraceRecorder | null = null;
let calm: Int32Array | null = null;
let minSpinMs = 0;
let betweenSpinMs = 0;
let pause = false;
let ownCores = false;
let asleep: { at: Float64Array; slot: number } | undefined;
let board: AssistBoard | null = null;
let assist: Assist | null = null;
let always = false;
let sched: Int32Array | null = null;
let arenas: OwnArenas = new Map();

/**
 * Runs chunks of the other threads' kernels while `arr[at]` is `value`, when
 * the board allows (see `Assist.waitHelping`); returns when the wait that
 * follows starts (a span of the time helping is recorded).
 */
function help(
  arr: Int32Array,
  at: number,
  value: number,
  spinner: Spinner,
  until = Infinity,
): number {
  const t0 = recorder ? performance.now() : 0;
  if (!assist || !(always || spinner.mayAssist(performance.now()))) return t0;
  // a lane that may back up a micro-batch at `until` polls no longer than that
  const poll = Math.min(always ? ASSIST_POLL_ALWAYS_MS : ASSIST_POLL_MS, until - performance.now());
  if (!(poll > 0)) return t0;
  if (assist.waitHelping(arr, at, value, poll) > 0 && recorder) {
    const t1 = performance.now();
    recorder.span(SPAN.ASSIST, 0, t0, t1);
    return t1;
  }
  return t0;
}

/**
 * What a worker exposes through Comlink.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { workerApi } from "./worker.ts";
 * assert.deepEqual(Object.keys(workerApi), ["init", "adopt", "serve"]);
 * // imported outside a worker it serves nothing: a step needs `init` first
 * assert.throws(() => workerApi.serve(new Int32Array(8), 0), /serve before init/);
 * ```
 */
export const workerApi = {
  /**
   * Imports `modules` (extra ops register themselves), rebuilds the graph and
   * binds the shared buffers; throws what the graph checks throw. A test
   * `seam` installs its hook for this thread.
   */
  async init(
    init: ShardInit,
    mem: PoolMemory,
    modules: string[] = [],
    thread: ThreadId = { worker: 0, generation: 0 },
    seam?: TestSeam,
  ): Promise<OwnArenas> {
    for (const m of modules) await import(m);
    const shard = new GradientShard(init);
    hook = await loadHook(seam, thread);
    const me = thread.worker;
    if (mem.regionMemory) adoptRegionMemory(mem.regionMemory);
    const tree = new GradTree(mem.layout, mem.regions, mem.tree, mem.maxK, !!mem.update, me);
    const updater = mem.update
      ? new Updater(mem.update, mem.layout, init.params, mem.regions, shard.recorder, me)
      : null;
    lane = new Lane(shard, tree, mem, hook, updater, mem.wait.speculate ? mem.wait.backupAfter : 0);
    recorder = shard.recorder;
    stepNo = mem.stepNo;
    calm = mem.calm;
    minSpinMs = mem.wait.minSpinMs;
    betweenSpinMs = mem.wait.betweenSpinMs;
    pause = mem.wait.pause;
    ownCores = mem.wait.ownCores;
    asleep = { at: mem.asleep, slot: me + 1 };
    board = mem.assist ?? null;
    sched = mem.sched;
    arenas = board && init.sharedArena ? ownArenas(shard, init.indices.length) : new Map();
    return arenas;
  },
  /**
   * Joins the board of kernel jobs as thread `thread` (its slot: worker i's
   * i + 1) with every thread's shared arena, `shares`, its own among them
   * under the id the pool gave the memory `init` returned; `assistAlways`
   * helps whatever the machine's load. Without a board (the pool does not
   * share arenas), nothing.
   */
  adopt(thread: number, shares: ArenaShare[], assistAlways = false): void {
    if (!board) return;
    assist = new Assist(board, thread);
    adoptArenas(assist, shares, arenas);
    if (hook) assist.onClaim = () => void hook!(stepNo![0]!, ASSIST_UNIT);
    always = assistAlways;
    setActiveAssist(assist);
  },
  /**
   * Serves steps from the control block `ctrl` (see `CTRL`) until the pool
   * sets `QUIT`, starting after `GO` number `from` (the pool may post a step
   * before this call arrives); this worker's event loop is blocked meanwhile.
   * A micro-batch that throws ends the call with its error.
   */
  serve(ctrl: Int32Array, from: number): Promise<void> {
    if (!lane || !stepNo) throw new Error("Worker: serve before init");
    // waits inside a step (for another thread's micro-batch: long) and for the next step (the
    // main thread's turnaround: short) learn their typical lengths apart, so the short one spins
    const spinner = new Spinner(undefined, calm, { minSpinMs, pause, ownCores, asleep });
    // a step this worker sat out (the main thread ran it alone) must not stop the spin
    const between = new Spinner(undefined, null, {
      median: true,
      asleep,
      minSpinMs: betweenSpinMs,
    });
    let seen = from;
    for (;;) {
      const idle = recorder ? performance.now() : 0;
      while (Atomics.load(ctrl, CTRL.GO) === seen) waitChange(ctrl, CTRL.GO, seen, between, 1000);
      recorder?.span(SPAN.IDLE, 0, idle, performance.now());
      const go = seen = Atomics.load(ctrl, CTRL.GO);
      if (Atomics.load(ctrl, CTRL.QUIT)) return Promise.resolve();
      // a simulated fault: back to the event loop, never answering
      if (hook?.(stepNo[0]!, -1)) return new Promise<never>(() => {});
      const seq = Atomics.load(ctrl, CTRL.SEQ);
      if (lane.begin(seq)) {
        while (!lane.advance()) {
          // nothing of its own to do: run chunks of the others' kernels while they compute
          const until = lane.waitUntil;
          const t0 = help(lane.waitOn, lane.waitAt, lane.waitFor, spinner, until);
          const left = Math.min(WAIT_SLICE_MS, until - performance.now());
          if (left > 0) waitChange(lane.waitOn, lane.waitAt, lane.waitFor, spinner, left);
          recorder?.span(SPAN.WAIT, 0, t0, performance.now());
        }
        // its share done (no update to join): help the others until the step ends
        help(sched!, SCHED.SEQ, seq, spinner);
      }
      Atomics.store(ctrl, CTRL.DONE, go);
      Atomics.notify(ctrl, CTRL.DONE);
    }
  },
};

/**
 * The Comlink interface of a worker.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type WorkerApi, workerApi } from "./worker.ts";
 * const api: WorkerApi = workerApi;
 * const methods: (keyof WorkerApi)[] = ["init", "adopt", "serve"];
 * for (const m of methods) assert.equal(typeof api[m], "function");
 * assert.equal(api.init.length, 2); // a ShardInit and the PoolMemory; the rest have defaults
 * ```
 */
export type WorkerApi = typeof workerApi;

// only inside a worker: imported elsewhere (for its types) this module exposes nothing
const scope = (globalThis as { WorkerGlobalScope?: abstract new () => unknown }).WorkerGlobalScope;
if (scope && globalThis instanceof scope) Comlink.expose(workerApi);
