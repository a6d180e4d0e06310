// x: (N, C, H, W), w: (OC, C, 3, 3), b: (OC) -> y: (N, OC, OH, OW), float32, stride 1
/**
 * Winograd F(2×2, 3×3) and F(4×4, 3×3) convolution on the WebAssembly
 * SIMD tier (module built from `wasm/winograd_kernel.ts`), forward and
 * backward-to-input (a forward convolution of dy, padded by 2 − p, with the
 * filter rotated 180° and its channels swapped). When x and y live in one
 * executor arena with enough kernel scratch (the ops reserve it through
 * {@link winogradScratch}), the module runs on the arena's memory (the build
 * with a shared memory import on a shared arena): it reads
 * x and writes y in place, its buffers in the scratch; otherwise it stages
 * each image through a memory of its own. Per call the filter is first
 * transformed (U = G g Gᵀ, four output channels per vector); per image the input is
 * packed channels-innermost and zero-padded, then convolved. Images are
 * independent given U: on a worker pool thread's shared arena every call
 * opens a job on the assist board (`assist.ts`, kind `WINOGRAD`) whose
 * chunks are images (or small groups of them, by size alone), so a thread
 * with nothing left runs some of them on the owner's arena with buffers of
 * its own (the ops reserve a slot of scratch per pool thread): the same
 * calls on the same inputs, the same bits. The entry
 * points return false when they do not serve the sizes (not 3×3, stride ≠
 * 1, padding > 2 for the backward, no WebAssembly SIMD, or Winograd
 * switched off by {@link setWinogradEnabled}), and the caller runs
 * im2col + GEMM instead.
 *
 * Which variant ({@link winogradTileFor}), from measurements against im2col
 * + GEMM in one process (best of 34 runs, 2-core Zen 4 under load, batch
 * 8-32; time relative to direct, F(2×2) / F(4×4)): C 32 → OC 64 at 24×24
 * 0.49 / 0.32; 32 → 32 at 12×12 0.44 / 0.36, at 8×8 0.40 / 0.31, at 6×6
 * 0.38 / 0.43; 16 → 16 at 6×6 0.34 / 0.37; 64 → 64 at 12×12 0.49 / 0.48;
 * 8 → 8 at 24×24 0.58 / 0.41; 4 → 4 at 24×24 0.84 / 0.58; 3 → 16 at 30×30
 * 0.98 / 0.77; 2 → 32 at 24×24 1.42 / 0.94; 1 → 32 at 26×26 2.04 / 1.73. So
 * F(4×4) from 8×8 outputs up, F(2×2) below, and neither with fewer than 4
 * input or output channels (the channel vectors are 4 wide; one input
 * channel, like mnist-net's conv1, is slower by Winograd). The error bounds
 * are stated in the module's tests; `bench/winograd_bench.ts` measures
 * mnist-net's conv2.
 *
 * @module
 */

import type { Conv2dDims } from "./conv2d_ref.ts";
import { winogradApplies, type WinogradTile } from "./winograd_ref.ts";
import {
  arenaCopyWithin,
  arenaMemory,
  arenaScratch,
  arenaZero,
  isSharedBuffer,
  noteArenaKernel,
} from "./elementwise_wasm.ts";
import {
  activeAssist,
  ASSIST_ARGS,
  ASSIST_KIND,
  assistScratchSlots,
  registerAssistRunner,
} from "./assist.ts";
import {
  WINOGRAD_WASM_RELAXED_SIMD,
  WINOGRAD_WASM_RELAXED_SIMD_SHARED,
  WINOGRAD_WASM_SIMD,
  WINOGRAD_WASM_SIMD_SHARED,
} from "./wasm/winograd_bytes.ts";

interface WinoExports {
  // (raw, P, C, H, W, pad, Hp, Wp, Cp)
  wino_pack(...args: number[]): void;
  // (P, U, V, M, Y, bias, T, tw, Wp, Cp, OCp, OCy, OH, OW, TB, uS, vS, mS)
  wino2_image(...args: number[]): void;
  wino4_image(...args: number[]): void;
  // (WT, U, Cp, OCp, uS)
  wino2_filter(...args: number[]): void;
  wino4_filter(...args: number[]): void;
}

