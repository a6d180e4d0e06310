/**
 * A timeline of training: every thread records spans (a kernel, a
 * micro-batch, a wait, a reduction, an update) into its own buffer, shared
 * memory in a pool, and {@linkcode Profiler.toChromeTrace} writes them as
 * Chrome trace-event JSON (opens in Perfetto or `chrome://tracing`), one
 * track per thread. {@linkcode opTable} sums a trace per op.
 *
 * @module
 */

/**
 * Kinds of span.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Profiler, SPAN } from "./trace.ts";
 * const p = new Profiler(1, { nodes: [], backward: [] }, false, 8);
 * p.main.span(SPAN.MICRO, 3, 0, 1);
 * p.main.span(SPAN.PHASE, 1 * 65536 + 2, 1, 2); // phase 1 of micro-batch 2
 * p.main.span(SPAN.WAIT, 0, 2, 3);
 * const spans = p.toChromeTrace().traceEvents.filter((e) => e.ph === "X");
 * assert.deepEqual(spans.map((e) => [e.name, e.cat]), [
 *   ["micro-batch 3", "micro-batch"],
 *   ["phase 1 micro-batch 2", "phase"],
 *   ["wait", "wait"],
 * ]);
 * ```
 */
export const SPAN = {
  /** A kernel: `id` is the node. */
  OP: 0,
  /** A micro-batch's last phase (loss and gradients): `id` is its index. */
  MICRO: 1,
  /** A micro-batch's run up to a collective: `id` is phase · 65536 + index. */
  PHASE: 2,
  /** Waiting for another thread inside a step. */
  WAIT: 3,
  /** Adding a micro-batch's gradients into the reduction tree. */
  REDUCE: 4,
  /** A whole step on the main thread. */
  STEP: 5,
  /** The optimizer's update. */
  UPDATE: 6,
  /** A worker waiting for the next step. */
  IDLE: 7,
  /** A wait in which the thread ran chunks of other threads' kernels (see `ops/kernels/assist.ts`). */
  ASSIST: 8,
  /** A micro-batch's last phase whose result was dropped: another thread published it first (see `WaitPolicy.speculate`); `id` is its index. */
  DROPPED: 9,
} as const;

import type { GraphJSON } from "../../graph/graph.ts";

const KIND_NAMES = [
  "op",
  "micro-batch",
  "phase",
  "wait",
  "reduce",
  "step",
  "update",
  "idle",
  "assist",
  "dropped",
];
// floats per span: kind, id, start, end
const WIDTH = 4;

/**
 * One thread's span buffer (shared memory in a pool).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SPAN, type TraceMemory, traceMemory, TraceRecorder } from "./trace.ts";
 * const mem: TraceMemory = traceMemory(2, false); // room for two spans
 * const rec = new TraceRecorder(mem);
 * for (let k = 0; k < 3; k++) rec.span(SPAN.MICRO, k, k, k + 1);
 * assert.deepEqual([...mem.count], [2, 1]); // two recorded, one dropped
 * assert.deepEqual([mem.spans[4], mem.spans[5]], [SPAN.MICRO, 1]); // the second: kind, id, ...
 * ```
 */
export interface TraceMemory {
  /** Spans back to back: kind, id, start and end in ms since the epoch. */
  spans: Float64Array;
  /** `[0]`: spans recorded; `[1]`: spans dropped for want of room. */
  count: Int32Array;
}

/**
 * A buffer of `capacity` spans; `shared` puts it in a SharedArrayBuffer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { traceMemory } from "./trace.ts";
 * const mem = traceMemory(100, true);
 * assert.ok(mem.spans.buffer instanceof SharedArrayBuffer); // a worker records into it
 * assert.equal(mem.spans.length, 4 * 100); // kind, id, start, end per span
 * assert.deepEqual([...mem.count], [0, 0]);
 * ```
 */
