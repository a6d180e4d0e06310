/**
 * Source of the elementwise WebAssembly SIMD module: ReLU, its backward, and
 * 2×2 stride-2 max-pooling with its backward. Unlike the GEMM module it
 * imports its memory (`env.mem`), so each executor can give it the memory
 * its arena lives in and the kernels run in place, without copies. Every
 * function takes byte addresses into that memory:
 * - `relu(x, y, n)`: y = max(x, 0), NaN kept;
 * - `relu_backward(x, dy, dx, n)`: dx = x > 0 ? dy : 0;
 * - `pool2(x, y, planes, h, w, oh, ow)`: y = the maximum of each 2×2 window
 *   (NaN wins), four windows at a time; needs ow ≥ 4;
 * - `pool2_backward(x, y, dy, dx, planes, h, w, oh, ow)`: dy to the first
 *   element of each window equal to its maximum `y`; returns 1 when some
 *   maximum is NaN (nothing equals it), so the caller redoes the op with the
 *   scalar kernel. Leaves the odd last row and column of dx alone;
 * - `sum_runs(x, out, outer, mid, inner)`: out[m] += the sum of x[o, m, i]
 *   over o and i, x of shape (outer, mid, inner): a bias gradient over
 *   (N, C, H·W), eight float32 partial sums per run;
 * - `bias_relu_pool2(z, y, codes, planes, h, w, oh, ow, bias, c)`: the fused
 *   bias + ReLU + 2×2 max-pool of (N·C) planes, the bias of plane p at
 *   bias[p mod c]: y = max(max of each window of z + bias, 0), and each
 *   window's gradient code (see `bias_relu_pool_ref.ts`); needs ow ≥ 4;
 * - `relu_pool2_backward(codes, dy, dz, planes, h, w, oh, ow)`: its
 *   backward, dy to the element each code names and zero to the rest of the
 *   window; needs ow ≥ 4 and leaves the odd last row and column alone;
 * - `bias_relu(z, y, planes, inner, bias, c)`: y = max(z + bias, 0) over
 *   planes of `inner` floats, the bias of plane p at bias[p mod c];
 * - `relu_pool2_bias_grad(codes, dy, out, planes, oh, ow, c)`: out[p mod c]
 *   += the sum of plane p of what `relu_pool2_backward` writes, in
 *   `sum_runs`'s order (a bias gradient without reading dz); needs W = 2·ow
 *   a multiple of 8;
 * - `copy(dst, src, bytes)`, `zero(dst, bytes)` and `fill(dst, bits, n)`:
 *   `memory.copy`, `memory.fill` with 0, and n 32-bit words of `bits` (a
 *   float32's bit pattern), for copies and fills inside a shared arena, which
 *   V8's typed-array `copyWithin`, `set` and `fill` do by relaxed atomic
 *   moves on a `SharedArrayBuffer` (2.2× and 10× slower per 100 KB here).
 *
 * @module
 */

import { encodeModule, F32, forCount, FuncBuilder, I32, type Local, V128 } from "./_asm.ts";

// memory.copy(dst, src, bytes)
function copy(): FuncBuilder {
  const f = new FuncBuilder([I32, I32, I32], []);
  f.get(0).get(1).get(2).memoryCopy();
  return f;
}

// memory.fill(dst, 0, bytes)
function zero(): FuncBuilder {
  const f = new FuncBuilder([I32, I32], []);
  f.get(0).i32Const(0).get(1).memoryFill();
  return f;
}

// dst[0..n) = bits, 32-bit words, four at a time
function fill(): FuncBuilder {
  const f = new FuncBuilder([I32, I32, I32], []);
  const [dst, bits, n] = [0, 1, 2];
  const v = f.local(V128), end = f.local(I32), vend = f.local(I32);
  f.get(bits).i32x4Splat().set(v);
  f.get(dst).get(n).i32Const(4).i32Mul().i32Add().set(end);
  f.get(dst).get(n).i32Const(-4).i32And().i32Const(4).i32Mul().i32Add().set(vend);
  f.block().loop();
  // not a signed compare: arena addresses may pass 2 GiB
  f.get(dst).get(vend).i32Eq().brIf(1);
  f.get(dst).get(v).v128Store();
  f.get(dst).i32Const(16).i32Add().set(dst);
  f.br(0).end().end();
  f.block().loop();
  f.get(dst).get(end).i32Eq().brIf(1);
  f.get(dst).get(bits).i32Store();
  f.get(dst).i32Const(4).i32Add().set(dst);
  f.br(0).end().end();
  return f;
}

