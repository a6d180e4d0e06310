/**
 * What every gradient runner shares: the training graph's description, the
 * data in shared memory, the {@linkcode GradientRunner} contract, the layout
 * of a gradient region, and the checks of a step's arguments.
 *
 * @module
 */
import type { GraphJSON } from "../../graph/graph.ts";
import type { Profiler } from "./trace.ts";

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

/** Number of samples in `data`: labels over target values per sample. */
export function countOf(data: SharedData): number {
  return data.labels.length / (data.targetSize ?? 1);
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
  /** The timeline of every thread, when the runner was made with `profile` (see `trace.ts`). */
  readonly profiler?: Profiler | null;
}

/** Where each gradient sits in a gradient region (every gradient back to back). */
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

/** The region layout of `spec`'s gradients; throws naming a gradient without a parameter buffer. */
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

/** Throws unless `indices` is a batch of 1..maxBatch valid sample indices and `step` a step number. */
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

/** The caller's gradient buffer for parameter `name`, created when missing. */
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

/** Throws unless the images and labels agree with `sampleSize`. */
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

/** The message of a thrown value. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
