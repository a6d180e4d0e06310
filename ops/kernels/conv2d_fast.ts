// x: (N, C, H, W), w: (OC, C, KH, KW), b: (OC) -> y: (N, OC, OH, OW), float32
/**
 * Fast float32 convolution through GEMM, one image at a time:
 * - forward: y[n] (OC × OH·OW) = w (OC × C·KH·KW) · im2col(x[n]);
 * - backward input: dx[n] = col2im(wᵀ · dy[n]);
 * - backward filter: dw += dy[n] · im2col(x[n])ᵀ.
 *
 * The GEMM runs on the chosen tier. On the wasm tier, when the activations
 * live in one executor arena whose kernel scratch holds the columns (the
 * ops reserve it with {@link conv2dFastScratch}), im2col, the product and
 * col2im run on the arena in place: only a weight from outside the arena
 * (a parameter) is copied, once per call, into the scratch. Otherwise each
 * image is staged into the GEMM module's own memory and results copied
 * back. Scratch buffers only grow, so steady-state calls allocate no
 * buffers (only a few subarray views per image).
 *
 * Non-finite values part from the reference in one place: a ±Infinity or
 * NaN weight gives NaN in the outputs whose window reaches the zero padding
 * (0·∞ in the GEMM over im2col's zeros), where the reference, which skips
 * padded taps, stays finite (measured: 12 of 288 outputs for a 3×3 filter
 * with padding 1; the gradients agree). Finite inputs agree to rounding.
 *
 * @module
 */

import type { GemmDims } from "./gemm_ref.ts";
import { gemmBlocked } from "./gemm_blocked.ts";
import {
  arenaScratchViews,
  col2imWasm,
  countStaged,
  gemmScratch,
  gemmWasm,
  im2colWasm,
  wasmAvailable,
  wasmScratch,
} from "./gemm_wasm.ts";
import { arenaFill, arenaMemory } from "./elementwise_wasm.ts";
import { checkConv2dDims, type Conv2dDims } from "./conv2d_ref.ts";

type Gemm32 = (a: Float32Array, b: Float32Array, c: Float32Array, d: GemmDims) => void;

// Where the GEMM operands live and how columns are built. A `direct`
// backend reads and writes the caller's arrays; the wasm one wants every
// operand inside its memory, so images are staged in and results copied out.
interface Backend {
  gemm: Gemm32;
  direct: boolean;
  // Scratch views of `lengths`, then `keep` re-made if laying out the
  // scratch moved the memory they live in.
  views(lengths: readonly number[], keep: readonly Float32Array[]): Float32Array[];
  // col = im2col(x[n]) where x[n] starts at xo; `stage` holds C·H·W floats when !direct.
  im2col(x: Float32Array, xo: number, col: Float32Array, d: Conv2dDims, stage: Float32Array): void;
  // dx[n] (at xo) = col2im(col); `stage` holds C·H·W floats when !direct.
  col2im(col: Float32Array, dx: Float32Array, xo: number, d: Conv2dDims, stage: Float32Array): void;
}

const tsSlots: Float32Array[] = [];
const NONE = new Float32Array(0);

const tsBackend: Backend = {
  gemm: gemmBlocked,
  direct: true,
  views(lengths, keep) {
    const out = lengths.map((len, i) => {
      if ((tsSlots[i]?.length ?? -1) < len) tsSlots[i] = new Float32Array(len);
      return tsSlots[i].length === len ? tsSlots[i] : tsSlots[i].subarray(0, len);
    });
    return out.concat(keep);
  },
  im2col(x, xo, col, d) {
    im2col(x, xo, col, d);
  },
  col2im(col, dx, xo, d) {
    dx.fill(0, xo, xo + d.c * d.h * d.w);
    col2imAdd(col, dx, xo, d);
  },
};

const wasmBackend: Backend = {
  gemm: gemmWasm,
  direct: false,
  views(lengths, keep) {
    return wasmScratch(lengths, keep)!;
  },
  im2col(x, xo, col, d, stage) {
    copy(stage, x.subarray(xo, xo + stage.length));
    im2colWasm(stage, col, d);
  },
  col2im(col, dx, xo, d, stage) {
    col2imWasm(col, stage, d);
    copy(dx, stage, xo);
  },
};

