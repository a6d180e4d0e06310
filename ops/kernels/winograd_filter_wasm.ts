// x: (N, C, H, W), dy: (N, OC, OH, OW) -> dw: (OC, C, 3, 3), stride 1, float32
/**
 * The Winograd filter gradient in WebAssembly SIMD: the module built from
 * `wasm/winograd_filter_kernel.ts`, driven a chunk of images at a time so
 * that the chunk's transformed tiles stay in L2. Each chunk of x and dy is
 * staged channels-last with zero borders, transformed (V = Bᵀ d B,
 * M = A dY Aᵀ), and multiplied into the α² accumulators
 * dU[ξ] = Σ_t V[ξ][t]ᵀ M[ξ][t]; at the end dw = Gᵀ dU G.
 *
 * On an executor's arena (x, dy and dw in one arena with enough kernel
 * scratch, see {@link winogradFilterScratch}) the module runs on the arena's
 * memory (the build with a shared memory import on a shared arena), and each chunk of x and dy is moved into the scratch by one
 * `copyWithin`; elsewhere it runs on a memory of its own that the chunks
 * are copied into (counted by `gemmStagedBytes`).
 *
 * Scratch layout (bytes from its start): dU, the raw chunk of x and of dy,
 * the staged chunk of x and of dy, V, M, and the (OCp, Cp, 3, 3) output.
 *
 * @module
 */

import { checkConv2dDims, type Conv2dDims } from "./conv2d_ref.ts";
import type { WinogradTile } from "./winograd_ref.ts";
import {
  arenaCopyWithin,
  arenaMemory,
  arenaScratch,
  arenaZero,
  isSharedBuffer,
  noteArenaKernel,
} from "./elementwise_wasm.ts";
import { countStaged } from "./gemm_wasm.ts";
import { winogradEnabled } from "./winograd_wasm.ts";
import { MR, NR } from "./wasm/winograd_filter_kernel.ts";
import {
  WINOGRAD_FILTER_WASM_RELAXED_SIMD,
  WINOGRAD_FILTER_WASM_RELAXED_SIMD_SHARED,
  WINOGRAD_FILTER_WASM_SIMD,
  WINOGRAD_FILTER_WASM_SIMD_SHARED,
} from "./wasm/winograd_filter_bytes.ts";

type Fn = (...args: number[]) => void;

interface Exports {
  stage: Fn;
  accum: Fn;
  xin2: Fn;
  xin4: Fn;
  xdy2: Fn;
  xdy4: Fn;
  xout2: Fn;
  xout4: Fn;
}

interface State {
  module: WebAssembly.Module;
  /** The same build with a shared memory import (shared arenas); null: it does not compile. */
  shared: WebAssembly.Module | null | undefined;
  /** Its base64. */
  sharedB64: string;
  variant: "relaxed-simd" | "simd";
  /** An instance per memory: the own one and each arena's. */
  instances: WeakMap<WebAssembly.Memory, Exports>;
  /** The memory of the copying path, made on first use. */
  own: WebAssembly.Memory | null;
}