export function traceMemory(capacity: number, shared: boolean): TraceMemory {
  const f = (n: number) => (shared ? new SharedArrayBuffer(n) : new ArrayBuffer(n));
  return {
    spans: new Float64Array(f(8 * WIDTH * capacity)),
    count: new Int32Array(f(8)),
  };
}

/**
 * Records spans of one thread; times are this thread's `performance.now()`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SPAN, traceMemory, TraceRecorder } from "./trace.ts";
 * const mem = traceMemory(4, false);
 * const rec = new TraceRecorder(mem);
 * const t0 = performance.now();
 * rec.kernel(7, t0, t0 + 0.5); // node 7 ran for 0.5 ms (what the executor calls)
 * assert.equal(mem.count[0], 1);
 * assert.deepEqual([mem.spans[0], mem.spans[1]], [SPAN.OP, 7]);
 * assert.equal(mem.spans[2], performance.timeOrigin + t0); // ms since the epoch: threads agree
 * ```
 */
export class TraceRecorder {
  private mem: TraceMemory;
  private origin = performance.timeOrigin;
  private capacity: number;

  /** A recorder writing into `mem`. */
  constructor(mem: TraceMemory) {
    this.mem = mem;
    this.capacity = mem.spans.length / WIDTH;
  }

  /** Records a span of `kind` (see {@linkcode SPAN}) from `start` to `end`. */
  span(kind: number, id: number, start: number, end: number): void {
    const c = this.mem.count;
    const i = c[0]!;
    if (i >= this.capacity) {
      c[1]!++;
      return;
    }
    const s = this.mem.spans;
    const at = i * WIDTH;
    s[at] = kind;
    s[at + 1] = id;
    s[at + 2] = this.origin + start;
    s[at + 3] = this.origin + end;
    c[0] = i + 1;
  }

  /** Records a kernel's span; bound, so it can be handed to the executor. */
  readonly kernel = (node: number, start: number, end: number): void =>
    this.span(SPAN.OP, node, start, end);
}

/**
 * How to name the nodes of a trace.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Profiler, SPAN, type TraceNames } from "./trace.ts";
 * const names: TraceNames = { nodes: ["matmul fc", "matmul fc.grad"], backward: [false, true] };
 * const p = new Profiler(1, names, false, 4);
 * p.main.span(SPAN.OP, 0, 0, 1);
 * p.main.span(SPAN.OP, 1, 1, 2);
 * const ops = p.toChromeTrace().traceEvents.filter((e) => e.ph === "X");
 * assert.deepEqual(ops.map((e) => [e.name, e.cat]), [
 *   ["matmul fc", "fwd"],
 *   ["matmul fc.grad", "bwd"],
 * ]);
 * ```
 */
export interface TraceNames {
  /** Name of each node: `op name`. */
  nodes: string[];
  /** Whether each node is in the backward pass. */
  backward: boolean[];
}

/**
 * One event of Chrome's trace-event format.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Profiler, SPAN, type TraceEvent } from "./trace.ts";
 * const p = new Profiler(1, { nodes: [], backward: [] }, false, 4);
 * p.main.span(SPAN.REDUCE, 5, 10, 10.25); // micro-batch 5's reduction, 0.25 ms
 * const [meta, span] = p.toChromeTrace().traceEvents as [TraceEvent, TraceEvent];
 * assert.deepEqual(meta.args, { name: "main thread" }); // names the track
 * assert.deepEqual([meta.name, meta.ph, meta.tid], ["thread_name", "M", 0]);
 * assert.deepEqual(
 *   [span.name, span.cat, span.ph, span.ts, span.tid, span.args],
 *   ["reduce", "reduce", "X", 0, 0, { id: 5 }],
 * );
 * assert.ok(Math.abs(span.dur! - 250) < 1); // µs
 * ```
 */
export interface TraceEvent {
  /** The span's label (an op's node name, "wait", "reduce", …). */
  name: string;
  /** Category: "fwd", "bwd" or the span kind. */
  cat?: string;
  /** "X" for a complete span, "M" for metadata (thread names). */
  ph: "X" | "M";
  /** Start, in microseconds. */
  ts?: number;
  /** Duration, in microseconds. */
  dur?: number;
  /** Process id (always 1). */
  pid: number;
  /** Thread: 0 is the main thread. */
  tid: number;
  /** Extra values shown beside the span. */
  args?: Record<string, unknown>;
}

