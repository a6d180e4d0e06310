// regions: float32 gradient regions in a shared WebAssembly memory; src: float32 views of an executor arena
/**
 * The gradient reduction's loops in WebAssembly SIMD (module built from
 * `wasm/reduce_kernel.ts`): a leaf's `w · g` written or added into a shared
 * gradient region straight from the executor's arena, and one region added
 * into another. Regions live in a shared `WebAssembly.Memory` from
 * {@linkcode sharedRegions}, which is posted to workers as it is (a worker
 * calls {@linkcode adoptRegionMemory}); the module imports that memory and
 * an arena's memory at once (multi-memory), one instance per arena (of a
 * second build whose arena import is shared, for shared arenas).
 *
 * Every function gives the bits of the JavaScript loops of `GradTree` (see
 * the kernel's notes); where it cannot run (no WebAssembly SIMD or
 * multi-memory, regions in a plain buffer, a gradient outside a wasm arena)
 * it says so and the caller runs those loops.
 *
 * @module
 */

import { arenaMemory, isSharedBuffer, noteArenaKernel } from "./elementwise_wasm.ts";
import { REDUCE_WASM, REDUCE_WASM_SHARED_ARENA } from "./wasm/reduce_bytes.ts";

interface ReduceExports {
  scale(w: number, src: number, dst: number, n: number): void;
  scale64(w: number, src: number, dst: number, n: number): void;
  add_scaled(w: number, src: number, dst: number, n: number): void;
  add_scaled64(w: number, src: number, dst: number, n: number): void;
  add(a: number, b: number, n: number): void;
}

const PAGE = 65536;
// addresses are i32: keep every byte offset below 2 GiB
const MAX_BYTES = 2 ** 31;
// undefined: not tried yet; null: the engine lacks SIMD or multi-memory
let compiled: WebAssembly.Module | null | undefined;
// the build for shared arenas; null: it does not compile
let compiledShared: WebAssembly.Module | null | undefined;
const regionMemories = new WeakMap<ArrayBufferLike, WebAssembly.Memory>();
let noArena: WebAssembly.Memory | undefined;

function module(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  compiled = null;
  if (typeof WebAssembly !== "object") return compiled;
  const bytes = Uint8Array.from(atob(REDUCE_WASM), (ch) => ch.charCodeAt(0));
  try {
    if (WebAssembly.validate(bytes)) compiled = new WebAssembly.Module(bytes);
  } catch {
    // an engine that validates but will not compile: the JavaScript loops
  }
  return compiled;
}

function sharedArenaModule(): WebAssembly.Module | null {
  if (compiledShared !== undefined) return compiledShared;
  compiledShared = null;
  if (!module()) return compiledShared;
  const bytes = Uint8Array.from(atob(REDUCE_WASM_SHARED_ARENA), (ch) => ch.charCodeAt(0));
  try {
    if (WebAssembly.validate(bytes)) compiledShared = new WebAssembly.Module(bytes);
  } catch {
    // the JavaScript loops for shared arenas
  }
  return compiledShared;
}

/**
 * A zeroed float32 array of `floats` (at least 1) elements in shared memory:
 * with `wasm` (default true), and where the module runs, the whole buffer of
 * a shared `WebAssembly.Memory` that {@linkcode ReduceWasm} can work on;
 * otherwise over a plain `SharedArrayBuffer`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { regionMemory, sharedRegions } from "./reduce_wasm.ts";
 * const g = sharedRegions(10);
 * assert.ok(g.length === 10 && g.buffer instanceof SharedArrayBuffer);
 * assert.equal(regionMemory(sharedRegions(10, false).buffer), undefined);
 * ```
 */
export function sharedRegions(floats: number, wasm = true): Float32Array {
  const n = Math.max(1, floats);
  const pages = Math.ceil((4 * n) / PAGE);
  if (wasm && module() && pages * PAGE < MAX_BYTES) {
    try {
      const mem = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
      regionMemories.set(mem.buffer, mem);
      return new Float32Array(mem.buffer, 0, n);
    } catch {
      // no room for the memory: a plain shared buffer
    }
  }
  return new Float32Array(new SharedArrayBuffer(4 * n));
}

/**
 * Makes a regions memory posted from another thread known here, so that the
 * arrays over its buffer (posted in the same message they are the very
 * buffer) get {@linkcode ReduceWasm}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { adoptRegionMemory, regionMemory } from "./reduce_wasm.ts";
 * const mem = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
 * adoptRegionMemory(mem);
 * assert.equal(regionMemory(mem.buffer), mem);
 * ```
 */
export function adoptRegionMemory(mem: WebAssembly.Memory): void {
  regionMemories.set(mem.buffer, mem);
}

/**
 * The shared memory whose buffer is `buf`, when it came from
 * {@linkcode sharedRegions} or {@linkcode adoptRegionMemory}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { regionMemory, sharedRegions } from "./reduce_wasm.ts";
 * const g = sharedRegions(4);
 * assert.ok(regionMemory(g.buffer) === undefined || regionMemory(g.buffer)!.buffer === g.buffer);
 * assert.equal(regionMemory(new ArrayBuffer(4)), undefined);
 * ```
 */