// undefined: not tried yet; null: no usable WebAssembly SIMD here.
let compiled: WebAssembly.Module | null | undefined;
// the shared-import build of the one `compiled` is, for shared arenas
let compiledShared: WebAssembly.Module | null | undefined;
let picked = "";
// The instance on a memory of its own, for arrays outside any arena.
let own: { ex: WinoExports; mem: WebAssembly.Memory; heap: Float32Array } | undefined;
// One instance per executor arena, on the arena's memory, and a view of it.
let arenas = new WeakMap<ArrayBufferLike, { ex: WinoExports; heap: Float32Array }>();
let enabled = true;

// The builds to try, in order: relaxed-simd FMA first, then plain SIMD128.
let builds = [WINOGRAD_WASM_RELAXED_SIMD, WINOGRAD_WASM_SIMD];

/**
 * Makes the Winograd kernels use one embedded build from now on (for tests
 * of the build this runtime would not pick), or with null the usual choice
 * (relaxed-simd where it validates, else plain SIMD). Returns whether the
 * build validates here; the next call instantiates it afresh.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(typeof useWinogradBuild("simd"), "boolean");
 * useWinogradBuild(null);
 * ```
 */
export function useWinogradBuild(build: "relaxed-simd" | "simd" | null): boolean {
  builds = build === "simd"
    ? [WINOGRAD_WASM_SIMD]
    : build === "relaxed-simd"
    ? [WINOGRAD_WASM_RELAXED_SIMD]
    : [WINOGRAD_WASM_RELAXED_SIMD, WINOGRAD_WASM_SIMD];
  compiled = undefined;
  compiledShared = undefined;
  own = undefined;
  arenas = new WeakMap();
  return module() !== null;
}

function module(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  compiled = null;
  if (typeof WebAssembly !== "object") return compiled;
  for (const b64 of builds) {
    const bytes = decode(b64);
    if (WebAssembly.validate(bytes)) {
      picked = b64;
      return compiled = new WebAssembly.Module(bytes);
    }
  }
  return compiled;
}

function decode(b64: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
}

// The build with a shared memory import of the same instruction set as module().
function sharedModule(): WebAssembly.Module | null {
  if (compiledShared !== undefined) return compiledShared;
  compiledShared = null;
  if (!module()) return compiledShared;
  const bytes = decode(
    picked === WINOGRAD_WASM_SIMD ? WINOGRAD_WASM_SIMD_SHARED : WINOGRAD_WASM_RELAXED_SIMD_SHARED,
  );
  if (WebAssembly.validate(bytes)) compiledShared = new WebAssembly.Module(bytes);
  return compiledShared;
}

function instantiate(mem: WebAssembly.Memory): WinoExports {
  const m = isSharedBuffer(mem.buffer) ? sharedModule() : module();
  if (!m) throw new Error("winograd: the build with a shared memory import does not compile here");
  return new WebAssembly.Instance(m, { env: { mem } }).exports as unknown as WinoExports;
}

// The own-memory instance with at least `bytes` of memory, and a current view of it.
function ownOf(bytes: number): { ex: WinoExports; heap: Float32Array } {
  if (!own) {
    const mem = new WebAssembly.Memory({ initial: 1 });
    own = { ex: instantiate(mem), mem, heap: new Float32Array(mem.buffer) };
  }
  const mem = own.mem;
  if (mem.buffer.byteLength < bytes) {
    mem.grow(Math.ceil((bytes - mem.buffer.byteLength) / 65536));
  }
  if (own.heap.buffer !== mem.buffer) own.heap = new Float32Array(mem.buffer);
  return own;
}

/**
 * Switches the Winograd kernels on (the default) or off for this process
 * (worker); off, the entry points return false and the convolutions run
 * im2col + GEMM (`--no-winograd`, `train({ winograd: false })`). Returns
 * the previous setting.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const before = setWinogradEnabled(false);
 * assert.equal(winogradEnabled(), false);
 * setWinogradEnabled(before);
 * ```
 */
export function setWinogradEnabled(on: boolean): boolean {
  const was = enabled;
  enabled = on;
  return was;
}