// x: (n), y: (n) -> y = max(x, 0); f32.max keeps NaN and turns -0 into +0
function relu(): FuncBuilder {
  const f = new FuncBuilder([I32, I32, I32], []);
  const [x, y, n] = [0, 1, 2];
  const i = f.local(I32), n4 = f.local(I32), zero = f.local(V128);
  f.v128Zero().set(zero);
  f.get(n).i32Const(-4).i32And().set(n4);
  f.i32Const(0).set(i);
  f.block().loop();
  f.get(i).get(n4).i32GeS().brIf(1);
  f.get(y).get(i).i32Const(4).i32Mul().i32Add();
  f.get(x).get(i).i32Const(4).i32Mul().i32Add().v128Load().get(zero).f32x4Max();
  f.v128Store();
  f.get(i).i32Const(4).i32Add().set(i);
  f.br(0).end().end();
  f.block().loop();
  f.get(i).get(n).i32GeS().brIf(1);
  f.get(y).get(i).i32Const(4).i32Mul().i32Add();
  f.get(x).get(i).i32Const(4).i32Mul().i32Add().f32Load().f32Const(0).f32Max();
  f.f32Store();
  f.get(i).i32Const(1).i32Add().set(i);
  f.br(0).end().end();
  return f;
}

// x, dy: (n) -> dx: (n) = x > 0 ? dy : 0 (a NaN x compares false: 0)
function reluBackward(): FuncBuilder {
  const f = new FuncBuilder([I32, I32, I32, I32], []);
  const [x, dy, dx, n] = [0, 1, 2, 3];
  const i = f.local(I32), n4 = f.local(I32), zero = f.local(V128), at = f.local(I32);
  f.v128Zero().set(zero);
  f.get(n).i32Const(-4).i32And().set(n4);
  f.i32Const(0).set(i);
  f.block().loop();
  f.get(i).get(n4).i32GeS().brIf(1);
  f.get(i).i32Const(4).i32Mul().set(at);
  f.get(dx).get(at).i32Add();
  f.get(dy).get(at).i32Add().v128Load();
  f.get(x).get(at).i32Add().v128Load().get(zero).f32x4Gt();
  f.v128And().v128Store();
  f.get(i).i32Const(4).i32Add().set(i);
  f.br(0).end().end();
  f.block().loop();
  f.get(i).get(n).i32GeS().brIf(1);
  f.get(i).i32Const(4).i32Mul().set(at);
  f.get(dx).get(at).i32Add();
  f.get(dy).get(at).i32Add().f32Load();
  f.f32Const(0);
  f.get(x).get(at).i32Add().f32Load().f32Const(0).f32Gt();
  f.select().f32Store();
  f.get(i).i32Const(1).i32Add().set(i);
  f.br(0).end().end();
  return f;
}

/** Locals of the 2×2 pooling walk shared by forward and backward. */
interface PoolWalk {
  /** Byte address of the window row's top-left input pixel for output column `c`. */
  top: Local;
  /** Same, one input row down. */
  bot: Local;
  /** Byte offset of output column c in the output planes (y, dy). */
  out: Local;
}

