/**
 * The computation of data-parallel training: {@linkcode GradientShard}
 * computes the loss and parameter gradients of one micro-batch of a
 * mini-batch, reading samples, parameters and batch indices from shared
 * memory.
 * The worker's serve loop and `LocalRunner` both run it, so both paths run
 * the same code.
 *
 * @module
 */
// every op registers itself on import, so the graph can be rebuilt from JSON
import "../../ops/mod.ts";
import { type FloatArray, fmtShape, lookupOp, numel, type Tier } from "../../graph/op.ts";
import { type CollectiveHandler, Executor, type RunOptions } from "../../graph/executor.ts";
import { Graph, type GraphJSON, Node } from "../../graph/graph.ts";
import { makePlan, type Plan } from "../../graph/plan.ts";
import { setAssistScratchSlots, takesHelp } from "../../ops/kernels/assist.ts";
import { fuseChains, fuseGraph } from "../../graph/passes/mod.ts";
import { setWinogradEnabled } from "../../ops/kernels/winograd_wasm.ts";
import {
  arenaMemory,
  arenaScratch,
  sharedWasmArenaBuffer,
} from "../../ops/kernels/elementwise_wasm.ts";
import { namesOf, SPAN, type TraceMemory, type TraceNames, TraceRecorder } from "./trace.ts";

/**
 * Everything a shard needs, posted once when a worker starts; the arrays are shared views.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { allocDataset, initParams, lectureCnn } from "@denograd/denograd";
 * import { GradientShard, type ShardInit } from "./shard.ts";
 * const m = lectureCnn({ channels: 2 });
 * const params = initParams(m.built, { seed: 1 }) as Map<string, Float32Array>;
 * const ds = allocDataset({ name: "blank", count: 8, sampleShape: [1, 28, 28], numClasses: 10 });
 * const init: ShardInit = {
 *   graph: m.graph,
 *   input: m.input,
 *   target: m.target,
 *   loss: m.loss,
 *   grads: Object.entries(m.grads),
 *   params,
 *   images: ds.images,
 *   labels: ds.labels,
 *   sampleSize: 784,
 *   indices: new Uint32Array(8),
 *   microBatch: 4,
 * };
 * const shard = new GradientShard(init);
 * assert.equal(shard.micro, 4);
 * assert.equal(shard.count(8), 2); // two micro-batches of 4
 * assert.equal(shard.phases, 1); // no collectives
 * assert.equal(shard.paramFloats, [...params.values()].reduce((n, p) => n + p.length, 0));
 * ```
 */
export interface ShardInit {
  /** Forward and backward graph. */
  graph: GraphJSON;
  /** Name of the sample input node, shape `[-1, ...sampleShape]`. */
  input: string;
  /** Name of the label input node, shape `[-1]`. */
  target: string;
  /** Name of the scalar loss node (mean over the shard). */
  loss: string;
  /** `[parameter, gradient node]` pairs, in the order of the gradient region. */
  grads: [string, string][];
  /** Parameter buffers by name, used in place (no copy). */
  params: Map<string, Float32Array>;
  /** All samples, `sampleSize` floats each. */
  images: Float32Array;
  /** The class id of every sample. */
  labels: Uint8Array | Float32Array;
  /** Floats per sample. */
  sampleSize: number;
  /** Target values per sample (default 1): a class id, or a regression's outputs. */
  targetSize?: number;
  /** Sample indices of the current mini-batch, written by the main thread before each step. */
  indices: Uint32Array;
  /** Kernel tier (default: the process-wide one). */
  tier?: Tier;
  /** Samples per micro-batch (default: {@linkcode defaultMicroBatch} of the batch and the model's parameter count). */
  microBatch?: number;
  /**
   * Smallest micro-batch at the end of a step (default: the micro-batch size, an even cut, or
   * {@linkcode MICRO_BATCH} with the default micro-batch size); see {@linkcode cutBatch}.
   */
  microTail?: number;
  /** Run the fusion pass over the graph (default true; see `fuseGraph`). */
  fuse?: boolean;
  /** Winograd convolutions on the wasm tier (default true); false keeps im2col + GEMM. Set per thread. */
  winograd?: boolean;
  /** This thread's span buffer, when profiling. */
  trace?: TraceMemory;
  /**
   * Put each executor's arena in a shared WebAssembly memory
   * (`sharedWasmArenaBuffer`), so that another thread that is posted it
   * ({@linkcode GradientShard.arenaFor}) can run kernels on it; default
   * false (an unshared memory). The bits are the same either way.
   */
  sharedArena?: boolean;
  /**
   * With {@linkcode ShardInit.sharedArena}: the threads that may help this
   * one's kernels (the assist board's), for which kernels with per-thread
   * scratch reserve it in the arena (`setAssistScratchSlots`); default 1.
   */
  assistThreads?: number;
}