/**
 * Whether the Winograd kernels are switched on (see {@link setWinogradEnabled}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(typeof winogradEnabled(), "boolean");
 * ```
 */
export function winogradEnabled(): boolean {
  return enabled;
}

/**
 * The variant the wasm tier uses for a convolution computing `co` output
 * channels of `oh`×`ow` from `ci` input channels (for the backward-to-input
 * pass: the forward's C as `co`, OC as `ci`, H×W as the output), or null to
 * keep im2col + GEMM: F(4×4) from 8×8 outputs up, F(2×2) below, none with
 * fewer than 4 channels in or out (measurements in the module doc).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(winogradTileFor(32, 64, 24, 24), 4); // mnist-net conv2
 * assert.equal(winogradTileFor(1, 32, 26, 26), null); // one input channel
 * assert.equal(winogradTileFor(16, 16, 6, 6), 2);
 * ```
 */
export function winogradTileFor(
  ci: number,
  co: number,
  oh: number,
  ow: number,
): WinogradTile | null {
  if (ci < 4 || co < 4) return null;
  return Math.min(oh, ow) >= 8 ? 4 : 2;
}

const ALIGN = 64;
const up = (x: number, k: number) => Math.ceil(x / k) * k;
const args = new Array<number>(18).fill(0);
// Bytes rounded up to an odd number of 64-byte lines, so that α² strides of it spread over the
// cache sets (a power of two apart they share one).
const oddLines = (bytes: number) => (Math.ceil(bytes / 64) | 1) * 64;

// The convolution both passes run: x (N, CI, IH, IW) -> y (N, CO, YH, YW), padding pad,
// in tiles of m; the padded channel counts and the block of tiles.
interface Geometry {
  ci: number;
  ih: number;
  iw: number;
  co: number;
  yh: number;
  yw: number;
  pad: number;
  m: WinogradTile;
  cp: number;
  ocp: number;
  ocy: number;
  tw: number;
  T: number;
  hp: number;
  wp: number;
  tb: number;
}

function geometry(d: Conv2dDims, flip: boolean, m: WinogradTile): Geometry {
  const [ci, ih, iw, co, yh, yw, pad] = flip
    ? [d.oc, d.oh, d.ow, d.c, d.h, d.w, 2 - d.padding]
    : [d.c, d.h, d.w, d.oc, d.oh, d.ow, d.padding];
  const th = Math.ceil(yh / m), tw = Math.ceil(yw / m), T = th * tw;
  return {
    ci,
    ih,
    iw,
    co,
    yh,
    yw,
    pad,
    m,
    cp: up(ci, 4),
    ocp: up(co, 8),
    ocy: up(co, 4),
    tw,
    T,
    hp: th * m + 2,
    wp: tw * m + 2,
    // blocks of at most 16 tiles, a multiple of 4 (the micro-kernel's rows) but for the last
    tb: Math.min(16, up(Math.ceil(T / Math.ceil(T / 16)), 4)),
  };
}

// Byte addresses from `base`: first what a call shares (U, bias, the filter's taps WT), then
// from `slot` the scratch of one thread, `stride` bytes, that each thread running images of the
// call has a copy of (slot k at slot + k·stride): P, V, M, and with `stageY` the staged output
// image, with `stageX` the staged input image. `end` is the first byte past slot 0.
function layout(g: Geometry, base: number, stageY: boolean, stageX: boolean) {
  let end = up(base, ALIGN);
  const region = (floats: number) => {
    const at = end;
    end = up(end + floats * 4, ALIGN);
    return at;
  };
  const xi = (g.m + 2) ** 2;
  const uS = oddLines(g.cp * g.ocp * 4), vS = oddLines(g.tb * g.cp * 4);
  const mS = oddLines(g.tb * g.ocp * 4);
  const U = region(xi * uS / 4), B = region(g.ocp), WT = region(g.cp * 9 * g.ocp);
  const slot = end;
  const P = region(g.hp * g.wp * g.cp), V = region(xi * vS / 4), M = region(xi * mS / 4);
  const Y = stageY ? region(g.ocy * g.yh * g.yw) : -1;
  const R = stageX ? region(g.ci * g.ih * g.iw) : -1;
  return { U, B, WT, slot, stride: end - slot, P, V, M, Y, R, end, uS, vS, mS };
}

