/**
 * Seeded randomness for the whole project: a small sequential generator
 * ({@linkcode Rng}, sfc32 seeded through splitmix32) whose state can be saved
 * in a checkpoint, and a stateless integer hash ({@linkcode hash32},
 * {@linkcode hashUniform}) for values that must not depend on the order they
 * are drawn in, such as dropout masks computed by different workers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hashUniform, Rng } from "./random.ts";
 * const u = new Rng(42).uniform();
 * assert.ok(u >= 0 && u < 1);
 * assert.equal(u, new Rng(42).uniform());
 * // keyed by (seed, step, sample, element): the same answer in any worker, in any order
 * assert.equal(hashUniform(42, 7, 3, 100), hashUniform(42, 7, 3, 100));
 * ```
 *
 * @module
 */

const TWO_32 = 4294967296;

/** One step of splitmix32: a good 32-bit mixer, used to spread a seed over the sfc32 state. */
function splitmix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/** Splits a safe integer into its low and high 32-bit words, so seeds above 2^32 do not collide. */
function seedWords(seed: number): [number, number] {
  if (!Number.isSafeInteger(seed)) {
    throw new RangeError(`Rng: the seed must be a safe integer, got ${seed}`);
  }
  const lo = seed >>> 0;
  const hi = Math.floor((seed - lo) / TWO_32) >>> 0;
  return [lo, hi];
}

/**
 * A deterministic pseudo-random generator (sfc32: 128 bits of state, passes
 * PractRand to many terabytes, and needs only 32-bit integer arithmetic,
 * which JavaScript does quickly through `Math.imul` and `| 0`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Rng } from "./random.ts";
 * const rng = new Rng(1);
 * const saved = rng.state();
 * const a = rng.next();
 * const b = Rng.fromState(saved).next();
 * assert.equal(a, b);
 * ```
 */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /**
   * Seeds the generator from any safe integer; equal seeds give equal streams.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Rng } from "./random.ts";
   * assert.equal(new Rng(2024).next(), new Rng(2024).next());
   * assert.notEqual(new Rng(2024).next(), new Rng(2025).next());
   * ```
   */
  constructor(seed: number) {
    const [lo, hi] = seedWords(seed);
    // Chain splitmix32 so every state word depends on both halves of the seed.
    let s = splitmix32(lo ^ 0x5bd1e995);
    s = splitmix32(s ^ hi);
    this.#a = s;
    s = splitmix32(s);
    this.#b = s;
    s = splitmix32(s);
    this.#c = s;
    s = splitmix32(s);
    this.#d = s;
    // sfc32's counter word; discarding a few outputs mixes the seed further.
    for (let i = 0; i < 12; i++) this.next();
  }

  /**
   * The next 32-bit unsigned integer.
   *
   * @example
   * ```ts
   * import { Rng } from "./random.ts";
   * const word = new Rng(3).next();
   * console.log(Number.isInteger(word) && word >= 0 && word < 2 ** 32); // true
   * ```
   */
  next(): number {
    const a = this.#a, b = this.#b, c = this.#c, d = this.#d;
    const t = (((a + b) | 0) + d) | 0;
    this.#d = (d + 1) | 0;
    this.#a = b ^ (b >>> 9);
    this.#b = (c + (c << 3)) | 0;
    this.#c = ((c << 21) | (c >>> 11)) + t | 0;
    return t >>> 0;
  }

  /**
   * A uniform float in [0, 1) with 32 random bits.
   *
   * @example
   * ```ts
   * import { Rng } from "./random.ts";
   * const u = new Rng(4).uniform();
   * console.log(u >= 0 && u < 1); // true
   * ```
   */
  uniform(): number {
    return this.next() / TWO_32;
  }

  /**
   * A standard normal sample (mean 0, variance 1) by the Box–Muller
   * transform. No spare value is cached, so {@linkcode Rng.state} is the
   * whole state.
   *
   * @example
   * ```ts
   * import { Rng } from "./random.ts";
   * const rng = new Rng(5);
   * const z = Array.from({ length: 10000 }, () => rng.normal());
   * const mean = z.reduce((s, v) => s + v, 0) / z.length;
   * console.log(Math.abs(mean) < 0.05); // true
   * ```
   */
  normal(): number {
    // 1 - uniform() lies in (0, 1], so the logarithm is finite.
    const u1 = 1 - this.uniform();
    const u2 = this.uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /**
   * A uniform integer in [0, n), without modulo bias; `n` is an integer in [1, 2^32].
   *
   * @example
   * ```ts
   * import { Rng } from "./random.ts";
   * const die = new Rng(6).int(6) + 1;
   * console.log([1, 2, 3, 4, 5, 6].includes(die)); // true
   * ```
   */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_32) {
      throw new RangeError(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    }
    // Reject the top partial block of the 2^32 range so every residue is equally likely.
    const limit = TWO_32 - (TWO_32 % n);
    let x = this.next();
    while (x >= limit) x = this.next();
    return x % n;
  }

  /**
   * Shuffles the array in place (Fisher–Yates), identically for equal states.
   *
   * @example
   * ```ts
   * import { Rng } from "./random.ts";
   * const a = Uint32Array.from({ length: 10 }, (_, i) => i);
   * const b = a.slice();
   * new Rng(7).shuffle(a);
   * new Rng(7).shuffle(b);
   * console.log(a.join() === b.join(), [...a].sort((x, y) => x - y).join()); // true 0,1,2,3,4,5,6,7,8,9
   * ```
   */
  shuffle<T>(a: T[] | Uint32Array | Int32Array): void {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
  }

  /**
   * The generator's state as four uint32 numbers, safe to store as JSON.
   *
   * @example
   * ```ts
   * import { Rng } from "./random.ts";
   * const rng = new Rng(8);
   * const json = JSON.stringify(rng.state());
   * console.log(Rng.fromState(JSON.parse(json)).next() === rng.next()); // true
   * ```
   */
  state(): number[] {
    return [this.#a >>> 0, this.#b >>> 0, this.#c >>> 0, this.#d >>> 0];
  }

  /**
   * Rebuilds a generator from {@linkcode Rng.state}; it continues the original stream.
   *
   * @example
   * ```ts
   * import { Rng } from "./random.ts";
   * const rng = Rng.fromState([1, 2, 3, 4]);
   * console.log(rng.state()); // [1, 2, 3, 4]
   * ```
   */
  static fromState(s: number[]): Rng {
    if (
      !Array.isArray(s) || s.length !== 4 ||
      !s.every((w) => Number.isInteger(w) && w >= 0 && w < TWO_32)
    ) {
      throw new RangeError(
        `Rng.fromState: the state must be 4 integers in [0, 2^32), got ${JSON.stringify(s)}`,
      );
    }
    const rng = new Rng(0);
    rng.#a = s[0] | 0;
    rng.#b = s[1] | 0;
    rng.#c = s[2] | 0;
    rng.#d = s[3] | 0;
    return rng;
  }
}

