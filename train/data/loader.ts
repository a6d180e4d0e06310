/**
 * Seeded mini-batches over a {@linkcode Dataset}. Each epoch's order is a
 * pure function of (seed, epoch), so a run resumed from a checkpoint at any
 * epoch and step sees exactly the batches the uninterrupted run would have.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { allocDataset } from "@denograd/denograd";
 * import { BatchLoader } from "./loader.ts";
 * const ds = allocDataset({ name: "toy", count: 10, sampleShape: [1, 2, 2], numClasses: 10 });
 * const loader = new BatchLoader(ds, { batch: 4, seed: 1 });
 * const x = new Float32Array(4 * 4);
 * const y = new Float32Array(4);
 * const sizes: number[] = [];
 * for (let step = 0; step < loader.stepsPerEpoch; step++) sizes.push(loader.fill(0, step, x, y));
 * assert.deepEqual(sizes, [4, 4, 2]);
 * ```
 *
 * @module
 */

import { hash32, Rng } from "../random.ts";
import { type Dataset, sampleSize } from "./dataset.ts";

/** Salt that keeps loader orders independent of other users of the same seed. */
const LOADER_STREAM = 0x10ade5;

/**
 * Serves batch number `step` of epoch `epoch` into caller-owned buffers,
 * with a permutation per epoch derived from the seed and the epoch alone.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { allocDataset } from "@denograd/denograd";
 * import { BatchLoader } from "./loader.ts";
 * const ds = allocDataset({ name: "toy", count: 100, sampleShape: [1, 2, 2], numClasses: 10 });
 * const a = new BatchLoader(ds, { batch: 64, seed: 42, dropLast: true });
 * const b = new BatchLoader(ds, { batch: 64, seed: 42, dropLast: true }); // e.g. after resuming
 * assert.deepEqual(a.epochOrder(3), b.epochOrder(3));
 * ```
 */
export class BatchLoader {
  readonly #ds: Dataset;
  readonly #batch: number;
  readonly #seed: number;
  readonly #shuffle: boolean;
  readonly #dropLast: boolean;
  readonly #size: number;
  // One epoch's order is reused by all its steps; recomputing it per step would cost O(count).
  #cachedEpoch = -1;
  #cachedOrder: Uint32Array = new Uint32Array(0);

  /**
   * `batch` samples per step; `shuffle` (default true) permutes each epoch;
   * `dropLast` (default false) skips a final batch smaller than `batch`.
   *
   * @example
   * ```ts
   * import { allocDataset } from "@denograd/denograd";
   * import { BatchLoader } from "./loader.ts";
   * const ds = allocDataset({ name: "toy", count: 100, sampleShape: [1, 2, 2], numClasses: 10 });
   * const loader = new BatchLoader(ds, { batch: 32, seed: 0, shuffle: false });
   * console.log([...loader.epochOrder(0).subarray(0, 4)]); // [0, 1, 2, 3]
   * ```
   */
  constructor(
    ds: Dataset,
    opts: { batch: number; seed: number; shuffle?: boolean; dropLast?: boolean },
  ) {
    if (!Number.isInteger(opts.batch) || opts.batch < 1) {
      throw new RangeError(
        `BatchLoader for "${ds.name}": batch must be a positive integer, got ${opts.batch}`,
      );
    }
    if (!Number.isSafeInteger(opts.seed)) {
      throw new RangeError(
        `BatchLoader for "${ds.name}": seed must be a safe integer, got ${opts.seed}`,
      );
    }
    this.#ds = ds;
    this.#batch = opts.batch;
    this.#seed = opts.seed;
    this.#shuffle = opts.shuffle ?? true;
    this.#dropLast = opts.dropLast ?? false;
    this.#size = sampleSize(ds.sampleShape);
  }

  /**
   * The number of batches in one epoch: `ceil(count / batch)`, or
   * `floor(count / batch)` with `dropLast`.
   *
   * @example
   * ```ts
   * import { allocDataset } from "@denograd/denograd";
   * import { BatchLoader } from "./loader.ts";
   * const ds = allocDataset({ name: "toy", count: 10, sampleShape: [1, 2, 2], numClasses: 10 });
   * console.log(new BatchLoader(ds, { batch: 3, seed: 0 }).stepsPerEpoch); // 4
   * console.log(new BatchLoader(ds, { batch: 3, seed: 0, dropLast: true }).stepsPerEpoch); // 3
   * ```
   */
  get stepsPerEpoch(): number {
    const n = this.#ds.count / this.#batch;
    return this.#dropLast ? Math.floor(n) : Math.ceil(n);
  }