/**
 * Default samples per micro-batch (one executor run). A mini-batch runs as
 * micro-batches of this size whatever the thread count, which bounds the
 * memory of a plan and keeps activations in cache: the lecture CNN's
 * [32, 32, 26, 26] activations (2.8 MB) fit a 4 MB L2, and 32 ran 3–5% faster
 * than 64 on one core of a Xeon (bench:train --micro measures it).
 *
 * The even cut stays the default: on a 2-core EPYC VM (`bench:train --ab`,
 * 21 alternating reps, median of B/A), a smaller last micro-batch did not pay
 * for its extra leaf and smaller GEMMs. Lecture CNN at batch 64, against
 * 32/32: tail 16 0.92 (1 thread) / 0.99 (2 threads), tail 8 0.88 / 0.96,
 * micro 16 0.95 / 1.01; at batch 256: tail 16 0.99 / 0.97, tail 8 0.97 /
 * 0.96, micro 64 1.02 / 1.01. mnist-net at batch 256: tail 16 0.96 / 1.04,
 * tail 8 — / 1.01; at batch 64 tail 16 0.97 / 0.97. With a `yes` process
 * beside the run (`--busy 1`), more pieces cost more on 2 threads: lecture CNN
 * batch 64 tail 16 0.86, micro 16 0.85; batch 256 tail 16 0.91. A model of
 * the step (pieces claimed in turn, ~60 µs a leaf) agrees: a smaller tail
 * pays only when one thread is ~20% slower than the other, and then ≤ 5%.
 *
 * Re-measured with sides taking turns every 10 steps (`--chunk 10`, 9 reps),
 * lecture CNN at batch 256 against 32: micro 64 1.019 (1 thread) / 1.002
 * (2 threads), busy 2 threads 0.99; one lone small last micro-batch (8 × 31
 * + 8, sized to absorb the ~5% speed gap of the two vCPUs) 0.979 / 0.976.
 * With threads 5–10% apart the wait at the end of a step is about that gap
 * times half the step whatever the piece size, until pieces are a few
 * samples; what a finer cut saves there, its extra micro-batches cost. A
 * model with many parameters takes larger micro-batches at large batches:
 * see {@linkcode defaultMicroBatch}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cutBatch, defaultMicroBatch, MICRO_BATCH } from "./shard.ts";
 * assert.equal(defaultMicroBatch(256, 54_410), MICRO_BATCH); // the lecture CNN
 * const starts = new Int32Array(9);
 * assert.equal(cutBatch(256, MICRO_BATCH, MICRO_BATCH, starts), 8); // 8 × 32
 * ```
 */
export const MICRO_BATCH = 32;

/**
 * Micro-batch size of a model with many parameters (at least
 * {@linkcode LARGE_MODEL_FLOATS}) at a batch of at least four such
 * micro-batches: see {@linkcode defaultMicroBatch}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultMicroBatch, LARGE_MICRO_BATCH, LARGE_MODEL_FLOATS, MICRO_BATCH } from "./shard.ts";
 * assert.equal(defaultMicroBatch(4 * LARGE_MICRO_BATCH, LARGE_MODEL_FLOATS), LARGE_MICRO_BATCH);
 * assert.equal(defaultMicroBatch(4 * LARGE_MICRO_BATCH - 1, LARGE_MODEL_FLOATS), MICRO_BATCH);
 * ```
 */
export const LARGE_MICRO_BATCH = 64;

/**
 * Parameter floats (the gradient region a micro-batch writes or adds into)
 * from which {@linkcode defaultMicroBatch} takes larger micro-batches: 2^18
 * floats, 1 MB, the L2 cache of one core of the Zen 4 this was measured on.
 * Below it the per-micro-batch work over the parameters stays in cache.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultMicroBatch, LARGE_MICRO_BATCH, LARGE_MODEL_FLOATS, MICRO_BATCH } from "./shard.ts";
 * assert.equal(4 * LARGE_MODEL_FLOATS, 1 << 20); // bytes: 1 MB
 * assert.equal(defaultMicroBatch(256, LARGE_MODEL_FLOATS), LARGE_MICRO_BATCH);
 * assert.equal(defaultMicroBatch(256, LARGE_MODEL_FLOATS - 1), MICRO_BATCH);
 * ```
 */