/**
 * Floats of arena scratch the Winograd path of a `pass` of sizes `d` uses
 * (0 when {@link winogradTileFor} keeps it on im2col + GEMM), for the ops'
 * `scratch` hooks: the transformed filter once, and the per-image buffers
 * for each of the `assistScratchSlots()` threads that may run images of a
 * call (see {@link ASSIST_KIND}`.WINOGRAD`). Without room for one thread it
 * stages through its own memory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { setAssistScratchSlots } from "./assist.ts";
 * const d = { n: 32, c: 32, h: 26, w: 26, oc: 64, kh: 3, kw: 3, oh: 24, ow: 24, stride: 1, padding: 0 };
 * const one = winogradScratch(d, "forward");
 * assert.ok(one > 36 * 32 * 64); // at least U
 * assert.equal(winogradScratch({ ...d, c: 1 }, "forward"), 0);
 * const was = setAssistScratchSlots(3); // a pool of 3 threads plans its arenas
 * const three = winogradScratch(d, "forward");
 * setAssistScratchSlots(was);
 * assert.ok(three > one && three < 3 * one); // U once, the per-image buffers 3 times
 * ```
 */
export function winogradScratch(d: Conv2dDims, pass: "forward" | "input"): number {
  if (!winogradApplies(d) || d.n === 0 || (pass === "input" && d.padding > 2)) return 0;
  const flip = pass === "input";
  const m = flip ? winogradTileFor(d.oc, d.c, d.h, d.w) : winogradTileFor(d.c, d.oc, d.oh, d.ow);
  if (m === null) return 0;
  const g = geometry(d, flip, m);
  const L = layout(g, 0, g.co % 4 !== 0, false);
  return (L.slot + L.stride * assistScratchSlots()) / 4 + ALIGN / 4;
}

// A call's integer arguments, as a job on the assist board carries them (ASSIST_ARGS of them):
// byte addresses in the arena of x, y, U, the bias and slot 0's P, V, M and staged output image
// (−1: y written in place); the slot stride; the geometry; images per chunk.
const J = {
  X: 0,
  Y: 1,
  U: 2,
  B: 3,
  P: 4,
  V: 5,
  M: 6,
  YS: 7,
  STRIDE: 8,
  CI: 9,
  IH: 10,
  IW: 11,
  PAD: 12,
  CO: 13,
  YH: 14,
  YW: 15,
  TILE: 16,
  N: 17,
  PER: 18,
  US: 19,
  VS: 20,
  MS: 21,
  TB: 22,
} as const;
// the arguments of a call nobody helps with (floats: an arena may pass 2 GB, the board's ints not)
const alone = new Float64Array(ASSIST_ARGS);
// Multiply-adds of the elementwise stage a chunk of images should at least hold: a smaller
// image is grouped with the next ones (a claim costs about a microsecond).
const CHUNK_MACS = 1 << 17;