// Walks planes, output rows and groups of four output columns (the last
// group shifted left to end at ow, so it may overlap the one before: both
// compute the same values). `body` sees the addresses of one group.
// `plane`, when given, runs at the start of each plane with its index.
function walkPool(
  f: FuncBuilder,
  [planes, h, w, oh, ow]: Local[],
  body: (at: PoolWalk) => void,
  plane?: (p: Local) => void,
): void {
  const p = f.local(I32), r = f.local(I32), c = f.local(I32), last = f.local(I32);
  const base = f.local(I32), oplane = f.local(I32), row = f.local(I32);
  const top = f.local(I32), bot = f.local(I32), out = f.local(I32);
  const w4 = f.local(I32), orow = f.local(I32);
  f.get(ow).i32Const(4).i32Sub().set(last);
  f.get(w).i32Const(2).i32Shl().set(w4);
  f.i32Const(0).set(base);
  f.i32Const(0).set(oplane);
  forCount(f, p, planes, () => {
    plane?.(p);
    forCount(f, r, oh, () => {
      // row = plane + 2r·w·4 bytes
      f.get(base).get(r).get(w4).i32Mul().i32Const(1).i32Shl().i32Add().set(row);
      f.get(oplane).get(r).get(ow).i32Mul().i32Const(2).i32Shl().i32Add().set(orow);
      f.i32Const(0).set(c);
      f.block().loop();
      f.get(c).get(ow).i32GeS().brIf(1);
      // c = min(c, ow - 4)
      f.get(c).get(last).get(c).get(last).i32LtS().select().set(c);
      f.get(row).get(c).i32Const(3).i32Shl().i32Add().tee(top);
      f.get(w4).i32Add().set(bot);
      f.get(orow).get(c).i32Const(2).i32Shl().i32Add().set(out);
      body({ top, bot, out });
      f.get(c).i32Const(4).i32Add().set(c);
      f.br(0).end().end();
    });
    f.get(base).get(h).get(w).i32Mul().i32Const(4).i32Mul().i32Add().set(base);
    f.get(oplane).get(oh).get(ow).i32Mul().i32Const(4).i32Mul().i32Add().set(oplane);
  });
}

// x: (P, H, W) -> y: (P, H/2, W/2): vertical maxima of two rows of eight
// pixels, then the even and odd lanes of those, maxed: four outputs
function pool2(): FuncBuilder {
  const f = new FuncBuilder([I32, I32, I32, I32, I32, I32, I32], []);
  const [x, y, planes, h, w, oh, ow] = [0, 1, 2, 3, 4, 5, 6];
  const m0 = f.local(V128), m1 = f.local(V128);
  // addresses below are byte offsets from x and y
  walkPool(f, [planes, h, w, oh, ow], ({ top, bot, out }) => {
    f.get(x).get(top).i32Add().v128Load().get(x).get(bot).i32Add().v128Load().f32x4Max().set(m0);
    f.get(x).get(top).i32Add().v128Load(16);
    f.get(x).get(bot).i32Add().v128Load(16).f32x4Max().set(m1);
    f.get(y).get(out).i32Add();
    f.get(m0).get(m1).f32x4Shuffle([0, 2, 4, 6]);
    f.get(m0).get(m1).f32x4Shuffle([1, 3, 5, 7]);
    f.f32x4Max().v128Store();
  });
  return f;
}

// x: (P, H, W), y, dy: (P, H/2, W/2) -> dx: (P, H, W). Per window (a b / e f)
// the first of a, b, e, f equal to the maximum takes dy: in the top row a
// lane takes it unless its left neighbour did; in the bottom row unless its
// left neighbour or the window's top row did.
function pool2Backward(): FuncBuilder {
  const f = new FuncBuilder([I32, I32, I32, I32, I32, I32, I32, I32, I32], [I32]);
  const [x, y, dy, dx, planes, h, w, oh, ow] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const m = f.local(V128), g = f.local(V128), nan = f.local(V128), zero = f.local(V128);
  const mh = f.local(V128), gh = f.local(V128), qt = f.local(V128), qb = f.local(V128);
  const took = f.local(V128);
  f.v128Zero().set(zero);
  f.v128Zero().set(nan);
  walkPool(f, [planes, h, w, oh, ow], ({ top, bot, out }) => {
    f.get(y).get(out).i32Add().v128Load().set(m);
    f.get(dy).get(out).i32Add().v128Load().set(g);
    f.get(nan).get(m).get(m).f32x4Ne().v128Or().set(nan);
    // two windows per vector: half 0 covers windows 0 and 1, half 1 windows 2 and 3
    for (const half of [0, 1] as const) {
      const lo = half * 2;
      f.get(m).get(m).f32x4Shuffle([lo, lo, lo + 1, lo + 1]).set(mh);
      f.get(g).get(m).f32x4Shuffle([lo, lo, lo + 1, lo + 1]).set(gh);
      f.get(x).get(top).i32Add().v128Load(16 * half).get(mh).f32x4Eq().set(qt);
      f.get(x).get(bot).i32Add().v128Load(16 * half).get(mh).f32x4Eq().set(qb);
      // qt &= ~(qt shifted one lane right within each window)
      f.get(qt).get(qt).get(zero).f32x4Shuffle([4, 0, 4, 2]).v128Andnot().set(qt);
      f.get(qt).get(qt).f32x4Shuffle([0, 0, 2, 2]);
      f.get(qt).get(qt).f32x4Shuffle([1, 1, 3, 3]).v128Or().set(took);
      f.get(qb).get(qb).get(zero).f32x4Shuffle([4, 0, 4, 2]).v128Andnot();
      f.get(took).v128Andnot().set(qb);
      f.get(dx).get(top).i32Add().get(gh).get(qt).v128And().v128Store(16 * half);
      f.get(dx).get(bot).i32Add().get(gh).get(qb).v128And().v128Store(16 * half);
    }
  });
  f.get(nan).v128AnyTrue();
  return f;
}