/**
 * The spans of every thread of a runner, and their Chrome trace.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Profiler, SPAN, TraceRecorder } from "./trace.ts";
 * const p = new Profiler(2, { nodes: ["relu h"], backward: [false] }, true, 16);
 * p.main.span(SPAN.STEP, 0, 100, 102); // the main thread: a step of 2 ms
 * new TraceRecorder(p.threads[1]!).span(SPAN.OP, 0, 100.5, 101); // worker 0: a kernel
 * const { traceEvents } = p.toChromeTrace();
 * const spans = traceEvents.filter((e) => e.ph === "X");
 * assert.deepEqual(spans.map((e) => [e.name, e.tid, e.ts]), [["step", 0, 0], ["relu h", 1, 500]]);
 * assert.ok(Math.abs(spans[0]!.dur! - 2000) < 1); // µs
 * const threads = traceEvents.filter((e) => e.ph === "M").map((e) => e.args!.name);
 * assert.deepEqual(threads, ["main thread", "worker 0"]);
 * assert.equal(JSON.parse(JSON.stringify(p.toChromeTrace())).traceEvents.length, 4);
 * assert.equal(p.dropped, 0);
 * ```
 */
export class Profiler {
  /** One buffer per thread: 0 is the main thread. */
  readonly threads: TraceMemory[];
  /** The main thread's recorder. */
  readonly main: TraceRecorder;
  /** Names of the nodes of the graph the threads run (after any graph pass). */
  names: TraceNames;

  /** Buffers for `threads` threads of `capacity` spans each. */
  constructor(threads: number, names: TraceNames, shared: boolean, capacity = 1 << 18) {
    this.threads = Array.from({ length: threads }, () => traceMemory(capacity, shared));
    this.main = new TraceRecorder(this.threads[0]!);
    this.names = names;
  }

  /** Spans dropped because a buffer was full. */
  get dropped(): number {
    return this.threads.reduce((n, t) => n + t.count[1]!, 0);
  }

  /** The trace as Chrome trace-event JSON (`{ traceEvents }`), times in µs from the first span. */
  toChromeTrace(): {
    traceEvents: TraceEvent[];
    displayTimeUnit: "ms";
    otherData: { epochMs: number };
  } {
    let t0 = Infinity;
    for (const t of this.threads) {
      for (let i = 0; i < t.count[0]!; i++) t0 = Math.min(t0, t.spans[i * WIDTH + 2]!);
    }
    const events: TraceEvent[] = [];
    this.threads.forEach((t, tid) => {
      // worker i records on thread i + 1; a pool with the main thread has no worker 0
      if (tid > 0 && t.count[0] === 0) return;
      events.push({
        name: "thread_name",
        ph: "M",
        pid: 1,
        tid,
        args: { name: tid === 0 ? "main thread" : `worker ${tid - 1}` },
      });
      for (let i = 0; i < t.count[0]!; i++) {
        const at = i * WIDTH;
        const kind = t.spans[at]!, id = t.spans[at + 1]!;
        const start = t.spans[at + 2]!, end = t.spans[at + 3]!;
        const e: TraceEvent = {
          name: this.spanName(kind, id),
          cat: kind === SPAN.OP ? (this.names.backward[id] ? "bwd" : "fwd") : KIND_NAMES[kind]!,
          ph: "X",
          ts: Math.round((start - t0) * 1000 * 10) / 10,
          dur: Math.round((end - start) * 1000 * 10) / 10,
          pid: 1,
          tid,
        };
        // which unit of the update, which micro-batch of a reduction: for per-span analysis
        if (kind !== SPAN.OP) e.args = { id };
        events.push(e);
      }
    });
    // the first span's wall-clock time, to line the trace up with OS traces (perf -k realtime)
    return { traceEvents: events, displayTimeUnit: "ms", otherData: { epochMs: t0 } };
  }

