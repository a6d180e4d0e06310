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
import { activeAssist, ASSIST_KIND, ASSIST_SLOT_FLOATS, registerAssistRunner } from "./assist.ts";
import {
  CONV_RELU_POOL_WASM_RELAXED_SIMD,
  CONV_RELU_POOL_WASM_RELAXED_SIMD_SHARED,
  CONV_RELU_POOL_WASM_SIMD,
  CONV_RELU_POOL_WASM_SIMD_SHARED,
} from "./wasm/fused_bytes.ts";

// (x, y or dy, n, h, w, ph, pw, xs, ys, codes − y in bytes); the weights and bias in `res`
type CrpCall = (
  x: number,
  y: number,
  n: number,
  h: number,
  w: number,
  ph: number,
  pw: number,
  xs: number,
  ys: number,
  codes: number,
) => void;

interface CrpExports {
  crp_forward: CrpCall;
  // dw0..dw8 and db to `res`
  crp_backward: CrpCall;
  // (x, q): 1 when one of the 4q floats at x is NaN
  crp_nan(x: number, q: number): number;
}

/**
 * An instance on one arena, and the view of its second memory: the
 * backward's ten results, then the forward's nine weights and bias.
 */
interface Crp {
  ex: CrpExports;
  res: Float32Array;
}

// undefined: not tried yet; null: no WebAssembly SIMD here
let compiled: WebAssembly.Module | null | undefined;
// the shared-import build of the same instruction set as `compiled`
let compiledShared: WebAssembly.Module | null | undefined;
let pick = -1;
// a call's integer arguments (see CrpCall)
const args = new Array<number>(10).fill(0);
const instances = new WeakMap<ArrayBufferLike, Crp>();
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

function instanceFor(buf: ArrayBufferLike): Crp | null {
  const known = instances.get(buf);
  if (known) return known;
  const mem = arenaMemory(buf);
  const m = mem && module(isSharedBuffer(buf));
  if (!mem || !m) return null;
  // this thread's own: a helper running chunks on the same arena has its instance and results
  const res = new WebAssembly.Memory({ initial: 1, maximum: 1 });
  const ex = new WebAssembly.Instance(m, { env: { mem, res } }).exports as unknown as CrpExports;
  const crp = { ex, res: new Float32Array(res.buffer, 0, 20) };
  instances.set(buf, crp);
  noteArenaKernel(buf, "conv_relu_pool");
  return crp;
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
  /**
   * Whether `x` (in the arena) holds a NaN: a SIMD scan, where the op's
   * check for NaN inputs in JavaScript took ~16 µs a micro-batch of 32 digits.
   */
  hasNaN(x: Float32Array): boolean;
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
  const crp = instanceFor(buf);
  if (!crp) return null;
  const { ex, res } = crp;
  const { n, h, w: W, oc, ph, pw } = d;
  const xs = h * W * 4, ys = oc * ph * pw * 4, plane = ph * pw * 4;
  const half = n * oc * ph * pw;
  // a job's ints: x, y (or dy), n, h, w, ph, pw, xs, ys, plane, codes − y in bytes, oc
  const job = (ints: Int32Array, at: number, x: Float32Array, y: Float32Array, codes: number) => {
    ints[at] = x.byteOffset;
    ints[at + 1] = y.byteOffset;
    ints[at + 2] = n;
    ints[at + 3] = h;
    ints[at + 4] = W;
    ints[at + 5] = ph;
    ints[at + 6] = pw;
    ints[at + 7] = xs;
    ints[at + 8] = ys;
    ints[at + 9] = plane;
    ints[at + 10] = codes;
    ints[at + 11] = oc;
  };
  const shareable = oc * 10 <= ASSIST_SLOT_FLOATS;

  return {
    hasNaN(x) {
      if (x.buffer !== buf) {
        throw new Error(`convReluPoolWasm: hasNaN of an array outside the arena`);
      }
      const q = x.length >> 2;
      if (ex.crp_nan(x.byteOffset, q) !== 0) return true;
      for (let i = 4 * q; i < x.length; i++) if (x[i] !== x[i]) return true;
      return false;
    },
    forward(x, w, b, packed, from = 0, to = oc) {
      // a whole call in a pool: its channels are chunks that any waiting thread may claim
      const a = shareable && from <= 0 && to >= oc ? activeAssist() : null;
      const at = a ? a.open(buf, ASSIST_KIND.CONV_RELU_POOL_FORWARD, oc) : -1;
      if (at >= 0) {
        const fl = a!.board.floats, fat = a!.floatsAt();
        job(a!.board.ints, at, x, packed, half * 4);
        // element by element: a subarray would be an allocation per call
        for (let i = 0; i < oc * 9; i++) fl[fat + i] = w[i]!;
        for (let o = 0; o < oc; o++) fl[fat + oc * 9 + o] = b[o]!;
        a!.publish();
        a!.finish();
        return;
      }
      for (let o = Math.max(0, from); o < Math.min(oc, to); o++) {
        setArgs(x.byteOffset, packed.byteOffset, n, h, W, ph, pw, xs, ys, plane, o);
        for (let k = 0; k < 9; k++) res[10 + k] = w[o * 9 + k]!;
        res[19] = b[o]!;
        args[9] = half * 4;
        call(ex.crp_forward);
      }
    },
    backward(x, packed, dy, out, from = 0, to = oc) {
      // codes sit at packed + half; the kernel reads them at dy + that offset
      const codes = packed.byteOffset + half * 4 - dy.byteOffset;
      const a = shareable && from <= 0 && to >= oc ? activeAssist() : null;
      const at = a ? a.open(buf, ASSIST_KIND.CONV_RELU_POOL_BACKWARD, oc) : -1;
      if (at >= 0) {
        const fl = a!.board.floats, fat = a!.floatsAt();
        job(a!.board.ints, at, x, dy, codes);
        a!.publish();
        a!.finish();
        for (let o = 0; o < oc; o++) {
          for (let k = 0; k < 9; k++) out[o * 9 + k] = fl[fat + o * 10 + k]!;
          out[oc * 9 + o] = fl[fat + o * 10 + 9]!;
        }
        return;
      }
      for (let o = Math.max(0, from); o < Math.min(oc, to); o++) {
        setArgs(x.byteOffset, dy.byteOffset, n, h, W, ph, pw, xs, ys, plane, o);
        args[9] = codes;
        call(ex.crp_backward);
        for (let k = 0; k < 9; k++) out[o * 9 + k] = res[k]!;
        out[oc * 9 + o] = res[9]!;
      }
    },
  };
}