// A vector of four equal float32 constants.
function splat4(f: FuncBuilder, v: number): Local {
  const out = f.local(V128);
  f.f32Const(v).f32x4Splat().set(out);
  return out;
}

// A vector of four float32 constants.
function const4(f: FuncBuilder, lanes: readonly [number, number, number, number]): Local {
  const out = f.local(V128), t = f.local(V128);
  f.f32Const(lanes[0]).f32x4Splat().set(out);
  for (let k = 1; k < 4; k++) {
    // out = out with lane k replaced: shuffle in a splat of the value
    f.f32Const(lanes[k]).f32x4Splat().set(t);
    const sel = [0, 1, 2, 3] as [number, number, number, number];
    sel[k] = 4 + k;
    f.get(out).get(t).f32x4Shuffle(sel).set(out);
  }
  return out;
}

// z: (P, H, W), the bias of plane p at bias + 4·(p mod c) -> y, codes:
// (P, H/2, W/2). Per window (a b / e f) of v = z + bias: m = the maximum
// (NaN wins), y = max(m, 0), and when m > 0 the code 1 + 2·[e = m] +
// 4·[b = m] + 8·[a = m], whose highest bit names the first element equal to
// m, else 0 (see bias_relu_pool_ref.ts).
function biasReluPool2(): FuncBuilder {
  const f = new FuncBuilder([I32, I32, I32, I32, I32, I32, I32, I32, I32, I32], []);
  const [z, y, codes, planes, h, w, oh, ow, bias, c] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const bv = f.local(V128), zero = f.local(V128);
  const t0 = f.local(V128), t1 = f.local(V128), b0 = f.local(V128), b1 = f.local(V128);
  const a = f.local(V128), bb = f.local(V128), e = f.local(V128), ff = f.local(V128);
  const m = f.local(V128), pos = f.local(V128);
  f.v128Zero().set(zero);
  const [one, two, four, eight] = [1, 2, 4, 8].map((k) => splat4(f, k));
  walkPool(f, [planes, h, w, oh, ow], ({ top, bot, out }) => {
    f.get(z).get(top).i32Add().v128Load().get(bv).f32x4Add().set(t0);
    f.get(z).get(top).i32Add().v128Load(16).get(bv).f32x4Add().set(t1);
    f.get(z).get(bot).i32Add().v128Load().get(bv).f32x4Add().set(b0);
    f.get(z).get(bot).i32Add().v128Load(16).get(bv).f32x4Add().set(b1);
    // lane k of a, bb, e, ff: the four elements of window k
    f.get(t0).get(t1).f32x4Shuffle([0, 2, 4, 6]).set(a);
    f.get(t0).get(t1).f32x4Shuffle([1, 3, 5, 7]).set(bb);
    f.get(b0).get(b1).f32x4Shuffle([0, 2, 4, 6]).set(e);
    f.get(b0).get(b1).f32x4Shuffle([1, 3, 5, 7]).set(ff);
    f.get(a).get(bb).f32x4Max().get(e).get(ff).f32x4Max().f32x4Max().set(m);
    f.get(m).get(zero).f32x4Gt().set(pos);
    // y = m where m > 0 or NaN, else +0: what max(m, 0) gives, in three cheap ops
    f.get(y).get(out).i32Add();
    f.get(m).get(pos).get(m).get(m).f32x4Ne().v128Or().v128And().v128Store();
    f.get(codes).get(out).i32Add();
    f.get(a).get(m).f32x4Eq().get(eight).v128And();
    f.get(bb).get(m).f32x4Eq().get(four).v128And().f32x4Add();
    f.get(e).get(m).f32x4Eq().get(two).v128And().f32x4Add();
    f.get(one).f32x4Add().get(pos).v128And().v128Store();
  }, (p) => {
    // bv = bias[p mod c], four times
    f.get(bias).get(p).get(p).get(c).i32DivU().get(c).i32Mul().i32Sub();
    f.i32Const(2).i32Shl().i32Add().v128Load32Splat().set(bv);
  });
  return f;
}