// dst.set(src, at), counted as staged (see gemmStagedBytes)
function copy(dst: Float32Array, src: Float32Array, at = 0): void {
  dst.set(src, at);
  countStaged(src.length * 4);
}

function backendFor(tier: "ts" | "wasm"): Backend {
  return tier === "wasm" && wasmAvailable() ? wasmBackend : tsBackend;
}

// A 1×1 kernel with stride 1 and no padding reads x[n] as its own columns.
function isPointwise(d: Conv2dDims): boolean {
  return d.kh === 1 && d.kw === 1 && d.stride === 1 && d.padding === 0;
}

// Output columns j whose input column j·s − p + v is inside [0, size).
function validRange(size: number, out: number, s: number, p: number, v: number): [number, number] {
  const lo = Math.min(out, Math.max(0, Math.ceil((p - v) / s)));
  const hi = Math.max(lo, Math.min(out, Math.floor((size - 1 + p - v) / s) + 1));
  return [lo, hi];
}

// x[n] at offset xo: (C, H, W) -> col: (C·KH·KW, OH·OW), zeros where the window leaves the image.
function im2col(x: Float32Array, xo: number, col: Float32Array, d: Conv2dDims): void {
  const { c: C, h: H, w: W, kh: KH, kw: KW, oh: OH, ow: OW, stride: s, padding: p } = d;
  let o = 0;
  for (let c = 0; c < C; c++) {
    const plane = xo + c * H * W;
    for (let u = 0; u < KH; u++) {
      for (let v = 0; v < KW; v++) {
        const [lo, hi] = validRange(W, OW, s, p, v);
        for (let i = 0; i < OH; i++) {
          const ih = i * s - p + u;
          if (ih < 0 || ih >= H) {
            col.fill(0, o, o + OW);
            o += OW;
            continue;
          }
          let j = 0;
          for (; j < lo; j++) col[o++] = 0;
          let q = plane + ih * W + lo * s - p + v;
          if (s === 1) {
            for (; j < hi; j++) col[o++] = x[q++];
          } else {
            for (; j < hi; j++, q += s) col[o++] = x[q];
          }
          for (; j < OW; j++) col[o++] = 0;
        }
      }
    }
  }
}

// col: (C·KH·KW, OH·OW) -> dx[n] at offset xo: (C, H, W), summing overlapping windows; dx[n] must start zeroed.
function col2imAdd(col: Float32Array, dx: Float32Array, xo: number, d: Conv2dDims): void {
  const { c: C, h: H, w: W, kh: KH, kw: KW, oh: OH, ow: OW, stride: s, padding: p } = d;
  let o = 0;
  for (let c = 0; c < C; c++) {
    const plane = xo + c * H * W;
    for (let u = 0; u < KH; u++) {
      for (let v = 0; v < KW; v++) {
        const [lo, hi] = validRange(W, OW, s, p, v);
        for (let i = 0; i < OH; i++) {
          const ih = i * s - p + u;
          if (ih < 0 || ih >= H) {
            o += OW;
            continue;
          }
          let q = plane + ih * W + lo * s - p + v;
          let r = o + lo;
          if (s === 1) {
            for (let j = lo; j < hi; j++) dx[q++] += col[r++];
          } else {
            for (let j = lo; j < hi; j++, q += s) dx[q] += col[r++];
          }
          o += OW;
        }
      }
    }
  }
}

// The executor arena all of `arrays` live in, when the wasm tier runs on it.
function arenaOf(tier: "ts" | "wasm", arrays: Float32Array[]): ArrayBufferLike | null {
  if (tier !== "wasm" || !wasmAvailable()) return null;
  const buf = arrays[0]!.buffer;
  for (const a of arrays) if (a.buffer !== buf) return null;
  return arenaMemory(buf) ? buf : null;
}

// The weight as a GEMM operand on the arena: in place when it lives there,
// else copied into `wS` (arena scratch).
function weightIn(buf: ArrayBufferLike, w: Float32Array, wS: Float32Array): Float32Array {
  if (w.buffer === buf) return w;
  wS.set(w.length === wS.length ? w : w.subarray(0, wS.length));
  countStaged(wS.length * 4);
  return wS;
}

/** Which convolution pass {@link conv2dFastScratch} sizes. */
export type Conv2dPass = "forward" | "input" | "filter";

