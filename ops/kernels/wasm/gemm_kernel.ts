// a: (M, K) or (K, M) when transA, b: (K, N) or (N, K) when transB -> c: (M, N), all row-major, float32
/**
 * Source of the WebAssembly SIMD GEMM module. `buildGemmModule` emits the
 * binary with our own encoder (`_asm.ts`); `build.ts` embeds the result in
 * `gemm_bytes.ts`. The algorithm is the one of `../gemm_blocked.ts`
 * (BLIS loops over packed panels) with an MR×NR micro-kernel whose
 * accumulators are MR×(NR/4) f32x4 registers.
 *
 * Exports of the module:
 * - `gemm(a, b, c, m, n, k, flags, ws)`: byte addresses of A, B, C and of a
 *   workspace of `workspace_bytes()` bytes; flags bit 0 transA, bit 1 transB,
 *   bit 2 accumulate. Requires m, n, k ≥ 1.
 * - `workspace_bytes()`: the workspace size the blocking constants need.
 * - `im2col`, `col2im`: see `im2col_kernel.ts`; the convolution builds its
 *   GEMM operands with them without leaving the wasm memory.
 * - `gemm_nt`: A·Bᵀ as dot products without packing, see `gemm_nt_kernel.ts`.
 * The memory is imported (`env.mem`): JavaScript hands each instance the
 * memory it works on, a growable one of its own for arrays outside any
 * arena, or an executor's arena (see `../gemm_wasm.ts`).
 *
 * @module
 */

import { encodeModule, FuncBuilder, I32, type Local, V128 } from "./_asm.ts";
import { col2imKernel, im2colKernel } from "./im2col_kernel.ts";
import { ntDriver, ntTiles } from "./gemm_nt_kernel.ts";

/** Shape of the blocking, fixed when the module is built. */
export interface GemmKernelParams {
  /** Rows of the micro-tile (scalar broadcasts of A per k step). */
  mr: number;
  /** Columns of the micro-tile, in f32x4 vectors (NR = 4·nrv). */
  nrv: number;
  /** K steps per micro-kernel loop iteration. */
  unroll: number;
  /** Depth of a packed panel. */
  kc: number;
  /** Rows of a packed block of A. */
  mc: number;
  /** Columns of a packed panel of B. */
  nc: number;
  /** Use relaxed-simd `f32x4.relaxed_madd` (an FMA on x64) instead of mul + add. */
  relaxed: boolean;
  /** Import a shared memory (for arenas in a `SharedArrayBuffer`); default false. */
  shared?: boolean;
}

/**
 * The parameters the shipped modules are built with. 4×8 keeps 8
 * accumulators + 2 B vectors + 1 broadcast in the 15 xmm registers V8
 * allocates. Measured on Zen 5 with relaxed FMA: ~48 GFLOP/s from 256 to
 * 1024, about the peak of two 128-bit FMA pipes; 5×8, 6×8, 4×12, unroll 2
 * or 8, KC 128–512, MC 48–192 and NC 512–2048 came out level or slower.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_PARAMS } from "./gemm_kernel.ts";
 * assert.deepEqual([DEFAULT_PARAMS.mr, 4 * DEFAULT_PARAMS.nrv], [4, 8]); // the 4×8 micro-tile
 * ```
 */
export const DEFAULT_PARAMS: Omit<GemmKernelParams, "relaxed"> = {
  mr: 4,
  nrv: 2,
  unroll: 4,
  kc: 256,
  mc: 96,
  nc: 2048,
};

// i = from; while (i < limit) { body(); i += step }
function forRange(
  f: FuncBuilder,
  i: Local,
  from: () => void,
  limit: () => void,
  step: number,
  body: () => void,
): void {
  from();
  f.set(i);
  f.block();
  f.get(i);
  limit();
  f.i32GeS().brIf(0);
  f.loop();
  body();
  f.get(i).i32Const(step).i32Add().set(i);
  f.get(i);
  limit();
  f.i32LtS().brIf(0);
  f.end();
  f.end();
}

// x += v (i32 locals)
function addTo(f: FuncBuilder, x: Local, v: () => void): void {
  f.get(x);
  v();
  f.i32Add().set(x);
}