export function regionMemory(buf: ArrayBufferLike): WebAssembly.Memory | undefined {
  return regionMemories.get(buf);
}

/**
 * The reduction's loops on one regions array: float indices into `regions`,
 * sources as float32 views. Instances of the module are made per arena on
 * first use and kept (a shard has a plan, so an arena, per micro-batch size).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ReduceWasm, sharedRegions } from "./reduce_wasm.ts";
 * const g = sharedRegions(8);
 * const k = ReduceWasm.of(g);
 * g.set([1, 2, 3, 4, 5, 6, 7, 8]);
 * if (k) {
 *   k.add(0, 4, 3);
 *   assert.deepEqual([...g.subarray(0, 4)], [6, 8, 10, 4]);
 *   // a gradient in a plain buffer: the caller's own loop
 *   assert.equal(k.scale(0.5, new Float32Array(4), 0, 4), false);
 * }
 * ```
 */
export class ReduceWasm {
  private regions: WebAssembly.Memory;
  private base: number;
  private own: ReduceExports;
  private byArena = new WeakMap<ArrayBufferLike, ReduceExports | null>();
  private lastBuf: ArrayBufferLike | null = null;
  private last: ReduceExports | null = null;

  /** The loops on `regions`, or null where they cannot run (see {@linkcode sharedRegions}). */
  static of(regions: Float32Array): ReduceWasm | null {
    const mem = regionMemories.get(regions.buffer);
    const m = module();
    return mem && m ? new ReduceWasm(m, mem, regions.byteOffset) : null;
  }

  private constructor(m: WebAssembly.Module, regions: WebAssembly.Memory, base: number) {
    this.regions = regions;
    this.base = base;
    // for region-to-region adds: any unshared memory as the arena, one for all
    noArena ??= new WebAssembly.Memory({ initial: 0, maximum: 0 });
    this.own = new WebAssembly.Instance(m, { env: { arena: noArena, regions } })
      .exports as unknown as ReduceExports;
  }

  /** The instance on the arena `src` is a float32 view of, or null when it is in none. */
  private on(src: Float32Array | Float64Array): ReduceExports | null {
    if (src.BYTES_PER_ELEMENT !== 4) return null;
    const buf = src.buffer;
    if (buf === this.lastBuf) return this.last;
    let ex = this.byArena.get(buf);
    if (ex === undefined) {
      const arena = arenaMemory(buf);
      const m = arena && (isSharedBuffer(buf) ? sharedArenaModule() : compiled);
      ex = arena && m
        ? new WebAssembly.Instance(m, { env: { arena, regions: this.regions } })
          .exports as unknown as ReduceExports
        : null;
      this.byArena.set(buf, ex);
      if (ex) noteArenaKernel(buf, "reduce");
    }
    this.lastBuf = buf;
    return this.last = ex;
  }

  /**
   * `regions[at + j] = fround(w · src[j])` for `j < n`; false (nothing done)
   * when `src` is not a float32 view of a wasm arena.
   */
  scale(w: number, src: Float32Array | Float64Array, at: number, n: number): boolean {
    const ex = this.on(src);
    if (!ex) return false;
    if (Math.fround(w) === w) ex.scale(w, src.byteOffset, this.base + 4 * at, n);
    else ex.scale64(w, src.byteOffset, this.base + 4 * at, n);
    return true;
  }

  /**
   * `regions[at + j] += fround(w · src[j])` for `j < n`; false (nothing
   * done) when `src` is not in a wasm arena.
   */
  addScaled(w: number, src: Float32Array | Float64Array, at: number, n: number): boolean {
    const ex = this.on(src);
    if (!ex) return false;
    if (Math.fround(w) === w) ex.add_scaled(w, src.byteOffset, this.base + 4 * at, n);
    else ex.add_scaled64(w, src.byteOffset, this.base + 4 * at, n);
    return true;
  }

  /** `regions[a + j] += regions[b + j]` for `j < n`. */
  add(a: number, b: number, n: number): void {
    this.own.add(this.base + 4 * a, this.base + 4 * b, n);
  }
}

interface UpdateExports {
  add(a: number, b: number, n: number): void;
  sum_to(dst: number, a: number, b: number, n: number): void;
  sum_scale_to(k: number, dst: number, a: number, b: number, n: number): void;
  scale_to(k: number, dst: number, a: number, n: number): void;
  sgd(lr: number, wd: number, p: number, g: number, n: number): void;
  sgd_m00(...args: number[]): void;
  sgd_m01(...args: number[]): void;
  sgd_m10(...args: number[]): void;
  sgd_m11(...args: number[]): void;
  adam(...args: number[]): void;
  adam_shrink(...args: number[]): void;
}