// Lengths of the arena scratch views of one pass: [weight copy, columns].
function arenaViews(d: Conv2dDims, pass: Conv2dPass, wOutside: boolean): [number, number] {
  const ckk = d.c * d.kh * d.kw, ohw = d.oh * d.ow;
  const w = pass !== "filter" && wOutside ? d.oc * ckk : 0;
  return [w, isPointwise(d) ? 0 : ckk * ohw];
}

/**
 * Floats of arena scratch a convolution pass needs to run in place on an
 * executor arena (the GEMM workspace, a copy of the weight, one image's
 * columns): what the conv ops' `scratch` hooks return. 0 where WebAssembly
 * SIMD is missing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const d = { n: 64, c: 32, h: 26, w: 26, oc: 64, kh: 3, kw: 3, oh: 24, ow: 24, stride: 1, padding: 0 };
 * const need = conv2dFastScratch(d, "forward");
 * assert.ok(need === 0 || need >= 288 * 576 + 64 * 288);
 * ```
 */
export function conv2dFastScratch(d: Conv2dDims, pass: Conv2dPass): number {
  return gemmScratch(arenaViews(d, pass, true));
}

// y = conv(x, w) + b on the arena buf: columns in scratch, y written in place.
function forwardArena(
  buf: ArrayBufferLike,
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  y: Float32Array,
  d: Conv2dDims,
): boolean {
  const v = arenaScratchViews(buf, arenaViews(d, "forward", w.buffer !== buf));
  if (!v) return false;
  const { n: N, c: C, h: H, w: W, oc: OC, kh: KH, kw: KW, oh: OH, ow: OW } = d;
  const ckk = C * KH * KW, ohw = OH * OW, chw = C * H * W;
  const pointwise = isPointwise(d);
  const wA = weightIn(buf, w, v[0]!), colS = v[1]!;
  const gd: GemmDims = { m: OC, n: ohw, k: ckk, accumulate: b !== null };
  for (let n = 0; n < N; n++) {
    const xn = x.subarray(n * chw, (n + 1) * chw);
    const out = y.subarray(n * OC * ohw, (n + 1) * OC * ohw);
    if (!pointwise) im2colWasm(xn, colS, d);
    // Seed each output row with its bias and let the product accumulate onto it.
    if (b) { for (let o = 0; o < OC; o++) arenaFill(out, b[o]!, o * ohw, (o + 1) * ohw); }
    gemmWasm(wA, pointwise ? xn : colS, out, gd);
  }
  return true;
}

// dx = col2im(wᵀ · dy) on the arena buf.
function backwardInputArena(
  buf: ArrayBufferLike,
  dy: Float32Array,
  w: Float32Array,
  dx: Float32Array,
  d: Conv2dDims,
): boolean {
  const v = arenaScratchViews(buf, arenaViews(d, "input", w.buffer !== buf));
  if (!v) return false;
  const { n: N, c: C, h: H, w: W, oc: OC, kh: KH, kw: KW, oh: OH, ow: OW } = d;
  const ckk = C * KH * KW, ohw = OH * OW, chw = C * H * W;
  const pointwise = isPointwise(d);
  const wA = weightIn(buf, w, v[0]!), dcolS = v[1]!;
  const gd: GemmDims = { m: ckk, n: ohw, k: OC, transA: true };
  for (let n = 0; n < N; n++) {
    const g = dy.subarray(n * OC * ohw, (n + 1) * OC * ohw);
    const dxn = dx.subarray(n * chw, (n + 1) * chw);
    if (pointwise) gemmWasm(wA, g, dxn, gd);
    else {
      gemmWasm(wA, g, dcolS, gd);
      col2imWasm(dcolS, dxn, d);
    }
  }
  return true;
}

// dw = Σₙ dy[n] · im2col(x[n])ᵀ on the arena buf.
function backwardFilterArena(
  buf: ArrayBufferLike,
  x: Float32Array,
  dy: Float32Array,
  dw: Float32Array,
  d: Conv2dDims,
): boolean {
  const v = arenaScratchViews(buf, arenaViews(d, "filter", false));
  if (!v) return false;
  const { n: N, c: C, h: H, w: W, oc: OC, kh: KH, kw: KW, oh: OH, ow: OW } = d;
  const ckk = C * KH * KW, ohw = OH * OW, chw = C * H * W;
  const pointwise = isPointwise(d);
  const colS = v[1]!;
  const out = dw.subarray(0, OC * ckk);
  out.fill(0);
  const gd: GemmDims = { m: OC, n: ckk, k: ohw, transB: true, accumulate: true };
  for (let n = 0; n < N; n++) {
    const xn = x.subarray(n * chw, (n + 1) * chw);
    if (!pointwise) im2colWasm(xn, colS, d);
    gemmWasm(dy.subarray(n * OC * ohw, (n + 1) * OC * ohw), pointwise ? xn : colS, out, gd);
  }
  return true;
}

