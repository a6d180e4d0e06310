// Stateless random numbers from integer coordinates: dropout masks and
// parameter initialisation derive from (seed, step, sample, element), so they
// do not depend on how a batch is sharded or in which order things run.

/**
 * Mixes up to four integers into a well-scrambled uint32.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hash4 } from "./hash.ts";
 * const h = hash4(1, 2, 3, 4);
 * assert.ok(Number.isInteger(h) && h >= 0 && h < 2 ** 32);
 * assert.equal(h, hash4(1, 2, 3, 4));
 * assert.notEqual(h, hash4(1, 2, 3, 5)); // each coordinate counts
 * ```
 */
export function hash4(a: number, b: number, c: number, d: number): number {
  let h = 0x9e3779b9 ^ a;
  h = fmix(h + Math.imul(b ^ 0x85ebca6b, 0xcc9e2d51));
  h = fmix(h + Math.imul(c ^ 0xc2b2ae35, 0x1b873593));
  h = fmix(h + Math.imul(d ^ 0x27d4eb2f, 0x165667b1));
  return h >>> 0;
}

/**
 * The first three coordinates' part of {@linkcode hash4}: `hash4Finish(hash4Prefix(a, b, c), d)`
 * equals `hash4(a, b, c, d)`, so a loop over `d` mixes `a, b, c` once.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hash4, hash4Finish, hash4Prefix } from "./hash.ts";
 * assert.equal(hash4Finish(hash4Prefix(1, 2, 3), 4), hash4(1, 2, 3, 4));
 * ```
 */
export function hash4Prefix(a: number, b: number, c: number): number {
  let h = 0x9e3779b9 ^ a;
  h = fmix(h + Math.imul(b ^ 0x85ebca6b, 0xcc9e2d51));
  return fmix(h + Math.imul(c ^ 0xc2b2ae35, 0x1b873593));
}

/**
 * `hash4(a, b, c, d)` from `hash4Prefix(a, b, c)` and `d`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hash4, hash4Finish, hash4Prefix } from "./hash.ts";
 * assert.equal(hash4Finish(hash4Prefix(7, 0, 9), 11), hash4(7, 0, 9, 11));
 * ```
 */
export function hash4Finish(prefix: number, d: number): number {
  return fmix(prefix + Math.imul(d ^ 0x27d4eb2f, 0x165667b1)) >>> 0;
}

/**
 * A uniform number in [0, 1) from four integer coordinates.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hash4, hashUniform } from "./hash.ts";
 * assert.equal(hashUniform(7, 0, 9, 11), hash4(7, 0, 9, 11) / 2 ** 32);
 * // about half of many draws fall below 0.5
 * let below = 0;
 * for (let i = 0; i < 10000; i++) if (hashUniform(1, 2, 3, i) < 0.5) below++;
 * assert.ok(below > 4800 && below < 5200, `${below}`);
 * ```
 */
export function hashUniform(a: number, b: number, c: number, d: number): number {
  return hash4(a, b, c, d) / 4294967296;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h;
}
