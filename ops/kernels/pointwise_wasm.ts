// x, y, dy, dx: float32 views of one executor arena that lives in a WebAssembly memory
/**
 * The elementwise WebAssembly SIMD tier (module built from
 * `wasm/pointwise_kernel.ts`). An executor asks {@link wasmArenaBuffer} for
 * its arena; that buffer is the memory of a module instance of its own, so
 * ReLU, 2×2 max-pooling and bias-gradient sums run on the arena in place. The memory never
 * grows, so views of it stay valid. Ops call {@link pointwiseWasm} with
 * their operands and fall back to the TypeScript kernels when it returns
 * null: another tier, WebAssembly SIMD missing, or an operand outside the
 * arena (a parameter, a hand-made array).
 *
 * @module
 */

import { setArenaAllocator } from "../../graph/arena.ts";
import type { Tier } from "../../graph/op.ts";
import { getKernelTier } from "./gemm.ts";
import { POINTWISE_WASM } from "./wasm/gemm_wasm_bytes.ts";

/** The module's functions; addresses are byte offsets into the arena. */
export interface PointwiseExports {
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
const instances = new WeakMap<ArrayBufferLike, PointwiseExports>();
const PAGE = 65536;
const MAX_PAGES = 65536;

function module(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  compiled = null;
  if (typeof WebAssembly !== "object") return compiled;
  const bytes = Uint8Array.from(atob(POINTWISE_WASM), (ch) => ch.charCodeAt(0));
  if (WebAssembly.validate(bytes)) compiled = new WebAssembly.Module(bytes);
  return compiled;
}

/**
 * A buffer of at least `bytes` bytes that is the memory of its own instance
 * of the elementwise module, or null where WebAssembly SIMD is missing or
 * the size is past what a memory can hold.
 *
 * @example
 * ```ts
 * import { wasmArenaBuffer } from "./pointwise_wasm.ts";
 * const buf = wasmArenaBuffer(1024);
 * console.log(buf === null || buf.byteLength >= 1024); // true
 * ```
 */
export function wasmArenaBuffer(bytes: number): ArrayBuffer | null {
  const m = module();
  const pages = Math.max(1, Math.ceil(bytes / PAGE));
  if (!m || pages > MAX_PAGES) return null;
  try {
    const mem = new WebAssembly.Memory({ initial: pages, maximum: pages });
    const ex = new WebAssembly.Instance(m, { env: { mem } }).exports as unknown as PointwiseExports;
    // not shared, so the memory's buffer is an ArrayBuffer
    const buf = mem.buffer as ArrayBuffer;
    instances.set(buf, ex);
    return buf;
  } catch {
    // out of memory for the reservation: the caller uses an ordinary buffer
    return null;
  }
}

/**
 * The elementwise module bound to the arena all of `arrays` live in, when
 * `tier` (or, if undefined, the process-wide tier) is `"wasm"`; otherwise null.
 *
 * @example
 * ```ts
 * import { pointwiseWasm, wasmArenaBuffer } from "./pointwise_wasm.ts";
 * const buf = wasmArenaBuffer(64);
 * const x = new Float32Array(buf ?? new ArrayBuffer(64), 0, 8).fill(-1);
 * const y = new Float32Array(x.buffer, 32, 8);
 * pointwiseWasm("wasm", x, y)?.relu(x.byteOffset, y.byteOffset, 8);
 * console.log(buf === null || y.every((v) => v === 0)); // true
 * ```
 */
export function pointwiseWasm(
  tier: Tier | undefined,
  ...arrays: Float32Array[]
): PointwiseExports | null {
  if ((tier ?? getKernelTier()) !== "wasm") return null;
  const buf = arrays[0]!.buffer;
  const ex = instances.get(buf);
  if (!ex) return null;
  for (const a of arrays) if (a.buffer !== buf) return null;
  return ex;
}

// executors made after any op module is imported get their arena from here
setArenaAllocator(wasmArenaBuffer);