  /**
   * The order in which epoch `epoch` visits the samples: a permutation of
   * `0..count-1` drawn from `Rng(hash32(seed, epoch))`, or the identity
   * without shuffling. Returns a fresh array the caller may keep.
   *
   * @example
   * ```ts
   * import { allocDataset } from "@denograd/denograd";
   * import { BatchLoader } from "./loader.ts";
   * const ds = allocDataset({ name: "toy", count: 10, sampleShape: [1, 2, 2], numClasses: 10 });
   * const order = new BatchLoader(ds, { batch: 4, seed: 0 }).epochOrder(0);
   * console.log([...order].sort((a, b) => a - b).join()); // 0,1,2,3,4,5,6,7,8,9
   * ```
   */
  epochOrder(epoch: number): Uint32Array {
    return this.#order(epoch).slice();
  }

  #order(epoch: number): Uint32Array {
    if (!Number.isInteger(epoch) || epoch < 0 || epoch >= 4294967296) {
      throw new RangeError(
        `BatchLoader for "${this.#ds.name}": epoch must be an integer in [0, 2^32), got ${epoch}`,
      );
    }
    if (epoch !== this.#cachedEpoch) {
      const order = Uint32Array.from({ length: this.#ds.count }, (_, i) => i);
      if (this.#shuffle) {
        // Hash the seed words with the epoch so each epoch is an independent stream.
        const lo = this.#seed >>> 0;
        const hi = Math.floor((this.#seed - lo) / 4294967296) >>> 0;
        new Rng(hash32(LOADER_STREAM, lo, hi, epoch)).shuffle(order);
      }
      this.#cachedOrder = order;
      this.#cachedEpoch = epoch;
    }
    return this.#cachedOrder;
  }

  /**
   * Copies batch `step` of epoch `epoch` into `x` (samples back to back) and
   * `labels` (class ids as floats) and returns how many samples it wrote:
   * `batch`, or fewer for a last partial batch. Entries past that count are
   * left untouched.
   *
   * @example
   * ```ts
   * import { allocDataset } from "@denograd/denograd";
   * import { BatchLoader } from "./loader.ts";
   * const ds = allocDataset({ name: "toy", count: 100, sampleShape: [1, 28, 28], numClasses: 10 });
   * ds.labels.fill(7);
   * const loader = new BatchLoader(ds, { batch: 64, seed: 0 });
   * const x = new Float32Array(64 * 784);
   * const y = new Float32Array(64);
   * console.log(loader.fill(0, 0, x, y), y[0]); // 64 7
   * console.log(loader.fill(0, 1, x, y)); // 36
   * ```
   */
  fill(epoch: number, step: number, x: Float32Array, labels: Float32Array): number {
    const name = this.#ds.name;
    const steps = this.stepsPerEpoch;
    if (!Number.isInteger(step) || step < 0 || step >= steps) {
      throw new RangeError(
        `BatchLoader for "${name}": step ${step} is outside the epoch's ${steps} steps`,
      );
    }
    const start = step * this.#batch;
    const n = Math.min(this.#batch, this.#ds.count - start);
    const size = this.#size;
    if (x.length < n * size) {
      throw new RangeError(
        `BatchLoader for "${name}": x holds ${x.length} values but a batch of ${n} needs ${
          n * size
        }`,
      );
    }
    if (labels.length < n) {
      throw new RangeError(
        `BatchLoader for "${name}": labels holds ${labels.length} values but a batch needs ${n}`,
      );
    }
    const order = this.#order(epoch);
    const images = this.#ds.images;
    const ids = this.#ds.labels;
    for (let i = 0; i < n; i++) {
      const s = order[start + i];
      x.set(images.subarray(s * size, (s + 1) * size), i * size);
      labels[i] = ids[s];
    }
    return n;
  }
}