// Runs images [c·per, min(N, (c + 1)·per)) of the call whose arguments are ints[at…] (see J)
// with the scratch of slot `slot`, on the arena instance `inst`.
function runChunk(
  inst: ArenaInstance,
  ints: Int32Array | Float64Array,
  at: number,
  c: number,
  slot: number,
): void {
  const { ex, heap: h } = inst;
  const ci = ints[at + J.CI]!, ih = ints[at + J.IH]!, iw = ints[at + J.IW]!;
  const co = ints[at + J.CO]!, yh = ints[at + J.YH]!, yw = ints[at + J.YW]!;
  const m = ints[at + J.TILE]!, per = ints[at + J.PER]!, x = ints[at + J.X]!;
  const y = ints[at + J.Y]!, off = slot * ints[at + J.STRIDE]!, pad = ints[at + J.PAD]!;
  const P = ints[at + J.P]! + off, Ys = ints[at + J.YS]!, Y = Ys < 0 ? -1 : Ys + off;
  const cp = up(ci, 4), th = Math.ceil(yh / m), tw = Math.ceil(yw / m);
  const hp = th * m + 2, wp = tw * m + 2;
  const xs = ci * ih * iw * 4, ys = co * yh * yw;
  args[0] = P, args[1] = ints[at + J.U]!, args[2] = ints[at + J.V]! + off;
  args[3] = ints[at + J.M]! + off, args[5] = ints[at + J.B]!, args[6] = th * tw;
  args[7] = tw, args[8] = wp, args[9] = cp, args[10] = up(co, 8), args[11] = up(co, 4);
  args[12] = yh, args[13] = yw, args[14] = ints[at + J.TB]!, args[15] = ints[at + J.US]!;
  args[16] = ints[at + J.VS]!, args[17] = ints[at + J.MS]!;
  const image = m === 2 ? ex.wino2_image : ex.wino4_image;
  const to = Math.min(ints[at + J.N]!, (c + 1) * per);
  for (let n = c * per; n < to; n++) {
    ex.wino_pack(x + n * xs, P, ci, ih, iw, pad, hp, wp, cp);
    args[4] = Y >= 0 ? Y : y + n * ys * 4;
    image(...args);
    if (Y >= 0) arenaCopyWithin(h, y / 4 + n * ys, Y / 4, Y / 4 + ys);
  }
}

interface ArenaInstance {
  ex: WinoExports;
  heap: Float32Array;
}

// This thread's instance on the arena `buf` (a view of the arena memory `mem`).
function arenaInstance(buf: ArrayBufferLike, mem: WebAssembly.Memory): ArenaInstance {
  let inst = arenas.get(buf);
  if (!inst) {
    arenas.set(buf, inst = { ex: instantiate(mem), heap: new Float32Array(buf) });
    noteArenaKernel(buf, "winograd");
  }
  return inst;
}

// A helper's chunk of another thread's call, on this thread's view of its arena, in its own slot.
registerAssistRunner(ASSIST_KIND.WINOGRAD, (buf, ints, at, _fl, _fat, c, thread) => {
  const mem = arenaMemory(buf);
  if (!mem) throw new Error("winograd: a helper was given a job on an arena it has no memory of");
  runChunk(arenaInstance(buf, mem), ints, at, c, thread);
});