export const LARGE_MODEL_FLOATS = 1 << 18;

/**
 * The micro-batch size for a batch of `n` samples of a model with
 * `paramFloats` trainable parameter floats, when the caller gives none:
 * {@linkcode MICRO_BATCH}, or {@linkcode LARGE_MICRO_BATCH} when the model has
 * at least {@linkcode LARGE_MODEL_FLOATS} and the batch holds at least four
 * such micro-batches. The end of the step is then cut down to pieces of
 * {@linkcode MICRO_BATCH} (a tail of 32 in {@linkcode cutBatch}: 256 is
 * 64, 64, 64, 32, 32), so threads still finish close together. It depends
 * on the batch and the model only, never on the thread count, so every
 * thread count gets the same cut and the same bits.
 *
 * Why: each micro-batch streams the parameter-sized buffers (its leaf of the
 * reduction tree, w · g written or added into a shared region, and the
 * weight-gradient GEMMs' outputs), so a model whose parameters overflow the
 * cache pays per micro-batch, not per sample. mnist-net (1.2 M parameters,
 * 4.8 MB a region) at batch 256 on the 2-core EPYC VM, `bench:train --ab
 * "micro=32 | micro=64" --chunk 3`, 7 alternating reps, median of B/A:
 * 1 thread 1.055 (7/7 ahead), 2 threads 1.08 (7/7), with `--busy 1` 1.054 /
 * 1.044 (5/7); a profile shows the reduction at 17.5 against 8.5 ms a step
 * and fc1's GEMMs 6 ms less. Once the leaves ran in wasm SIMD (3eba0ad)
 * that even cut of 64 still won on 1 thread, 1.042 (`--chunk 2`, 9 reps,
 * 9/9), but no longer on 2, 0.987 (4/9): four pieces leave a longer wait at
 * the end. 64, 64, 64, 32, 32 against 32: 1 thread 1.026 (9/9), 2 threads
 * 1.034 (6/9) and again 1.031 (11 reps, 11/11: 1.01–1.10); busy 2 threads
 * 0.988 (3/7) and again 1.005 (7/11), 2 threads still 1.22× one there.
 * The lecture CNN (54 k parameters, 218 kB a region) gains nothing from
 * 64: 1.019 / 1.002, busy 2 threads 0.99.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultMicroBatch } from "./shard.ts";
 * assert.equal(defaultMicroBatch(256, 54_410), 32); // lecture CNN
 * assert.equal(defaultMicroBatch(256, 1_199_882), 64); // mnist-net
 * assert.equal(defaultMicroBatch(64, 1_199_882), 32); // two micro-batches of 64 would not share out
 * ```
 */
export function defaultMicroBatch(n: number, paramFloats: number): number {
  return paramFloats >= LARGE_MODEL_FLOATS && n >= 4 * LARGE_MICRO_BATCH
    ? LARGE_MICRO_BATCH
    : MICRO_BATCH;
}

interface Bound {
  ex: Executor;
  /** The executor's input and target buffers, written in place. */
  x: FloatArray;
  y: FloatArray;
}

/** A collective node of the graph and where its per-micro-batch partial values live. */
interface Collective {
  node: number;
  input: number;
  /** Collectives upstream of it: it is summed after phase `level`. */
  level: number;
  /** Offset of its values in a micro-batch's partials. */
  offset: number;
  size: number;
  /** A VJP's collective: sums cotangents weighted as the micro-batch losses. */
  cotangent: boolean;
}

// each micro-batch size gets its own plan and arena; a step sees at most two
// (the full size and the remainder), but a caller feeding many different
// batch sizes must not grow memory forever
const MAX_PLANS = 8;

/**
 * The collective nodes of `graph` (ops with `collective` set), in node order,
 * and the number of phases a step runs in (one more than the deepest chain
 * of collectives).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { batchSum, Graph, mul, sum } from "@denograd/denograd";
 * import { collectivesOf } from "./shard.ts";
 * const g = new Graph();
 * const x = g.input("x", [-1, 2]);
 * const s1 = batchSum(sum(x, { axes: [0] })); // a sum over the whole batch
 * batchSum(sum(mul(x, s1), { axes: [0] })); // needs s1 first: a second collective after it
 * const { list, phases, size } = collectivesOf(g);
 * assert.deepEqual(list.map((c) => [c.level, c.offset, c.size]), [[0, 0, 2], [1, 2, 2]]);
 * assert.equal(phases, 3); // up to s1, up to the second, then loss and gradients
 * assert.equal(size, 4); // partial values a micro-batch stores
 * assert.equal(collectivesOf(new Graph()).phases, 1);
 * ```
 */
