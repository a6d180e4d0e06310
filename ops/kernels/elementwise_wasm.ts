// x, y, dy, dx: float32 views of one executor arena that lives in a WebAssembly memory
/**
 * The elementwise WebAssembly SIMD tier (module built from
 * `wasm/elementwise_kernel.ts`). An executor asks {@link wasmArenaBuffer} for
 * its arena; that buffer is the memory of a module instance of its own, so
 * ReLU, 2×2 max-pooling and bias-gradient sums run on the arena in place. The memory never
 * grows, so views of it stay valid. An op's wasm kernel (see `runKernel` in
 * `tier.ts`) calls {@link elementwiseWasm} with its operands and hands over
 * to the TypeScript kernel when it returns null: WebAssembly SIMD missing,
 * or an operand outside the arena (a parameter, a hand-made array).
 *
 * An arena may also be a *shared* memory ({@link sharedWasmArenaBuffer}), whose
 * buffer is a `SharedArrayBuffer`: another thread that is posted the memory
 * registers it with {@link adoptArenaMemory} and then runs kernels on the same
 * bytes. Every kernel module on an arena has a second build whose imported
 * memory is shared (a wasm import's shared flag must match the memory's);
 * kernels pick it when the arena's buffer is a `SharedArrayBuffer`
 * ({@link isSharedBuffer}). In V8 a memory's `buffer` is the same object on
 * every access while the memory does not grow (arenas never grow), in the
 * thread that made it and in one it was posted to, so the per-buffer caches
 * hold; each postMessage of a memory gives the receiver a new Memory object
 * with a buffer of its own, though, so a receiver adopts each one it keeps.
 *
 * @module
 */

import { setArenaAllocator } from "../../graph/arena.ts";
import type { FloatArray } from "../../graph/op.ts";
import { ELEMENTWISE_WASM, ELEMENTWISE_WASM_SHARED } from "./wasm/elementwise_bytes.ts";

/** The module's functions; addresses are byte offsets into the arena. */
export interface ElementwiseExports {
  relu(x: number, y: number, n: number): void;
  relu_backward(x: number, dy: number, dx: number, n: number): void;
  // (x, y, planes, h, w, oh, ow), ow ≥ 4
  pool2(...args: number[]): void;
  // (x, y, dy, dx, planes, h, w, oh, ow), ow ≥ 4; 1 when some maximum is NaN
  pool2_backward(...args: number[]): number;
  sum_runs(x: number, out: number, outer: number, mid: number, inner: number): void;
  copy(dst: number, src: number, bytes: number): void;
  zero(dst: number, bytes: number): void;
  fill(dst: number, bits: number, n: number): void;
}

// undefined: not tried yet; null: no WebAssembly SIMD here (or no shared memories)
let compiled: WebAssembly.Module | null | undefined;
let compiledShared: WebAssembly.Module | null | undefined;
const instances = new WeakMap<ArrayBufferLike, ElementwiseExports>();
const memories = new WeakMap<ArrayBufferLike, WebAssembly.Memory>();
const scratchStarts = new WeakMap<ArrayBufferLike, number>();
const kernelsOn = new WeakMap<ArrayBufferLike, Set<string>>();
const PAGE = 65536;
const MAX_PAGES = 65536;

function compile(b64: string): WebAssembly.Module | null {
  if (typeof WebAssembly !== "object") return null;
  const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
  try {
    return WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  } catch {
    // validates but will not compile: the TypeScript kernels
    return null;
  }
}

function module(shared = false): WebAssembly.Module | null {
  if (!shared) return compiled === undefined ? compiled = compile(ELEMENTWISE_WASM) : compiled;
  if (compiledShared !== undefined) return compiledShared;
  // the shared build only where the unshared one runs: the same kernels or none
  return compiledShared = module() && compile(ELEMENTWISE_WASM_SHARED);
}

/**
 * Whether `buf` is a `SharedArrayBuffer`: a module instantiated on the
 * memory of such an arena must be the build with a shared memory import.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isSharedBuffer } from "./elementwise_wasm.ts";
 * assert.equal(isSharedBuffer(new SharedArrayBuffer(8)), true);
 * assert.equal(isSharedBuffer(new ArrayBuffer(8)), false);
 * ```
 */
