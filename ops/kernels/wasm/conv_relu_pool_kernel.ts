/**
 * Source of the fused convolution WebAssembly SIMD module: a one-channel
 * 3×3 convolution (stride 1, no padding) with bias, ReLU and 2×2 stride-2
 * max-pooling in one pass, and its backward to the filter and the bias,
 * which recomputes the convolution rather than reading a stored activation.
 * Like the elementwise module it imports its memory (`env.mem`), an
 * executor's arena, so it runs in place; the channel's weights come from,
 * and the backward's results go to, a second, small memory of the caller's
 * (`env.res`), so that a call has integer arguments only and returns
 * nothing (V8 boxes the numbers of a spread call's float arguments and hands
 * a multi-value result to JavaScript as a new array: about 50 KB of garbage
 * a step of the lecture CNN at batch 64). One call covers one output channel
 * of every image; the channel's nine weights and its bias come in the
 * second memory at bytes 40…79, since parameters do not live in the arena.
 * Byte addresses:
 * - `crp_forward(x, y, n, h, w, ph, pw, xs, ys, codes)`: for images
 *   i < n, x at `x + i·xs` (H, W), y at `y + i·ys` (PH, PW) =
 *   max-pool(ReLU(conv(x) + b)), four pooled outputs at a time (pw ≥ 4);
 * - `crp_backward(x, dy, n, h, w, ph, pw, xs, ys, codes)`: the sums over
 *   images of the filter and bias gradients of the composition, dy shaped
 *   like y, the forward's codes at `dy + codes`, stored as ten floats
 *   (dw0..dw8, db) at the start of the second memory;
 * - `crp_nan(x, q)` → 1 when one of the `4q` floats at x is NaN, else 0 (the
 *   op's test for NaN inputs, which the backward's sums do not carry). Each window's gradient goes to the first
 *   of its four convolution values equal to the window maximum when that
 *   maximum is positive, and nowhere when it is not (ReLU) or NaN.
 *
 * A row's last group of four pooled columns is shifted left to end at pw;
 * when it repeats two or more of the group before, only its second half
 * (two pooled columns) is computed. The backward thereby skips products of
 * a zero gradient, which add nothing for finite inputs (an infinite input,
 * which makes the sums non-finite anyway, may now give ±inf where such a
 * product gave NaN).
 *
 * Both functions compute the convolution with one emitter, in the same
 * order, so the backward finds the forward's maxima bit for bit.
 *
 * @module
 */

import {
  encodeModule,
  forCount,
  FuncBuilder,
  I32,
  type Local,
  SHARED_MAX_PAGES,
  V128,
  type ValType,
} from "./_asm.ts";

// Instructions the shared encoder lacks, appended as raw bytes.
function simd(f: FuncBuilder, sub: number): void {
  f.code.push(0xfd);
  let v = sub;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    f.code.push(byte);
  } while (v !== 0);
}
/** `v128.const` of four f32 lanes. */
function f32x4Const(f: FuncBuilder, lanes: readonly number[]): void {
  simd(f, 0x0c);
  for (const b of new Uint8Array(new Float32Array(lanes).buffer)) f.code.push(b);
}
/** `f32x4.pmax`: `a < b ? b : a`, one `maxps` (NaN and ±0 handled by the caller). */
function f32x4Pmax(f: FuncBuilder): void {
  simd(f, 0xeb);
}
/** `f32x4.ge`. */
function f32x4Ge(f: FuncBuilder): void {
  simd(f, 0x46);
}
/** `i32x4.add`. */
function i32x4Add(f: FuncBuilder): void {
  simd(f, 0xae);
}
/** `f32x4.convert_i32x4_s`. */
function f32x4ConvertI32x4S(f: FuncBuilder): void {
  simd(f, 0xfa);
}
/** `f32.convert_i32_s`. */
function f32ConvertI32S(f: FuncBuilder): void {
  f.code.push(0xb2);
}

// acc = acc + a·b with the locals given: relaxed-simd FMA or mul + add.
function madd(f: FuncBuilder, relaxed: boolean, acc: Local, a: Local, b: Local): void {
  if (relaxed) f.get(a).get(b).get(acc).f32x4RelaxedMadd().set(acc);
  else f.get(acc).get(a).get(b).f32x4Mul().f32x4Add().set(acc);
}

/** Parameter layout shared by both functions (then the codes' offset). */
const P = { x: 0, y: 1, n: 2, h: 3, w: 4, ph: 5, pw: 6, xs: 7, ys: 8 } as const;
const PARAMS: ValType[] = Array(9).fill(I32);
/**
 * Byte offsets in the second memory (`env.res`): the backward's ten results,
 * then the forward's nine weights and its bias, which the caller writes
 * there: f32 arguments would make V8 box each number of a call made with a
 * spread array.
 */