export function collectivesOf(graph: Graph): { list: Collective[]; phases: number; size: number } {
  const depth = new Int32Array(graph.nodes.length);
  const isCollective = new Uint8Array(graph.nodes.length);
  const list: Collective[] = [];
  let size = 0;
  let phases = 1;
  graph.nodes.forEach((r, i) => {
    let d = 0;
    for (const j of r.inputs) d = Math.max(d, depth[j]! + isCollective[j]!);
    depth[i] = d;
    if (r.op === "input" || r.op === "param" || !lookupOp(r.op).collective) return;
    isCollective[i] = 1;
    const n = numel(graph.nodes[r.inputs[0]!]!.shape);
    list.push({
      node: i,
      input: r.inputs[0]!,
      level: d,
      offset: size,
      size: n,
      cotangent: r.attrs.cotangent === true,
    });
    size += n;
    phases = Math.max(phases, d + 2);
  });
  return { list, phases, size };
}

/**
 * The cut of a batch of `n` samples into micro-batches: `micro` samples each,
 * except that the last ones shrink, halving what is left down to `tail`
 * samples, so the end of a step is shared out in small pieces (with `tail`
 * equal to `micro`, every micro-batch has `micro` samples but the last).
 * The cut depends on nothing else: the same for every thread count. Writes
 * the start of each micro-batch and `n` after the last into `starts`;
 * returns their number.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { cutBatch } from "./shard.ts";
 * const starts = new Int32Array(8);
 * assert.equal(cutBatch(80, 32, 32, starts), 3); // 32, 32, 16
 * assert.deepEqual([...starts.subarray(0, 4)], [0, 32, 64, 80]);
 * assert.equal(cutBatch(64, 32, 8, starts), 4); // 32, 16, 8, 8
 * ```
 */
export function cutBatch(n: number, micro: number, tail: number, starts: Int32Array): number {
  let k = 0, at = 0;
  while (at < n) {
    const rem = n - at;
    const s = tail >= micro
      ? Math.min(rem, micro)
      : Math.min(rem, micro, Math.max(tail, Math.ceil(rem / 2)));
    starts[k++] = at;
    at += s;
  }
  starts[k] = n;
  return k;
}

/**
 * The most micro-batches a batch of at most `maxBatch` is cut into, with
 * `micro` and `tail` fixed or, as functions, chosen per batch size.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { maxMicroBatches } from "./shard.ts";
 * assert.equal(maxMicroBatches(64, 32, 32), 2);
 * // 64 a micro-batch from 256 on, 32 below: 255 is cut into 8
 * assert.equal(maxMicroBatches(256, (n) => (n >= 256 ? 64 : 32), 32), 8);
 * ```
 */
export function maxMicroBatches(
  maxBatch: number,
  micro: number | ((n: number) => number),
  tail: number | ((n: number) => number),
): number {
  const starts = new Int32Array(maxBatch + 1);
  let most = 1;
  for (let n = 1; n <= maxBatch; n++) {
    const m = typeof micro === "number" ? micro : micro(n);
    const t = typeof tail === "number" ? tail : tail(n);
    most = Math.max(most, cutBatch(n, m, t, starts));
  }
  return most;
}

/**
 * Loss and gradients of the micro-batches of a mini-batch, in place on
 * shared memory. A graph with collective nodes (`batch_sum`) runs a step in
 * phases: phase `p` runs each micro-batch up to the inputs of the
 * collectives at depth `p` and stores them in the partials, whose sums (in
 * micro-batch order) the next phases read; the last phase gives the loss and
 * gradients. Every phase recomputes the forward pass from the start, so no
 * activations are kept between phases.
 *
 * @example
 * ```ts
 * import { allocDataset, initParams, lectureCnn } from "@denograd/denograd";
 * import assert from "node:assert/strict";
 * import { GradientShard } from "./shard.ts";
 * const m = lectureCnn({ channels: 4 });
 * const params = initParams(m.built, { seed: 1 }) as Map<string, Float32Array>;
 * const ds = allocDataset({ name: "blank", count: 20, sampleShape: [1, 28, 28], numClasses: 10 });
 * const indices = new Uint32Array(64);
 * const shard = new GradientShard({
 *   ...m,
 *   grads: Object.entries(m.grads),
 *   params,
 *   images: ds.images,
 *   labels: ds.labels,
 *   sampleSize: 784,
 *   indices,
 * });
 * indices.set([4, 8, 15, 16]);
 * // micro-batch 0 of a batch of 4, at step 0: [loss, ...gradients]
 * const [loss, ...grads] = shard.runFinal(0, 0, 4, new Float32Array(0));
 * assert.ok(Number.isFinite(loss![0]!) && grads.length === 4);
 * ```
 */
