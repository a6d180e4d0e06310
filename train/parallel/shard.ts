/**
 * The computation of data-parallel training: {@linkcode GradientShard}
 * computes the loss and parameter gradients of one contiguous shard of a
 * mini-batch, reading samples, parameters and batch indices from shared
 * memory and writing its gradient into its own region of a shared buffer.
 * The worker's serve loop and `LocalRunner` both run it, so both paths run
 * the same code.
 *
 * @module
 */
// every op registers itself on import, so the graph can be rebuilt from JSON
import "../../ops/mod.ts";
import { fmtShape, numel, type Tier } from "../../graph/op.ts";
import { Executor } from "../../graph/executor.ts";
import { Graph, type GraphJSON } from "../../graph/graph.ts";
import { makePlan } from "../../graph/plan.ts";

/** Everything a shard needs, posted once when a worker starts; the arrays are shared views. */
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
  /** This shard's gradient region: every gradient of `grads`, back to back. */
  gradients: Float32Array;
  /** One element: this shard's mean loss. */
  lossOut: Float64Array;
  /** Kernel tier (default: the process-wide one). */
  tier?: Tier;
  /** Samples per executor run (default {@linkcode MICRO_BATCH}). */
  microBatch?: number;
}

/**
 * Default samples per executor run. A larger shard runs in pieces this size
 * and their gradients are averaged, which bounds the memory of a plan and
 * keeps activations in cache: the lecture CNN's [32, 32, 26, 26] activations
 * (2.8 MB) fit a 4 MB L2, and 32 ran 3–5% faster than 64 on one core of a
 * Xeon (bench:train --micro measures it).
 */
export const MICRO_BATCH = 32;

interface Bound {
  ex: Executor;
  x: Float32Array;
  y: Float32Array;
}

// each shard size gets its own plan and arena; an epoch sees only a few sizes,
// but a caller feeding many different batch sizes must not grow memory forever
const MAX_PLANS = 8;

/**
 * Loss and gradients of one shard of a mini-batch, in place on shared memory.
 *
 * @example
 * ```ts
 * import { allocDataset, initParams, lectureCnn } from "@denograd/denograd";
 * import { GradientShard, type ShardInit } from "./shard.ts";
 * const m = lectureCnn({ channels: 4 });
 * const params = initParams(m.built, { seed: 1 }) as Map<string, Float32Array>;
 * const ds = allocDataset({ name: "blank", count: 20, sampleShape: [1, 28, 28], numClasses: 10 });
 * const grads = Object.entries(m.grads);
 * const size = grads.reduce((n, [p]) => n + params.get(p)!.length, 0);
 * const init: ShardInit = {
 *   ...m,
 *   grads,
 *   params,
 *   images: ds.images,
 *   labels: ds.labels,
 *   sampleSize: 784,
 *   indices: new Uint32Array(64),
 *   gradients: new Float32Array(size),
 *   lossOut: new Float64Array(1),
 * };
 * const shard = new GradientShard(init);
 * init.indices.set([4, 8, 15, 16]);
 * const loss = shard.run(0, 0, 4); // the gradients are now in init.gradients
 * console.log(loss === init.lossOut[0], init.gradients.some((g) => g !== 0)); // true true
 * ```
 */
export class GradientShard {
  private init: ShardInit;
  private graph: Graph;
  private outputs: ReturnType<Graph["node"]>[];
  private plans = new Map<number, Bound>();

  /** Rebuilds the graph and checks every name and size against the buffers. */
  constructor(init: ShardInit) {
    this.init = init;
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
    let total = 0;
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
      total += p.length;
    }
    if (init.gradients.length !== total) {
      throw new Error(
        `GradientShard: the gradient region holds ${init.gradients.length} floats, the gradients need ${total}`,
      );
    }
  }

  /**
   * Runs the samples `indices[start..end)` at `step`, writes the shard-mean
   * gradients into the gradient region and the loss into `lossOut[0]`, and
   * returns the loss.
   */
  run(step: number, start: number, end: number): number {
    const { init } = this;
    const n = end - start;
    if (!(Number.isInteger(start) && Number.isInteger(end) && n > 0 && start >= 0)) {
      throw new Error(`GradientShard: bad shard [${start}, ${end})`);
    }
    const micro = Math.max(1, init.microBatch ?? MICRO_BATCH);
    let loss = 0;
    for (let s = 0; s < n; s += micro) {
      const m = Math.min(micro, n - s);
      // each piece's loss and gradients are means over its m samples
      const w = m / n;
      const outs = this.runPiece(step, start + s, m);
      loss += w * outs[0]![0]!;
      let off = 0;
      for (let i = 1; i < outs.length; i++) {
        const g = outs[i]!;
        const dst = init.gradients.subarray(off, off + g.length);
        if (s === 0) { for (let j = 0; j < g.length; j++) dst[j] = w * g[j]!; }
        else for (let j = 0; j < g.length; j++) dst[j] = dst[j]! + w * g[j]!;
        off += g.length;
      }
    }
    init.lossOut[0] = loss;
    return loss;
  }

  /** Runs samples [start, start + n) of the batch through the plan for n. */
  private runPiece(step: number, start: number, n: number) {
    const { init } = this;
    const b = this.bind(n);
    const ss = init.sampleSize;
    const ts = init.targetSize ?? 1;
    const count = init.labels.length / ts;
    for (let k = 0; k < n; k++) {
      const idx = init.indices[start + k]!;
      if (idx >= count) {
        throw new Error(
          `GradientShard: sample index ${idx} is outside the data (${count} samples)`,
        );
      }
      b.x.set(init.images.subarray(idx * ss, idx * ss + ss), k * ss);
      if (ts === 1) b.y[k] = init.labels[idx]!;
      else b.y.set(init.labels.subarray(idx * ts, idx * ts + ts), k * ts);
    }
    // the main thread updated the shared parameters since the last run
    b.ex.invalidate();
    return b.ex.run({ [init.input]: b.x, [init.target]: b.y }, {
      training: true,
      step,
      sampleOffset: start,
    });
  }

  private bind(n: number): Bound {
    let b = this.plans.get(n);
    if (b) {
      // refresh its place as the most recently used
      this.plans.delete(n);
      this.plans.set(n, b);
      return b;
    }
    if (this.plans.size >= MAX_PLANS) this.plans.delete(this.plans.keys().next().value!);
    const plan = makePlan(this.graph, { batch: n, outputs: this.outputs });
    b = {
      ex: new Executor(plan, { params: this.init.params, tier: this.init.tier }),
      x: new Float32Array(n * this.init.sampleSize),
      y: new Float32Array(n * (this.init.targetSize ?? 1)),
    };
    this.plans.set(n, b);
    return b;
  }
}