export function isSharedBuffer(buf: ArrayBufferLike): boolean {
  return typeof SharedArrayBuffer === "function" && buf instanceof SharedArrayBuffer;
}

/**
 * Records that the kernel module `name` made an instance on the arena
 * `buf` (kernel modules call it; {@link arenaKernels} lists them).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { arenaKernels, noteArenaKernel } from "./elementwise_wasm.ts";
 * const buf = new ArrayBuffer(8);
 * noteArenaKernel(buf, "mine");
 * assert.deepEqual(arenaKernels(buf), ["mine"]);
 * ```
 */
export function noteArenaKernel(buf: ArrayBufferLike, name: string): void {
  let s = kernelsOn.get(buf);
  if (!s) kernelsOn.set(buf, s = new Set());
  s.add(name);
}

/**
 * The kernel modules that made an instance on the arena `buf` so far, in
 * the order they did, e.g. `["elementwise", "gemm", "conv_relu_pool"]`: a
 * probe that the WebAssembly kernels (not a TypeScript fallback) ran there.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { arenaKernels, wasmArenaBuffer } from "./elementwise_wasm.ts";
 * const buf = wasmArenaBuffer(64);
 * // the elementwise module is instantiated with the arena itself
 * assert.deepEqual(arenaKernels(buf ?? new ArrayBuffer(8)), buf ? ["elementwise"] : []);
 * ```
 */
export function arenaKernels(buf: ArrayBufferLike): string[] {
  return [...(kernelsOn.get(buf) ?? [])];
}

// Registers `mem` (with its buffer `buf`) as an arena whose scratch starts at
// `start`, with an elementwise instance on it.
function register(
  m: WebAssembly.Module,
  mem: WebAssembly.Memory,
  buf: ArrayBufferLike,
  start: number,
): void {
  const ex = new WebAssembly.Instance(m, { env: { mem } }).exports as unknown as ElementwiseExports;
  instances.set(buf, ex);
  memories.set(buf, mem);
  scratchStarts.set(buf, start);
  noteArenaKernel(buf, "elementwise");
}

/**
 * A buffer of at least `bytes` + `scratchBytes` bytes that is the memory of
 * its own instance of the elementwise module, or null where WebAssembly SIMD
 * is missing or the size is past what a memory can hold. Everything past
 * `bytes` (rounded up to 64) is kernel scratch: see {@link arenaScratch}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { arenaScratch, wasmArenaBuffer } from "./elementwise_wasm.ts";
 * const buf = wasmArenaBuffer(1000, 4096);
 * assert.ok(buf === null || buf.byteLength >= 1024 + 4096);
 * assert.ok(buf === null || arenaScratch(buf)!.byteOffset === 1024);
 * ```
 */
export function wasmArenaBuffer(bytes: number, scratchBytes = 0): ArrayBuffer | null {
  const m = module();
  const start = Math.ceil(bytes / 64) * 64;
  const pages = Math.max(1, Math.ceil((start + scratchBytes) / PAGE));
  if (!m || pages > MAX_PAGES) return null;
  try {
    const mem = new WebAssembly.Memory({ initial: pages, maximum: pages });
    // not shared, so the memory's buffer is an ArrayBuffer
    const buf = mem.buffer as ArrayBuffer;
    register(m, mem, buf, start);
    return buf;
  } catch {
    // out of memory for the reservation: the caller uses an ordinary buffer
    return null;
  }
}

