/**
 * The best a synchronous data-parallel step can do on threads of unequal
 * speed: {@linkcode syncBound}. Two independent processes each run at their
 * own core's speed, so together they reach the sum of the two rates; a step
 * that ends when its last micro-batch does pays for the slower thread. The
 * bound says how much of that sum is reachable at all with a given cut of
 * the batch, so a benchmark can tell the pool's own overheads (its fraction
 * of the bound) from the machine's unequal cores (the bound itself).
 *
 * A fixed cost per micro-batch (`fixedSec`) is left at 0 by the benchmark:
 * rates measured by processes that run the same cut already contain it, and
 * when the micro-batches are all the same size adding it changes nothing
 * (each one costs s / r either way). It was about 50 µs on the lecture CNN
 * (one thread at micro 32 against 16 and 8, batch 64, `--ab ... --chunk
 * 10`: 47 and 55 µs per extra micro-batch, median over 7 reps), 3% of a
 * 32-sample micro-batch.
 *
 * @module
 */

/**
 * When each thread of a step finishes if every thread, when free, claims the
 * next micro-batch in order (as the pool's shared counter hands them out): a
 * micro-batch of `s` samples takes `s / rates[i] + fixedSec` seconds on
 * thread `i`. When several threads are free at once, the faster claims
 * first (the best case of a tie). No waits, reductions or update are
 * counted.
 *
 * @param sizes samples of each micro-batch, in claiming order
 * @param rates samples per second of each thread, all > 0
 * @param fixedSec a cost per micro-batch, seconds (0: none)
 * @returns the step's length in seconds: the last thread's finish
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { greedyMakespan } from "./_sync_bound.ts";
 * // 32, 32 on threads of 1000 and 500 samples/s: the slow one takes 64 ms
 * assert.equal(greedyMakespan([32, 32], [1000, 500]), 0.064);
 * // 64, 64, 64, 32, 32 (batch 256): the fast thread takes 64, 64, 32 (160 ms),
 * // the slow one 64, 32 (192 ms)
 * assert.equal(greedyMakespan([64, 64, 64, 32, 32], [1000, 500]).toFixed(3), "0.192");
 * ```
 */
export function greedyMakespan(
  sizes: readonly number[],
  rates: readonly number[],
  fixedSec = 0,
): number {
  if (rates.length === 0 || !rates.every((r) => Number.isFinite(r) && r > 0)) {
    throw new RangeError(`greedyMakespan: rates must be finite and > 0, got [${rates}]`);
  }
  if (!sizes.every((s) => Number.isFinite(s) && s >= 0)) {
    throw new RangeError(`greedyMakespan: sizes must be finite and ≥ 0, got [${sizes}]`);
  }
  if (!(Number.isFinite(fixedSec) && fixedSec >= 0)) {
    throw new RangeError(`greedyMakespan: fixedSec must be finite and ≥ 0, got ${fixedSec}`);
  }
  const free = rates.map(() => 0);
  for (const s of sizes) {
    let best = 0;
    for (let i = 1; i < free.length; i++) {
      if (free[i]! < free[best]! || (free[i] === free[best] && rates[i]! > rates[best]!)) best = i;
    }
    free[best]! += s / rates[best]! + fixedSec;
  }
  return Math.max(...free);
}

/**
 * The fraction of the threads' summed rate a synchronous step reaches at
 * best: the batch (the sum of `sizes`) over the step's length by greedy
 * claiming ({@linkcode greedyMakespan}), over the sum of `rates`. It is 1
 * for equal threads and an even cut; with two micro-batches on two threads
 * it is 2·min/(r1 + r2), the slower thread's rate twice over the sum.
 * Multiply it by the sum of the rates for the best samples per second.
 *
 * @param sizes samples of each micro-batch (a step's cut, e.g. from `cutBatch`)
 * @param rates samples per second each thread reaches alone
 * @param fixedSec a cost per micro-batch in seconds (0: none)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { syncBound } from "./_sync_bound.ts";
 * assert.equal(syncBound([32, 32], [1000, 1000]), 1);
 * // batch 64 in two micro-batches, one core at 0.7 of the other's speed
 * assert.equal(syncBound([32, 32], [1000, 700]).toFixed(3), "0.824"); // 1400 / 1700
 * // the same cores at batch 256 cut 64, 64, 64, 32, 32: more pieces, less lost
 * assert.equal(syncBound([64, 64, 64, 32, 32], [1000, 700]).toFixed(3), "0.941"); // 1600 / 1700
 * ```
 */
export function syncBound(
  sizes: readonly number[],
  rates: readonly number[],
  fixedSec = 0,
): number {
  const batch = sizes.reduce((a, s) => a + s, 0);
  const span = greedyMakespan(sizes, rates, fixedSec);
  if (!(span > 0)) throw new RangeError(`syncBound: an empty step (sizes [${sizes}])`);
  return batch / span / rates.reduce((a, r) => a + r, 0);
}