// min(a, b) for i32 values on the stack (via two scratch locals).
function minTo(f: FuncBuilder, out: Local, a: () => void, b: () => void, tmp: Local): void {
  a();
  f.set(out);
  b();
  f.set(tmp);
  f.get(out).get(tmp).get(out).get(tmp).i32LtS().select().set(out);
}

// Panels shallower than this run the micro-kernel's loop that broadcasts A by shuffles.
const SHUFFLE_KC = 16;

// micro(kc, pa, pb, c, ldc, add): C[rows×NR at c, row stride ldc bytes] (+)= Apanel·Bpanel,
// the first `rows` (default MR) rows of the packed MR-row A sliver
function microKernel(p: GemmKernelParams, rows = p.mr): FuncBuilder {
  const { mr, nrv, unroll, relaxed } = p;
  const nr = nrv * 4;
  const f = new FuncBuilder([I32, I32, I32, I32, I32, I32], []);
  const kc = f.param(0), pa = f.param(1), pb = f.param(2), c = f.param(3), ldc = f.param(4);
  const add = f.param(5);
  const acc: Local[][] = [];
  for (let i = 0; i < rows; i++) {
    acc.push([]);
    for (let v = 0; v < nrv; v++) acc[i].push(f.local(V128)); // locals start at zero
  }
  const bv: Local[] = [];
  for (let v = 0; v < nrv; v++) bv.push(f.local(V128));
  const av = f.local(V128), aq = f.local(V128);
  const iters = f.local(I32);
  const cp = f.local(I32);

  // step(u, shuffled): k step u of an unrolled iteration. Shuffled: the MR values of A of the
  // step in one load, each broadcast by a shuffle, instead of MR broadcast loads (the slivers of
  // the kernels with fewer rows still hold MR values a step). Wasm memory accesses are
  // bounds-checked where V8 has no trap handler (Deno), each check an address computation, a
  // compare and a branch; but the shuffles take FP-pipe slots from the FMAs. Measured on Zen 5:
  // the shuffles win on short panels (kc = 10: 0.75-0.9x the call), and lose 1-9% on long
  // ones (kc = 32, 128) unless the VM runs slow, so they serve kc < SHUFFLE_KC.
  const step = (u: number, shuffled: boolean) => {
    for (let v = 0; v < nrv; v++) f.get(pb).v128Load((u * nr + 4 * v) * 4).set(bv[v]);
    if (shuffled) f.get(pa).v128Load(u * mr * 4).set(aq);
    for (let i = 0; i < rows; i++) {
      if (shuffled) f.get(aq).get(aq).f32x4Shuffle([i, i, i, i]).set(av);
      else f.get(pa).v128Load32Splat((u * mr + i) * 4).set(av);
      for (let v = 0; v < nrv; v++) {
        if (relaxed) f.get(av).get(bv[v]).get(acc[i][v]).f32x4RelaxedMadd();
        else f.get(acc[i][v]).get(av).get(bv[v]).f32x4Mul().f32x4Add();
        f.set(acc[i][v]);
      }
    }
  };
  const kLoop = (u: number, shuffled: boolean) => {
    f.block();
    f.get(iters).i32Eqz().brIf(0);
    f.loop();
    for (let s = 0; s < u; s++) step(s, shuffled);
    addTo(f, pa, () => f.i32Const(u * mr * 4));
    addTo(f, pb, () => f.i32Const(u * nr * 4));
    f.get(iters).i32Const(1).i32Sub().tee(iters).brIf(0);
    f.end();
    f.end();
  };
  // Unrolled main loop, then the kc % unroll remainder one step at a time.
  const kLoops = (shuffled: boolean) => {
    f.get(kc).i32Const(unroll).i32DivU().set(iters);
    kLoop(unroll, shuffled);
    f.get(kc).i32Const(unroll - 1).i32And().set(iters);
    kLoop(1, shuffled);
  };
  if (mr === 4) {
    f.get(kc).i32Const(SHUFFLE_KC).i32LtS().if();
    kLoops(true);
    f.else();
    kLoops(false);
    f.end();
  } else kLoops(false);

  f.get(c).set(cp);
  f.get(add).if();
  for (let i = 0; i < rows; i++) {
    for (let v = 0; v < nrv; v++) {
      f.get(cp).get(cp).v128Load(16 * v).get(acc[i][v]).f32x4Add().v128Store(16 * v);
    }
    if (i < rows - 1) addTo(f, cp, () => f.get(ldc));
  }
  f.else();
  for (let i = 0; i < rows; i++) {
    for (let v = 0; v < nrv; v++) f.get(cp).get(acc[i][v]).v128Store(16 * v);
    if (i < rows - 1) addTo(f, cp, () => f.get(ldc));
  }
  f.end();
  return f;
}