  /** The label of a span: the node's name for an op, else the kind's name. */
  private spanName(kind: number, id: number): string {
    switch (kind) {
      case SPAN.OP:
        return this.names.nodes[id] ?? `node ${id}`;
      case SPAN.MICRO:
        return `micro-batch ${id}`;
      case SPAN.PHASE:
        return `phase ${Math.floor(id / 65536)} micro-batch ${id % 65536}`;
      default:
        return KIND_NAMES[kind]!;
    }
  }
}

/**
 * Names and passes of a training graph's nodes for a trace: forward is what the loss depends on.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lectureCnn } from "@denograd/denograd";
 * import { namesOf } from "./trace.ts";
 * const spec = lectureCnn({ channels: 2 });
 * const names = namesOf(spec);
 * const at = (name: string) => spec.graph.nodes.findIndex((n) => n.name === name);
 * assert.equal(names.nodes.length, spec.graph.nodes.length);
 * assert.ok(names.nodes[at(spec.loss)]!.endsWith(` ${spec.loss}`)); // "op name"
 * assert.equal(names.backward[at(spec.loss)], false);
 * assert.equal(names.backward[at(spec.input)], false);
 * assert.equal(names.backward[at(spec.grads["fc.weight"]!)], true);
 * ```
 */
export function namesOf(spec: { graph: GraphJSON; loss: string }): TraceNames {
  const nodes = spec.graph.nodes;
  const loss = nodes.findIndex((r) => r.name === spec.loss);
  const forward = new Array<boolean>(nodes.length).fill(false);
  forward[loss] = true;
  for (let i = nodes.length - 1; i >= 0; i--) {
    if (forward[i]) { for (const j of nodes[i]!.inputs) forward[j] = true; }
  }
  return {
    nodes: nodes.map((r) => `${r.op} ${r.name}`),
    backward: forward.map((f) => !f),
  };
}

/**
 * A row of {@linkcode opTable}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type OpRow, opTable } from "./trace.ts";
 * const x = (name: string, cat: string, dur: number) =>
 *   ({ name, cat, ph: "X" as const, ts: 0, dur, pid: 1, tid: 0 });
 * const trace = { traceEvents: [x("step", "step", 2000), x("conv2d conv1", "fwd", 1500)] };
 * const [row] = opTable(trace).rows;
 * const expected: OpRow = { name: "conv2d conv1", cat: "fwd", msPerStep: 1.5, share: 1 };
 * assert.deepEqual(row, expected);
 * ```
 */
export interface OpRow {
  /** Span name (an op and its node, or a kind of span). */
  name: string;
  /** `fwd`, `bwd`, or the kind of span. */
  cat: string;
  /** Milliseconds per step, summed over threads. */
  msPerStep: number;
  /** Share of the summed thread time of a step. */
  share: number;
}

/**
 * The time per step of every op and other span of a Chrome trace, summed
 * over threads (the micro-batch, phase and step spans, which contain the
 * others, are left out of the shares), biggest first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { opTable } from "./trace.ts";
 * const x = (name: string, cat: string, dur: number, tid = 0) =>
 *   ({ name, cat, ph: "X" as const, ts: 0, dur, pid: 1, tid });
 * const { steps, rows } = opTable({
 *   traceEvents: [
 *     x("step", "step", 5000),
 *     x("micro-batch 0", "micro-batch", 4000), // contains the ops: left out
 *     x("matmul fc", "fwd", 1000),
 *     x("matmul fc", "fwd", 2000, 1), // the same op on another thread
 *     x("wait", "wait", 1000),
 *     x("step", "step", 5000),
 *   ],
 * });
 * assert.equal(steps, 2);
 * assert.deepEqual(rows.map((r) => [r.name, r.cat, r.msPerStep, r.share]), [
 *   ["matmul fc", "fwd", 1.5, 0.75], // 3 ms over 2 steps, 3 of the 4 ms
 *   ["wait", "wait", 0.5, 0.25],
 * ]);
 * ```
 */