export class GradientShard {
  /** Samples per micro-batch as given, or null for {@linkcode defaultMicroBatch}'s choice per batch. */
  readonly micro: number | null;
  /** Trainable parameter floats: one gradient region. */
  readonly paramFloats: number;
  private starts: Int32Array;
  private cutFor = -1;
  private cutCount = 0;
  /** Phases of a step: 1 without collectives. */
  readonly phases: number;
  /** Floats of one micro-batch's collective partials. */
  readonly partialSize: number;
  private init: ShardInit;
  private graph: Graph;
  private outputs: Node[];
  private collectives: Collective[];
  /** Per phase before the last: the collective inputs it computes. */
  private phaseOutputs: number[][];
  private byNode = new Map<number, Collective>();
  private plans = new Map<number, Bound>();
  // what the collective handler reads, set before each run
  private curK = 0;
  private curN = 1;
  private curPartials: Float32Array = new Float32Array(0);
  private handler: CollectiveHandler;
  private runOpts: RunOptions;
  private lastBound = -1; // the micro-batch size bound last: already the most recent in `plans`
  /** Records this thread's spans when profiling, else null. */
  readonly recorder: TraceRecorder | null;

  /** Rebuilds the graph and checks every name and size against the buffers. */
  constructor(init: ShardInit) {
    setWinogradEnabled(init.winograd !== false);
    this.init = init;
    this.micro = init.microBatch === undefined ? null : Math.max(1, init.microBatch);
    let floats = 0;
    for (const [param] of init.grads) floats += init.params.get(param)?.length ?? 0;
    this.paramFloats = floats;
    this.starts = new Int32Array(init.indices.length + 2);
    this.graph = Graph.fromJSON(init.graph);
    const g = this.graph;
    for (const [what, name] of [["input", init.input], ["target", init.target]]) {
      if (!g.has(name!) || g.node(name!).op !== "input") {
        throw new Error(`GradientShard: ${what} "${name}" is not an input node of the graph`);
      }
    }
    const x = g.node(init.input);
    if (x.shape[0] !== -1 || numel(x.shape.slice(1)) !== init.sampleSize) {
      throw new Error(
        `GradientShard: input "${init.input}" has shape ${
          fmtShape(x.shape)
        } but the data has ${init.sampleSize} floats per sample (expected [N, ...] with that many)`,
      );
    }
    const t = g.node(init.target);
    const ts = init.targetSize ?? 1;
    if (t.shape[0] !== -1 || numel(t.shape.slice(1)) !== ts) {
      throw new Error(
        `GradientShard: target "${init.target}" has shape ${
          fmtShape(t.shape)
        }, expected [N, ...] with ${ts} value(s) per sample`,
      );
    }
    for (const other of g.inputs()) {
      if (other.name !== init.input && other.name !== init.target) {
        throw new Error(`GradientShard: the graph has input "${other.name}" that is never fed`);
      }
    }
    if (!g.has(init.loss)) throw new Error(`GradientShard: the graph has no loss "${init.loss}"`);
    const loss = g.node(init.loss);
    if (numel(loss.shape) !== 1 || loss.shape.includes(-1)) {
      throw new Error(
        `GradientShard: loss "${init.loss}" has shape ${fmtShape(loss.shape)}, expected a scalar`,
      );
    }
    this.outputs = [loss];
    for (const [param, node] of init.grads) {
      if (!g.has(node)) {
        throw new Error(`GradientShard: the graph has no gradient node "${node}" for "${param}"`);
      }
      const p = init.params.get(param);
      if (!p) throw new Error(`GradientShard: no buffer for parameter "${param}"`);
      const gn = g.node(node);
      if (numel(gn.shape) !== p.length || gn.shape.includes(-1)) {
        throw new Error(
          `GradientShard: gradient "${node}" has shape ${
            fmtShape(gn.shape)
          } but parameter "${param}" has ${p.length} elements`,
        );
      }
      this.outputs.push(gn);
    }
    if (init.fuse !== false) {
      // the fused graph keeps the loss and gradient nodes under their names
      const names = this.outputs.map((o) => o.name);
      this.graph = fuseChains(fuseGraph(g, names), names);
      this.outputs = names.map((name) => this.graph.node(name));
    }
    const { list, phases, size } = collectivesOf(this.graph);
    this.collectives = list;
    this.phases = phases;
    this.partialSize = size;
    this.phaseOutputs = Array.from(
      { length: phases - 1 },
      (_, p) => list.filter((c) => c.level === p).map((c) => c.input),
    );
    for (const c of list) this.byNode.set(c.node, c);
    this.handler = (node, _local, out) => this.collective(node, out);
    this.recorder = init.trace ? new TraceRecorder(init.trace) : null;
    this.runOpts = {
      training: true,
      step: 0,
      sampleOffset: 0,
      outputs: undefined,
      collective: list.length > 0 ? this.handler : undefined,
      onKernel: this.recorder?.kernel,
      stop: undefined,
    };
  }