/**
 * {@link wasmArenaBuffer} for an arena other threads may share: a buffer of
 * at least `bytes` + `scratchBytes` bytes that is a shared
 * `WebAssembly.Memory` (`maximum` = `initial`, never grown), registered
 * like an unshared one ({@link arenaMemory}, {@link arenaScratch}, every
 * kernel module's instance on it, built with a shared memory import), or
 * where WebAssembly SIMD (or a memory that large) is missing a plain
 * `SharedArrayBuffer` of `bytes` that the TypeScript kernels run on. Null
 * only when no `SharedArrayBuffer` can be made (the executor then falls back
 * to an `ArrayBuffer`). Post {@link arenaMemory}'s result to another thread,
 * which calls {@link adoptArenaMemory}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { arenaMemory, arenaScratch, sharedWasmArenaBuffer } from "./elementwise_wasm.ts";
 * const buf = sharedWasmArenaBuffer(1000, 4096)!;
 * assert.ok(buf instanceof SharedArrayBuffer && buf.byteLength >= 1000);
 * const mem = arenaMemory(buf);
 * assert.ok(mem === undefined || (mem.buffer === buf && arenaScratch(buf)!.byteOffset === 1024));
 * ```
 */
export function sharedWasmArenaBuffer(
  bytes: number,
  scratchBytes = 0,
): SharedArrayBuffer | null {
  const m = module(true);
  const start = Math.ceil(bytes / 64) * 64;
  const pages = Math.max(1, Math.ceil((start + scratchBytes) / PAGE));
  if (m && pages <= MAX_PAGES) {
    try {
      const mem = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
      const buf = mem.buffer as SharedArrayBuffer;
      register(m, mem, buf, start);
      return buf;
    } catch {
      // no room for the memory: a plain shared buffer
    }
  }
  try {
    return new SharedArrayBuffer(bytes);
  } catch {
    return null;
  }
}

/**
 * Makes a shared arena memory posted from another thread (the owner's
 * {@link arenaMemory} of a {@link sharedWasmArenaBuffer}) an arena here:
 * `scratchStart` is the owner's `arenaScratch(buf).byteOffset`. Afterwards
 * views of `mem.buffer` get {@link arenaMemory}, {@link arenaScratch} and
 * every kernel module's instance, as on the owner's thread. Returns that
 * buffer (in V8 the same object on every access of `mem.buffer`, as the
 * memory never grows; views must be made on it, and adopting the same
 * `Memory` object again changes nothing). Throws when `mem` is not shared
 * or `scratchStart` is outside it; the kernels run on the memory only where
 * WebAssembly SIMD is present (elsewhere the TypeScript ones do).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { adoptArenaMemory, arenaMemory, arenaScratch } from "./elementwise_wasm.ts";
 * // as a worker would receive it from postMessage
 * const mem = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
 * const buf = adoptArenaMemory(mem, 1024);
 * assert.equal(buf, mem.buffer);
 * assert.equal(arenaMemory(buf), mem);
 * assert.deepEqual(arenaScratch(buf), { byteOffset: 1024, byteLength: 65536 - 1024 });
 * assert.throws(() => adoptArenaMemory(new WebAssembly.Memory({ initial: 1 }), 0), /not shared/);
 * ```
 */
export function adoptArenaMemory(mem: WebAssembly.Memory, scratchStart: number): SharedArrayBuffer {
  const buf = mem.buffer;
  if (!isSharedBuffer(buf)) {
    throw new Error("adoptArenaMemory: the memory is not shared (its buffer is an ArrayBuffer)");
  }
  if (!(Number.isInteger(scratchStart) && scratchStart >= 0 && scratchStart <= buf.byteLength)) {
    throw new Error(
      `adoptArenaMemory: scratch start ${scratchStart} is not a byte offset in the memory (0..${buf.byteLength})`,
    );
  }
  if (memories.get(buf) !== mem) {
    const m = module(true);
    if (m) register(m, mem, buf, scratchStart);
    else {
      memories.set(buf, mem);
      scratchStarts.set(buf, scratchStart);
    }
  }
  return buf as SharedArrayBuffer;
}

/** Where an arena's kernel scratch lies: bytes past the executor's buffers. */
export interface ArenaScratch {
  /** Byte address of the scratch (a multiple of 64). */
  readonly byteOffset: number;
  /** Its length in bytes: up to the end of the memory. */
  readonly byteLength: number;
}

