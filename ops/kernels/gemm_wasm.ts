// a: (M, K) or (K, M) when transA, b: (K, N) or (N, K) when transB -> c: (M, N), all row-major
/**
 * WebAssembly SIMD GEMM: the module built from `wasm/gemm_kernel.ts`, with
 * a 4×8 f32x4 micro-kernel over packed panels, and for A·Bᵀ a 4×2 tile of
 * dot products that reads both operands unpacked. The module imports its
 * memory, and runs on two kinds:
 * - an executor's arena (a memory from `wasmArenaBuffer`): one instance per
 *   arena, on the arena's own memory (of the build with a shared memory
 *   import when the arena is shared, `sharedWasmArenaBuffer`). Operands in the arena are used in
 *   place; the packing workspace and copies of operands from outside (a
 *   parameter) go to the arena's kernel scratch (`arenaScratch`), which the
 *   plan reserves through the ops' `scratch` hooks ({@link gemmScratch});
 * - a growable memory of its own for everything else (hand-made arrays,
 *   arenas without enough scratch): operands that do not already live there
 *   are copied in (and C copied out), into a region that only grows.
 *
 * Own memory layout (bytes): [0, 1024) unused so that 0 is never a valid
 * operand, then the packing workspace, then the long-lived regions of
 * {@link wasmArena}, then the scratch regions handed out by
 * {@link wasmScratch}, then the staging copies of one `gemmWasm` call.
 *
 * Arena scratch layout: the packing workspace, then the views handed out by
 * {@link arenaScratchViews} or the copies of one `gemmWasm` call.
 *
 * @module
 */

import type { GemmDims } from "./gemm_ref.ts";
import type { Conv2dDims } from "./conv2d_ref.ts";
import { arenaMemory, arenaScratch, isSharedBuffer, noteArenaKernel } from "./elementwise_wasm.ts";
import {
  GEMM_WASM_RELAXED_SIMD,
  GEMM_WASM_RELAXED_SIMD_SHARED,
  GEMM_WASM_SIMD,
  GEMM_WASM_SIMD_SHARED,
} from "./wasm/gemm_bytes.ts";

interface GemmExports {
  gemm(
    a: number,
    b: number,
    c: number,
    m: number,
    n: number,
    k: number,
    flags: number,
    ws: number,
  ): void;
  workspace_bytes(): number;
  gemm_nt(a: number, b: number, c: number, m: number, n: number, k: number, add: number): void;
  // (src, dst, C, H, W, KH, KW, OH, OW, stride, padding)
  im2col(...args: number[]): void;
  col2im(...args: number[]): void;
}

interface WasmState {
  ex: GemmExports;
  mem: WebAssembly.Memory;
  variant: "relaxed-simd" | "simd";
  workspace: number;
  /** Start of the scratch regions: just past the last arena region. */
  scratchBase: number;
  /** End of the regions the last wasmScratch call handed out. */
  scratchEnd: number;
  heap: Float32Array;
}

// One instance on an executor arena's memory.
interface ArenaState {
  ex: GemmExports;
  buf: ArrayBufferLike;
  /** Byte address of the packing workspace: the start of the arena's scratch. */
  workspace: number;
  /** Just past the workspace: where views and staging copies go. */
  free: number;
  /** End of the memory. */
  end: number;
  heap: Float32Array;
}

const ALIGN = 64;
function align(x: number): number {
  // Not bit masks: addresses past 2 GiB must stay positive.
  return Math.ceil(x / ALIGN) * ALIGN;
}