export function opTable(trace: { traceEvents: TraceEvent[] }): { steps: number; rows: OpRow[] } {
  const by = new Map<string, OpRow>();
  let steps = 0;
  let total = 0;
  for (const e of trace.traceEvents) {
    if (e.ph !== "X") continue;
    if (e.cat === "step") steps++;
    if (
      e.cat === "step" || e.cat === "micro-batch" || e.cat === "phase" || e.cat === "idle" ||
      e.cat === "dropped"
    ) {
      continue;
    }
    const key = `${e.cat}\u0000${e.name}`;
    let row = by.get(key);
    if (!row) by.set(key, row = { name: e.name, cat: e.cat ?? "", msPerStep: 0, share: 0 });
    row.msPerStep += e.dur! / 1000;
    total += e.dur! / 1000;
  }
  const n = Math.max(1, steps);
  const rows = [...by.values()].sort((a, b) => b.msPerStep - a.msPerStep);
  for (const r of rows) {
    r.share = total > 0 ? r.msPerStep / total : 0;
    r.msPerStep /= n;
  }
  return { steps, rows };
}

/**
 * A row of {@linkcode microBatchTable}: one thread's micro-batches.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { microBatchTable, type ThreadRow } from "./trace.ts";
 * const [row] = microBatchTable({
 *   traceEvents: [
 *     { name: "thread_name", ph: "M", pid: 1, tid: 1, args: { name: "worker 0" } },
 *     { name: "micro-batch 0", cat: "micro-batch", ph: "X", ts: 0, dur: 1450, pid: 1, tid: 1 },
 *   ],
 * });
 * const expected: ThreadRow = {
 *   tid: 1,
 *   name: "worker 0",
 *   count: 1,
 *   p10: 1450,
 *   p50: 1450,
 *   p90: 1450,
 * };
 * assert.deepEqual(row, expected);
 * ```
 */
export interface ThreadRow {
  /** The thread: 0 is the main thread, worker i is i + 1. */
  tid: number;
  /** Its name in the trace ("main thread", "worker 1"). */
  name: string;
  /** Micro-batch spans it ran. */
  count: number;
  /** The 10th percentile of their durations, µs (nearest rank). */
  p10: number;
  /** Their median duration, µs. */
  p50: number;
  /** The 90th percentile of their durations, µs. */
  p90: number;
}

/** The value at rank ⌈p·n⌉ of sorted `xs` (nearest rank); NaN when empty. */
function nearestRank(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!;
}

/** Thread names of a trace's metadata events, by thread. */
function threadNames(trace: { traceEvents: TraceEvent[] }): Map<number, string> {
  const names = new Map<number, string>();
  for (const e of trace.traceEvents) {
    if (e.ph === "M" && e.name === "thread_name") names.set(e.tid, String(e.args?.name ?? e.tid));
  }
  return names;
}

/**
 * Per thread that ran micro-batches, how many and how long: the 10th, 50th
 * and 90th percentile of its micro-batch spans in µs (a micro-batch's last
 * phase, the whole of it for a model without collectives), by thread. The
 * same micro-batch size taking longer on one thread than on the other is a
 * slower core, not a bigger share of the work.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { microBatchTable } from "./trace.ts";
 * const mb = (tid: number, dur: number) =>
 *   ({ name: "micro-batch 0", cat: "micro-batch", ph: "X" as const, ts: 0, dur, pid: 1, tid });
 * const rows = microBatchTable({
 *   traceEvents: [mb(0, 1400), mb(0, 1500), mb(0, 1600), mb(2, 2100)],
 * });
 * assert.deepEqual(rows.map((r) => [r.tid, r.count, r.p10, r.p50, r.p90]), [
 *   [0, 3, 1400, 1500, 1600],
 *   [2, 1, 2100, 2100, 2100],
 * ]);
 * ```
 */