  /** Whether the graph this shard runs (after fusion) has a node whose op passes `test`. */
  runsOp(test: (op: string) => boolean): boolean {
    return this.graph.nodes.some((node) => test(node.op));
  }

  /**
   * Whether some node of this shard's graph, planned for micro-batches of
   * `micro` samples, runs a kernel that takes help at its sizes
   * (`takesHelp`): a worker pool shares arenas only then.
   */
  takesHelpAt(micro: number): boolean {
    const plan = makePlan(this.graph, { batch: micro, outputs: this.planOutputs() });
    return this.graph.nodes.some((node, i) =>
      plan.offsets[i]! >= 0 &&
      takesHelp(node.op, node.inputs.map((j) => plan.shapes[j]!), node.attrs, plan.shapes[i]!)
    );
  }

  /** Names and passes of the nodes this shard runs (the graph after fusion), for a trace. */
  traceNames(): TraceNames {
    return namesOf({ graph: this.graph.toJSON(), loss: this.outputs[0]!.name });
  }

  /**
   * Phase `phase` (before the last) of micro-batch `k` of the batch of `n` in
   * `indices` at `step`: writes its collective inputs of that depth into
   * `partials` at `k · partialSize`.
   */
  runPhase(step: number, phase: number, k: number, n: number, partials: Float32Array): void {
    const t0 = this.recorder ? performance.now() : 0;
    const outs = this.runMicro(step, k, n, partials, this.phaseOutputs[phase]!);
    this.recorder?.span(SPAN.PHASE, phase * 65536 + k, t0, performance.now());
    const base = k * this.partialSize;
    let o = 0;
    for (const c of this.collectives) {
      if (c.level === phase) partials.set(outs[o++]!, base + c.offset);
    }
  }

  /**
   * The last phase of micro-batch `k` of the batch of `n`: the executor's
   * output buffers `[loss, ...gradients]`, means over the micro-batch (views
   * valid until the next run). `stop`, asked before each node, abandons the
   * run when it returns true (another thread published this micro-batch
   * first): the buffers then hold a partial result, to be discarded. With
   * `stop` the caller records the micro-batch's span (it knows whether the
   * result was kept).
   */
  runFinal(
    step: number,
    k: number,
    n: number,
    partials: Float32Array,
    stop?: () => boolean,
  ): FloatArray[] {
    const t0 = this.recorder ? performance.now() : 0;
    const outs = this.runMicro(step, k, n, partials, undefined, stop);
    if (!stop) this.recorder?.span(SPAN.MICRO, k, t0, performance.now());
    return outs;
  }

  /** Samples in micro-batch `k` of a batch of `n` (0 past the last). */
  samples(k: number, n: number): number {
    return this.size(k, n);
  }

  /** The weight of micro-batch `k` of a batch of `n` in the batch mean: its share of the samples. */
  weight(k: number, n: number): number {
    return this.size(k, n) / n;
  }

  /** Samples per micro-batch of a batch of `n`: the given size, or {@linkcode defaultMicroBatch}'s. */
  microFor(n: number): number {
    return this.micro ?? defaultMicroBatch(n, this.paramFloats);
  }

  /** Smallest micro-batch at the end of a batch of `n` (see {@linkcode cutBatch}). */
  tailFor(n: number): number {
    const micro = this.microFor(n);
    const tail = this.init.microTail ?? (this.micro === null ? MICRO_BATCH : micro);
    return Math.max(1, Math.min(micro, tail));
  }