function decode(b64: string): Uint8Array<ArrayBuffer> {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

// Preferred first: relaxed-simd FMA, then plain SIMD128 mul + add; each with
// its build for shared arenas.
const MODULES = [
  ["relaxed-simd", GEMM_WASM_RELAXED_SIMD, GEMM_WASM_RELAXED_SIMD_SHARED],
  ["simd", GEMM_WASM_SIMD, GEMM_WASM_SIMD_SHARED],
] as const;

// undefined: not tried yet; null: no usable WebAssembly SIMD here.
let state: WasmState | null | undefined;
let compiled: WebAssembly.Module | undefined;
// the shared-import build of the variant `compiled` is; null: it does not compile
let compiledShared: WebAssembly.Module | null | undefined;
// null: the buffer is no arena, or its scratch cannot hold the workspace
const arenas = new WeakMap<ArrayBufferLike, ArenaState | null>();

// Bytes copied between JavaScript arrays and a GEMM memory (see gemmStagedBytes).
let staged = 0;

function init(): WasmState | null {
  if (state !== undefined) return state;
  state = null;
  if (typeof WebAssembly !== "object") return state;
  for (const [variant, b64] of MODULES) {
    const bytes = decode(b64);
    if (!WebAssembly.validate(bytes)) continue;
    try {
      const m = new WebAssembly.Module(bytes);
      const mem = new WebAssembly.Memory({ initial: 1 });
      const ex = new WebAssembly.Instance(m, { env: { mem } }).exports as unknown as GemmExports;
      const workspace = 1024;
      const scratchBase = align(workspace + ex.workspace_bytes());
      compiled = m;
      state = {
        ex,
        mem,
        variant,
        workspace,
        scratchBase,
        scratchEnd: scratchBase,
        heap: new Float32Array(mem.buffer),
      };
      heapOf(state, scratchBase);
      break;
    } catch {
      // Validated but refused to instantiate (e.g. a memory limit): try the next one.
    }
  }
  return state;
}

// The build of the chosen variant for an arena in `buf`: with a shared memory
// import when `buf` is a SharedArrayBuffer.
function moduleFor(s: WasmState, buf: ArrayBufferLike): WebAssembly.Module | null {
  if (!isSharedBuffer(buf)) return compiled ?? null;
  if (compiledShared === undefined) {
    const bytes = decode(MODULES.find(([v]) => v === s.variant)![2]);
    compiledShared = WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  }
  return compiledShared;
}

// The instance on the arena `buf` is, or null when it is no arena with room
// for the workspace. Made on first use; buffers are weakly held.
function arenaOf(buf: ArrayBufferLike): ArenaState | null {
  const known = arenas.get(buf);
  if (known !== undefined) return known;
  let st: ArenaState | null = null;
  const s = init();
  const mem = arenaMemory(buf), scratch = arenaScratch(buf);
  const m = s && mem && scratch ? moduleFor(s, buf) : null;
  if (s && m && mem && scratch) {
    const ws = scratch.byteOffset, free = align(ws + s.ex.workspace_bytes());
    if (free <= buf.byteLength) {
      const ex = new WebAssembly.Instance(m, { env: { mem } })
        .exports as unknown as GemmExports;
      st = { ex, buf, workspace: ws, free, end: buf.byteLength, heap: new Float32Array(buf) };
      noteArenaKernel(buf, "gemm");
    }
  }
  arenas.set(buf, st);
  return st;
}

// Makes the memory at least `bytes` long and returns a current view of it.
// Growing detaches every earlier view of the memory.
function heapOf(s: WasmState, bytes: number): Float32Array {
  const mem = s.mem;
  if (mem.buffer.byteLength < bytes) {
    mem.grow(Math.ceil((bytes - mem.buffer.byteLength) / 65536));
  }
  if (s.heap.buffer !== mem.buffer) s.heap = new Float32Array(mem.buffer);
  return s.heap;
}

/**
 * Floats of arena scratch a kernel needs to run the GEMM on an executor's
 * arena with views of `lengths` of its own (from {@link arenaScratchViews},
 * or the copies {@link gemmWasm} makes of operands from outside the arena):
 * what an op's `scratch` hook returns. 0 where WebAssembly SIMD is missing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * // linear's hook: room for a copy of x and of the weight, whichever is outside
 * const need = gemmScratch([64 * 100, 10 * 100]);
 * assert.ok(need === 0 || need > 64 * 100 + 10 * 100);
 * ```
 */
export function gemmScratch(lengths: readonly number[]): number {
  const s = init();
  if (!s) return 0;
  let n = s.ex.workspace_bytes() / 4 + ALIGN / 4;
  for (const len of lengths) n += Math.ceil(len / (ALIGN / 4)) * (ALIGN / 4);
  return n;
}

/**
 * Float32Array views of the given lengths in the kernel scratch of the
 * executor arena `buf`, after the GEMM's packing workspace, so that a
 * kernel can build operands there (im2col columns, a copy of a weight) and
 * hand them to {@link gemmWasm} without a copy. Null when `buf` is no arena
 * of the wasm tier or its scratch is too small (the kernel then takes its
 * copying path). The views stay valid until the next call, or the next
 * `gemmWasm` call that copies an operand from outside the arena.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { wasmArenaBuffer } from "./elementwise_wasm.ts";
 * const buf = wasmArenaBuffer(256, gemmScratch([100, 100]) * 4);
 * const views = buf && arenaScratchViews(buf, [100, 100]);
 * assert.ok(views === null || (views[0]!.buffer === buf && views[1]!.length === 100));
 * assert.equal(arenaScratchViews(new ArrayBuffer(1024), [1]), null);
 * ```
 */
export function arenaScratchViews(
  buf: ArrayBufferLike,
  lengths: readonly number[],
): Float32Array[] | null {
  const st = arenaOf(buf);
  if (!st) return null;
  let end = st.free;
  for (const len of lengths) end = align(end + len * 4);
  if (end > st.end) return null;
  const out: Float32Array[] = [];
  let at = st.free;
  for (const len of lengths) {
    out.push(new Float32Array(buf, at, len));
    at = align(at + len * 4);
  }
  return out;
}

/**
 * Bytes copied so far between JavaScript arrays and a GEMM memory (operands
 * staged in, results copied out, by {@link gemmWasm} and the convolutions
 * of `conv2d_fast.ts`), for tests that check a path makes no copies.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const before = gemmStagedBytes();
 * const c = new Float32Array(1);
 * if (wasmAvailable()) gemmWasm(new Float32Array([2]), new Float32Array([3]), c, { m: 1, n: 1, k: 1 });
 * assert.equal(gemmStagedBytes() - before, wasmAvailable() ? 12 : 0);
 * ```
 */
export function gemmStagedBytes(): number {
  return staged;
}

/**
 * Counts `bytes` as staged (see {@link gemmStagedBytes}); for kernels that
 * copy into a GEMM memory themselves.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const before = gemmStagedBytes();
 * countStaged(8);
 * assert.equal(gemmStagedBytes() - before, 8);
 * ```
 */
export function countStaged(bytes: number): void {
  staged += bytes;
}

/**
 * Whether the WebAssembly SIMD tier can run here (the module validated and
 * instantiated). Compiles the module on first call.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * // where it is missing, the wasm tier runs the blocked TypeScript kernels
 * assert.equal(typeof wasmAvailable(), "boolean");
 * ```
 */
export function wasmAvailable(): boolean {
  return init() !== null;
}

/**
 * Which module serves: `"relaxed-simd"` (FMA), `"simd"` (mul + add), or null
 * when WebAssembly SIMD is unavailable.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(wasmVariant() === null, !wasmAvailable());
 * ```
 */
export function wasmVariant(): "relaxed-simd" | "simd" | null {
  return init()?.variant ?? null;
}

/** A long-lived float32 region inside the wasm memory; see {@link wasmArena}. */
export interface WasmRegion {
  /** Byte address of the region in the wasm memory. */
  readonly byteOffset: number;
  /** Length in floats. */
  readonly length: number;
  /**
   * A view of the region. Growing the memory detaches earlier views, so
   * fetch the view again after any call that may grow it (it is cached
   * until then, so this is cheap).
   */
  view(): Float32Array;
}

/**
 * Reserves `length` floats inside the wasm memory for as long as the
 * process lives, so that an engine can keep its tensors there and have
 * {@link gemmWasm} use them without copies. Meant for set-up time: it moves
 * the scratch area up, which invalidates views from {@link wasmScratch}.
 * Returns null when wasm is unavailable.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const region = wasmArena(1024);
 * assert.ok(region === null || region.view().length === 1024);
 * ```
 */
export function wasmArena(length: number): WasmRegion | null {
  const s = init();
  if (!s) return null;
  const byteOffset = s.scratchBase;
  s.scratchBase = align(byteOffset + length * 4);
  s.scratchEnd = s.scratchBase;
  heapOf(s, s.scratchBase);
  let cached: Float32Array | null = null;
  return {
    byteOffset,
    length,
    view() {
      const buf = s.mem.buffer;
      if (cached === null || cached.buffer !== buf) {
        cached = new Float32Array(buf, byteOffset, length);
      }
      return cached;
    },
  };
}

/**
 * Float32Array views of the given lengths laid out inside the wasm memory,
 * so that a caller can build operands in place (im2col columns, say) and
 * pass them to {@link gemmWasm} without a copy. Returns null when wasm is
 * unavailable.
 *
 * Laying them out may grow the memory, which detaches every earlier view of
 * it. Arrays passed in `keep` come back after the scratch views, re-made on
 * the current memory when they are views of it (others unchanged), so a
 * caller's operands that live in the wasm memory survive the call.
 *
 * The scratch views stay valid until the next `wasmScratch` call (which
 * reuses the same region) or until the memory grows, which a `gemmWasm`
 * call does only when some operand is not already inside the memory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const views = wasmScratch([64 * 9, 9 * 676]);
 * assert.deepEqual(views?.map((v) => v.length) ?? [576, 6084], [576, 6084]);
 * ```
 */
export function wasmScratch(
  lengths: readonly number[],
  keep: readonly Float32Array[] = [],
): Float32Array[] | null {
  const s = init();
  if (!s) return null;
  const buf = s.mem.buffer;
  // Offsets must be read before growing: a detached view reports 0.
  const kept = keep.map((a) => (a.buffer === buf ? [a.byteOffset, a.length] : null));
  let end = s.scratchBase;
  const offsets: number[] = [];
  for (const len of lengths) {
    offsets.push(end);
    end = align(end + len * 4);
  }
  const heap = heapOf(s, end);
  s.scratchEnd = end;
  const out = offsets.map((o, i) => new Float32Array(heap.buffer, o, lengths[i]));
  keep.forEach((a, i) => {
    const at = kept[i];
    out.push(at && heap.buffer !== a.buffer ? new Float32Array(heap.buffer, at[0], at[1]) : a);
  });
  return out;
}

/**
 * C = op(A)·op(B), or C += … with `accumulate`, with the WebAssembly SIMD
 * kernel; same semantics as `gemmRef` on float32. When C lives in an
 * executor arena with room in its scratch, the product runs on the arena:
 * A and B are read in place when they live there too, else copied into the
 * scratch. Otherwise operands that are views into the module's own memory
 * (see {@link wasmScratch}) are used in place; others are copied in and C
 * is copied back out.
 *
 * @throws {Error} when WebAssembly SIMD is unavailable (see {@link wasmAvailable}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const a = new Float32Array([1, 2, 3, 4]);
 * const b = new Float32Array([5, 6, 7, 8]);
 * const c = new Float32Array(4);
 * gemmWasm(a, b, c, { m: 2, n: 2, k: 2 });
 * assert.deepEqual([...c], [19, 22, 43, 50]);
 * ```
 */
export function gemmWasm(a: Float32Array, b: Float32Array, c: Float32Array, d: GemmDims): void {
  const { m, n, k } = d;
  if (m === 0 || n === 0) return;
  const accumulate = d.accumulate === true;
  if (k === 0) {
    if (!accumulate) c.fill(0, 0, m * n);
    return;
  }
  const s = init();
  if (!s) throw new Error("gemmWasm: WebAssembly SIMD is not available in this runtime");
  const ar = arenaOf(c.buffer);
  if (ar && gemmArena(ar, a, b, c, d)) return;
  const buf = s.mem.buffer;
  const aIn = a.buffer === buf, bIn = b.buffer === buf, cIn = c.buffer === buf;
  // Staging goes after the scratch regions, which may hold in-place operands.
  let end = s.scratchEnd;
  const ap = aIn ? a.byteOffset : end;
  if (!aIn) end = align(end + m * k * 4);
  const bp = bIn ? b.byteOffset : end;
  if (!bIn) end = align(end + k * n * 4);
  const cp = cIn ? c.byteOffset : end;
  if (!cIn) end = align(end + m * n * 4);
  const heap = heapOf(s, end);
  if (!aIn) stage(heap, a, ap, m * k);
  if (!bIn) stage(heap, b, bp, k * n);
  if (!cIn && accumulate) stage(heap, c, cp, m * n);
  run(s.ex, ap, bp, cp, d, s.workspace);
  if (!cIn) {
    c.set(heap.subarray(cp / 4, cp / 4 + m * n));
    staged += m * n * 4;
  }
}

// Copies the first `len` floats of `x` to byte address `at` of `heap`.
function stage(heap: Float32Array, x: Float32Array, at: number, len: number): void {
  heap.set(x.length === len ? x : x.subarray(0, len), at / 4);
  staged += len * 4;
}

function run(ex: GemmExports, ap: number, bp: number, cp: number, d: GemmDims, ws: number): void {
  const { m, n, k } = d;
  const accumulate = d.accumulate === true;
  if (d.transB && !d.transA && (m < 512 || n < 512)) {
    // Rows of A and B both run along K: dot products need no packing, which
    // measured 1.1-3× faster on skinny shapes and level on square ones up to
    // 512; past that the packed kernel's cache blocking wins.
    ex.gemm_nt(ap, bp, cp, m, n, k, accumulate ? 1 : 0);
  } else {
    const flags = (d.transA ? 1 : 0) | (d.transB ? 2 : 0) | (accumulate ? 4 : 0);
    ex.gemm(ap, bp, cp, m, n, k, flags, ws);
  }
}

// C lives in the arena: A and B in place or copied into its scratch; false
// (nothing done) when the copies do not fit.
function gemmArena(
  st: ArenaState,
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  d: GemmDims,
): boolean {
  const { m, n, k } = d;
  const aIn = a.buffer === st.buf, bIn = b.buffer === st.buf;
  // copies go past any operand that lives in the scratch itself
  let end = st.free;
  if (!aIn || !bIn) {
    if (aIn) end = Math.max(end, align(a.byteOffset + m * k * 4));
    if (bIn) end = Math.max(end, align(b.byteOffset + k * n * 4));
    end = Math.max(end, align(c.byteOffset + m * n * 4));
  }
  const ap = aIn ? a.byteOffset : end;
  if (!aIn) end = align(end + m * k * 4);
  const bp = bIn ? b.byteOffset : end;
  if (!bIn) end = align(end + k * n * 4);
  if (end > st.end) return false;
  if (!aIn) stage(st.heap, a, ap, m * k);
  if (!bIn) stage(st.heap, b, bp, k * n);
  run(st.ex, ap, bp, c.byteOffset, d, st.workspace);
  return true;
}

// The instance whose memory `a` and `b` live in: the own memory's or an
// arena's; throws naming `op` otherwise. It runs once per image, so it makes
// no array or closure.
function instanceFor(op: string, a: Float32Array, b: Float32Array): GemmExports {
  const s = init();
  if (!s) throw new Error(`${op}: WebAssembly SIMD is not available in this runtime`);
  const buf = a.buffer;
  const ex = buf === s.mem.buffer ? s.ex : arenaOf(buf)?.ex;
  if (!ex || b.buffer !== buf) {
    throw new Error(
      `${op}: operands must be views from wasmScratch or of one executor arena (got a foreign or stale array)`,
    );
  }
  return ex;
}

/**
 * im2col of one image inside a wasm memory: x (C, H, W) -> col
 * (C·KH·KW, OH·OW), zeros where a window leaves the image. Both arrays
 * must be views from {@link wasmScratch}, or of one executor arena (with
 * scratch: see {@link arenaScratchViews}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const d = { n: 1, c: 1, h: 3, w: 3, oc: 1, kh: 2, kw: 2, oh: 2, ow: 2, stride: 1, padding: 0 };
 * const [x, col] = wasmScratch([9, 16])!;
 * x.set([1, 2, 3, 4, 5, 6, 7, 8, 9]);
 * im2colWasm(x, col, d);
 * assert.deepEqual([...col], [1, 2, 4, 5, 2, 3, 5, 6, 4, 5, 7, 8, 5, 6, 8, 9]);
 * ```
 */
export function im2colWasm(x: Float32Array, col: Float32Array, d: Conv2dDims): void {
  instanceFor("im2colWasm", x, col).im2col(
    x.byteOffset,
    col.byteOffset,
    d.c,
    d.h,
    d.w,
    d.kh,
    d.kw,
    d.oh,
    d.ow,
    d.stride,
    d.padding,
  );
}

/**
 * col2im of one image inside a wasm memory: dx (C, H, W) = the sum of
 * col (C·KH·KW, OH·OW) entries over the windows that read each pixel
 * (overwrites dx). Both arrays must be views from {@link wasmScratch}, or
 * of one executor arena (with scratch: see {@link arenaScratchViews}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const d = { n: 1, c: 1, h: 3, w: 3, oc: 1, kh: 2, kw: 2, oh: 2, ow: 2, stride: 1, padding: 0 };
 * const [col, dx] = wasmScratch([16, 9])!;
 * col.fill(1);
 * col2imWasm(col, dx, d);
 * assert.deepEqual([...dx], [1, 2, 1, 2, 4, 2, 1, 2, 1]);
 * ```
 */
export function col2imWasm(col: Float32Array, dx: Float32Array, d: Conv2dDims): void {
  instanceFor("col2imWasm", col, dx).col2im(
    col.byteOffset,
    dx.byteOffset,
    d.c,
    d.h,
    d.w,
    d.kh,
    d.kw,
    d.oh,
    d.ow,
    d.stride,
    d.padding,
  );
}