// z: (P, inner), the bias of plane p at bias + 4·(p mod c) -> y = z + bias
// where that is positive or NaN, else +0: max(z + bias, 0) as ReLU gives it
function biasRelu(): FuncBuilder {
  const f = new FuncBuilder([I32, I32, I32, I32, I32, I32], []);
  const [z, y, planes, inner, bias, c] = [0, 1, 2, 3, 4, 5];
  const p = f.local(I32), i = f.local(I32), in4 = f.local(I32), at = f.local(I32);
  const bv = f.local(V128), v = f.local(V128), zero = f.local(V128);
  const bs = f.local(F32), s = f.local(F32);
  f.v128Zero().set(zero);
  f.get(inner).i32Const(-4).i32And().set(in4);
  f.i32Const(0).set(at);
  forCount(f, p, planes, () => {
    // bs = bias[p mod c]
    f.get(bias).get(p).get(p).get(c).i32DivU().get(c).i32Mul().i32Sub();
    f.i32Const(2).i32Shl().i32Add().f32Load().set(bs);
    f.get(bs).f32x4Splat().set(bv);
    f.i32Const(0).set(i);
    f.block().loop();
    f.get(i).get(in4).i32GeS().brIf(1);
    f.get(z).get(at).i32Add().v128Load().get(bv).f32x4Add().set(v);
    f.get(y).get(at).i32Add();
    f.get(v).get(v).get(zero).f32x4Gt().get(v).get(v).f32x4Ne().v128Or().v128And();
    f.v128Store();
    f.get(at).i32Const(16).i32Add().set(at);
    f.get(i).i32Const(4).i32Add().set(i);
    f.br(0).end().end();
    f.block().loop();
    f.get(i).get(inner).i32GeS().brIf(1);
    f.get(z).get(at).i32Add().f32Load().get(bs).f32Add().set(s);
    // f32.max keeps NaN and turns -0 into +0, as the ReLU kernel does
    f.get(y).get(at).i32Add();
    f.get(s).f32Const(0).f32Max().f32Store();
    f.get(at).i32Const(4).i32Add().set(at);
    f.get(i).i32Const(1).i32Add().set(i);
    f.br(0).end().end();
  });
  return f;
}

// codes, dy: (P, H/2, W/2) -> dz: (P, H, W): dy of each window to the
// element its code names (the highest of its bits 8 top left, 4 top right,
// 2 bottom left, 1 bottom right), zero to the others; leaves the odd last
// row and column of dz alone.
function reluPool2Backward(): FuncBuilder {
  const f = new FuncBuilder([I32, I32, I32, I32, I32, I32, I32, I32], []);
  const [codes, dy, dz, planes, h, w, oh, ow] = [0, 1, 2, 3, 4, 5, 6, 7];
  const g = f.local(V128), c = f.local(V128), gh = f.local(V128), ch = f.local(V128);
  // lane q of a row pair takes dy when lo[q] < code < hi[q]
  const topLo = const4(f, [7.5, 3.5, 7.5, 3.5]), topHi = const4(f, [16, 7.5, 16, 7.5]);
  const botLo = const4(f, [1.5, 0.5, 1.5, 0.5]), botHi = const4(f, [3.5, 1.5, 3.5, 1.5]);
  walkPool(f, [planes, h, w, oh, ow], ({ top, bot, out }) => {
    f.get(dy).get(out).i32Add().v128Load().set(g);
    f.get(codes).get(out).i32Add().v128Load().set(c);
    for (const half of [0, 1] as const) {
      const lo = half * 2;
      f.get(g).get(g).f32x4Shuffle([lo, lo, lo + 1, lo + 1]).set(gh);
      f.get(c).get(c).f32x4Shuffle([lo, lo, lo + 1, lo + 1]).set(ch);
      for (const [row, lo4, hi4] of [[top, topLo, topHi], [bot, botLo, botHi]] as const) {
        f.get(dz).get(row).i32Add().get(gh);
        f.get(ch).get(lo4).f32x4Gt().get(ch).get(hi4).f32x4Gt().v128Andnot();
        f.v128And().v128Store(16 * half);
      }
    }
  });
  return f;
}