// pack(src, sOuter, sInner, extent, kc, dst): packs `extent` lines (rows of
// op(A) or columns of op(B)) as slivers of `w` lines, each stored k-major
// (w values per k step), zero-padding the last sliver. sOuter steps to the
// next line, sInner to the next k, both in bytes.
function packKernel(w: number): FuncBuilder {
  const f = new FuncBuilder([I32, I32, I32, I32, I32, I32], []);
  const src = f.param(0), sOuter = f.param(1), sInner = f.param(2), extent = f.param(3);
  const kc = f.param(4), dst = f.param(5);
  const l0 = f.local(I32), lines = f.local(I32), q0 = f.local(I32), q = f.local(I32);
  const d = f.local(I32), p = f.local(I32), i = f.local(I32), tmp = f.local(I32);
  forRange(f, l0, () => f.i32Const(0), () => f.get(extent), w, () => {
    minTo(f, lines, () => f.i32Const(w), () => f.get(extent).get(l0).i32Sub(), tmp);
    f.get(src).get(l0).get(sOuter).i32Mul().i32Add().set(q0);
    f.get(lines).i32Const(w).i32Eq().if();
    {
      // Full sliver. Contiguous lines (sOuter = 4) copy as vectors.
      f.get(sOuter).i32Const(4).i32Eq().if();
      f.get(kc).set(p);
      f.loop();
      for (let g = 0; g < Math.floor(w / 4); g++) {
        f.get(dst).get(q0).v128Load(16 * g).v128Store(16 * g);
      }
      for (let j = w & ~3; j < w; j++) f.get(dst).get(q0).f32Load(4 * j).f32Store(4 * j);
      addTo(f, q0, () => f.get(sInner));
      addTo(f, dst, () => f.i32Const(w * 4));
      f.get(p).i32Const(1).i32Sub().tee(p).brIf(0);
      f.end();
      f.else();
      f.get(kc).set(p);
      f.loop();
      f.get(q0).set(q);
      for (let j = 0; j < w; j++) {
        f.get(dst).get(q).f32Load().f32Store(4 * j);
        if (j < w - 1) addTo(f, q, () => f.get(sOuter));
      }
      addTo(f, q0, () => f.get(sInner));
      addTo(f, dst, () => f.i32Const(w * 4));
      f.get(p).i32Const(1).i32Sub().tee(p).brIf(0);
      f.end();
      f.end();
    }
    f.else();
    {
      // Partial sliver: zero it, then copy the lines that exist.
      f.get(dst).i32Const(0).get(kc).i32Const(w * 4).i32Mul().memoryFill();
      forRange(f, i, () => f.i32Const(0), () => f.get(lines), 1, () => {
        f.get(q0).get(i).get(sOuter).i32Mul().i32Add().set(q);
        f.get(dst).get(i).i32Const(4).i32Mul().i32Add().set(d);
        f.get(kc).set(p);
        f.loop();
        f.get(d).get(q).f32Load().f32Store();
        addTo(f, q, () => f.get(sInner));
        addTo(f, d, () => f.i32Const(w * 4));
        f.get(p).i32Const(1).i32Sub().tee(p).brIf(0);
        f.end();
      });
      addTo(f, dst, () => f.get(kc).i32Const(w * 4).i32Mul());
    }
    f.end();
  });
  return f;
}

function workspaceBytes(p: GemmKernelParams): number {
  const nr = p.nrv * 4;
  const mcPad = Math.ceil(p.mc / p.mr) * p.mr, ncPad = Math.ceil(p.nc / nr) * nr;
  return (mcPad * p.kc + p.kc * ncPad + p.mr * nr) * 4;
}