// the arguments of output channel o but the codes' offset (the caller sets it)
function setArgs(
  x: number,
  y: number,
  n: number,
  h: number,
  w: number,
  ph: number,
  pw: number,
  xs: number,
  ys: number,
  plane: number,
  o: number,
): void {
  args[0] = x;
  args[1] = y + o * plane;
  args[2] = n;
  args[3] = h;
  args[4] = w;
  args[5] = ph;
  args[6] = pw;
  args[7] = xs;
  args[8] = ys;
}

// another thread's channel o of a job (see `job` above), on this thread's view of the owner's arena
function jobArgs(ints: Int32Array, at: number, o: number): void {
  setArgs(
    ints[at]!,
    ints[at + 1]!,
    ints[at + 2]!,
    ints[at + 3]!,
    ints[at + 4]!,
    ints[at + 5]!,
    ints[at + 6]!,
    ints[at + 7]!,
    ints[at + 8]!,
    ints[at + 9]!,
    o,
  );
  args[9] = ints[at + 10]!;
}

registerAssistRunner(ASSIST_KIND.CONV_RELU_POOL_FORWARD, (buf, ints, at, fl, fat, o) => {
  const { ex, res } = instanceFor(buf)!;
  jobArgs(ints, at, o);
  const oc = ints[at + 11]!;
  for (let k = 0; k < 9; k++) res[10 + k] = fl[fat + o * 9 + k]!;
  res[19] = fl[fat + oc * 9 + o]!;
  call(ex.crp_forward);
});

registerAssistRunner(ASSIST_KIND.CONV_RELU_POOL_BACKWARD, (buf, ints, at, fl, fat, o) => {
  const { ex, res } = instanceFor(buf)!;
  jobArgs(ints, at, o);
  call(ex.crp_backward);
  for (let k = 0; k < 10; k++) fl[fat + o * 10 + k] = res[k]!;
});

// A kernel with its integer arguments spelt out: a spread call copies the array (and boxed the
// float arguments the kernels used to take: with them, a spread call stayed slow in the JIT's
// first optimising tier, Maglev, and spelt out was slower after Turbofan)
function call(f: CrpCall): void {
  const a = args;
  f(a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!, a[7]!, a[8]!, a[9]!);
}