export function microBatchTable(trace: { traceEvents: TraceEvent[] }): ThreadRow[] {
  const durs = new Map<number, number[]>();
  for (const e of trace.traceEvents) {
    if (e.ph !== "X" || e.cat !== "micro-batch") continue;
    let d = durs.get(e.tid);
    if (!d) durs.set(e.tid, d = []);
    d.push(e.dur!);
  }
  const names = threadNames(trace);
  return [...durs].sort(([a], [b]) => a - b).map(([tid, d]) => {
    d.sort((a, b) => a - b);
    return {
      tid,
      name: names.get(tid) ?? `thread ${tid}`,
      count: d.length,
      p10: nearestRank(d, 0.1),
      p50: nearestRank(d, 0.5),
      p90: nearestRank(d, 0.9),
    };
  });
}

/**
 * What {@linkcode stepBalance} finds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type StepBalance, stepBalance } from "./trace.ts";
 * const x = (cat: string, tid: number, ts: number, dur: number) =>
 *   ({ name: cat, cat, ph: "X" as const, ts, dur, pid: 1, tid });
 * const found: StepBalance = stepBalance({
 *   traceEvents: [
 *     // step 0: two threads busy 1,000 and 600 µs; step 1: the main thread alone
 *     x("step", 0, 0, 1000), x("micro-batch", 0, 0, 1000), x("micro-batch", 1, 0, 600),
 *     x("step", 0, 2000, 1000), x("micro-batch", 0, 2000, 900),
 *   ],
 * });
 * assert.deepEqual(found, {
 *   threads: 2,
 *   steps: 1,
 *   soloSteps: 1,
 *   balance: 0.8,
 *   stepMs: 1,
 *   busiestMs: 1,
 * });
 * ```
 */
export interface StepBalance {
  /** Threads that ran micro-batches anywhere in the trace. */
  threads: number;
  /** Steps counted: those in which at least two of them were busy. */
  steps: number;
  /** Steps in which one thread alone was busy (a pool's solo steps), left out. */
  soloSteps: number;
  /**
   * The mean over counted steps of the threads' mean busy time over the
   * busiest thread's: 1 when every thread is busy as long as the busiest;
   * below 1, the share of the threads' time in the step spent waiting for
   * the slowest. NaN when no step was counted.
   */
  balance: number;
  /** The counted steps' mean length, ms. */
  stepMs: number;
  /**
   * The busiest thread's mean busy time in them, ms: the rest of a step it
   * waits, for another thread or for the step to start or end.
   */
  busiestMs: number;
}

// spans of a thread's own work inside a step: micro-batches, their earlier
// phases, reductions and update units (ops are inside micro-batches)
const BUSY = new Set(["micro-batch", "phase", "reduce", "update"]);

/**
 * How evenly a trace's steps kept their threads busy. A step is a span of
 * the main thread's `step` track; a thread's busy time in it is the time of
 * its micro-batch, phase, reduction and update spans that start inside it
 * (clipped to its end). Per step, the mean of the threads' busy times over
 * the largest; the result is its mean over the steps in which at least two
 * threads worked. The threads are those that ran a micro-batch anywhere in
 * the trace.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stepBalance } from "./trace.ts";
 * const span = (cat: string, tid: number, ts: number, dur: number) =>
 *   ({ name: cat, cat, ph: "X" as const, ts, dur, pid: 1, tid });
 * const { balance, steps, threads, stepMs, busiestMs } = stepBalance({
 *   traceEvents: [
 *     // step 0: busy 1,000 and 500 µs (0.75); step 1: 800 and 800 (1)
 *     span("step", 0, 0, 1000), span("micro-batch", 0, 0, 1000), span("micro-batch", 2, 0, 500),
 *     span("step", 0, 2000, 900), span("micro-batch", 0, 2000, 800), span("reduce", 2, 2000, 800),
 *   ],
 * });
 * assert.deepEqual([threads, steps, balance], [2, 2, 0.875]);
 * // steps of 1 and 0.9 ms, the busiest thread busy 1 and 0.8 ms of them
 * assert.deepEqual([stepMs, busiestMs], [0.95, 0.9]);
 * ```
 */