const RES = { out: 0, w0: 40, b: 76 } as const;

interface Walk {
  /** Byte addresses of input rows 2r … 2r+3 at column 2c. */
  rows: Local[];
  /** Byte address of the pooled output (r, c) relative to the image's y. */
  out: Local;
  /** Pooled columns of this group already covered by the group before (0 but for the last). */
  shift: Local;
}

// Images, pooled rows and groups of four pooled columns, the last group
// shifted left to end at pw (its first `shift` lanes repeat the group before).
function walk(f: FuncBuilder, body: (at: Walk) => void): void {
  const i = f.local(I32), r = f.local(I32), c = f.local(I32), last = f.local(I32);
  const xi = f.local(I32), yi = f.local(I32), out = f.local(I32), shift = f.local(I32);
  const rows = [f.local(I32), f.local(I32), f.local(I32), f.local(I32)];
  f.get(P.pw).i32Const(4).i32Sub().set(last);
  forCount(f, i, P.n, () => {
    f.get(P.x).get(i).get(P.xs).i32Mul().i32Add().set(xi);
    f.get(P.y).get(i).get(P.ys).i32Mul().i32Add().set(yi);
    forCount(f, r, P.ph, () => {
      f.i32Const(0).set(c);
      f.block().loop();
      f.get(c).get(P.pw).i32GeS().brIf(1);
      // shift = c - min(c, last); c = min(c, last)
      f.i32Const(0).set(shift);
      f.get(c).get(last).i32GtS().if();
      f.get(c).get(last).i32Sub().set(shift);
      f.get(last).set(c);
      f.end();
      // row 2r at column 2c, then one row down each
      f.get(xi).get(r).get(P.w).i32Mul().i32Const(2).i32Mul().get(c).i32Const(2).i32Mul().i32Add();
      f.i32Const(4).i32Mul().i32Add().set(rows[0]!);
      for (let k = 1; k < 4; k++) {
        f.get(rows[k - 1]!).get(P.w).i32Const(4).i32Mul().i32Add().set(rows[k]!);
      }
      f.get(yi).get(r).get(P.pw).i32Mul().get(c).i32Add().i32Const(4).i32Mul().i32Add().set(out);
      body({ rows, out, shift });
      f.get(c).i32Const(4).i32Add().set(c);
      f.br(0).end().end();
    });
  });
}

/** Convolution outputs of a group: rows 2r and 2r+1, conv columns 2c…2c+3 and 2c+4…2c+7. */
interface ConvVecs {
  t0: Local;
  t1: Local;
  b0: Local;
  b1: Local;
}

// t0, t1 (row 2r) and b0, b1 (row 2r+1) = bias + Σ_{u,v} w[u,v]·x[row+u, col+v],
// taps added in (u, v) row-major order; each input vector is loaded once.
function emitConv(
  f: FuncBuilder,
  relaxed: boolean,
  rows: Local[],
  wv: Local[],
  bias: Local,
  cv: ConvVecs,
  halves: readonly number[],
): void {
  const ld = f.local(V128);
  for (const half of halves) {
    for (const l of half === 0 ? [cv.t0, cv.b0] : [cv.t1, cv.b1]) f.get(bias).set(l);
  }
  for (let k = 0; k < 4; k++) {
    for (const half of halves) {
      const base = 16 * half;
      for (let v = 0; v < 3; v++) {
        f.get(rows[k]!).v128Load(base + 4 * v).set(ld);
        const top = half === 0 ? cv.t0 : cv.t1, bot = half === 0 ? cv.b0 : cv.b1;
        if (k <= 2) madd(f, relaxed, top, wv[k * 3 + v]!, ld);
        if (k >= 1) madd(f, relaxed, bot, wv[(k - 1) * 3 + v]!, ld);
      }
    }
  }
}

// Splats of the nine weights and the bias, from the second memory.
function splatWeights(f: FuncBuilder): { wv: Local[]; bias: Local } {
  const wv: Local[] = [];
  for (let k = 0; k < 9; k++) {
    const l = f.local(V128);
    f.i32Const(0).f32Load(RES.w0 + 4 * k, 1).f32x4Splat().set(l);
    wv.push(l);
  }
  const bias = f.local(V128);
  f.i32Const(0).f32Load(RES.b, 1).f32x4Splat().set(bias);
  return { wv, bias };
}

function convVecs(f: FuncBuilder): ConvVecs {
  return { t0: f.local(V128), t1: f.local(V128), b0: f.local(V128), b1: f.local(V128) };
}

