/**
 * What every gradient runner shares: the training graph's description, the
 * data in shared memory, the {@linkcode GradientRunner} contract, the layout
 * of a gradient region, and the checks of a step's arguments.
 *
 * @module
 */
import type { GraphJSON } from "../../graph/graph.ts";
import type { Profiler } from "./trace.ts";

/**
 * A training graph and the names of its parts, as posted to every worker.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lectureCnn } from "@denograd/denograd";
 * import type { TrainGraphSpec } from "./spec.ts";
 * const spec: TrainGraphSpec = lectureCnn({ channels: 2 });
 * const names = new Set(spec.graph.nodes.map((n) => n.name));
 * for (const node of [spec.input, spec.target, spec.loss, ...Object.values(spec.grads)]) {
 *   assert.ok(names.has(node), node); // every name is a node of the graph
 * }
 * assert.deepEqual(structuredClone(spec.graph), spec.graph); // plain data: posts to workers
 * ```
 */
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

/**
 * The training set in shared memory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkData, countOf, type SharedData } from "./spec.ts";
 * const shared = (bytes: number) => new SharedArrayBuffer(bytes);
 * // three samples of two floats, a class id each
 * const data: SharedData = {
 *   images: new Float32Array(shared(4 * 3 * 2)),
 *   labels: new Uint8Array(shared(3)),
 *   sampleSize: 2,
 * };
 * checkData("demo", data);
 * assert.equal(countOf(data), 3);
 * ```
 */
export interface SharedData {
  /** Every sample's `sampleSize` floats, back to back (SharedArrayBuffer-backed). */
  images: Float32Array;
  /**
   * Every sample's target (SharedArrayBuffer-backed): a class id, or
   * `targetSize` floats back to back for a regression.
   */
  labels: Uint8Array | Float32Array;
  /** Floats per sample. */
  sampleSize: number;
  /** Target values per sample (default 1). */
  targetSize?: number;
}

/**
 * Number of samples in `data`: labels over target values per sample.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { countOf } from "./spec.ts";
 * const images = new Float32Array(12);
 * assert.equal(countOf({ images, labels: new Uint8Array(4), sampleSize: 3 }), 4);
 * // a regression with two target values per sample
 * assert.equal(countOf({ images, labels: new Float32Array(8), sampleSize: 3, targetSize: 2 }), 4);
 * ```
 */
export function countOf(data: SharedData): number {
  return data.labels.length / (data.targetSize ?? 1);
}

/**
 * Computes the batch-mean loss and gradients of a mini-batch.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { allocDataset, initParams, lectureCnn, LocalRunner } from "@denograd/denograd";
 * import type { GradientRunner } from "./spec.ts";
 * const spec = lectureCnn({ channels: 2 });
 * const params = initParams(spec.built, { seed: 1 }) as Map<string, Float32Array>;
 * const ds = allocDataset({ name: "blank", count: 4, sampleShape: [1, 28, 28], numClasses: 10 });
 * const data = { images: ds.images, labels: ds.labels, sampleSize: 784 };
 * const runner: GradientRunner = new LocalRunner(spec, { params, data, maxBatch: 4 });
 * const grads = new Map<string, Float32Array>();
 * const a = await runner.step(new Uint32Array([0, 1, 2, 3]), 0, grads);
 * const first = new Float32Array(grads.get("fc.weight")!);
 * const b = await runner.step(new Uint32Array([0, 1, 2, 3]), 0, grads); // overwrites grads
 * assert.equal(b.loss, a.loss); // the same batch: the same bits
 * assert.deepEqual(grads.get("fc.weight"), first);
 * assert.equal(runner.profiler, null); // made without `profile`
 * await runner.close();
 * ```
 */
export interface GradientRunner {
  /** Mean loss over the batch `indices` (dataset sample indices) at `step`; writes the batch-mean gradient of every parameter into `grads` (overwrite). */
  step(
    indices: Uint32Array,
    step: number,
    grads: Map<string, Float32Array>,
  ): Promise<{ loss: number }>;
  /** Releases workers and buffers; safe to call more than once. */
  close(): Promise<void>;
  /** The timeline of every thread, when the runner was made with `profile` (see `trace.ts`). */
  readonly profiler?: Profiler | null;
}

/**
 * Where each gradient sits in a gradient region (every gradient back to back).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { Layout } from "./spec.ts";
 * const layout: Layout = { grads: [["w", "grad w"], ["b", "grad b"]], offsets: [0, 6], sizes: [6, 2], total: 8 };
 * const regions = new Float32Array(3 * layout.total); // three regions
 * // gradient k of region r starts at r * total + offsets[k]
 * const at = 2 * layout.total + layout.offsets[1]!;
 * const bOfRegion2 = regions.subarray(at, at + layout.sizes[1]!);
 * bOfRegion2.fill(1);
 * assert.deepEqual([...regions.slice(-2)], [1, 1]); // b is the last entry of the last region
 * ```
 */