// codes, dy: (P, H/2, W/2) -> out: (c) += Σ over each plane p of the dz that
// relu_pool2_backward writes, into out[p mod c], added exactly as sum_runs
// adds dz: dz's rows in order, eight float32 lanes by column mod 8 (W a
// multiple of 8, so a row's windows fill whole lanes; an odd last row of dz
// is zeros, which add nothing), the lanes folded as sum_runs folds them.
function reluPool2BiasGrad(): FuncBuilder {
  const f = new FuncBuilder([I32, I32, I32, I32, I32, I32, I32], []);
  const [codes, dy, out, planes, oh, ow, c] = [0, 1, 2, 3, 4, 5, 6];
  const p = f.local(I32), r = f.local(I32), g = f.local(I32), at = f.local(I32);
  const row = f.local(I32), dst = f.local(I32);
  const gv = f.local(V128), cv = f.local(V128), m = f.local(V128);
  const left = f.local(V128), right = f.local(V128);
  const a0 = f.local(V128), a1 = f.local(V128), t = f.local(F32);
  // the top row's left element takes dy when code ≥ 8, its right one when
  // 4 ≤ code < 8; the bottom row's when 2 ≤ code < 4 and code = 1
  const [k75, k35, k15, k05] = [7.5, 3.5, 1.5, 0.5].map((k) => splat4(f, k));
  const groups = f.local(I32);
  f.get(ow).i32Const(2).i32ShrU().set(groups);
  // row: byte offset of the current output row in codes and dy; at walks its groups
  f.i32Const(0).set(row);
  forCount(f, p, planes, () => {
    f.v128Zero().set(a0);
    f.v128Zero().set(a1);
    forCount(f, r, oh, () => {
      for (const [top, hi, lo] of [[true, k75, k35], [false, k15, k05]] as const) {
        f.get(row).set(at);
        forCount(f, g, groups, () => {
          f.get(dy).get(at).i32Add().v128Load().set(gv);
          f.get(codes).get(at).i32Add().v128Load().set(cv);
          f.get(cv).get(hi).f32x4Gt().set(m);
          if (top) f.get(gv).get(m).v128And().set(left);
          else f.get(gv).get(m).get(cv).get(k35).f32x4Gt().v128Andnot().v128And().set(left);
          f.get(gv).get(cv).get(lo).f32x4Gt().get(m).v128Andnot().v128And().set(right);
          // this row's eight dz values, windows interleaved: lanes of a0, then a1
          f.get(a0).get(left).get(right).f32x4Shuffle([0, 4, 1, 5]).f32x4Add().set(a0);
          f.get(a1).get(left).get(right).f32x4Shuffle([2, 6, 3, 7]).f32x4Add().set(a1);
          f.get(at).i32Const(16).i32Add().set(at);
        });
      }
      f.get(row).get(ow).i32Const(2).i32Shl().i32Add().set(row);
    });
    // fold as sum_runs does: (a0 + a1), then (l0 + l1) + (l2 + l3)
    f.get(a0).get(a1).f32x4Add().set(a0);
    f.get(a0).f32x4ExtractLane(0).get(a0).f32x4ExtractLane(1).f32Add();
    f.get(a0).f32x4ExtractLane(2).get(a0).f32x4ExtractLane(3).f32Add().f32Add().set(t);
    // out[p mod c] += t
    f.get(out).get(p).get(p).get(c).i32DivU().get(c).i32Mul().i32Sub();
    f.i32Const(2).i32Shl().i32Add().tee(dst);
    f.get(dst).f32Load().get(t).f32Add().f32Store();
  });
  return f;
}

