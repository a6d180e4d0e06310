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
 * `copyWithin`; elsewhere it runs on a memory of its own that x and dy are
 * copied into whole (counted by `gemmStagedBytes`), and then the same way.
 *
 * The chunks fall into groups fixed by the sizes (see
 * {@link winogradFilterGroups}); each group accumulates into dU of its own,
 * and the groups' dU are added in order, so a pool's threads may run the
 * groups of one call (the job kind `ASSIST_KIND.WINOGRAD_FILTER`) and the
 * bits stay those of one thread.
 *
 * Scratch layout (bytes from its start): the shared part, group 0's dU, the
 * other groups' dU and the (OCp, Cp, 3, 3) output; then a staging slot per
 * thread that may run a group: the raw chunk of x and of dy, the staged
 * chunk of x and of dy, V and M.
 *
 * @module
 */

import { checkConv2dDims, type Conv2dDims } from "./conv2d_ref.ts";
import type { WinogradTile } from "./winograd_ref.ts";
import {
  arenaCopyWithin,
  arenaMemory,
  arenaScratch,
  isSharedBuffer,
  noteArenaKernel,
} from "./elementwise_wasm.ts";
import { countStaged } from "./gemm_wasm.ts";
import { activeAssist, ASSIST_KIND, assistScratchSlots, registerAssistRunner } from "./assist.ts";
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
  accum0: Fn;
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

/**
 * Most groups the chunks of images of one call fall into (see
 * {@link winogradBackwardFilterWasm}): each group's accumulators are summed
 * on their own and added after, so groups can run on different threads.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.ok(MAX_GROUPS >= 1);
 * ```
 */
export const MAX_GROUPS = 4;