/**
 * The kernel scratch of an arena from {@link wasmArenaBuffer}: the bytes
 * past the executor's buffers, which kernels may use freely during a call
 * (one kernel runs at a time on an arena); undefined for any other buffer.
 * A plan reserves it (`OpDef.scratch`); a kernel that finds it too small
 * must fall back to a path that does without.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { arenaScratch, wasmArenaBuffer } from "./elementwise_wasm.ts";
 * const buf = wasmArenaBuffer(64, 256);
 * assert.ok(buf === null || arenaScratch(buf)!.byteLength >= 256);
 * assert.equal(arenaScratch(new ArrayBuffer(64)), undefined);
 * ```
 */
export function arenaScratch(buf: ArrayBufferLike): ArenaScratch | undefined {
  const start = scratchStarts.get(buf);
  return start === undefined
    ? undefined
    : { byteOffset: start, byteLength: buf.byteLength - start };
}

/**
 * The elementwise module bound to the arena all of `arrays` live in, or null
 * when they do not share one such arena.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { elementwiseWasm, wasmArenaBuffer } from "./elementwise_wasm.ts";
 * const buf = wasmArenaBuffer(64);
 * const x = new Float32Array(buf ?? new ArrayBuffer(64), 0, 8).fill(-1);
 * const y = new Float32Array(x.buffer, 32, 8).fill(5);
 * const k = elementwiseWasm(x, y);
 * assert.equal(k === null, buf === null);
 * k?.relu(x.byteOffset, y.byteOffset, 8);
 * assert.deepEqual([...y], buf === null ? [5, 5, 5, 5, 5, 5, 5, 5] : [0, 0, 0, 0, 0, 0, 0, 0]);
 * assert.equal(elementwiseWasm(new Float32Array(8)), null);
 * ```
 */
export function elementwiseWasm(...arrays: Float32Array[]): ElementwiseExports | null {
  const buf = arrays[0]!.buffer;
  const ex = instances.get(buf);
  if (!ex) return null;
  for (const a of arrays) if (a.buffer !== buf) return null;
  return ex;
}

// The elementwise instance on `buf` when it is a shared arena (a SharedArrayBuffer).
function sharedInstance(buf: ArrayBufferLike): ElementwiseExports | undefined {
  return isSharedBuffer(buf) ? instances.get(buf) : undefined;
}

/**
 * `a.copyWithin(target, start, end)` for a float32 view `a` of an arena
 * (indices as `copyWithin` takes them; a negative one goes to `copyWithin`). On a shared arena by
 * the elementwise module's `memory.copy`: V8 copies inside a
 * `SharedArrayBuffer` by relaxed atomic moves, 2.2× slower (2.2 against 1.0
 * µs per 100 KB here; `memory.copy` 1.2). Elsewhere `copyWithin` itself.
 * The bytes are the same either way.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { arenaCopyWithin, sharedWasmArenaBuffer } from "./elementwise_wasm.ts";
 * for (const buf of [new ArrayBuffer(64), sharedWasmArenaBuffer(64)!]) {
 *   const a = new Float32Array(buf, 16, 6);
 *   a.set([1, 2, 3, 4, 5, 6]);
 *   arenaCopyWithin(a, 1, 3, 6);
 *   assert.deepEqual([...a], [1, 4, 5, 6, 5, 6]);
 * }
 * ```
 */
export function arenaCopyWithin(a: Float32Array, target: number, start: number, end: number): void {
  const ex = sharedInstance(a.buffer);
  // as copyWithin: what would pass the end of `a` is left out
  const count = Math.min(end, a.length) - start, room = a.length - target;
  if (ex && start >= 0 && target >= 0 && count > 0) {
    ex.copy(a.byteOffset + 4 * target, a.byteOffset + 4 * start, 4 * Math.min(count, room));
  } else a.copyWithin(target, start, end);
}