  /** The number of micro-batches of a batch of `n` (see {@linkcode cutBatch}). */
  count(n: number): number {
    if (n !== this.cutFor) {
      this.cutCount = cutBatch(n, this.microFor(n), this.tailFor(n), this.starts);
      this.cutFor = n;
      // plan every micro-batch size of this cut now: which thread claims which
      // micro-batch must not decide when a plan is built, or a later step of the
      // same batch size could allocate on the thread that first claims a new size
      for (let k = 0; k < this.cutCount; k++) this.bind(this.starts[k + 1]! - this.starts[k]!);
    }
    return this.cutCount;
  }

  /**
   * The distinct micro-batch sizes of the cut of a batch of `n`, largest
   * first (the micro-batch size, then a smaller tail's).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { allocDataset, initParams, lectureCnn } from "@denograd/denograd";
   * import { GradientShard } from "./shard.ts";
   * const m = lectureCnn({ channels: 2 });
   * const params = initParams(m.built, { seed: 1 }) as Map<string, Float32Array>;
   * const ds = allocDataset({ name: "blank", count: 8, sampleShape: [1, 28, 28], numClasses: 10 });
   * const shard = new GradientShard({
   *   graph: m.graph, input: m.input, target: m.target, loss: m.loss,
   *   grads: Object.entries(m.grads), params, images: ds.images, labels: ds.labels,
   *   sampleSize: 784, indices: new Uint32Array(8), microBatch: 4, microTail: 2,
   * });
   * assert.deepEqual(shard.cutSizes(8), [4, 2]); // 4, 2, 2
   * assert.deepEqual(shard.cutSizes(4), [2]); // 2, 2: the last micro-batch is cut down to the tail
   * ```
   */
  cutSizes(n: number): number[] {
    const count = cutBatch(n, this.microFor(n), this.tailFor(n), this.starts);
    const sizes = new Set<number>();
    for (let k = 0; k < count; k++) sizes.add(this.starts[k + 1]! - this.starts[k]!);
    this.cutFor = -1; // `starts` was overwritten: count() cuts again
    return [...sizes].sort((a, b) => b - a);
  }

  /** Most micro-batches of a batch of at most `maxBatch`. */
  maxCount(maxBatch: number): number {
    return maxMicroBatches(maxBatch, (n) => this.microFor(n), (n) => this.tailFor(n));
  }

  private start(k: number, n: number): number {
    this.count(n);
    return this.starts[k]!;
  }

  private size(k: number, n: number): number {
    const c = this.count(n);
    return k < c ? this.starts[k + 1]! - this.starts[k]! : 0;
  }

  /** A collective's value for the current micro-batch: its partials summed in micro-batch order. */
  private collective(node: number, out: FloatArray): void {
    const c = this.byNode.get(node)!;
    const parts = this.curPartials;
    const n = this.curN;
    const count = this.count(n);
    const stride = this.partialSize;
    for (let j = 0; j < c.size; j++) {
      let s = 0;
      if (c.cotangent) {
        // each micro-batch's gradients are later weighted by its share w_k:
        // Σ_i w_i · dy_i, handed to micro-batch k as that over w_k
        for (let i = 0; i < count; i++) s += this.weight(i, n) * parts[i * stride + c.offset + j]!;
        s = s / this.weight(this.curK, n);
      } else {
        for (let i = 0; i < count; i++) s += parts[i * stride + c.offset + j]!;
      }
      out[j] = s;
    }
  }

  /** Runs micro-batch k of the batch through the plan for its size. */
  private runMicro(
    step: number,
    k: number,
    n: number,
    partials: Float32Array,
    outputs: number[] | undefined,
    stop?: () => boolean,
  ): FloatArray[] {
    const { init } = this;
    const start = this.start(k, n);
    const m = this.size(k, n);
    if (!(Number.isInteger(k) && k >= 0 && m > 0)) {
      throw new Error(`GradientShard: no micro-batch ${k} in a batch of ${n}`);
    }
    const b = this.bind(m);
    const ss = init.sampleSize;
    const ts = init.targetSize ?? 1;
    const count = init.labels.length / ts;
    // copied by offsets into the executor's input buffers: no view per sample
    const { images, labels } = init;
    const x = b.x, y = b.y;
    for (let i = 0; i < m; i++) {
      const idx = init.indices[start + i]!;
      if (idx >= count) {
        throw new Error(
          `GradientShard: sample index ${idx} is outside the data (${count} samples)`,
        );
      }
      copyFloats(images, idx * ss, x, i * ss, ss);
      if (ts === 1) y[i] = labels[idx]!;
      else copyFloats(labels, idx * ts, y, i * ts, ts);
    }
    b.ex.changed(init.input);
    b.ex.changed(init.target);
    this.curK = k;
    this.curN = n;
    this.curPartials = partials;
    // the main thread updated the shared parameters since the last run
    b.ex.invalidate();
    // one options object, reused, so that a run allocates nothing
    const o = this.runOpts;
    o.step = step;
    o.sampleOffset = start;
    o.outputs = outputs;
    o.stop = stop;
    return b.ex.run(undefined, o);
  }