export function stepBalance(trace: { traceEvents: TraceEvent[] }): StepBalance {
  const steps = trace.traceEvents
    .filter((e) => e.ph === "X" && e.cat === "step" && e.tid === 0)
    .map((e) => [e.ts!, e.ts! + e.dur!] as const)
    .sort((a, b) => a[0] - b[0]);
  const tids = [
    ...new Set(
      trace.traceEvents.filter((e) => e.ph === "X" && e.cat === "micro-batch").map((e) => e.tid),
    ),
  ];
  const col = new Map(tids.map((t, i) => [t, i]));
  const busy = steps.map(() => new Float64Array(tids.length));
  for (const e of trace.traceEvents) {
    if (e.ph !== "X" || !BUSY.has(e.cat!) || !col.has(e.tid)) continue;
    // the last step starting at or before the span
    let lo = 0, hi = steps.length - 1, at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (steps[mid]![0] <= e.ts!) (at = mid), (lo = mid + 1);
      else hi = mid - 1;
    }
    if (at < 0 || e.ts! >= steps[at]![1]) continue;
    busy[at]![col.get(e.tid)!]! += Math.min(e.ts! + e.dur!, steps[at]![1]) - e.ts!;
  }
  let sum = 0, counted = 0, solo = 0, stepSum = 0, busiestSum = 0;
  for (const [i, b] of busy.entries()) {
    const working = b.filter((x) => x > 0).length;
    if (working === 1) solo++;
    if (working < 2) continue;
    let max = 0, total = 0;
    for (const x of b) (max = Math.max(max, x)), (total += x);
    sum += total / b.length / max;
    stepSum += steps[i]![1] - steps[i]![0];
    busiestSum += max;
    counted++;
  }
  return {
    threads: tids.length,
    steps: counted,
    soloSteps: solo,
    balance: counted ? sum / counted : NaN,
    stepMs: counted ? stepSum / counted / 1000 : NaN,
    busiestMs: counted ? busiestSum / counted / 1000 : NaN,
  };
}

/** Where a trace's steps spent their time along the critical path, from {@linkcode stepPath}; µs. */
export interface StepPath {
  /** Steps counted: the main thread's `step` spans with a micro-batch inside. */
  steps: number;
  /** The steps' median length (the lower middle; the mean over it is the cost of the slow steps). */
  stepP50: number;
  /** Mean step length. */
  stepMean: number;
  /** 90th percentile of the step length. */
  stepP90: number;
  /** Share of the steps longer than 1.5 times the median. */
  slowShare: number;
  /** Median, over steps, of the step's start to the start of its last micro-batch to start. */
  toLastStart: number;
  /** Median of the last micro-batch's length (the one that ends last). */
  lastMicro: number;
  /**
   * Median of the last micro-batch's end to the first update unit's start (its reduction, waits);
   * this and the next two are NaN when no step has an update inside (the update ran after it).
   */
  toUpdate: number;
  /** Median of the first update unit's start to the last one's end, over all threads. */
  update: number;
  /** Median of the last update unit's end to the step's end. */
  toEnd: number;
  /** Median of a step's end to the next step's start (the runner's caller, the event loop's turn). */
  between: number;
}

const median = (a: number[]): number => {
  if (a.length === 0) return NaN;
  const b = [...a].sort((x, y) => x - y);
  return b[(b.length - 1) >> 1]!;
};