/**
 * A thread's part of the parallel update in WebAssembly: its own scratch
 * memory of four sections of `unit` floats, {@linkcode UpdateWasm.grad} (a
 * unit's gradient), {@linkcode UpdateWasm.p}, {@linkcode UpdateWasm.a} and
 * {@linkcode UpdateWasm.b} (copies of a unit's parameters and optimizer
 * state), and the module on it and the regions. Float indices into the
 * regions; every rule gives the bits of its JavaScript loop in
 * `train/optim/rules.ts` (see `wasm/update_kernel.ts`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { sharedRegions, UpdateWasm } from "./reduce_wasm.ts";
 * const g = sharedRegions(8);
 * g.set([1, 2, 3, 4, 10, 20, 30, 40]);
 * const u = UpdateWasm.of(g, 4);
 * if (u) {
 *   u.sum(0, 4, 4);
 *   assert.deepEqual([...u.grad], [11, 22, 33, 44]);
 *   u.p.set([1, 1, 1, 1]);
 *   u.sgd(0.5, 0, 4); // p -= 0.5 * grad
 *   assert.deepEqual([...u.p], [-4.5, -10, -15.5, -21]);
 * }
 * ```
 */
export class UpdateWasm {
  /** A unit's gradient (as the rule sees it). */
  readonly grad: Float32Array;
  /** A unit's parameters, copied in and out around a rule. */
  readonly p: Float32Array;
  /** The first state buffer's copy (momentum, Adam's m). */
  readonly a: Float32Array;
  /** The second state buffer's copy (Adam's v). */
  readonly b: Float32Array;
  private ex: UpdateExports;
  private base: number;
  private bytes: number;

  /** The update's loops for units of at most `unit` floats over `regions`, or null where they cannot run. */
  static of(regions: Float32Array, unit: number): UpdateWasm | null {
    const mem = regionMemories.get(regions.buffer);
    const m = module();
    return mem && m ? new UpdateWasm(m, mem, regions.byteOffset, unit) : null;
  }

  private constructor(
    m: WebAssembly.Module,
    regions: WebAssembly.Memory,
    base: number,
    unit: number,
  ) {
    const bytes = this.bytes = Math.ceil(unit / 4) * 16;
    const pages = Math.ceil((4 * bytes) / PAGE);
    const scratch = new WebAssembly.Memory({ initial: pages, maximum: pages });
    this.ex = new WebAssembly.Instance(m, { env: { arena: scratch, regions } })
      .exports as unknown as UpdateExports;
    this.base = base;
    const buf = scratch.buffer;
    this.grad = new Float32Array(buf, 0, unit);
    this.p = new Float32Array(buf, bytes, unit);
    this.a = new Float32Array(buf, 2 * bytes, unit);
    this.b = new Float32Array(buf, 3 * bytes, unit);
  }

  /** `regions[a + j] += regions[b + j]` for `j < n`. */
  addInPlace(a: number, b: number, n: number): void {
    this.ex.add(this.base + 4 * a, this.base + 4 * b, n);
  }

  /** `grad[j] = regions[a + j] + regions[b + j]` for `j < n`. */
  sum(a: number, b: number, n: number): void {
    this.ex.sum_to(0, this.base + 4 * a, this.base + 4 * b, n);
  }

  /** `grad[j] = fround(regions[a + j] + regions[b + j]) · k` for `j < n`. */
  sumScale(k: number, a: number, b: number, n: number): void {
    this.ex.sum_scale_to(k, 0, this.base + 4 * a, this.base + 4 * b, n);
  }

  /** `grad[j] = regions[a + j] · k` for `j < n` (k = 1: a copy). */
  scale(k: number, a: number, n: number): void {
    this.ex.scale_to(k, 0, this.base + 4 * a, n);
  }

  /** Plain SGD on `p[0..n-1]` with `grad`: `p -= lr · (grad + wd · p)`. */
  sgd(lr: number, wd: number, n: number): void {
    this.ex.sgd(lr, wd, this.bytes, 0, n);
  }

  /** SGD with momentum `mu` on `p` and its buffer `a` (`fresh`: the buffer starts at the gradient). */
  sgdMomentum(
    lr: number,
    mu: number,
    wd: number,
    fresh: boolean,
    nesterov: boolean,
    n: number,
  ): void {
    const ex = this.ex;
    const f = fresh ? (nesterov ? ex.sgd_m11 : ex.sgd_m10) : (nesterov ? ex.sgd_m01 : ex.sgd_m00);
    f(lr, mu, wd, this.bytes, 0, 2 * this.bytes, n);
  }

  /** Adam (AdamW with `shrink` ≠ 1) on `p` with moments `a` and `b`. */
  adam(s: Float64Array, n: number): void {
    const lr = s[0]!, beta1 = s[1]!, beta2 = s[2]!, eps = s[3]!;
    const c1 = s[4]!, c2 = s[5]!, l2 = s[6]!, shrink = s[7]!;
    const b = this.bytes;
    (shrink !== 1 ? this.ex.adam_shrink : this.ex.adam)(
      lr,
      beta1,
      1 - beta1,
      beta2,
      1 - beta2,
      eps,
      c1,
      c2,
      l2,
      shrink,
      b,
      0,
      2 * b,
      3 * b,
      n,
    );
  }
}