  /**
   * Builds the plan for micro-batches of `micro` samples now (unless it is
   * built) and returns its executor's arena: the shared
   * `WebAssembly.Memory` to post to a helper thread, and the byte offset of
   * the arena's kernel scratch, which the helper passes to
   * `adoptArenaMemory(memory, scratchStart)`. Null unless
   * {@linkcode ShardInit.sharedArena} is set and the arena is a wasm memory
   * (not where WebAssembly SIMD is missing). The shard keeps a plan per
   * micro-batch size for as long as a step's cut uses it (at most 8 sizes).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { allocDataset, initParams, lectureCnn } from "@denograd/denograd";
   * import { GradientShard } from "./shard.ts";
   * const m = lectureCnn({ channels: 2 });
   * const params = initParams(m.built, { seed: 1 }) as Map<string, Float32Array>;
   * const ds = allocDataset({ name: "blank", count: 8, sampleShape: [1, 28, 28], numClasses: 10 });
   * const init = {
   *   graph: m.graph, input: m.input, target: m.target, loss: m.loss,
   *   grads: Object.entries(m.grads), params, images: ds.images, labels: ds.labels,
   *   sampleSize: 784, indices: new Uint32Array(8), microBatch: 4,
   * };
   * const a = new GradientShard({ ...init, sharedArena: true }).arenaFor(4);
   * assert.ok(a === null || a.memory.buffer instanceof SharedArrayBuffer);
   * assert.equal(new GradientShard(init).arenaFor(4), null); // unshared by default
   * ```
   */
  arenaFor(micro: number): { memory: WebAssembly.Memory; scratchStart: number } | null {
    if (!(Number.isInteger(micro) && micro > 0)) {
      throw new Error(
        `GradientShard.arenaFor: micro-batch size ${micro} is not a positive integer`,
      );
    }
    if (!this.init.sharedArena) return null;
    const buf = this.bind(micro).ex.arenaBuffer;
    const memory = arenaMemory(buf), scratch = arenaScratch(buf);
    return memory && scratch ? { memory, scratchStart: scratch.byteOffset } : null;
  }

  // what a plan must compute: the outputs, then the collectives' inputs
  private planOutputs(): Node[] {
    return [...this.outputs, ...this.collectives.map((c) => new Node(this.graph, c.input))];
  }

  private bind(n: number): Bound {
    let b = this.plans.get(n);
    if (b && n === this.lastBound) return b;
    this.lastBound = n;
    if (b) {
      // refresh its place as the most recently used
      this.plans.delete(n);
      this.plans.set(n, b);
      return b;
    }
    if (this.plans.size >= MAX_PLANS) this.plans.delete(this.plans.keys().next().value!);
    const outputs = this.planOutputs();
    const slots = setAssistScratchSlots(this.init.sharedArena ? this.init.assistThreads ?? 1 : 1);
    let plan: Plan;
    try {
      plan = makePlan(this.graph, { batch: n, outputs });
    } finally {
      setAssistScratchSlots(slots);
    }
    const ex = new Executor(plan, {
      params: this.init.params,
      tier: this.init.tier,
      allocate: this.init.sharedArena ? sharedWasmArenaBuffer : undefined,
    });
    b = { ex, x: ex.input(this.init.input), y: ex.input(this.init.target) };
    this.plans.set(n, b);
    return b;
  }
}

/** Copies `len` values of `src` from `from` into `dst` at `to`, by offsets (no view made). */
function copyFloats(
  src: ArrayLike<number>,
  from: number,
  dst: FloatArray,
  to: number,
  len: number,
): void {
  for (let j = 0; j < len; j++) dst[to + j] = src[from + j]!;
}