/** Murmur3's per-word mixing step, folded into the running hash `h`. */
function mixWord(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** Murmur3's finaliser: every input bit affects every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A stateless hash of integers to a uint32 (MurmurHash3's mixing, stable
 * across runs and machines). Each argument is taken modulo 2^32, so pass
 * integers below 2^32 (steps, indices and seeds are).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hash32 } from "./random.ts";
 * const h = hash32(42, 1000, 5);
 * assert.equal(h, hash32(42, 1000, 5));
 * assert.notEqual(h, hash32(42, 1000, 6));
 * ```
 */
export function hash32(...ints: number[]): number {
  let h = 0x2f1e4a6b;
  for (let i = 0; i < ints.length; i++) h = mixWord(h, ints[i] | 0);
  return fmix32(h ^ ints.length);
}

/**
 * A uniform number in [0, 1) from `hash32(seed, a, b, c)` without allocating,
 * for per-element randomness keyed by position, e.g. a dropout mask keyed by
 * (seed, step, sample index, element index).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hashUniform } from "./random.ts";
 * // dropout with p = 0.25 at step 10 keeps element 17 of sample 3 when this is true
 * const keep = hashUniform(42, 10, 3, 17) >= 0.25;
 * assert.equal(typeof keep, "boolean");
 * const u = hashUniform(42, 10, 3, 17);
 * assert.ok(u >= 0 && u < 1);
 * ```
 */
export function hashUniform(seed: number, a: number, b: number, c: number): number {
  let h = 0x2f1e4a6b;
  h = mixWord(h, seed | 0);
  h = mixWord(h, a | 0);
  h = mixWord(h, b | 0);
  h = mixWord(h, c | 0);
  return fmix32(h ^ 4) / TWO_32;
}