// y = the convolution of x with the (flipped) filter w, on x's arena when x and y share one
// with enough scratch, else staged image by image through the module's own memory. On a pool
// thread's shared arena with scratch for two threads or more, the images are chunks of a job on
// the assist board: a waiting thread runs some of them with its own slot of the scratch.
function run(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  y: Float32Array,
  d: Conv2dDims,
  flip: boolean,
  m: WinogradTile,
): void {
  const g = geometry(d, flip, m);
  const buf = x.buffer;
  const mem = y.buffer === buf ? arenaMemory(buf) : undefined;
  const scratch = mem && arenaScratch(buf);
  if (mem && scratch) {
    // y written in place unless its channel count is not a multiple of 4
    const L = layout(g, scratch.byteOffset, g.co % 4 !== 0, false);
    const slots = Math.floor((scratch.byteOffset + scratch.byteLength - L.slot) / L.stride);
    if (slots >= 1) {
      const inst = arenaInstance(buf, mem);
      transformFilter(inst, L, g, w, b, d, flip);
      // images per chunk: the partition depends on the sizes only, never on the threads
      const macs = g.T * (m + 2) ** 2 * g.cp * g.ocp;
      const per = Math.max(Math.ceil(CHUNK_MACS / macs), Math.ceil(d.n / 0xffff));
      const chunks = Math.ceil(d.n / per);
      // a job's addresses are int32s
      const a = chunks >= 2 && slots >= 2 && buf.byteLength <= 2 ** 31 ? activeAssist() : null;
      const at = a ? a.open(buf, ASSIST_KIND.WINOGRAD, chunks, Math.min(slots, 0x7fff)) : -1;
      const ints = at >= 0 ? a!.board.ints : alone;
      const o = at >= 0 ? at : 0;
      ints[o + J.X] = x.byteOffset, ints[o + J.Y] = y.byteOffset, ints[o + J.U] = L.U;
      ints[o + J.B] = L.B, ints[o + J.P] = L.P, ints[o + J.V] = L.V, ints[o + J.M] = L.M;
      ints[o + J.YS] = L.Y, ints[o + J.STRIDE] = L.stride, ints[o + J.CI] = g.ci;
      ints[o + J.IH] = g.ih, ints[o + J.IW] = g.iw, ints[o + J.PAD] = g.pad;
      ints[o + J.CO] = g.co, ints[o + J.YH] = g.yh, ints[o + J.YW] = g.yw, ints[o + J.TILE] = m;
      ints[o + J.N] = d.n, ints[o + J.PER] = per, ints[o + J.US] = L.uS, ints[o + J.VS] = L.vS;
      ints[o + J.MS] = L.mS, ints[o + J.TB] = g.tb;
      if (at >= 0) {
        a!.publish();
        a!.finish();
      } else for (let c = 0; c < chunks; c++) runChunk(inst, alone, 0, c, 0);
      return;
    }
  }
  const L = layout(g, 1024, true, true);
  const inst = ownOf(L.end), { ex, heap: h } = inst;
  transformFilter(inst, L, g, w, b, d, flip);
  const xs = g.ci * g.ih * g.iw, ys = g.co * g.yh * g.yw;
  args[0] = L.P, args[1] = L.U, args[2] = L.V, args[3] = L.M, args[4] = L.Y, args[5] = L.B;
  args[6] = g.T, args[7] = g.tw, args[8] = g.wp, args[9] = g.cp, args[10] = g.ocp;
  args[11] = g.ocy, args[12] = g.yh, args[13] = g.yw, args[14] = g.tb, args[15] = L.uS;
  args[16] = L.vS, args[17] = L.mS;
  const image = m === 2 ? ex.wino2_image : ex.wino4_image;
  for (let n = 0; n < d.n; n++) {
    h.set(x.subarray(n * xs, (n + 1) * xs), L.R / 4);
    ex.wino_pack(L.R, L.P, g.ci, g.ih, g.iw, g.pad, g.hp, g.wp, g.cp);
    image(...args);
    y.set(h.subarray(L.Y / 4, L.Y / 4 + ys), n * ys);
  }
}

// U = the transformed (flipped) filter w and B = the bias b (zeros without), where L puts them.
function transformFilter(
  { ex, heap: h }: ArenaInstance,
  L: ReturnType<typeof layout>,
  g: Geometry,
  w: Float32Array,
  b: Float32Array | null,
  d: Conv2dDims,
  flip: boolean,
): void {
  winogradTapsInto(h, L.WT / 4, w, d.oc, d.c, flip, g.cp, g.ocp);
  (g.m === 2 ? ex.wino2_filter : ex.wino4_filter)(L.WT, L.U, g.cp, g.ocp, L.uS);
  arenaZero(h, L.B / 4, L.B / 4 + g.ocp);
  // element by element: a subarray would be an allocation per call
  if (b) { for (let o = 0; o < g.co; o++) h[L.B / 4 + o] = b[o]!; }
}

/**
 * Writes the taps of the filter `w` (OC, C, 3, 3) as WT[Cp][9][OCp] into
 * `out` from float offset `at`, the layout the module's filter transform
 * reads: row = input channel, column = output channel of the convolution
 * run, zeros in the padded rows and columns. With `flip`, the
 * backward-to-input filter: rotated 180° with the channels swapped (rows are
 * the forward's OC, columns its C).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const w = Float32Array.from({ length: 18 }, (_, i) => i); // OC 2, C 1
 * const t = new Float32Array(4 * 9 * 8);
 * winogradTapsInto(t, 0, w, 2, 1, false, 4, 8);
 * assert.deepEqual([t[0], t[1], t[8], t[9]], [0, 9, 1, 10]); // (tap, column) pairs
 * winogradTapsInto(t, 0, w, 2, 1, true, 4, 8); // rows are now the two output channels
 * assert.deepEqual([t[0], t[72], t[8]], [8, 17, 7]);
 * ```
 */