/** Options of {@link winogradBackwardFilterWasm}. */
export interface WinogradFilterOptions {
  /** Output tile size m of F(m×m, 3×3) (default {@link winogradFilterTile}). */
  tile?: WinogradTile;
  /** Bytes a chunk of images may take (default {@link CHUNK_BYTES}); at least one image per chunk. */
  chunkBytes?: number;
  /** Most groups of chunks the images fall into (default {@link MAX_GROUPS}; 1: the chunks in one sequence). */
  maxGroups?: number;
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
 * The images fall into {@link winogradFilterGroups} groups of whole chunks,
 * fixed by the sizes alone; each group sums its chunks in order into
 * accumulators of its own, and the groups' accumulators are added in group
 * order before the output transform. So the bits are the same however the
 * groups are run: in order by one thread, or (a whole call on a pool
 * thread's shared arena, see `activeAssist`) as the chunks of a job on the
 * assist board that other threads help with, each in a staging slot of its
 * own in the arena's scratch.
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
  const g = geometryOf(d, opts); // with the tile m
  let base: number, memory: WebAssembly.Memory, xAt: number, dyAt: number;
  const inPlace = mem !== undefined && sc !== undefined && dy.buffer === buf &&
    dw.buffer === buf && g.shared + g.slot <= sc.byteLength;
  if (inPlace) {
    base = sc.byteOffset;
    memory = mem;
    xAt = x.byteOffset / 4;
    dyAt = dy.byteOffset / 4;
  } else {
    // x and dy copied whole past one slot of scratch in the own memory, then read as in place
    base = 1024; // 0 is never a valid address
    memory = s.own!;
    const end = base + g.shared + g.slot + 4 * (x.length + dy.length);
    if (memory.buffer.byteLength < end) {
      memory.grow(Math.ceil((end - memory.buffer.byteLength) / 65536));
    }
    xAt = (base + g.shared + g.slot) / 4;
    dyAt = xAt + x.length;
  }
  const ex = instanceOn(s, memory);
  const heap = heapOf(memory.buffer);
  if (!inPlace) {
    heap.set(x, xAt);
    heap.set(dy, dyAt);
    countStaged(4 * (x.length + dy.length)); // see gemmStagedBytes
  }
  // a whole call on a pool thread's shared arena: the groups are a job other threads may help with
  const a = inPlace && g.groups > 1 ? activeAssist() : null;
  const slots = a ? Math.floor((sc!.byteLength - g.shared) / g.slot) : 0;
  const at = a ? a.open(buf, ASSIST_KIND.WINOGRAD_FILTER, g.groups, slots) : -1;
  if (at >= 0) {
    const ints = a!.board.ints;
    ints[at] = x.byteOffset;
    ints[at + 1] = dy.byteOffset;
    ints[at + 2] = base;
    ints[at + 3] = d.n;
    ints[at + 4] = d.c;
    ints[at + 5] = d.h;
    ints[at + 6] = d.w;
    ints[at + 7] = d.oc;
    ints[at + 8] = d.oh;
    ints[at + 9] = d.ow;
    ints[at + 10] = d.padding;
    ints[at + 11] = m;
    ints[at + 12] = g.chunkBytes;
    ints[at + 13] = g.maxGroups;
    a!.publish();
    a!.finish();
  } else {
    for (let gi = 0; gi < g.groups; gi++) runGroup(ex, heap, base, 0, g, gi, xAt, dyAt);
  }
  const dU = base + g.dU, out = base + g.out;
  // the other groups' accumulators added to group 0's in group order, as the transform reads them
  (m === 2 ? ex.xout2 : ex.xout4)(dU, out, g.Cp, g.OCp, base + g.parts, g.groups - 1, g.part);
  // (OCp, Cp, 9) -> (OC, C, 9)
  const o = out / 4, { c: C, oc: OC } = d, Cp = g.Cp;
  if (inPlace) {
    const w0 = dw.byteOffset / 4;
    if (Cp === C) arenaCopyWithin(heap, w0, o, o + OC * C * 9);
    else {
      for (let k = 0; k < OC; k++) {
        arenaCopyWithin(heap, w0 + k * C * 9, o + k * Cp * 9, o + (k * Cp + C) * 9);
      }
    }
  } else {
    for (let k = 0; k < OC; k++) {
      for (let i = 0; i < C * 9; i++) dw[k * C * 9 + i] = heap[o + k * Cp * 9 + i]!;
    }
  }
  return true;
}

// Group gi of a call: its chunks of images staged, transformed and accumulated in order into the
// group's accumulators, with the staging of slot `slot`. xAt, dyAt: float indices of x and dy in
// `heap`.
function runGroup(
  ex: Exports,
  heap: Float32Array,
  base: number,
  slot: number,
  g: Geometry,
  gi: number,
  xAt: number,
  dyAt: number,
): void {
  const { a2, tilesH, tilesW, tpi, Cp, OCp, Hp, Wp, OHp, OWp, chw, ohw, nb, at, m } = g;
  const { n: N, c: C, h: H, w: W, oc: OC, oh: OH, ow: OW, p } = g;
  const dU = base + (gi === 0 ? g.dU : g.parts + (gi - 1) * g.part);
  const sb = base + g.shared + slot * g.slot;
  const srcX = sb + at.rawX, srcDy = sb + at.rawDy, stX = sb + at.stX, stDy = sb + at.stDy;
  const V = sb + at.V, M = sb + at.M;
  const xin = m === 2 ? ex.xin2 : ex.xin4, xdy = m === 2 ? ex.xdy2 : ex.xdy4;
  const c0 = Math.floor((gi * g.chunks) / g.groups),
    c1 = Math.floor(((gi + 1) * g.chunks) / g.groups);
  const first = c0 * nb;
  for (let n0 = first; n0 < Math.min(N, c1 * nb); n0 += nb) {
    const cnt = Math.min(nb, N - n0), T = cnt * tpi, Ts = T | 1;
    // One sequential copy inside the memory: the staging reads four
    // channel planes of 2-3 KiB at a time, short runs the prefetcher
    // follows badly from DRAM (the copy measured 4-6% faster, min of 22).
    const x0 = xAt + n0 * chw, dy0 = dyAt + n0 * ohw;
    arenaCopyWithin(heap, srcX / 4, x0, x0 + cnt * chw);
    arenaCopyWithin(heap, srcDy / 4, dy0, dy0 + cnt * ohw);
    ex.stage(srcX, stX, C, H, W, Cp, Hp, Wp, p, cnt);
    ex.stage(srcDy, stDy, OC, OH, OW, OCp, OHp, OWp, 0, cnt);
    xin(stX, V, tilesH, tilesW, cnt, Cp, Hp, Wp, Ts);
    xdy(stDy, M, tilesH, tilesW, cnt, OCp, OHp, OWp, Ts);
    // the group's first chunk sets its accumulators, the others add to them
    (n0 === first ? ex.accum0 : ex.accum)(V, M, dU, T, Ts, Cp, OCp, a2);
  }
}

// A float32 view of a whole memory's buffer, one per buffer (the own memory's changes when it grows).
const heaps = new WeakMap<ArrayBufferLike, Float32Array>();
function heapOf(buf: ArrayBufferLike): Float32Array {
  let h = heaps.get(buf);
  if (!h) heaps.set(buf, h = new Float32Array(buf));
  return h;
}

// Group `chunk` of another thread's call (the ints written above), on this thread's view of
// its arena, staged in this thread's slot.
registerAssistRunner(ASSIST_KIND.WINOGRAD_FILTER, (buf, ints, at, _fl, _fat, chunk, thread) => {
  const g = geometry(
    ints[at + 3]!,
    ints[at + 4]!,
    ints[at + 5]!,
    ints[at + 6]!,
    ints[at + 7]!,
    ints[at + 8]!,
    ints[at + 9]!,
    ints[at + 10]!,
    ints[at + 11]! as WinogradTile,
    ints[at + 12]!,
    ints[at + 13]!,
  );
  const ex = instanceOn(init()!, arenaMemory(buf)!);
  runGroup(
    ex,
    heapOf(buf),
    ints[at + 2]!,
    thread,
    g,
    chunk,
    ints[at]! / 4,
    ints[at + 1]! / 4,
  );
});

interface Geometry {
  // the sizes it was made for
  n: number;
  c: number;
  h: number;
  w: number;
  oc: number;
  oh: number;
  ow: number;
  p: number;
  m: WinogradTile;
  chunkBytes: number;
  maxGroups: number;
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
  /** Chunks, ⌈n / nb⌉. */
  chunks: number;
  /** Groups of chunks: see {@link winogradFilterGroups}. */
  groups: number;
  /** Byte offsets from the start of the scratch: group 0's accumulators (dU), the other groups', the output. */
  dU: number;
  parts: number;
  out: number;
  /** Bytes of one group's accumulators (the stride of the parts). */
  part: number;
  /** Bytes of the shared part (dU, parts, out); the staging slots follow it. */
  shared: number;
  /** Byte offsets inside a staging slot. */
  at: {
    rawX: number;
    rawDy: number;
    stX: number;
    stDy: number;
    V: number;
    M: number;
  };
  /** Bytes of one staging slot. */
  slot: number;
}

// The last few geometries made (a layer's calls, a helper's chunks): no object per call.
const made: Geometry[] = [];

function geometry(
  n: number,
  c: number,
  h: number,
  w: number,
  oc: number,
  oh: number,
  ow: number,
  p: number,
  m: WinogradTile,
  chunkBytes: number,
  maxGroups: number,
): Geometry {
  for (const g of made) {
    if (
      g.n === n && g.c === c && g.h === h && g.w === w && g.oc === oc && g.oh === oh &&
      g.ow === ow && g.p === p && g.m === m && g.chunkBytes === chunkBytes &&
      g.maxGroups === maxGroups
    ) return g;
  }
  const a2 = (m + 2) * (m + 2);
  const tilesH = Math.ceil(oh / m), tilesW = Math.ceil(ow / m), tpi = tilesH * tilesW;
  const Cp = roundUp(c, MR), OCp = roundUp(oc, NR);
  const Hp = tilesH * m + 2, Wp = tilesW * m + 2, OHp = tilesH * m, OWp = tilesW * m;
  const chw = c * h * w, ohw = oc * oh * ow;
  // floats one image of the chunk takes
  const perImage = chw + ohw + Hp * Wp * Cp + OHp * OWp * OCp +
    a2 * tpi * (Cp + OCp);
  const nb = Math.max(1, Math.min(n, Math.floor(chunkBytes / (4 * perImage))));
  const chunks = Math.ceil(n / nb), groups = Math.max(1, Math.min(chunks, maxGroups));
  let end = 0;
  const take = (floats: number) => {
    const at = end;
    end = align(end + floats * 4);
    return at;
  };
  const part = align(a2 * Cp * OCp * 4);
  const dU = take(a2 * Cp * OCp);
  const parts = take(((groups - 1) * part) / 4);
  const out = take(OCp * Cp * 9);
  const shared = end;
  end = 0;
  // An odd number of rows between transform points: with an even one
  // (T = 144 for F(2×2) on 24×24) the α² store streams of a transform
  // fall 4 KiB apart and evict each other from L1; F(2×2)'s dy transform
  // took 9-18 ms against 0.8-3 ms with one row more (mnist-net conv2, N=64).
  const rows = (nb * tpi) | 1;
  const at = {
    rawX: take(nb * chw),
    rawDy: take(nb * ohw),
    stX: take(nb * Hp * Wp * Cp),
    stDy: take(nb * OHp * OWp * OCp),
    V: take(a2 * rows * Cp),
    M: take(a2 * rows * OCp),
  };
  const g: Geometry = {
    n,
    c,
    h,
    w,
    oc,
    oh,
    ow,
    p,
    m,
    chunkBytes,
    maxGroups,
    a2,
    tilesH,
    tilesW,
    tpi,
    Cp,
    OCp,
    Hp,
    Wp,
    OHp,
    OWp,
    chw,
    ohw,
    nb,
    chunks,
    groups,
    dU,
    parts,
    out,
    part,
    shared,
    at,
    slot: end,
  };
  if (made.length >= 4) made.shift();
  made.push(g);
  return g;
}

function geometryOf(d: Conv2dDims, opts: WinogradFilterOptions): Geometry {
  return geometry(
    d.n,
    d.c,
    d.h,
    d.w,
    d.oc,
    d.oh,
    d.ow,
    d.padding,
    opts.tile ?? winogradFilterTile(d),
    opts.chunkBytes ?? CHUNK_BYTES,
    opts.maxGroups ?? MAX_GROUPS,
  );
}

/**
 * Groups the images of a call fall into (see
 * {@link winogradBackwardFilterWasm}): one per chunk of images up to
 * `maxGroups` (default {@link MAX_GROUPS}), fixed by the sizes, never by
 * the threads that run them; 0 where the kernel does not apply.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const d = { n: 32, c: 32, h: 26, w: 26, oc: 64, kh: 3, kw: 3, oh: 24, ow: 24, stride: 1, padding: 0 };
 * const g = winogradFilterGroups(d); // mnist-net's conv2: one image a chunk, 32 chunks
 * assert.ok(g === 0 || g === MAX_GROUPS);
 * assert.ok(winogradFilterGroups({ ...d, n: 2 }) <= 2);
 * ```
 */
export function winogradFilterGroups(d: Conv2dDims, opts: WinogradFilterOptions = {}): number {
  return winogradFilterApplies(d) ? geometryOf(d, opts).groups : 0;
}

/**
 * Floats of arena scratch {@link winogradBackwardFilterWasm} needs to run on
 * an executor's arena (what the op's `scratch` hook asks for); 0 where it
 * does not apply. With more than one group of images it reserves a staging
 * slot for each of `assistScratchSlots()` threads (a pool's shared arena),
 * so that they can help.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { setAssistScratchSlots } from "./assist.ts";
 * const d = { n: 64, c: 32, h: 26, w: 26, oc: 64, kh: 3, kw: 3, oh: 24, ow: 24, stride: 1, padding: 0 };
 * const floats = winogradFilterScratch(d);
 * assert.ok(floats === 0 || floats > 36 * 32 * 64); // at least the 36 accumulators dU[ξ]
 * const was = setAssistScratchSlots(3);
 * assert.ok(winogradFilterScratch(d) >= floats); // room to stage for three threads
 * setAssistScratchSlots(was);
 * assert.equal(winogradFilterScratch({ ...d, stride: 2, oh: 12, ow: 12 }), 0);
 * ```
 */
export function winogradFilterScratch(
  d: Conv2dDims,
  opts: WinogradFilterOptions = {},
): number {
  if (!winogradFilterApplies(d)) return 0;
  const g = geometryOf(d, opts);
  return (g.shared + (g.groups > 1 ? assistScratchSlots() : 1) * g.slot) / 4;
}