function decode(b64: string): Uint8Array<ArrayBuffer> {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

const MODULES = [
  ["relaxed-simd", WINOGRAD_FILTER_WASM_RELAXED_SIMD, WINOGRAD_FILTER_WASM_RELAXED_SIMD_SHARED],
  ["simd", WINOGRAD_FILTER_WASM_SIMD, WINOGRAD_FILTER_WASM_SIMD_SHARED],
] as const;

// undefined: not tried yet; null: no usable WebAssembly SIMD here.
let state: State | null | undefined;
const forced: { variant?: "relaxed-simd" | "simd" } = {};

function init(): State | null {
  if (state !== undefined) return state;
  state = null;
  if (typeof WebAssembly !== "object") return state;
  for (const [variant, b64, sharedB64] of MODULES) {
    if (forced.variant && forced.variant !== variant) continue;
    const bytes = decode(b64);
    if (!WebAssembly.validate(bytes)) continue;
    try {
      const module = new WebAssembly.Module(bytes);
      const own = new WebAssembly.Memory({ initial: 1 });
      const instances = new WeakMap<WebAssembly.Memory, Exports>();
      instances.set(own, new WebAssembly.Instance(module, { env: { mem: own } }).exports as never);
      state = { module, shared: undefined, sharedB64, variant, instances, own };
      break;
    } catch {
      // Validated but refused to instantiate: try the next one.
    }
  }
  return state;
}

function instanceOn(s: State, mem: WebAssembly.Memory): Exports {
  let ex = s.instances.get(mem);
  if (!ex) {
    let m = s.module;
    if (isSharedBuffer(mem.buffer)) {
      if (s.shared === undefined) {
        const bytes = decode(s.sharedB64);
        s.shared = WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
      }
      if (!s.shared) throw new Error("winogradBackwardFilterWasm: no shared-memory build here");
      m = s.shared;
    }
    ex = new WebAssembly.Instance(m, { env: { mem } }).exports as unknown as Exports;
    s.instances.set(mem, ex);
    if (mem !== s.own) noteArenaKernel(mem.buffer, "winograd_filter");
  }
  return ex;
}

/**
 * Which build of the module serves (`"relaxed-simd"` or `"simd"`), or null
 * where WebAssembly SIMD is missing. `force` (for tests) re-instantiates the
 * module with only the named build allowed, or with the first that works
 * when it is `"auto"`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.ok([null, "relaxed-simd", "simd"].includes(winogradFilterVariant()));
 * ```
 */
export function winogradFilterVariant(
  force?: "relaxed-simd" | "simd" | "auto",
): "relaxed-simd" | "simd" | null {
  if (force !== undefined) {
    forced.variant = force === "auto" ? undefined : force;
    state = undefined;
  }
  return init()?.variant ?? null;
}

const ALIGN = 64;
const align = (x: number) => Math.ceil(x / ALIGN) * ALIGN;
const roundUp = (x: number, q: number) => Math.ceil(x / q) * q;

/**
 * Bytes of transformed tiles, staged and raw images one chunk may hold:
 * half of a 1 MiB L2, so the chunk's V and M stay in cache between their
 * transform and the accumulation that reads them. At least one image goes
 * in a chunk (on mnist-net's conv2 one image's share is about 0.9 MiB).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(CHUNK_BYTES, 1 << 19);
 * ```
 */
export const CHUNK_BYTES = 512 * 1024;

/** Options of {@link winogradBackwardFilterWasm}. */
export interface WinogradFilterOptions {
  /** Output tile size m of F(m×m, 3×3) (default {@link winogradFilterTile}). */
  tile?: WinogradTile;
  /** Bytes a chunk of images may take (default {@link CHUNK_BYTES}); at least one image per chunk. */
  chunkBytes?: number;
}

/**
 * Whether {@link winogradBackwardFilterWasm} takes a convolution: a 3×3
 * filter with stride 1, at least 4 input and 4 output channels,
 * WebAssembly SIMD here, and Winograd switched on (`setWinogradEnabled` of
 * `winograd_wasm.ts`, `--no-winograd`). With one or two input channels the
 * channel blocks of 4 are mostly padding and the direct kernel was as fast
 * or faster (N=64, 1→32 channels on 28×28: 0.89 against 1.68 ms; 2→16 on
 * 20×20: level; 4→8 on 13×13: 0.24 against 0.11 ms).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const d = { n: 1, c: 1, h: 28, w: 28, oc: 32, kh: 3, kw: 3, oh: 26, ow: 26, stride: 1, padding: 0 };
 * assert.equal(winogradFilterApplies(d), false); // one input channel: mnist-net's conv1
 * ```
 */
export function winogradFilterApplies(d: Conv2dDims): boolean {
  return d.kh === 3 && d.kw === 3 && d.stride === 1 && d.c >= 4 && d.oc >= 4 && d.n >= 1 &&
    d.oh >= 1 && d.ow >= 1 && winogradEnabled() && init() !== null;
}

/**
 * The tile size {@link winogradBackwardFilterWasm} uses unless told: the
 * one with fewer products, α²·⌈OH/m⌉·⌈OW/m⌉ per channel pair and image,
 * F(2×2) on a tie (it rounds less). F(4×4) on mnist-net's conv2 (24×24:
 * 1296 against 2304; measured 2.9-3.1× faster than the direct kernel,
 * F(2×2) 1.9-2×) and down to 7×7 (1.14 against 1.61 ms, N=64, 32→64
 * channels); F(2×2) at 5×5 and 6×6, where 4×4 tiles mostly cover zeros.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const d = { n: 1, c: 32, h: 26, w: 26, oc: 64, kh: 3, kw: 3, oh: 24, ow: 24, stride: 1, padding: 0 };
 * assert.equal(winogradFilterTile(d), 4);
 * assert.equal(winogradFilterTile({ ...d, h: 8, w: 8, oh: 6, ow: 6 }), 2);
 * ```
 */
export function winogradFilterTile(d: Conv2dDims): WinogradTile {
  const cost = (m: number) => (m + 2) ** 2 * Math.ceil(d.oh / m) * Math.ceil(d.ow / m);
  return cost(4) < cost(2) ? 4 : 2;
}

/**
 * Float32 gradient of a 3×3, stride-1 conv2d with respect to its filter by
 * Winograd F(m×m, 3×3) in WebAssembly SIMD (overwrites dw); the same
 * semantics as `conv2dBackwardFilterRef` within the rounding error the
 * transforms add (see the tests for the bounds per tile size). Returns false,
 * leaving dw alone, when {@link winogradFilterApplies} says no.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { conv2dBackwardFilterRef } from "./conv2d_ref.ts";
 * const d = { n: 2, c: 8, h: 6, w: 6, oc: 8, kh: 3, kw: 3, oh: 6, ow: 6, stride: 1, padding: 1 };
 * const x = Float32Array.from({ length: 2 * 8 * 36 }, (_, i) => (i % 5) - 2);
 * const dy = Float32Array.from({ length: 2 * 8 * 36 }, (_, i) => (i % 3) - 1);
 * const want = new Float32Array(8 * 8 * 9), got = new Float32Array(8 * 8 * 9);
 * conv2dBackwardFilterRef(x, dy, want, d);
 * if (winogradBackwardFilterWasm(x, dy, got, d)) {
 *   got.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-3, `${i}: ${v} vs ${want[i]}`));
 * }
 * ```
 */
export function winogradBackwardFilterWasm(
  x: Float32Array,
  dy: Float32Array,
  dw: Float32Array,
  d: Conv2dDims,
  opts: WinogradFilterOptions = {},
): boolean {
  checkConv2dDims("winogradBackwardFilterWasm", d, { x, w: dw, y: dy });
  if (!winogradFilterApplies(d)) return false;
  const s = init()!;
  const m = opts.tile ?? winogradFilterTile(d);
  if (m !== 2 && m !== 4) {
    throw new Error(`winogradBackwardFilterWasm: tile must be 2 or 4, got ${m}`);
  }
  // In place on an arena when x, dy and dw share one with room in its scratch.
  const buf = x.buffer, mem = arenaMemory(buf), sc = arenaScratch(buf);
  const g = geometry(d, m, opts.chunkBytes);
  let base: number, memory: WebAssembly.Memory;
  const inPlace = mem !== undefined && sc !== undefined && dy.buffer === buf &&
    dw.buffer === buf && g.bytes <= sc.byteLength;
  if (inPlace) {
    base = sc.byteOffset;
    memory = mem;
  } else {
    base = 1024; // 0 is never a valid address
    memory = s.own!;
    if (memory.buffer.byteLength < base + g.bytes) {
      memory.grow(Math.ceil((base + g.bytes - memory.buffer.byteLength) / 65536));
    }
  }
  const ex = instanceOn(s, memory);
  const { a2, tilesH, tilesW, tpi, Cp, OCp, Hp, Wp, OHp, OWp, chw, ohw, nb, at } = g;
  const dU = base + at.dU, stX = base + at.stX, stDy = base + at.stDy;
  const V = base + at.V, M = base + at.M, out = base + at.out;
  const heap = new Float32Array(memory.buffer);
  arenaZero(heap, dU / 4, dU / 4 + a2 * Cp * OCp);
  const xin = m === 2 ? ex.xin2 : ex.xin4, xdy = m === 2 ? ex.xdy2 : ex.xdy4;
  const { n: N, c: C, h: H, w: W, oc: OC, oh: OH, ow: OW, padding: p } = d;
  for (let n0 = 0; n0 < N; n0 += nb) {
    const cnt = Math.min(nb, N - n0), T = cnt * tpi, Ts = T | 1;
    const srcX = base + at.rawX, srcDy = base + at.rawDy;
    if (inPlace) {
      // One sequential copy inside the arena: the staging reads four
      // channel planes of 2-3 KiB at a time, short runs the prefetcher
      // follows badly from DRAM (the copy measured 4-6% faster, min of 22).
      const x0 = x.byteOffset / 4 + n0 * chw, dy0 = dy.byteOffset / 4 + n0 * ohw;
      arenaCopyWithin(heap, srcX / 4, x0, x0 + cnt * chw);
      arenaCopyWithin(heap, srcDy / 4, dy0, dy0 + cnt * ohw);
    } else {
      heap.set(x.subarray(n0 * chw, (n0 + cnt) * chw), srcX / 4);
      heap.set(dy.subarray(n0 * ohw, (n0 + cnt) * ohw), srcDy / 4);
      countStaged(cnt * (chw + ohw) * 4); // see gemmStagedBytes
    }
    ex.stage(srcX, stX, C, H, W, Cp, Hp, Wp, p, cnt);
    ex.stage(srcDy, stDy, OC, OH, OW, OCp, OHp, OWp, 0, cnt);
    xin(stX, V, tilesH, tilesW, cnt, Cp, Hp, Wp, Ts);
    xdy(stDy, M, tilesH, tilesW, cnt, OCp, OHp, OWp, Ts);
    ex.accum(V, M, dU, T, Ts, Cp, OCp, a2);
  }
  (m === 2 ? ex.xout2 : ex.xout4)(dU, out, Cp, OCp);
  // (OCp, Cp, 9) -> (OC, C, 9)
  const o = out / 4;
  if (Cp === C) dw.set(heap.subarray(o, o + OC * C * 9));
  else {
    for (let k = 0; k < OC; k++) {
      dw.set(heap.subarray(o + k * Cp * 9, o + (k * Cp + C) * 9), k * C * 9);
    }
  }
  return true;
}

interface Geometry {
  a2: number;
  tilesH: number;
  tilesW: number;
  /** Tiles per image. */
  tpi: number;
  Cp: number;
  OCp: number;
  Hp: number;
  Wp: number;
  OHp: number;
  OWp: number;
  chw: number;
  ohw: number;
  /** Images per chunk. */
  nb: number;
  /** Byte offsets of the regions from the start of the scratch. */
  at: {
    dU: number;
    rawX: number;
    rawDy: number;
    stX: number;
    stDy: number;
    V: number;
    M: number;
    out: number;
  };
  /** Bytes the regions take. */
  bytes: number;
}

function geometry(d: Conv2dDims, m: WinogradTile, chunkBytes: number | undefined): Geometry {
  const a2 = (m + 2) * (m + 2);
  const tilesH = Math.ceil(d.oh / m), tilesW = Math.ceil(d.ow / m), tpi = tilesH * tilesW;
  const Cp = roundUp(d.c, MR), OCp = roundUp(d.oc, NR);
  const Hp = tilesH * m + 2, Wp = tilesW * m + 2, OHp = tilesH * m, OWp = tilesW * m;
  const chw = d.c * d.h * d.w, ohw = d.oc * d.oh * d.ow;
  // floats one image of the chunk takes
  const perImage = chw + ohw + Hp * Wp * Cp + OHp * OWp * OCp +
    a2 * tpi * (Cp + OCp);
  const nb = Math.max(1, Math.min(d.n, Math.floor((chunkBytes ?? CHUNK_BYTES) / (4 * perImage))));
  let end = 0;
  const take = (floats: number) => {
    const at = end;
    end = align(end + floats * 4);
    return at;
  };
  // An odd number of rows between transform points: with an even one
  // (T = 144 for F(2×2) on 24×24) the α² store streams of a transform
  // fall 4 KiB apart and evict each other from L1; F(2×2)'s dy transform
  // took 9-18 ms against 0.8-3 ms with one row more (mnist-net conv2, N=64).
  const rows = (nb * tpi) | 1;
  const at = {
    dU: take(a2 * Cp * OCp),
    rawX: take(nb * chw),
    rawDy: take(nb * ohw),
    stX: take(nb * Hp * Wp * Cp),
    stDy: take(nb * OHp * OWp * OCp),
    V: take(a2 * rows * Cp),
    M: take(a2 * rows * OCp),
    out: take(OCp * Cp * 9),
  };
  return { a2, tilesH, tilesW, tpi, Cp, OCp, Hp, Wp, OHp, OWp, chw, ohw, nb, at, bytes: end };
}

/**
 * Floats of arena scratch {@link winogradBackwardFilterWasm} needs to run on
 * an executor's arena (what the op's `scratch` hook asks for); 0 where it
 * does not apply.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const d = { n: 64, c: 32, h: 26, w: 26, oc: 64, kh: 3, kw: 3, oh: 24, ow: 24, stride: 1, padding: 0 };
 * const floats = winogradFilterScratch(d);
 * assert.ok(floats === 0 || floats > 36 * 32 * 64); // at least the 36 accumulators dU[ξ]
 * assert.equal(winogradFilterScratch({ ...d, stride: 2, oh: 12, ow: 12 }), 0);
 * ```
 */
export function winogradFilterScratch(
  d: Conv2dDims,
  opts: WinogradFilterOptions = {},
): number {
  if (!winogradFilterApplies(d)) return 0;
  return geometry(d, opts.tile ?? winogradFilterTile(d), opts.chunkBytes).bytes / 4;
}
