// x: (C, H, W) one image <-> col: (C·KH·KW, OH·OW), float32
/**
 * Source of the im2col / col2im functions of the WebAssembly module, so
 * that the wasm convolution builds its GEMM operand without leaving the
 * wasm memory. Both take byte addresses and the convolution sizes:
 * `(src, dst, C, H, W, KH, KW, OH, OW, stride, padding)`.
 * - `im2col(x, col, …)` writes every column, zeros where a window leaves the image;
 * - `col2im(col, dx, …)` zeroes dx, then adds each column entry back onto
 *   the pixel it came from.
 *
 * @module
 */

import { forCount, FuncBuilder, I32, type Local } from "./_asm.ts";

// while (cnt >= min) { body(); } — cnt must be decremented by body.
function whileAtLeast(f: FuncBuilder, cnt: Local, min: number, body: () => void): void {
  f.block();
  f.loop();
  f.get(cnt).i32Const(min).i32LtS().brIf(1);
  body();
  f.br(0);
  f.end();
  f.end();
}

interface Frame {
  f: FuncBuilder;
  src: Local;
  dst: Local;
  C: Local;
  H: Local;
  W: Local;
  KH: Local;
  KW: Local;
  OH: Local;
  OW: Local;
  s: Local;
  p: Local;
  plane: Local;
  o: Local;
  lo: Local;
  hi: Local;
  ih: Local;
  q: Local;
  r: Local;
  cnt: Local;
  t: Local;
}

function frame(): Frame {
  const f = new FuncBuilder(new Array(11).fill(I32), []);
  const [src, dst, C, H, W, KH, KW, OH, OW, s, p] = Array.from({ length: 11 }, (_, i) => i);
  const l = () => f.local(I32);
  return {
    f,
    src,
    dst,
    C,
    H,
    W,
    KH,
    KW,
    OH,
    OW,
    s,
    p,
    plane: l(),
    o: l(),
    lo: l(),
    hi: l(),
    ih: l(),
    q: l(),
    r: l(),
    cnt: l(),
    t: l(),
  };
}

// Loops over (c, u, v, i) in column-row order, with `o` the byte address of
// column row (c, u, v), output row i, and lo..hi the output columns whose
// input pixel lies inside the image. `row` emits the work for one row when
// the input row ih is inside the image; `outside` when it is not.
function walk(fr: Frame, colBase: Local, row: () => void, outside: () => void): void {
  const { f, C, H, W, KH, KW, OH, OW, s, p, plane, o, lo, hi, ih, t } = fr;
  const c = f.local(I32), u = f.local(I32), v = f.local(I32), i = f.local(I32);
  f.get(colBase).set(o);
  forCount(f, c, C, () => {
    forCount(f, u, KH, () => {
      forCount(f, v, KW, () => {
        // lo = min(OW, ceil((p - v) / s)) when p > v, else 0
        f.get(p).get(v).i32Sub().set(t);
        f.get(t).get(s).i32Add().i32Const(1).i32Sub().get(s).i32DivS();
        f.i32Const(0);
        f.get(t).i32Const(0).i32GtS();
        f.select().set(lo);
        f.get(lo).get(OW).get(lo).get(OW).i32LtS().select().set(lo);
        // hi = clamp(floor((W - 1 + p - v) / s) + 1, lo, OW), 0 when that is negative
        f.get(W).i32Const(1).i32Sub().get(p).i32Add().get(v).i32Sub().set(t);
        f.get(t).get(s).i32DivS().i32Const(1).i32Add();
        f.i32Const(0);
        f.get(t).i32Const(0).i32GeS();
        f.select().set(hi);
        f.get(hi).get(OW).get(hi).get(OW).i32LtS().select().set(hi);
        f.get(hi).get(lo).get(hi).get(lo).i32GtS().select().set(hi);
        forCount(f, i, OH, () => {
          f.get(i).get(s).i32Mul().get(p).i32Sub().get(u).i32Add().set(ih);
          f.get(ih).i32Const(0).i32LtS().get(ih).get(H).i32GeS().i32Or().if();
          outside();
          f.else();
          // q = plane + (ih·W + lo·s − p + v)·4, r = o + lo·4
          f.get(plane).get(ih).get(W).i32Mul().get(lo).get(s).i32Mul().i32Add().get(p).i32Sub();
          f.get(v).i32Add().i32Const(4).i32Mul().i32Add().set(fr.q);
          f.get(o).get(lo).i32Const(4).i32Mul().i32Add().set(fr.r);
          f.get(hi).get(lo).i32Sub().set(fr.cnt);
          row();
          f.end();
          f.get(o).get(OW).i32Const(4).i32Mul().i32Add().set(o);
        });
      });
    });
    f.get(plane).get(H).get(W).i32Mul().i32Const(4).i32Mul().i32Add().set(plane);
  });
}