// Function indices inside the module.
const MICRO = 0, PACK_A = 1, PACK_B = 2;

// `fewer`: index of the micro-kernel of 1 row; that of r < MR rows is fewer + r − 1.
function gemmDriver(p: GemmKernelParams, fewer: number): FuncBuilder {
  const { mr, kc: KC, mc: MC, nc: NC } = p;
  const nr = p.nrv * 4;
  const f = new FuncBuilder([I32, I32, I32, I32, I32, I32, I32, I32], []);
  const a = f.param(0), b = f.param(1), c = f.param(2), m = f.param(3), n = f.param(4);
  const k = f.param(5), flags = f.param(6), ws = f.param(7);
  const sai = f.local(I32), sap = f.local(I32), sbp = f.local(I32), sbj = f.local(I32);
  const ldc = f.local(I32), pa = f.local(I32), pb = f.local(I32), tile = f.local(I32);
  const jc = f.local(I32), nc = f.local(I32), pc = f.local(I32), kc = f.local(I32);
  const ic = f.local(I32), mc = f.local(I32), jr = f.local(I32), nrr = f.local(I32);
  const ir = f.local(I32), mrr = f.local(I32), add = f.local(I32), tmp = f.local(I32);
  const cp = f.local(I32), i = f.local(I32), j = f.local(I32), ep = f.local(I32);

  const flag = (bit: number) => f.get(flags).i32Const(bit).i32And();
  // Byte strides of element (i, p) of op(A) and (p, j) of op(B).
  f.i32Const(4).get(k).i32Const(4).i32Mul();
  flag(1);
  f.select().set(sai);
  f.get(m).i32Const(4).i32Mul().i32Const(4);
  flag(1);
  f.select().set(sap);
  f.i32Const(4).get(n).i32Const(4).i32Mul();
  flag(2);
  f.select().set(sbp);
  f.get(k).i32Const(4).i32Mul().i32Const(4);
  flag(2);
  f.select().set(sbj);
  f.get(n).i32Const(4).i32Mul().set(ldc);
  f.get(ws).set(pa);
  f.get(ws).i32Const(Math.ceil(MC / mr) * mr * KC * 4).i32Add().set(pb);
  f.get(pb).i32Const(KC * Math.ceil(NC / nr) * nr * 4).i32Add().set(tile);

  forRange(f, jc, () => f.i32Const(0), () => f.get(n), NC, () => {
    minTo(f, nc, () => f.i32Const(NC), () => f.get(n).get(jc).i32Sub(), tmp);
    forRange(f, pc, () => f.i32Const(0), () => f.get(k), KC, () => {
      minTo(f, kc, () => f.i32Const(KC), () => f.get(k).get(pc).i32Sub(), tmp);
      // The first K block overwrites C unless the caller asked to accumulate.
      flag(4);
      f.get(pc).i32Const(0).i32GtS().i32Or().set(add);
      // packB(b + pc*sbp + jc*sbj, sbj, sbp, nc, kc, pb)
      f.get(b).get(pc).get(sbp).i32Mul().i32Add().get(jc).get(sbj).i32Mul().i32Add();
      f.get(sbj).get(sbp).get(nc).get(kc).get(pb).call(PACK_B);
      forRange(f, ic, () => f.i32Const(0), () => f.get(m), MC, () => {
        minTo(f, mc, () => f.i32Const(MC), () => f.get(m).get(ic).i32Sub(), tmp);
        f.get(a).get(ic).get(sai).i32Mul().i32Add().get(pc).get(sap).i32Mul().i32Add();
        f.get(sai).get(sap).get(mc).get(kc).get(pa).call(PACK_A);
        forRange(f, jr, () => f.i32Const(0), () => f.get(nc), nr, () => {
          minTo(f, nrr, () => f.i32Const(nr), () => f.get(nc).get(jr).i32Sub(), tmp);
          forRange(f, ir, () => f.i32Const(0), () => f.get(mc), mr, () => {
            minTo(f, mrr, () => f.i32Const(mr), () => f.get(mc).get(ir).i32Sub(), tmp);
            // cp = c + ((ic + ir) * n + jc + jr) * 4
            f.get(c).get(ic).get(ir).i32Add().get(n).i32Mul().get(jc).i32Add().get(jr).i32Add();
            f.i32Const(4).i32Mul().i32Add().set(cp);
            // Full-width tile: the micro-kernel of its row count writes C directly.
            const full = (fn: number) => {
              f.get(kc).get(pa).get(ir).get(kc).i32Mul().i32Const(4).i32Mul().i32Add();
              f.get(pb).get(jr).get(kc).i32Mul().i32Const(4).i32Mul().i32Add();
              f.get(cp).get(ldc).get(add).call(fn);
            };
            f.get(nrr).i32Const(nr).i32Eq().if();
            {
              f.get(mrr).i32Const(mr).i32Eq().if();
              full(MICRO);
              for (let r = mr - 1; r >= 1; r--) {
                f.else();
                if (r > 1) f.get(mrr).i32Const(r).i32Eq().if();
                full(fewer + r - 1);
              }
              for (let r = mr - 1; r >= 1; r--) f.end();
            }
            f.else();
            {
              // Edge tile: compute the full tile aside, then add the part C has.
              f.get(kc).get(pa).get(ir).get(kc).i32Mul().i32Const(4).i32Mul().i32Add();
              f.get(pb).get(jr).get(kc).i32Mul().i32Const(4).i32Mul().i32Add();
              f.get(tile).i32Const(nr * 4).i32Const(0).call(MICRO);
              forRange(f, i, () => f.i32Const(0), () => f.get(mrr), 1, () => {
                forRange(f, j, () => f.i32Const(0), () => f.get(nrr), 1, () => {
                  f.get(cp).get(i).get(ldc).i32Mul().i32Add().get(j).i32Const(4).i32Mul().i32Add();
                  f.set(ep);
                  f.get(ep);
                  f.get(tile).get(i).i32Const(nr).i32Mul().get(j).i32Add().i32Const(4).i32Mul();
                  f.i32Add().f32Load();
                  f.get(ep).f32Load().f32Const(0).get(add).select().f32Add();
                  f.f32Store();
                });
              });
            }
            f.end();
          });
        });
      });
    });
  });
  return f;
}

