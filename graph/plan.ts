/**
 * A plan binds a graph to a batch size: concrete shapes, topological order,
 * and buffer offsets in one arena, reused by liveness so that a step
 * allocates nothing.
 *
 * @module
 */
import { fmtShape, lookupOp, numel } from "./op.ts";
import type { Graph, Node } from "./graph.ts";

/** Options of {@linkcode makePlan}. */
export interface PlanOptions {
  /** Size bound to every `-1` batch axis (default 1). */
  batch?: number;
  /** Element type of every buffer (default float32; float64 runs reference kernels). */
  dtype?: "float32" | "float64";
  /** Nodes the caller will read after a run: their buffers are never reused. */
  outputs?: readonly Node[];
  /** Lay out only what the outputs need (e.g. the forward half for evaluation). */
  prune?: boolean;
}

/** A graph bound to concrete shapes with its buffer layout. */
export interface Plan {
  /** The graph. */
  graph: Graph;
  /** The bound batch size. */
  batch: number;
  /** Buffer element type. */
  dtype: "float32" | "float64";
  /** Concrete shape of every node. */
  shapes: number[][];
  /** Element offset of every node's buffer in the arena; -1 for parameters and pruned nodes. */
  offsets: number[];
  /** Arena length in elements. */
  arenaLength: number;
  /**
   * Kernel scratch in float32 elements: the largest `OpDef.scratch` of the
   * planned nodes (0 for float64 plans, which run reference kernels). The
   * executor asks its allocator for it past the arena.
   */
  scratchLength: number;
  /** Nodes whose buffers are never shared (inputs, outputs, data-only nodes). */
  persistent: boolean[];
  /** Ids of the plan's declared outputs. */
  outputs: number[];
}

// 16 floats = 64 bytes: every buffer starts on a cache line and a SIMD boundary
const ALIGN = 16;

// Elements a buffer of `shape` takes in the arena: at least one, rounded up to ALIGN.
function paddedSize(shape: readonly number[]): number {
  return Math.ceil(Math.max(1, numel(shape)) / ALIGN) * ALIGN;
}

/**
 * Binds `graph` to a batch size and lays out its buffers.
 *
 * A node that does not depend on any parameter or stochastic op keeps its own
 * buffer, so a reactive executor can keep its value across runs while its
 * inputs stay the same; other buffers are shared between nodes whose
 * lifetimes do not overlap.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Graph, makePlan, relu } from "@denograd/denograd";
 * const g = new Graph();
 * const y = relu(g.input("x", [-1, 4]));
 * const plan = makePlan(g, { batch: 8, outputs: [y] });
 * assert.deepEqual(plan.shapes[y.id], [8, 4]);
 * ```
 */
export function makePlan(graph: Graph, opts: PlanOptions = {}): Plan {
  const batch = opts.batch ?? 1;
  if (!Number.isInteger(batch) || batch < 1) {
    throw new Error(`makePlan: batch must be a positive whole number, got ${batch}`);
  }
  const nodes = graph.nodes;
  const n = nodes.length;
  const shapes: number[][] = [];
  const varying: boolean[] = []; // depends on a parameter or a stochastic op
  for (let i = 0; i < n; i++) {
    const r = nodes[i]!;
    if (r.op === "input" || r.op === "param") {
      shapes.push(r.shape.map((d) => (d === -1 ? batch : d)));
      varying.push(r.op === "param");
      continue;
    }
    const op = lookupOp(r.op);
    const ins = r.inputs.map((j) => shapes[j]!);
    try {
      shapes.push([...op.shape(ins, r.attrs)]);
    } catch (e) {
      const s = ins.map(fmtShape).join(", ");
      throw new Error(`${r.op} "${r.name}" at batch ${batch}: ${(e as Error).message} (${s})`);
    }
    varying.push(!!op.stochastic || r.inputs.some((j) => varying[j]));
  }
  // beyond 2^53 elements offsets stop being exact; far sooner the arena cannot be allocated
  for (let i = 0; i < n; i++) {
    const size = numel(shapes[i]!);
    if (!Number.isSafeInteger(size * 8)) {
      const r = nodes[i]!;
      throw new Error(
        `${r.op} "${r.name}" at batch ${batch}: its buffer of shape ${
          fmtShape(shapes[i]!)
        } has ${size} elements, too many to address`,
      );
    }
  }

  const outputs = (opts.outputs ?? []).map((o) => {
    if (o.graph !== graph) throw new Error(`makePlan: output "${o.name}" belongs to another graph`);
    return o.id;
  });
  const persistent = nodes.map((r, i) => r.op === "input" || !varying[i]);
  for (const o of outputs) persistent[o] = true;

  const inPlan = new Array<boolean>(n).fill(!opts.prune);
  if (opts.prune) {
    for (const o of outputs) inPlan[o] = true;
    for (let i = n - 1; i >= 0; i--) {
      if (inPlan[i]) { for (const j of nodes[i]!.inputs) inPlan[j] = true; }
    }
  }
  const lastUse = new Array<number>(n).fill(-1);
  for (let i = 0; i < n; i++) if (inPlan[i]) { for (const j of nodes[i]!.inputs) lastUse[j] = i; }

  // A node's buffer is taken before its inputs give theirs back, so no node
  // ever writes over one of its own inputs (kernels may read an input after
  // writing part of the output).
  const offsets = new Array<number>(n).fill(-1);
  const free = new Map<number, number[]>(); // padded size -> free offsets
  const release = (size: number, offset: number) => {
    const list = free.get(size);
    if (list) list.push(offset);
    else free.set(size, [offset]);
  };
  let top = 0;
  for (let i = 0; i < n; i++) {
    if (nodes[i]!.op === "param" || !inPlan[i]) continue;
    const size = paddedSize(shapes[i]!);
    const reuse = persistent[i] ? undefined : free.get(size)?.pop();
    if (reuse !== undefined) offsets[i] = reuse;
    else {
      offsets[i] = top;
      top += size;
    }
    // inputs whose last reader is this node give their buffers back
    for (const j of new Set(nodes[i]!.inputs)) {
      if (lastUse[j] === i && !persistent[j] && offsets[j]! >= 0) {
        release(paddedSize(shapes[j]!), offsets[j]!);
      }
    }
    // a node nobody reads (and nobody asked for) frees its buffer at once
    if (lastUse[i] === -1 && !persistent[i]) release(size, offsets[i]!);
  }
  let scratchLength = 0;
  if (opts.dtype !== "float64") {
    for (let i = 0; i < n; i++) {
      const r = nodes[i]!;
      if (offsets[i]! < 0 || r.op === "input") continue;
      const op = lookupOp(r.op);
      if (!op.scratch) continue;
      const need = op.scratch(r.inputs.map((j) => shapes[j]!), r.attrs, shapes[i]!);
      if (!(need >= 0)) {
        throw new Error(`${r.op} "${r.name}": its scratch must be a count of floats, got ${need}`);
      }
      scratchLength = Math.max(scratchLength, Math.ceil(need));
    }
  }
  return {
    graph,
    batch,
    dtype: opts.dtype ?? "float32",
    shapes,
    offsets,
    arenaLength: top,
    scratchLength,
    persistent,
    outputs,
  };
}