export function winogradTapsInto(
  out: Float32Array,
  at: number,
  w: Float32Array,
  oc: number,
  c: number,
  flip: boolean,
  cp: number,
  ocp: number,
): void {
  const rows = flip ? oc : c, cols = flip ? c : oc;
  if (rows > cp || cols > ocp) {
    throw new Error(`winogradTapsInto: ${rows}×${cols} channels do not fit ${cp}×${ocp}`);
  }
  if (rows < cp || cols < ocp) arenaZero(out, at, at + cp * 9 * ocp);
  // the element of w at (row, col) = (o, ci) or (ci, o), its taps 9 apart
  const rowStride = flip ? c * 9 : 9, colStride = flip ? 9 : c * 9;
  for (let row = 0; row < rows; row++) {
    for (let tap = 0; tap < 9; tap++) {
      let q = row * rowStride + (flip ? 8 - tap : tap);
      const o = at + (row * 9 + tap) * ocp;
      for (let col = 0; col < cols; col++) {
        out[o + col] = w[q]!;
        q += colStride;
      }
    }
  }
}

function usable(d: Conv2dDims): boolean {
  return enabled && winogradApplies(d) && module() !== null;
}

/**
 * y = conv2d(x, w) + b by Winograd F(m×m, 3×3) in wasm SIMD, when it
 * serves `d` (3×3, stride 1, wasm available, switched on); `m` defaults to
 * {@link winogradTileFor}'s choice. Returns false, leaving y alone, when it
 * does not serve (or the rule picks none).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { conv2dRef } from "./conv2d_ref.ts";
 * const d = { n: 1, c: 4, h: 6, w: 6, oc: 4, kh: 3, kw: 3, oh: 6, ow: 6, stride: 1, padding: 1 };
 * const x = Float32Array.from({ length: 144 }, (_, i) => Math.sin(i));
 * const w = Float32Array.from({ length: 144 }, (_, i) => Math.cos(i) / 4);
 * const y = new Float32Array(144), want = new Float32Array(144);
 * conv2dRef(x, w, null, want, d);
 * if (conv2dWinogradWasm(x, w, null, y, d, 4)) {
 *   assert.ok(y.every((v, i) => Math.abs(v - want[i]) < 1e-4));
 * }
 * ```
 */
export function conv2dWinogradWasm(
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  y: Float32Array,
  d: Conv2dDims,
  m?: WinogradTile,
): boolean {
  if (!usable(d) || d.n === 0) return false;
  const tile = m ?? winogradTileFor(d.c, d.oc, d.oh, d.ow);
  if (tile === null) return false;
  run(x, w, b, y, d, false, tile);
  return true;
}

/**
 * dx = the gradient of conv2d(x, w) in x for dy, by Winograd F(m×m, 3×3)
 * in wasm SIMD (a forward convolution of dy padded by 2 − p with the
 * flipped filter), when it serves `d` (3×3, stride 1, padding ≤ 2, wasm
 * available, switched on); `m` defaults to {@link winogradTileFor}'s
 * choice. Returns false, leaving dx alone, otherwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { conv2dBackwardInputRef } from "./conv2d_ref.ts";
 * const d = { n: 1, c: 4, h: 6, w: 6, oc: 4, kh: 3, kw: 3, oh: 4, ow: 4, stride: 1, padding: 0 };
 * const dy = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
 * const w = Float32Array.from({ length: 144 }, (_, i) => Math.cos(i) / 4);
 * const dx = new Float32Array(144), want = new Float32Array(144);
 * conv2dBackwardInputRef(dy, w, want, d);
 * if (conv2dBackwardInputWinogradWasm(dy, w, dx, d, 2)) {
 *   assert.ok(dx.every((v, i) => Math.abs(v - want[i]) < 1e-4));
 * }
 * ```
 */
export function conv2dBackwardInputWinogradWasm(
  dy: Float32Array,
  w: Float32Array,
  dx: Float32Array,
  d: Conv2dDims,
  m?: WinogradTile,
): boolean {
  if (!usable(d) || d.padding > 2 || d.n === 0) return false;
  const tile = m ?? winogradTileFor(d.oc, d.c, d.h, d.w);
  if (tile === null) return false;
  run(dy, w, null, dx, d, true, tile);
  return true;
}