/**
 * The critical path of a trace's steps (a pool's, with the parallel update):
 * for each of the main thread's `step` spans, the time from its start to the
 * start of its last micro-batch (a late worker's wake-up), that last one's
 * length, its end to the first update unit (the reduction and the waits), the
 * update's span over all threads, its end to the step's end, and the gap to
 * the next step; medians over the steps, beside the steps' median, mean and
 * 90th percentile. A step's phases are the spans that start inside it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stepPath } from "./trace.ts";
 * const span = (cat: string, tid: number, ts: number, dur: number) =>
 *   ({ name: cat, cat, ph: "X" as const, ts, dur, pid: 1, tid });
 * const p = stepPath({
 *   traceEvents: [
 *     // a step of 1,000 µs: micro-batches at 10 and 20 (ends 700, 800), update 850-950
 *     span("step", 0, 0, 1000), span("micro-batch", 0, 10, 690), span("micro-batch", 2, 20, 780),
 *     span("update", 0, 850, 50), span("update", 2, 860, 90),
 *     // the next one starts 30 µs after it and is twice as long
 *     span("step", 0, 1030, 2000), span("micro-batch", 0, 1040, 1000),
 *     span("micro-batch", 2, 1050, 1900), span("update", 2, 2960, 40),
 *   ],
 * });
 * assert.equal(p.steps, 2);
 * // medians of two take the smaller: the last micro-batch 780 (and 1,900), to the update 10 (and 50)
 * assert.deepEqual([p.toLastStart, p.lastMicro, p.toUpdate, p.update], [20, 780, 10, 40]);
 * // the second step is more than 1.5 times the median (1,000 µs)
 * assert.deepEqual([p.stepP50, p.stepMean, p.slowShare, p.between], [1000, 1500, 0.5, 30]);
 * ```
 */
export function stepPath(trace: { traceEvents: TraceEvent[] }): StepPath {
  const xs = trace.traceEvents.filter((e) => e.ph === "X").sort((a, b) => a.ts! - b.ts!);
  const steps = xs.filter((e) => e.cat === "step" && e.tid === 0);
  const cols = {
    toLastStart: [] as number[],
    lastMicro: [] as number[],
    toUpdate: [] as number[],
    update: [] as number[],
    toEnd: [] as number[],
  };
  const lengths: number[] = [], between: number[] = [];
  let j = 0;
  for (const [k, s] of steps.entries()) {
    const t0 = s.ts!, t1 = t0 + s.dur!;
    const next = steps[k + 1];
    if (next) between.push(next.ts! - t1);
    while (j < xs.length && xs[j]!.ts! < t0) j++;
    let lastStart = -Infinity, last: TraceEvent | null = null, u0 = Infinity, u1 = -Infinity;
    for (let i = j; i < xs.length && xs[i]!.ts! < t1; i++) {
      const e = xs[i]!;
      if (e.cat === "micro-batch") {
        lastStart = Math.max(lastStart, e.ts!);
        if (!last || e.ts! + e.dur! > last.ts! + last.dur!) last = e;
      } else if (e.cat === "update") {
        u0 = Math.min(u0, e.ts!);
        u1 = Math.max(u1, e.ts! + e.dur!);
      }
    }
    if (!last) continue;
    lengths.push(s.dur!);
    cols.toLastStart.push(lastStart - t0);
    cols.lastMicro.push(last.dur!);
    // a runner that updates after its step (LocalRunner, a pool with the update on the main thread)
    if (u0 === Infinity) continue;
    cols.toUpdate.push(u0 - (last.ts! + last.dur!));
    cols.update.push(u1 - u0);
    cols.toEnd.push(t1 - u1);
  }
  const p50 = median(lengths);
  const sorted = [...lengths].sort((a, b) => a - b);
  return {
    steps: lengths.length,
    stepP50: p50,
    stepMean: lengths.length ? lengths.reduce((a, b) => a + b, 0) / lengths.length : NaN,
    stepP90: lengths.length
      ? sorted[Math.min(sorted.length - 1, Math.floor(0.9 * sorted.length))]!
      : NaN,
    slowShare: lengths.length ? lengths.filter((x) => x > 1.5 * p50).length / lengths.length : NaN,
    toLastStart: median(cols.toLastStart),
    lastMicro: median(cols.lastMicro),
    toUpdate: median(cols.toUpdate),
    update: median(cols.update),
    toEnd: median(cols.toEnd),
    between: median(between),
  };
}