/**
 * Builds the module binary for the given blocking and instruction set.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildGemmModule, DEFAULT_PARAMS } from "./gemm_kernel.ts";
 * assert.ok(WebAssembly.validate(buildGemmModule({ ...DEFAULT_PARAMS, relaxed: false })));
 * ```
 */
export function buildGemmModule(p: GemmKernelParams): Uint8Array<ArrayBuffer> {
  const nr = p.nrv * 4;
  if ((p.unroll & (p.unroll - 1)) !== 0) {
    throw new Error(`buildGemmModule: unroll must be a power of two, got ${p.unroll}`);
  }
  // Function order: the head (MICRO, PACK_A, PACK_B first), the A·Bᵀ tiles
  // and driver, then the micro-kernels of fewer rows for the last row tile.
  const HEAD = 7;
  const tiles = ntTiles(p.relaxed);
  const nt = ntDriver(HEAD);
  nt.exportName = "gemm_nt";
  const fewerRows = Array.from({ length: p.mr - 1 }, (_, r) => microKernel(p, r + 1));
  const driver = gemmDriver(p, HEAD + tiles.length + 1);
  driver.exportName = "gemm";
  const ws = new FuncBuilder([], [I32]);
  ws.i32Const(workspaceBytes(p));
  ws.exportName = "workspace_bytes";
  const im2col = im2colKernel();
  im2col.exportName = "im2col";
  const col2im = col2imKernel();
  col2im.exportName = "col2im";
  const head = [microKernel(p), packKernel(p.mr), packKernel(nr), driver, ws, im2col, col2im];
  if (head.length !== HEAD) throw new Error("buildGemmModule: function indices are off");
  return encodeModule({
    memoryPages: 1,
    importMemory: true,
    shared: p.shared ?? false,
    funcs: [...head, ...tiles, nt, ...fewerRows],
  });
}
