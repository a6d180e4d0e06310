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
 * @module
 */

import { setArenaAllocator } from "../../graph/arena.ts";
import { ELEMENTWISE_WASM } from "./wasm/elementwise_bytes.ts";

/** The module's functions; addresses are byte offsets into the arena. */
export interface ElementwiseExports {
  relu(x: number, y: number, n: number): void;
  relu_backward(x: number, dy: number, dx: number, n: number): void;
  // (x, y, planes, h, w, oh, ow), ow ≥ 4
  pool2(...args: number[]): void;
  // (x, y, dy, dx, planes, h, w, oh, ow), ow ≥ 4; 1 when some maximum is NaN
  pool2_backward(...args: number[]): number;
  sum_runs(x: number, out: number, outer: number, mid: number, inner: number): void;
}

// undefined: not tried yet; null: no WebAssembly SIMD here
let compiled: WebAssembly.Module | null | undefined;
const instances = new WeakMap<ArrayBufferLike, ElementwiseExports>();
const memories = new WeakMap<ArrayBufferLike, WebAssembly.Memory>();
const scratchStarts = new WeakMap<ArrayBufferLike, number>();
const PAGE = 65536;
const MAX_PAGES = 65536;

function module(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  compiled = null;
  if (typeof WebAssembly !== "object") return compiled;
  const bytes = Uint8Array.from(atob(ELEMENTWISE_WASM), (ch) => ch.charCodeAt(0));
  if (WebAssembly.validate(bytes)) compiled = new WebAssembly.Module(bytes);
  return compiled;
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
    const ex = new WebAssembly.Instance(m, { env: { mem } })
      .exports as unknown as ElementwiseExports;
    // not shared, so the memory's buffer is an ArrayBuffer
    const buf = mem.buffer as ArrayBuffer;
    instances.set(buf, ex);
    memories.set(buf, mem);
    scratchStarts.set(buf, start);
    return buf;
  } catch {
    // out of memory for the reservation: the caller uses an ordinary buffer
    return null;
  }
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

/**
 * The WebAssembly memory an arena buffer from {@link wasmArenaBuffer} is,
 * so that other kernel modules can be instantiated on it; undefined for any
 * other buffer.
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