// Stores zero to `n` floats from byte address `at` (n small: window edges).
function zeroRun(f: FuncBuilder, at: Local, n: Local): void {
  whileAtLeast(f, n, 1, () => {
    f.get(at).f32Const(0).f32Store();
    f.get(at).i32Const(4).i32Add().set(at);
    f.get(n).i32Const(1).i32Sub().set(n);
  });
}

/**
 * im2col(x, col, C, H, W, KH, KW, OH, OW, stride, padding).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { im2colKernel } from "./im2col_kernel.ts";
 * const f = im2colKernel();
 * assert.equal(f.params.length, 11); // x, col and the nine sizes
 * assert.ok(f.code.length > 0);
 * ```
 */
export function im2colKernel(): FuncBuilder {
  const fr = frame();
  const { f, q, r, cnt, s, o, lo, hi, OW, t } = fr;
  const z = f.local(I32);
  f.get(fr.src).set(fr.plane);
  walk(fr, fr.dst, () => {
    // Zeros left of the image, the copied run, zeros right of it.
    f.get(o).set(z);
    f.get(lo).set(t);
    zeroRun(f, z, t);
    f.get(s).i32Const(1).i32Eq().if();
    whileAtLeast(f, cnt, 4, () => {
      f.get(r).get(q).v128Load().v128Store();
      f.get(r).i32Const(16).i32Add().set(r);
      f.get(q).i32Const(16).i32Add().set(q);
      f.get(cnt).i32Const(4).i32Sub().set(cnt);
    });
    f.end();
    whileAtLeast(f, cnt, 1, () => {
      f.get(r).get(q).f32Load().f32Store();
      f.get(r).i32Const(4).i32Add().set(r);
      f.get(q).get(s).i32Const(4).i32Mul().i32Add().set(q);
      f.get(cnt).i32Const(1).i32Sub().set(cnt);
    });
    f.get(OW).get(hi).i32Sub().set(t);
    zeroRun(f, r, t);
  }, () => {
    f.get(o).set(z);
    f.get(OW).set(t);
    zeroRun(f, z, t);
  });
  return f;
}

/**
 * col2im(col, dx, C, H, W, KH, KW, OH, OW, stride, padding): dx = Σ columns.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { col2imKernel } from "./im2col_kernel.ts";
 * const f = col2imKernel();
 * assert.equal(f.params.length, 11); // col, dx and the nine sizes
 * assert.deepEqual(f.results, []);
 * ```
 */
export function col2imKernel(): FuncBuilder {
  const fr = frame();
  const { f, q, r, cnt, s } = fr;
  // Zero the image, then accumulate every column entry onto its pixel.
  f.get(fr.dst).i32Const(0);
  f.get(fr.C).get(fr.H).i32Mul().get(fr.W).i32Mul().i32Const(4).i32Mul();
  f.memoryFill();
  f.get(fr.dst).set(fr.plane);
  walk(fr, fr.src, () => {
    f.get(s).i32Const(1).i32Eq().if();
    whileAtLeast(f, cnt, 4, () => {
      f.get(q).get(q).v128Load().get(r).v128Load().f32x4Add().v128Store();
      f.get(r).i32Const(16).i32Add().set(r);
      f.get(q).i32Const(16).i32Add().set(q);
      f.get(cnt).i32Const(4).i32Sub().set(cnt);
    });
    f.end();
    whileAtLeast(f, cnt, 1, () => {
      f.get(q).get(q).f32Load().get(r).f32Load().f32Add().f32Store();
      f.get(r).i32Const(4).i32Add().set(r);
      f.get(q).get(s).i32Const(4).i32Mul().i32Add().set(q);
      f.get(cnt).i32Const(1).i32Sub().set(cnt);
    });
  }, () => {});
  return f;
}