function forward(relaxed: boolean): FuncBuilder {
  const f = new FuncBuilder([...PARAMS, I32], []);
  const codes = PARAMS.length;
  const { wv, bias } = splatWeights(f);
  const cv = convVecs(f), zero = f.local(V128);
  // the four elements of the four windows: a, b top left and right, e, f bottom
  const a = f.local(V128), b = f.local(V128), e = f.local(V128), fr = f.local(V128);
  const m = f.local(V128), c = f.local(V128), q = f.local(V128), four = f.local(V128);
  f.v128Zero().set(zero);
  f.i32Const(4).i32x4Splat().set(four);
  // one group: both halves, or only the second (pooled columns c+2, c+3) when
  // the group before covered the first (shift ≥ 2), its lanes 2, 3 stored
  const group = (rows: Local[], out: Local, halves: readonly number[]) => {
    emitConv(f, relaxed, rows, wv, bias, cv, halves);
    const [top, bot] = halves.length === 2 ? [cv.t0, cv.b0] : [cv.t1, cv.b1];
    f.get(top).get(cv.t1).f32x4Shuffle([0, 2, 4, 6]).set(a);
    f.get(top).get(cv.t1).f32x4Shuffle([1, 3, 5, 7]).set(b);
    f.get(bot).get(cv.b1).f32x4Shuffle([0, 2, 4, 6]).set(e);
    f.get(bot).get(cv.b1).f32x4Shuffle([1, 3, 5, 7]).set(fr);
    // the maxima by pmax (one instruction each, unlike f32x4.max), then ReLU
    // as pmax(0, m), which gives +0 for -0 like the reference; a NaN anywhere
    // in a window makes its lane all ones (a NaN) afterwards, as NaN wins
    f.get(a).get(b);
    f32x4Pmax(f);
    f.get(e).get(fr);
    f32x4Pmax(f);
    f32x4Pmax(f);
    f.set(m);
    f.get(a).get(a).f32x4Ne().get(b).get(b).f32x4Ne().v128Or();
    f.get(e).get(e).f32x4Ne().v128Or().get(fr).get(fr).f32x4Ne().v128Or().set(q);
    f.get(m).get(q).v128Or().set(m);
    f.get(out).get(zero).get(m);
    f32x4Pmax(f);
    f.get(q).v128Or();
    if (halves.length === 2) f.v128Store();
    else f.v128Store64Lane(1, 8);
    // code = 1 + the index of the first element equal to the maximum, where
    // it is positive (ReLU's backward passes it), else 0: with the masks
    // d1 = (a = m), d2 = d1 | (b = m), d3 = d2 | (e = m) as integers (-1 or 0),
    // 4 + d1 + d2 + d3, converted to f32 (no constants but one, held in a local)
    f.get(a).get(m).f32x4Eq().set(q);
    f.get(q).get(b).get(m).f32x4Eq().v128Or().set(c);
    f.get(q).get(c);
    i32x4Add(f);
    f.get(c).get(e).get(m).f32x4Eq().v128Or();
    i32x4Add(f);
    f.get(four);
    i32x4Add(f);
    f32x4ConvertI32x4S(f);
    f.set(c);
    f.get(out).get(codes).i32Add();
    f.get(c).get(m).get(zero).f32x4Gt().v128And();
    if (halves.length === 2) f.v128Store();
    else f.v128Store64Lane(1, 8);
  };
  walk(f, ({ rows, out, shift }) => {
    f.get(shift).i32Const(2).i32GeS().if();
    group(rows, out, [1]);
    f.else();
    group(rows, out, [0, 1]);
    f.end();
  });
  return f;
}