export interface Layout {
  /** `[parameter, gradient node]` in region order. */
  grads: [string, string][];
  /** Offset of each gradient in a region. */
  offsets: number[];
  /** Element count of each gradient. */
  sizes: number[];
  /** Floats per region. */
  total: number;
}

/**
 * The region layout of `spec`'s gradients; throws naming a gradient without a parameter buffer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { layoutOf, type TrainGraphSpec } from "./spec.ts";
 * const spec: TrainGraphSpec = {
 *   graph: { format: "denograd.graph", nodes: [] },
 *   input: "x",
 *   target: "y",
 *   loss: "loss",
 *   grads: { w: "grad w", b: "grad b" },
 * };
 * const params = new Map([["b", new Float32Array(2)], ["w", new Float32Array(6)]]);
 * const layout = layoutOf(spec, params, "demo");
 * assert.deepEqual(layout.grads, [["w", "grad w"], ["b", "grad b"]]); // spec.grads' order
 * assert.deepEqual([layout.offsets, layout.sizes, layout.total], [[0, 6], [6, 2], 8]);
 * assert.throws(() => layoutOf(spec, new Map([["w", new Float32Array(6)]]), "demo"), /demo: spec.grads names parameter "b" but params has none \(params: w\)/);
 * ```
 */
export function layoutOf(
  spec: TrainGraphSpec,
  params: Map<string, Float32Array>,
  who: string,
): Layout {
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

/**
 * Throws unless `indices` is a batch of 1..maxBatch valid sample indices and `step` a step number.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkBatch } from "./spec.ts";
 * checkBatch("demo", new Uint32Array([0, 9]), 0, 64, 10); // fine
 * assert.throws(() => checkBatch("demo", new Uint32Array(0), 0, 64, 10), /1\.\.64 sample indices, got 0/);
 * assert.throws(() => checkBatch("demo", new Uint32Array([3]), -1, 64, 10), /step must be a whole number >= 0, got -1/);
 * assert.throws(() => checkBatch("demo", new Uint32Array([3, 10]), 0, 64, 10), /sample index 10 is outside the data \(10 samples\)/);
 * ```
 */
export function checkBatch(
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
  let max = 0;
  for (let j = 0; j < indices.length; j++) if (indices[j]! > max) max = indices[j]!;
  if (max >= count) {
    const i = indices.find((i) => i >= count);
    throw new Error(`${who}: sample index ${i} is outside the data (${count} samples)`);
  }
}

/**
 * The caller's gradient buffer for parameter `name`, created when missing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { outBuffer } from "./spec.ts";
 * const grads = new Map<string, Float32Array>();
 * const g = outBuffer("demo", grads, "w", 3);
 * assert.equal(grads.get("w"), g); // created and kept
 * assert.equal(outBuffer("demo", grads, "w", 3), g); // the same buffer next time
 * assert.throws(() => outBuffer("demo", grads, "w", 4), /"w" holds 3 floats but the parameter has 4/);
 * ```
 */
export function outBuffer(
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

/**
 * Throws unless the images and labels agree with `sampleSize`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkData } from "./spec.ts";
 * const labels = new Uint8Array(4);
 * checkData("demo", { images: new Float32Array(12), labels, sampleSize: 3 }); // fine
 * assert.throws(
 *   () => checkData("demo", { images: new Float32Array(10), labels, sampleSize: 3 }),
 *   /demo: data.images holds 10 floats but 4 samples × 3 need 12/,
 * );
 * assert.throws(
 *   () => checkData("demo", { images: new Float32Array(12), labels, sampleSize: 3, targetSize: 3 }),
 *   /targetSize must be a positive whole number dividing the 4 labels, got 3/,
 * );
 * ```
 */
export function checkData(who: string, data: SharedData): void {
  if (!Number.isInteger(data.sampleSize) || data.sampleSize < 1) {
    throw new Error(
      `${who}: data.sampleSize must be a positive whole number, got ${data.sampleSize}`,
    );
  }
  const ts = data.targetSize ?? 1;
  if (!Number.isInteger(ts) || ts < 1 || data.labels.length % ts !== 0) {
    throw new Error(
      `${who}: data.targetSize must be a positive whole number dividing the ${data.labels.length} labels, got ${ts}`,
    );
  }
  const count = countOf(data);
  if (data.images.length !== count * data.sampleSize) {
    throw new Error(
      `${who}: data.images holds ${data.images.length} floats but ${count} samples × ${data.sampleSize} need ${
        count * data.sampleSize
      }`,
    );
  }
}

/**
 * The message of a thrown value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { messageOf } from "./spec.ts";
 * assert.equal(messageOf(new Error("out of memory")), "out of memory");
 * assert.equal(messageOf("a string thrown"), "a string thrown");
 * assert.equal(messageOf(42), "42");
 * ```
 */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