// x: (outer, mid, inner) -> out: (mid) += sums over outer and inner; each
// contiguous run of `inner` floats is added in two f32x4 accumulators
function sumRuns(): FuncBuilder {
  const f = new FuncBuilder([I32, I32, I32, I32, I32], []);
  const [x, out, outer, mid, inner] = [0, 1, 2, 3, 4];
  const o = f.local(I32), m = f.local(I32), i = f.local(I32), at = f.local(I32);
  const in8 = f.local(I32), dst = f.local(I32);
  const a0 = f.local(V128), a1 = f.local(V128), t = f.local(F32);
  f.get(inner).i32Const(-8).i32And().set(in8);
  f.get(x).set(at);
  forCount(f, o, outer, () => {
    forCount(f, m, mid, () => {
      f.v128Zero().set(a0);
      f.v128Zero().set(a1);
      f.i32Const(0).set(i);
      f.block().loop();
      f.get(i).get(in8).i32GeS().brIf(1);
      f.get(a0).get(at).v128Load().f32x4Add().set(a0);
      f.get(a1).get(at).v128Load(16).f32x4Add().set(a1);
      f.get(at).i32Const(32).i32Add().set(at);
      f.get(i).i32Const(8).i32Add().set(i);
      f.br(0).end().end();
      f.get(a0).get(a1).f32x4Add().set(a0);
      f.get(a0).f32x4ExtractLane(0).get(a0).f32x4ExtractLane(1).f32Add();
      f.get(a0).f32x4ExtractLane(2).get(a0).f32x4ExtractLane(3).f32Add().f32Add().set(t);
      f.block().loop();
      f.get(i).get(inner).i32GeS().brIf(1);
      f.get(t).get(at).f32Load().f32Add().set(t);
      f.get(at).i32Const(4).i32Add().set(at);
      f.get(i).i32Const(1).i32Add().set(i);
      f.br(0).end().end();
      f.get(out).get(m).i32Const(4).i32Mul().i32Add().tee(dst);
      f.get(dst).f32Load().get(t).f32Add().f32Store();
    });
  });
  return f;
}

/**
 * The module's binary: every function above, exported by name, memory
 * imported; with `shared`, the import is a shared memory (see
 * `ModuleSpec.shared`), for arenas in a `SharedArrayBuffer`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildElementwiseModule } from "./elementwise_kernel.ts";
 * const m = new WebAssembly.Module(buildElementwiseModule());
 * assert.ok(WebAssembly.Module.exports(m).some((e) => e.name === "relu"));
 * assert.deepEqual(WebAssembly.Module.imports(m).map((i) => i.kind), ["memory"]);
 * // the shared build takes a shared memory only
 * const mem = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
 * assert.ok(new WebAssembly.Instance(new WebAssembly.Module(buildElementwiseModule(true)), { env: { mem } }));
 * assert.throws(() => new WebAssembly.Instance(m, { env: { mem } }), WebAssembly.LinkError);
 * ```
 */
export function buildElementwiseModule(shared = false): Uint8Array<ArrayBuffer> {
  const funcs = [
    relu(),
    reluBackward(),
    pool2(),
    pool2Backward(),
    sumRuns(),
    biasReluPool2(),
    reluPool2Backward(),
    biasRelu(),
    reluPool2BiasGrad(),
    copy(),
    zero(),
    fill(),
  ];
  [
    "relu",
    "relu_backward",
    "pool2",
    "pool2_backward",
    "sum_runs",
    "bias_relu_pool2",
    "relu_pool2_backward",
    "bias_relu",
    "relu_pool2_bias_grad",
    "copy",
    "zero",
    "fill",
  ].forEach((n, i) => {
    funcs[i]!.exportName = n;
  });
  return encodeModule({ memoryPages: 1, importMemory: true, shared, funcs });
}