/**
 * `a.fill(0, start, end)` for a float32 view `a` of an arena. On a shared arena by the elementwise module's `memory.fill`: V8
 * fills a `SharedArrayBuffer` by relaxed atomic stores, 10× slower (7.6
 * against 0.8 µs per 100 KB here). Elsewhere `fill` itself.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { arenaZero, sharedWasmArenaBuffer } from "./elementwise_wasm.ts";
 * for (const buf of [new ArrayBuffer(64), sharedWasmArenaBuffer(64)!]) {
 *   const a = new Float32Array(buf, 16, 4).fill(-1);
 *   arenaZero(a, 1, 3);
 *   assert.deepEqual([...a], [-1, 0, 0, -1]);
 * }
 * ```
 */
export function arenaZero(a: Float32Array, start = 0, end = a.length): void {
  const ex = sharedInstance(a.buffer);
  end = Math.min(end, a.length);
  if (ex && start >= 0 && end > start) ex.zero(a.byteOffset + 4 * start, 4 * (end - start));
  else a.fill(0, start, end);
}

/**
 * `dst.set(src)` (as many elements as `src` has) where both are float32
 * views of one shared arena: by the elementwise module's `memory.copy`
 * (V8's `set` inside a `SharedArrayBuffer` moves by relaxed atomics, 2.2×
 * slower per 100 KB here). Any other arrays (float64, unshared, from
 * different buffers, `src` longer than `dst`): `dst.set(src)` itself.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { arenaSet, sharedWasmArenaBuffer } from "./elementwise_wasm.ts";
 * for (const buf of [new ArrayBuffer(64), sharedWasmArenaBuffer(64)!]) {
 *   const src = new Float32Array(buf, 0, 3), dst = new Float32Array(buf, 32, 4).fill(9);
 *   src.set([1, 2, 3]);
 *   arenaSet(dst, src);
 *   assert.deepEqual([...dst], [1, 2, 3, 9]);
 * }
 * ```
 */
export function arenaSet(dst: FloatArray, src: FloatArray): void {
  const ex = src.buffer === dst.buffer && src.length <= dst.length &&
      dst instanceof Float32Array && src instanceof Float32Array
    ? sharedInstance(dst.buffer)
    : undefined;
  if (ex && src.length > 0) ex.copy(dst.byteOffset, src.byteOffset, 4 * src.length);
  else dst.set(src);
}

const fillF32 = new Float32Array(1);
const fillBits = new Uint32Array(fillF32.buffer);

/**
 * `a.fill(value, start, end)` for a float32 view `a` of an arena: on a shared arena by the elementwise module, 32-bit words of the
 * float32 that `fill` would store (V8's `fill` on a `SharedArrayBuffer`
 * stores by relaxed atomics); elsewhere `fill` itself.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { arenaFill, sharedWasmArenaBuffer } from "./elementwise_wasm.ts";
 * for (const buf of [new ArrayBuffer(64), sharedWasmArenaBuffer(64)!]) {
 *   const a = new Float32Array(buf, 4, 11).fill(-1);
 *   arenaFill(a, 0.1, 1, 10);
 *   assert.deepEqual([...a], [-1, ...new Array(9).fill(Math.fround(0.1)), -1]);
 * }
 * ```
 */
export function arenaFill(a: Float32Array, value: number, start = 0, end = a.length): void {
  const ex = sharedInstance(a.buffer);
  end = Math.min(end, a.length);
  if (ex && start >= 0 && end > start) {
    fillF32[0] = value;
    ex.fill(a.byteOffset + 4 * start, fillBits[0]! | 0, end - start);
  } else a.fill(value, start, end);
}

/**
 * The WebAssembly memory an arena buffer from {@link wasmArenaBuffer} (or
 * {@link sharedWasmArenaBuffer}, or adopted by {@link adoptArenaMemory}) is,
 * so that other kernel modules can be instantiated on it (and a shared one
 * posted to another thread); undefined for any other buffer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { arenaMemory, wasmArenaBuffer } from "./elementwise_wasm.ts";
 * const buf = wasmArenaBuffer(64);
 * assert.ok(buf === null || arenaMemory(buf)?.buffer === buf);
 * ```
 */
export function arenaMemory(buf: ArrayBufferLike): WebAssembly.Memory | undefined {
  return memories.get(buf);
}

// executors made after any op module is imported get their arena from here
setArenaAllocator(wasmArenaBuffer);