// dy and the forward's codes -> Σ dw, Σ db
function backward(relaxed: boolean): FuncBuilder {
  const f = new FuncBuilder([...PARAMS, I32], []);
  const codes = PARAMS.length;
  const g = f.local(V128), code = f.local(V128), ch = f.local(V128), gh = f.local(V128);
  const ld = f.local(V128), gt = f.local(V128), gb = f.local(V128);
  const acc: Local[] = [];
  for (let k = 0; k < 10; k++) acc.push(f.local(V128));
  for (const a of acc) f.v128Zero().set(a);
  // the constants in locals, made once: V8 builds a v128.const in the loop
  // from general registers each time, while a spilled local is one reload
  const iota = f.local(V128), top = f.local(V128), bot = f.local(V128);
  f32x4Const(f, [0, 1, 2, 3]);
  f.set(iota);
  f32x4Const(f, [1, 2, 1, 2]);
  f.set(top);
  f32x4Const(f, [3, 4, 3, 4]);
  f.set(bot);
  walk(f, ({ rows, out, shift }) => {
    // g = dy in the lanes this group is the first to cover (all but for the last group)
    f.get(out).v128Load().set(g);
    f.get(shift).if();
    f.get(g).get(iota).get(shift);
    f32ConvertI32S(f);
    f.f32x4Splat();
    f32x4Ge(f);
    f.v128And().set(g);
    f.end();
    f.get(out).get(codes).i32Add().v128Load().set(code);
    // one half (two windows, conv columns 2c…2c+3 or 2c+4…2c+7) at a time
    // the first half's lanes are all masked when shift ≥ 2: its products
    // would add only zeros (gradient 0 times a finite input), so it is skipped
    for (const [half, base] of [[0, 0], [1, 16]] as const) {
      if (half === 0) f.get(shift).i32Const(2).i32LtS().if();
      const lo = half * 2;
      f.get(code).get(code).f32x4Shuffle([lo, lo, lo + 1, lo + 1]).set(ch);
      f.get(g).get(g).f32x4Shuffle([lo, lo, lo + 1, lo + 1]).set(gh);
      f.get(gh).get(ch).get(top);
      f.f32x4Eq().v128And().set(gt);
      f.get(gh).get(ch).get(bot);
      f.f32x4Eq().v128And().set(gb);
      // db += every routed gradient; dw[u, v] += gradient · the input it multiplied
      f.get(acc[9]!).get(gt).f32x4Add().get(gb).f32x4Add().set(acc[9]!);
      for (let k = 0; k < 4; k++) {
        for (let v = 0; v < 3; v++) {
          f.get(rows[k]!).v128Load(base + 4 * v).set(ld);
          if (k <= 2) madd(f, relaxed, acc[k * 3 + v]!, gt, ld);
          if (k >= 1) madd(f, relaxed, acc[(k - 1) * 3 + v]!, gb, ld);
        }
      }
      if (half === 0) f.end();
    }
  });
  // stored in the second memory, not returned: V8 hands a multi-value result to JavaScript as a
  // new array of boxed numbers, about 50 KB of garbage a step of the lecture CNN at batch 64
  for (const [k, a] of acc.entries()) {
    f.i32Const(0);
    f.get(a).f32x4ExtractLane(0).get(a).f32x4ExtractLane(1).f32Add();
    f.get(a).f32x4ExtractLane(2).get(a).f32x4ExtractLane(3).f32Add().f32Add();
    f.f32Store(RES.out + 4 * k, 1);
  }
  return f;
}

// (x, q) -> whether any of the q·4 floats at x is NaN
function nanScan(): FuncBuilder {
  const f = new FuncBuilder([I32, I32], [I32]);
  const i = f.local(I32), acc = f.local(V128), v = f.local(V128);
  f.v128Zero().set(acc);
  forCount(f, i, 1, () => {
    f.get(0).get(i).i32Const(16).i32Mul().i32Add().v128Load().set(v);
    f.get(acc).get(v).get(v).f32x4Ne().v128Or().set(acc);
  });
  f.get(acc).v128AnyTrue();
  return f;
}

/**
 * The module's binary: `crp_forward`, `crp_backward` and `crp_nan`, memories imported
 * (`env.mem`, the arena, and `env.res`, the backward's results);
 * with `relaxed`, products are accumulated with relaxed-simd FMA; with
 * `shared`, the imported memory is shared (for arenas in a `SharedArrayBuffer`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildConvReluPoolModule } from "./conv_relu_pool_kernel.ts";
 * const bytes = buildConvReluPoolModule(false);
 * assert.ok(WebAssembly.validate(bytes));
 * const m = new WebAssembly.Module(bytes);
 * const names = WebAssembly.Module.exports(m).map((e) => e.name).sort();
 * assert.deepEqual(names, ["crp_backward", "crp_forward", "crp_nan"]);
 * assert.deepEqual(WebAssembly.Module.imports(m).map((i) => i.name), ["mem", "res"]);
 * ```
 */
export function buildConvReluPoolModule(
  relaxed: boolean,
  shared = false,
): Uint8Array<ArrayBuffer> {
  const fwd = forward(relaxed), bwd = backward(relaxed), nan = nanScan();
  fwd.exportName = "crp_forward";
  bwd.exportName = "crp_backward";
  nan.exportName = "crp_nan";
  return encodeModule({
    memoryPages: 1,
    memoryImports: [
      { name: "mem", pages: 1, shared, maxPages: shared ? SHARED_MAX_PAGES : undefined },
      { name: "res", pages: 1 },
    ],
    funcs: [fwd, bwd, nan],
  });
}
