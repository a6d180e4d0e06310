// x: (N, 1, H, W), w: (OC, 1, 3, 3), b: (OC), y/dy: (N, OC, PH, PW), float32 views of one executor arena
/**
 * The WebAssembly SIMD tier of the fused convolution + bias + ReLU + 2×2
 * max-pool (module built from `wasm/conv_relu_pool_kernel.ts`): one
 * instance per executor arena, on the arena's own memory, so the kernels
 * read x and dy and write y in place. It serves one input channel and 3×3
 * filters with PW ≥ 4; {@link convReluPoolWasm} returns null otherwise (and
 * for other tiers or arrays outside an arena), and the op runs the
 * reference. On a shared arena (a `SharedArrayBuffer`, see
 * `sharedWasmArenaBuffer`) the instance is of the same build with a shared
 * memory import.
 *
 * @module
 */

import { arenaMemory, isSharedBuffer, noteArenaKernel } from "./elementwise_wasm.ts";
import type { ConvReluPoolDims } from "./conv2d_relu_pool_ref.ts";
import {
  CONV_RELU_POOL_WASM_RELAXED_SIMD,
  CONV_RELU_POOL_WASM_RELAXED_SIMD_SHARED,
  CONV_RELU_POOL_WASM_SIMD,
  CONV_RELU_POOL_WASM_SIMD_SHARED,
} from "./wasm/fused_bytes.ts";

interface CrpExports {
  // (x, y, n, h, w, ph, pw, xs, ys, w0..w8, b, codes − y in bytes)
  crp_forward(...args: number[]): void;
  crp_backward(...args: number[]): number[];
}

// undefined: not tried yet; null: no WebAssembly SIMD here
let compiled: WebAssembly.Module | null | undefined;
// the shared-import build of the same instruction set as `compiled`
let compiledShared: WebAssembly.Module | null | undefined;
let pick = -1;
const none = new Float32Array(0);
const args = new Array<number>(20).fill(0);
const instances = new WeakMap<ArrayBufferLike, CrpExports>();
// relaxed-simd FMA first, then plain SIMD128; each [unshared, shared]
const BUILDS = [
  [CONV_RELU_POOL_WASM_RELAXED_SIMD, CONV_RELU_POOL_WASM_RELAXED_SIMD_SHARED],
  [CONV_RELU_POOL_WASM_SIMD, CONV_RELU_POOL_WASM_SIMD_SHARED],
] as const;

function decode(b64: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
}

function module(shared: boolean): WebAssembly.Module | null {
  if (compiled === undefined) {
    compiled = null;
    if (typeof WebAssembly !== "object") return compiled;
    pick = BUILDS.findIndex(([b64]) => WebAssembly.validate(decode(b64)));
    if (pick >= 0) compiled = new WebAssembly.Module(decode(BUILDS[pick]![0]));
  }
  if (!shared || !compiled) return compiled;
  // the same instruction set on a shared arena, so the bits are the same
  if (compiledShared === undefined) {
    const bytes = decode(BUILDS[pick]![1]);
    compiledShared = WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  }
  return compiledShared;
}

function instanceFor(buf: ArrayBufferLike): CrpExports | null {
  const known = instances.get(buf);
  if (known) return known;
  const mem = arenaMemory(buf);
  const m = mem && module(isSharedBuffer(buf));
  if (!mem || !m) return null;
  const ex = new WebAssembly.Instance(m, { env: { mem } }).exports as unknown as CrpExports;
  instances.set(buf, ex);
  noteArenaKernel(buf, "conv_relu_pool");
  return ex;
}

/**
 * The fused kernels bound to one arena, for one layer's sizes. Each runs
 * one call per output channel, `from` (default 0) up to before `to`
 * (default OC), and channels are independent: threads sharing the arena may
 * run disjoint ranges of one call and the bits are those of one thread
 * running them all.
 */
export interface ConvReluPoolKernels {
  /** packed = [y, codes], y = max-pool(ReLU(conv(x, w) + b)); see `conv2dReluPoolRef`. */
  forward(
    x: Float32Array,
    w: Float32Array,
    b: Float32Array,
    packed: Float32Array,
    from?: number,
    to?: number,
  ): void;
  /** out = [dw, db], the filter and bias gradients for the pooled gradient dy. */
  backward(
    x: Float32Array,
    packed: Float32Array,
    dy: Float32Array,
    out: Float32Array,
    from?: number,
    to?: number,
  ): void;
}

/**
 * The wasm kernels for sizes `d` when the sizes are ones they serve (C = 1,
 * 3×3, PW ≥ 4) and every array in `arena` lives in one executor arena;
 * otherwise null (the op's `runKernel` then falls back).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { convReluPoolWasm } from "./conv2d_relu_pool_wasm.ts";
 * const d = { n: 1, c: 1, h: 10, w: 10, oc: 1, kh: 3, kw: 3, ph: 4, pw: 4 };
 * // a plain array is not an executor arena: the op falls back to the reference
 * assert.equal(convReluPoolWasm(d, [new Float32Array(100)]), null);
 * ```
 */
export function convReluPoolWasm(
  d: ConvReluPoolDims,
  arena: Float32Array[],
): ConvReluPoolKernels | null {
  if (d.c !== 1 || d.kh !== 3 || d.kw !== 3 || d.pw < 4 || d.ph < 1) return null;
  const buf = arena[0]!.buffer;
  for (const a of arena) if (a.buffer !== buf) return null;
  const ex = instanceFor(buf);
  if (!ex) return null;
  const { n, h, w: W, oc, ph, pw } = d;
  const xs = h * W * 4, ys = oc * ph * pw * 4, plane = ph * pw * 4;
  const half = n * oc * ph * pw;
  const setArgs = (
    x: Float32Array,
    y: Float32Array,
    w: Float32Array,
    b: Float32Array,
    o: number,
  ) => {
    args[0] = x.byteOffset;
    args[1] = y.byteOffset + o * plane;
    args[2] = n;
    args[3] = h;
    args[4] = W;
    args[5] = ph;
    args[6] = pw;
    args[7] = xs;
    args[8] = ys;
    for (let k = 0; k < 9; k++) args[9 + k] = w.length ? w[o * 9 + k]! : 0;
    args[18] = b.length ? b[o]! : 0;
  };

  return {
    forward(x, w, b, packed, from = 0, to = oc) {
      for (let o = Math.max(0, from); o < Math.min(oc, to); o++) {
        setArgs(x, packed, w, b, o);
        args[19] = half * 4;
        ex.crp_forward(...args);
      }
    },
    backward(x, packed, dy, out, from = 0, to = oc) {
      for (let o = Math.max(0, from); o < Math.min(oc, to); o++) {
        setArgs(x, dy, none, none, o);
        // codes sit at packed + half; the kernel reads them at dy + that offset
        args[19] = packed.byteOffset + half * 4 - dy.byteOffset;
        const r = ex.crp_backward(...args);
        for (let k = 0; k < 9; k++) out[o * 9 + k] = r[k]!;
        out[oc * 9 + o] = r[9]!;
      }
    },
  };
}