/**
 * Float32 conv2d through im2col + GEMM; same semantics as `conv2dRef`.
 * `tier` picks the GEMM (`"wasm"` by default, the blocked TypeScript one
 * where WebAssembly SIMD is missing).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const d = { n: 1, c: 1, h: 3, w: 3, oc: 1, kh: 2, kw: 2, oh: 2, ow: 2, stride: 1, padding: 0 };
 * const y = new Float32Array(4);
 * conv2dFast(new Float32Array([1, 2, 3, 4, 5, 6, 7, 8, 9]), new Float32Array([1, 0, 0, 1]), null, y, d);
 * assert.deepEqual([...y], [6, 8, 12, 14]);
 * ```
 */
export function conv2dFast(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  y: Float32Array,
  d: Conv2dDims,
  tier: "ts" | "wasm" = "wasm",
): void {
  checkConv2dDims("conv2dFast", d, { x, w, y, b });
  const buf = arenaOf(tier, [x, y]);
  if (buf && forwardArena(buf, x, w, b, y, d)) return;
  const be = backendFor(tier);
  const { n: N, c: C, h: H, w: W, oc: OC, kh: KH, kw: KW, oh: OH, ow: OW } = d;
  const ckk = C * KH * KW, ohw = OH * OW;
  const pointwise = isPointwise(d);
  const [wS, xS, colS, outS, xk, wk, bk, yk] = be.views([
    be.direct ? 0 : OC * ckk,
    be.direct ? 0 : C * H * W,
    pointwise ? 0 : ckk * ohw,
    be.direct ? 0 : OC * ohw,
  ], [x, w, b ?? NONE, y]);
  x = xk, w = wk, b = b && bk, y = yk;
  let wA = w;
  if (!be.direct) {
    copy(wS, w.length === OC * ckk ? w : w.subarray(0, OC * ckk));
    wA = wS;
  }
  const gd: GemmDims = { m: OC, n: ohw, k: ckk, accumulate: b !== null };
  for (let n = 0; n < N; n++) {
    const xo = n * C * H * W, yo = n * OC * ohw;
    let cols = colS;
    if (!pointwise) be.im2col(x, xo, colS, d, xS);
    else if (be.direct) cols = x.subarray(xo, xo + C * H * W);
    else copy(cols = xS, x.subarray(xo, xo + C * H * W));
    const out = be.direct ? y.subarray(yo, yo + OC * ohw) : outS;
    // Seed each output row with its bias and let the product accumulate onto it.
    if (b) { for (let o = 0; o < OC; o++) out.fill(b[o], o * ohw, (o + 1) * ohw); }
    be.gemm(wA, cols, out, gd);
    if (!be.direct) copy(y, outS, yo);
  }
}

// dy: (N, OC, OH, OW), w: (OC, C, KH, KW) -> dx: (N, C, H, W), float32
/**
 * Float32 gradient of conv2d with respect to its input (overwrites dx); same
 * semantics as `conv2dBackwardInputRef`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const d = { n: 1, c: 1, h: 3, w: 3, oc: 1, kh: 2, kw: 2, oh: 2, ow: 2, stride: 1, padding: 0 };
 * const dx = new Float32Array(9);
 * conv2dBackwardInputFast(new Float32Array([1, 1, 1, 1]), new Float32Array([1, 0, 0, 1]), dx, d);
 * assert.deepEqual([...dx], [1, 1, 0, 1, 2, 1, 0, 1, 1]);
 * ```
 */
export function conv2dBackwardInputFast(
  dy: Float32Array,
  w: Float32Array,
  dx: Float32Array,
  d: Conv2dDims,
  tier: "ts" | "wasm" = "wasm",
): void {
  checkConv2dDims("conv2dBackwardInputFast", d, { x: dx, w, y: dy });
  const buf = arenaOf(tier, [dy, dx]);
  if (buf && backwardInputArena(buf, dy, w, dx, d)) return;
  const be = backendFor(tier);
  const { n: N, c: C, h: H, w: W, oc: OC, kh: KH, kw: KW, oh: OH, ow: OW } = d;
  const ckk = C * KH * KW, ohw = OH * OW, chw = C * H * W;
  const pointwise = isPointwise(d);
  const [wS, dyS, dcolS, dxS, dyk, wk, dxk] = be.views([
    be.direct ? 0 : OC * ckk,
    be.direct ? 0 : OC * ohw,
    ckk * ohw,
    be.direct || pointwise ? 0 : chw,
  ], [dy, w, dx]);
  dy = dyk, w = wk, dx = dxk;
  let wA = w;
  if (!be.direct) {
    copy(wS, w.length === OC * ckk ? w : w.subarray(0, OC * ckk));
    wA = wS;
  }
  // dcol (C·KH·KW × OH·OW) = wᵀ · dy[n]
  const gd: GemmDims = { m: ckk, n: ohw, k: OC, transA: true };
  for (let n = 0; n < N; n++) {
    const yo = n * OC * ohw, xo = n * chw;
    let g = dy.subarray(yo, yo + OC * ohw);
    if (!be.direct) {
      copy(dyS, g);
      g = dyS;
    }
    if (pointwise && be.direct) {
      be.gemm(wA, g, dx.subarray(xo, xo + chw), gd);
    } else {
      be.gemm(wA, g, dcolS, gd);
      if (pointwise) copy(dx, dcolS, xo);
      else be.col2im(dcolS, dx, xo, d, dxS);
    }
  }
}

// x: (N, C, H, W), dy: (N, OC, OH, OW) -> dw: (OC, C, KH, KW), float32
/**
 * Float32 gradient of conv2d with respect to its filter (overwrites dw);
 * same semantics as `conv2dBackwardFilterRef`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const d = { n: 1, c: 1, h: 3, w: 3, oc: 1, kh: 2, kw: 2, oh: 2, ow: 2, stride: 1, padding: 0 };
 * const dw = new Float32Array(4);
 * conv2dBackwardFilterFast(new Float32Array([1, 2, 3, 4, 5, 6, 7, 8, 9]), new Float32Array([1, 0, 0, 0]), dw, d);
 * assert.deepEqual([...dw], [1, 2, 4, 5]);
 * ```
 */
export function conv2dBackwardFilterFast(
  x: Float32Array,
  dy: Float32Array,
  dw: Float32Array,
  d: Conv2dDims,
  tier: "ts" | "wasm" = "wasm",
): void {
  checkConv2dDims("conv2dBackwardFilterFast", d, { x, w: dw, y: dy });
  const buf = arenaOf(tier, [x, dy, dw]);
  if (buf && backwardFilterArena(buf, x, dy, dw, d)) return;
  const be = backendFor(tier);
  const { n: N, c: C, h: H, w: W, oc: OC, kh: KH, kw: KW, oh: OH, ow: OW } = d;
  const ckk = C * KH * KW, ohw = OH * OW, chw = C * H * W;
  const pointwise = isPointwise(d);
  const [xS, colS, dyS, dwS, xk, dyk, dwk] = be.views([
    be.direct ? 0 : chw,
    pointwise ? 0 : ckk * ohw,
    be.direct ? 0 : OC * ohw,
    be.direct ? 0 : OC * ckk,
  ], [x, dy, dw]);
  x = xk, dy = dyk, dw = dwk;
  const out = be.direct ? dw.subarray(0, OC * ckk) : dwS;
  out.fill(0);
  // dw (OC × C·KH·KW) += dy[n] · col[n]ᵀ, col stored (C·KH·KW × OH·OW)
  const gd: GemmDims = { m: OC, n: ckk, k: ohw, transB: true, accumulate: true };
  for (let n = 0; n < N; n++) {
    const xo = n * chw, yo = n * OC * ohw;
    let cols = colS;
    if (!pointwise) be.im2col(x, xo, colS, d, xS);
    else if (be.direct) cols = x.subarray(xo, xo + chw);
    else copy(cols = xS, x.subarray(xo, xo + chw));
    let g = dy.subarray(yo, yo + OC * ohw);
    if (!be.direct) {
      copy(dyS, g);
      g = dyS;
    }
    be.gemm(g, cols, out, gd);
  }
  if (!be.direct) copy(dw, dwS);
}
