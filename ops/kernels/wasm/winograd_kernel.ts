// x staged as P (Hp, Wp, Cp) zero-padded, U[ξ][Cp][OCp] -> y staged as Y (OCy, OH, OW), float32
/**
 * Source of the Winograd convolution WebAssembly SIMD module (F(2×2, 3×3)
 * and F(4×4, 3×3), stride 1), built with our encoder (`_asm.ts`) and
 * embedded by `build.ts` in `winograd_bytes.ts`. It imports its memory
 * (`env.mem`): an executor's arena, where it reads x and writes y in place
 * with its buffers in the arena's kernel scratch, or a memory of its own
 * that `../winograd_wasm.ts` stages one image at a time through.
 * Byte addresses throughout; for one image:
 * - `wino_pack(raw, P, C, H, W, pad, Hp, Wp, Cp)`: raw (C, H, W) → P
 *   (Hp, Wp, Cp), channels innermost, zeros around the image (`pad` rows and
 *   columns before it, the rest after) and in channels C … Cp − 1;
 * - `wino{m}_filter(WT, U, Cp, OCp, uS)`: the transformed filter U[ξ][Cp][OCp]
 *   = G g Gᵀ of the taps WT[Cp][9][OCp] (pairs laid out as U's rows and
 *   columns), in float32, four columns per vector;
 * - `wino{m}_image(P, U, V, M, Y, bias, T, tw, Wp, Cp, OCp, OCy, OH, OW, TB, uS, vS, mS)`:
 *   the convolution of one packed image with the transformed filter
 *   U[ξ][Cp][OCp] (ξ < α² the position in the α×α tile) plus bias (OCy
 *   floats) into Y (OCy, OH, OW). The T = th·tw output tiles (tw per row)
 *   go in blocks of TB: the block's input tiles are transformed, four
 *   channels per vector, into V[ξ][TB][Cp]; α² small products M[ξ] =
 *   V[ξ]·U[ξ] (tiles × OCp, by a 6×8 register-blocked micro-kernel with FMA,
 *   4×8 without, and a smaller one for the rest) follow; the output transform Aᵀ M A + bias,
 *   four output channels per vector, writes the tiles (clipped at the
 *   image's edge). Cp is a multiple of 4, OCp of 8, OCy of 4. U[ξ], V[ξ]
 *   and M[ξ] start uS, vS and mS bytes apart: the callers make these an odd
 *   number of 64-byte lines, since α² streams a power of two apart (4 KiB
 *   for V of 16 tiles × 64 channels) fall in one cache set and thrash it
 *   (measured 2× slower backward-to-input on mnist-net's conv2).
 *
 * The transforms are emitted from the matrices of `../winograd_ref.ts` by
 * {@link emitLinear} (exported with {@link emitInputTile} and
 * {@link hoistConstants} for other Winograd modules).
 *
 * @module
 */

import { encodeModule, FuncBuilder, I32, type Local, V128 } from "./_asm.ts";
import { WINOGRAD_F2, WINOGRAD_F4, type WinogradMatrices } from "../winograd_ref.ts";
import { base64Literal, constDoc } from "./_render.ts";

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
function f32x4Splat4(f: FuncBuilder, c: number): void {
  simd(f, 0x0c); // v128.const
  for (const b of new Uint8Array(new Float32Array([c, c, c, c]).buffer)) f.code.push(b);
}
function f32x4Sub(f: FuncBuilder): void {
  simd(f, 0xe5);
}
function f32x4Neg(f: FuncBuilder): void {
  simd(f, 0xe1);
}

type Term = [Local, number];

/** Splatted f32x4 constants held in locals, by value (see {@link hoistConstants}). */
export type Constants = Map<number, Local>;

/**
 * Declares a local per distinct coefficient of `mats` other than 0 and ±1
 * and sets it to that value in all four lanes, at the current point of `f`
 * (emit it first, outside loops); {@link emitLinear} then reads them instead
 * of materialising a `v128.const` at each use.
 *
 * @example
 * ```ts
 * import { FuncBuilder } from "./_asm.ts";
 * import { winogradMatrices } from "../winograd_ref.ts";
 * import assert from "node:assert/strict";
 * const lavin = winogradMatrices(4, [0, 1, -1, 2, -2]); // Bᵀ holds 0, ±1, ±2, ±4, −5
 * const k = hoistConstants(new FuncBuilder([], []), [lavin.BT]);
 * assert.deepEqual([...k.keys()].sort((a, b) => a - b), [-5, -4, -2, 2, 4]);
 * ```
 */
export function hoistConstants(
  f: FuncBuilder,
  mats: readonly (readonly (readonly number[])[])[],
): Constants {
  const out: Constants = new Map();
  for (const mat of mats) {
    for (const row of mat) {
      for (const c of row) {
        if (c === 0 || c === 1 || c === -1 || out.has(c)) continue;
        const l = f.local(V128);
        f32x4Splat4(f, c);
        f.set(l);
        out.set(c, l);
      }
    }
  }
  return out;
}

// Pushes the constant c in four lanes.
function pushConst(f: FuncBuilder, c: number, k?: Constants): void {
  const l = k?.get(c);
  if (l !== undefined) f.get(l);
  else f32x4Splat4(f, c);
}

// Pushes Σ coef·local over `terms` (non-empty), with FMA when relaxed.
function emitSum(f: FuncBuilder, terms: Term[], relaxed: boolean, k?: Constants): void {
  const [[l, c], ...rest] = terms as [Term, ...Term[]];
  if (rest.length === 0) {
    f.get(l);
    if (c === -1) f32x4Neg(f);
    else if (c !== 1) {
      pushConst(f, c, k);
      f.f32x4Mul();
    }
    return;
  }
  if (c === 1 || c === -1) {
    emitSum(f, rest, relaxed, k);
    f.get(l);
    if (c === 1) f.f32x4Add();
    else f32x4Sub(f);
  } else if (relaxed) {
    f.get(l);
    pushConst(f, c, k);
    emitSum(f, rest, relaxed, k);
    f.f32x4RelaxedMadd();
  } else {
    f.get(l);
    pushConst(f, c, k);
    f.f32x4Mul();
    emitSum(f, rest, relaxed, k);
    f.f32x4Add();
  }
}

/**
 * Emits outs[i] = Σ_l mat[i][l]·ins[l] over f32x4 locals (a zero row sets
 * zero), with constant coefficients: ±1 as adds and subtracts, others as
 * multiplies (fused with the add when `relaxed`). Shares work the way the
 * interpolation points ±p allow: input columns equal up to sign in every
 * row are summed and subtracted once (Aᵀ), and output rows that differ only
 * in the sign of their odd-position terms come from one even and one odd
 * partial sum (Bᵀ). Coefficients found in `consts` are read from there.
 *
 * @example
 * ```ts
 * import { FuncBuilder, V128 } from "./_asm.ts";
 * import assert from "node:assert/strict";
 * const f = new FuncBuilder([V128, V128], [V128]);
 * const out = f.local(V128);
 * emitLinear(f, [[1, -1]], [f.param(0), f.param(1)], [out], false);
 * assert.ok(f.code.length > 0);
 * ```
 */
export function emitLinear(
  f: FuncBuilder,
  mat: readonly (readonly number[])[],
  ins: readonly Local[],
  outs: readonly Local[],
  relaxed: boolean,
  consts?: Constants,
): void {
  const rows = mat.length, cols = ins.length;
  // Column pairs |mat[·][j1]| = |mat[·][j2]|, both non-zero somewhere.
  const pairOf = new Array<number>(cols).fill(-1);
  for (let j1 = 0; j1 < cols; j1++) {
    if (pairOf[j1] !== -1 || mat.every((r) => r[j1] === 0)) continue;
    for (let j2 = j1 + 1; j2 < cols; j2++) {
      if (pairOf[j2] !== -1) continue;
      if (mat.every((r) => Math.abs(r[j1]!) === Math.abs(r[j2]!))) {
        pairOf[j1] = j2;
        pairOf[j2] = j1;
        break;
      }
    }
  }
  const sums = new Map<number, Local>(), diffs = new Map<number, Local>();
  const rowTerms = (r: readonly number[], only?: (j: number) => boolean): Term[] => {
    const terms: Term[] = [];
    for (let j = 0; j < cols; j++) {
      const c = r[j]!;
      if (c === 0 || (only && !only(j))) continue;
      const p = pairOf[j]!;
      if (p === -1) terms.push([ins[j]!, c]);
      else if (p > j) {
        const same = r[p] === c;
        const cache = same ? sums : diffs;
        let loc = cache.get(j);
        if (loc === undefined) {
          loc = f.local(V128);
          f.get(ins[j]!).get(ins[p]!);
          if (same) f.f32x4Add();
          else f32x4Sub(f);
          f.set(loc);
          cache.set(j, loc);
        }
        terms.push([loc, c]);
      }
    }
    return terms;
  };
  const hasPairs = pairOf.some((p) => p !== -1);
  const done = new Array<boolean>(rows).fill(false);
  for (let i = 0; i < rows; i++) {
    if (done[i]) continue;
    const r = mat[i]!;
    // a partner row r2[l] = σ·(−1)^l·r[l] shares the even and odd partial sums
    let partner = -1, sigma = 1;
    if (!hasPairs) {
      for (let i2 = i + 1; i2 < rows && partner === -1; i2++) {
        for (const s of [1, -1]) {
          if (!done[i2] && mat[i2]!.every((v, l) => v === s * (l % 2 ? -1 : 1) * r[l]! + 0)) {
            partner = i2;
            sigma = s;
            break;
          }
        }
      }
    }
    const even = rowTerms(r, (j) => j % 2 === 0), odd = rowTerms(r, (j) => j % 2 === 1);
    if (partner !== -1 && even.length > 0 && odd.length > 0) {
      const e = f.local(V128), o = f.local(V128);
      emitSum(f, even, relaxed, consts);
      f.set(e);
      emitSum(f, odd, relaxed, consts);
      f.set(o);
      f.get(e).get(o).f32x4Add().set(outs[i]!);
      if (sigma > 0) f.get(e).get(o);
      else f.get(o).get(e);
      f32x4Sub(f);
      f.set(outs[partner]!);
      done[partner] = true;
    } else {
      const terms = rowTerms(r);
      if (terms.length === 0) f.v128Zero();
      else emitSum(f, terms, relaxed, consts);
      f.set(outs[i]!);
    }
    done[i] = true;
  }
}

/**
 * Emits the input transform Bᵀ d B of one α×α tile, four channels per
 * vector: d[r][s] is read at `src + r·rowStride + s·colStride` and
 * V[ξ = r·α + s] written at `dst + ξ·xiStride` (i32 locals, byte
 * addresses; `src` and `dst` are left unchanged), reading coefficients
 * from `consts` where it has them.
 *
 * @example
 * ```ts
 * import { FuncBuilder, I32 } from "./_asm.ts";
 * import { WINOGRAD_F4 } from "../winograd_ref.ts";
 * import assert from "node:assert/strict";
 * const f = new FuncBuilder([I32, I32, I32, I32, I32], []);
 * emitInputTile(f, WINOGRAD_F4, [0, 1, 2, 3, 4].map((i) => f.param(i)) as never, true);
 * assert.ok(f.code.length > 0);
 * ```
 */
export function emitInputTile(
  f: FuncBuilder,
  t: WinogradMatrices,
  [src, dst, rowStride, colStride, xiStride]: readonly [Local, Local, Local, Local, Local],
  relaxed: boolean,
  consts?: Constants,
): void {
  const a = t.alpha;
  const p = f.local(I32);
  const col = Array.from({ length: a }, () => f.local(V128));
  const tc = Array.from({ length: a }, () => Array.from({ length: a }, () => f.local(V128)));
  const out = Array.from({ length: a }, () => f.local(V128));
  // columns: tc[·][s] = Bᵀ d[·][s]
  for (let s = 0; s < a; s++) {
    if (s === 0) f.get(src).set(p);
    else f.get(src).get(colStride).i32Const(s).i32Mul().i32Add().set(p);
    for (let r = 0; r < a; r++) {
      f.get(p).v128Load().set(col[r]!);
      if (r < a - 1) f.get(p).get(rowStride).i32Add().set(p);
    }
    emitLinear(f, t.BT, col, tc.map((row) => row[s]!), relaxed, consts);
  }
  // rows: V[r][·] = tc[r][·] B
  f.get(dst).set(p);
  for (let r = 0; r < a; r++) {
    emitLinear(f, t.BT, tc[r]!, out, relaxed, consts);
    for (let s = 0; s < a; s++) {
      f.get(p).get(out[s]!).v128Store();
      f.get(p).get(xiStride).i32Add().set(p);
    }
  }
}

// i = from; while (i < limit) { body(); i += step }
function forStep(
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
  f.loop();
  f.get(i);
  limit();
  f.i32GeS().brIf(1);
  body();
  f.get(i).i32Const(step).i32Add().set(i);
  f.br(0);
  f.end();
  f.end();
}

// memory.fill(at, 0, bytes) with i32 expressions
function zero(f: FuncBuilder, at: () => void, bytes: () => void): void {
  at();
  f.i32Const(0);
  bytes();
  f.memoryFill();
}

// pack(raw, P, C, H, W, pad, Hp, Wp, Cp)
function packKernel(): FuncBuilder {
  const f = new FuncBuilder(Array(9).fill(I32), []);
  const [raw, P, C, H, W, pad, Hp, Wp, Cp] = Array.from({ length: 9 }, (_, i) => f.param(i));
  const c = f.local(I32), r = f.local(I32), s = f.local(I32), src = f.local(I32);
  const dst = f.local(I32), cs = f.local(I32), rowB = f.local(I32), plane = f.local(I32);
  const w4 = f.local(I32);
  const a = [f.local(V128), f.local(V128), f.local(V128), f.local(V128)];
  const t = [f.local(V128), f.local(V128), f.local(V128), f.local(V128)];
  f.get(Cp).i32Const(4).i32Mul().set(cs);
  f.get(Wp).get(cs).i32Mul().set(rowB);
  f.get(H).get(W).i32Mul().i32Const(4).i32Mul().set(plane);
  f.get(C).i32Const(3).i32And().if();
  {
    // padded channels: zero everything, then copy one float at a time
    zero(f, () => f.get(P), () => f.get(Hp).get(rowB).i32Mul());
    f.get(raw).set(src);
    forStep(f, c, () => f.i32Const(0), () => f.get(C), 1, () => {
      forStep(f, r, () => f.i32Const(0), () => f.get(H), 1, () => {
        // dst = P + (((r + pad)·Wp + pad)·Cp + c)·4
        f.get(P).get(r).get(pad).i32Add().get(Wp).i32Mul().get(pad).i32Add().get(Cp).i32Mul();
        f.get(c).i32Add().i32Const(4).i32Mul().i32Add().set(dst);
        forStep(f, s, () => f.i32Const(0), () => f.get(W), 1, () => {
          f.get(dst).get(src).f32Load().f32Store();
          f.get(src).i32Const(4).i32Add().set(src);
          f.get(dst).get(cs).i32Add().set(dst);
        });
      });
    });
  }
  f.else();
  {
    // every channel real: zero only the border, then 4 channels × 4 columns per transpose
    zero(f, () => f.get(P), () => f.get(pad).get(rowB).i32Mul());
    zero(
      f,
      () => f.get(P).get(pad).get(H).i32Add().get(rowB).i32Mul().i32Add(),
      () => f.get(Hp).get(pad).i32Sub().get(H).i32Sub().get(rowB).i32Mul(),
    );
    forStep(f, r, () => f.get(pad), () => f.get(pad).get(H).i32Add(), 1, () => {
      f.get(P).get(r).get(rowB).i32Mul().i32Add().set(dst);
      zero(f, () => f.get(dst), () => f.get(pad).get(cs).i32Mul());
      zero(
        f,
        () => f.get(dst).get(pad).get(W).i32Add().get(cs).i32Mul().i32Add(),
        () => f.get(Wp).get(pad).i32Sub().get(W).i32Sub().get(cs).i32Mul(),
      );
    });
    f.get(W).i32Const(-4).i32And().set(w4);
    forStep(f, c, () => f.i32Const(0), () => f.get(C), 4, () => {
      forStep(f, r, () => f.i32Const(0), () => f.get(H), 1, () => {
        // src = raw + ((c·H + r)·W)·4, dst = P + (((r + pad)·Wp + pad)·Cp + c)·4
        f.get(raw).get(c).get(H).i32Mul().get(r).i32Add().get(W).i32Mul().i32Const(4).i32Mul()
          .i32Add().set(src);
        f.get(P).get(r).get(pad).i32Add().get(Wp).i32Mul().get(pad).i32Add().get(Cp).i32Mul();
        f.get(c).i32Add().i32Const(4).i32Mul().i32Add().set(dst);
        forStep(f, s, () => f.i32Const(0), () => f.get(w4), 4, () => {
          for (let i = 0; i < 4; i++) {
            f.get(src);
            if (i > 0) f.get(plane).i32Const(i).i32Mul().i32Add();
            f.v128Load().set(a[i]!);
          }
          // 4×4 transpose: rows are channels, columns pixels
          f.get(a[0]!).get(a[1]!).f32x4Shuffle([0, 4, 1, 5]).set(t[0]!);
          f.get(a[2]!).get(a[3]!).f32x4Shuffle([0, 4, 1, 5]).set(t[1]!);
          f.get(a[0]!).get(a[1]!).f32x4Shuffle([2, 6, 3, 7]).set(t[2]!);
          f.get(a[2]!).get(a[3]!).f32x4Shuffle([2, 6, 3, 7]).set(t[3]!);
          const cols: [number, number, readonly [number, number, number, number]][] = [
            [0, 1, [0, 1, 4, 5]],
            [0, 1, [2, 3, 6, 7]],
            [2, 3, [0, 1, 4, 5]],
            [2, 3, [2, 3, 6, 7]],
          ];
          cols.forEach(([p0, p1, lanes], j) => {
            f.get(dst);
            if (j > 0) f.get(cs).i32Const(j).i32Mul().i32Add();
            f.get(t[p0]!).get(t[p1]!).f32x4Shuffle(lanes).v128Store();
          });
          f.get(src).i32Const(16).i32Add().set(src);
          f.get(dst).get(cs).i32Const(4).i32Mul().i32Add().set(dst);
        });
        // the last W mod 4 pixels, channel by channel
        forStep(f, s, () => f.get(w4), () => f.get(W), 1, () => {
          for (let i = 0; i < 4; i++) {
            f.get(dst).get(src);
            if (i > 0) f.get(plane).i32Const(i).i32Mul().i32Add();
            f.f32Load().f32Store(4 * i);
          }
          f.get(src).i32Const(4).i32Add().set(src);
          f.get(dst).get(cs).i32Add().set(dst);
        });
      });
    });
  }
  f.end();
  return f;
}

// micro(a, b, c, k4, lda, ldb, ldc): C[mr×8] = A[mr rows at a, stride lda][k] · B[k rows at b,
// stride ldb][8], k = 4·k4; A rows hold k contiguous floats.
function microKernel(relaxed: boolean, mr: number, nv = 2): FuncBuilder {
  const f = new FuncBuilder(Array(7).fill(I32), []);
  const [a, b, c, k4, lda, ldb, ldc] = Array.from({ length: 7 }, (_, i) => f.param(i));
  const rows = [a, ...Array.from({ length: mr - 1 }, () => f.local(I32))];
  const acc = Array.from({ length: mr }, () => Array.from({ length: nv }, () => f.local(V128)));
  const bq = Array.from({ length: nv }, () => f.local(V128)), av = f.local(V128);
  for (let i = 1; i < mr; i++) f.get(rows[i - 1]!).get(lda).i32Add().set(rows[i]!);
  f.loop();
  for (let u = 0; u < 4; u++) {
    for (let k = 0; k < nv; k++) f.get(b).v128Load(16 * k).set(bq[k]!);
    f.get(b).get(ldb).i32Add().set(b);
    for (let i = 0; i < mr; i++) {
      f.get(rows[i]!).v128Load32Splat(u * 4).set(av);
      for (let k = 0; k < nv; k++) {
        const ac = acc[i]![k]!, bv = bq[k]!;
        if (relaxed) f.get(av).get(bv).get(ac).f32x4RelaxedMadd();
        else f.get(ac).get(av).get(bv).f32x4Mul().f32x4Add();
        f.set(ac);
      }
    }
  }
  for (let i = 0; i < mr; i++) f.get(rows[i]!).i32Const(16).i32Add().set(rows[i]!);
  f.get(k4).i32Const(1).i32Sub().tee(k4).brIf(0);
  f.end();
  for (let i = 0; i < mr; i++) {
    for (let k = 0; k < nv; k++) f.get(c).get(acc[i]![k]!).v128Store(16 * k);
    if (i < mr - 1) f.get(c).get(ldc).i32Add().set(c);
  }
  return f;
}

// Function index of the micro-kernel with mr rows.
const MICRO = (mr: number) => mr - 1;
// Rows of the main micro-kernel: with FMA 6 (12 accumulators, the two vectors of B and the
// broadcast of A fill 15 of x64's 16 vector registers; 6×8 against 4×8 ran mnist-net's conv2
// 0.95× forward, 0.89-0.94× backward-to-input); the plain build's mul + add needs one register
// more, and 6 rows spill there (1.3× slower), so it keeps 4.
const mrOf = (relaxed: boolean) => relaxed ? 6 : 4;
// Function index of the one-row micro-kernel over 16 columns (four accumulators where 1×8 has
// two, whose FMA latency bounds it): after the MR-row ones.
const WIDE1 = (relaxed: boolean) => mrOf(relaxed);

// image(P, U, V, M, Y, bias, T, tw, Wp, Cp, OCp, OCy, OH, OW, TB, uS, vS, mS)
function imageKernel(t: WinogradMatrices, relaxed: boolean, skip = 0): FuncBuilder {
  const { m, alpha: a, AT } = t;
  const f = new FuncBuilder(Array(18).fill(I32), []);
  const [P, U, V, M, Y, bias, T, tw, Wp, Cp, OCp, OCy, OH, OW, TB, uS, vS, mS] = Array.from(
    { length: 18 },
    (_, i) => f.param(i),
  );
  const t0 = f.local(I32), tl = f.local(I32), tt = f.local(I32), ti = f.local(I32);
  const tj = f.local(I32), c4 = f.local(I32), src = f.local(I32), dst = f.local(I32);
  const rowS = f.local(I32), colS = f.local(I32), xi = f.local(I32);
  const k0 = f.local(I32), i0 = f.local(I32), tend = f.local(I32), mxi = mS;
  const plane = f.local(I32), full = f.local(I32), vr = f.local(I32), vc = f.local(I32);
  const ybase = f.local(I32), q = f.local(I32), bv = f.local(V128), rest = f.local(I32);

  const k = hoistConstants(f, [t.BT, AT]);
  const MR = mrOf(relaxed);
  f.get(Cp).i32Const(4).i32Mul().set(colS);
  f.get(Wp).get(colS).i32Mul().set(rowS);
  f.get(OH).get(OW).i32Mul().i32Const(4).i32Mul().set(plane);

  forStep(f, t0, () => f.i32Const(0), () => f.get(T), 0, () => {
    // the block: tiles t0 … t0 + tend − 1, tend = min(TB, T − t0)
    f.get(T).get(t0).i32Sub().tee(tend).get(TB).get(tend).get(TB).i32LtS().select().set(tend);
    // A) input transform of the block's tiles
    forStep(f, tl, () => f.i32Const(0), () => f.get(tend), 1, () => {
      f.get(t0).get(tl).i32Add().set(tt);
      f.get(tt).get(tw).i32DivU().set(ti);
      f.get(tt).get(ti).get(tw).i32Mul().i32Sub().set(tj);
      // src = P + (ti·m·Wp + tj·m)·Cp·4, dst = V + tl·Cp·4
      f.get(P).get(ti).i32Const(m).i32Mul().get(rowS).i32Mul().i32Add();
      f.get(tj).i32Const(m).i32Mul().get(colS).i32Mul().i32Add().set(src);
      f.get(V).get(tl).get(colS).i32Mul().i32Add().set(dst);
      if (!(skip & 1)) {
        forStep(f, c4, () => f.i32Const(0), () => f.get(Cp), 4, () => {
          emitInputTile(f, t, [src, dst, rowS, colS, vS], relaxed, k);
          f.get(src).i32Const(16).i32Add().set(src);
          f.get(dst).i32Const(16).i32Add().set(dst);
        });
      }
    });
    // B) M[ξ] (tend × OCp) = V[ξ] (tend × Cp) · U[ξ] (Cp × OCp), MR rows at a time, then the rest
    const micro = (mr: number, fn = MICRO(mr)) => {
      f.get(V).get(xi).get(vS).i32Mul().i32Add().get(i0).get(colS).i32Mul().i32Add();
      f.get(U).get(xi).get(uS).i32Mul().i32Add().get(k0).i32Const(4).i32Mul().i32Add();
      f.get(M).get(xi).get(mS).i32Mul().i32Add().get(i0).get(OCp).i32Mul().get(k0).i32Add()
        .i32Const(4).i32Mul().i32Add();
      f.get(Cp).i32Const(2).i32ShrU();
      f.get(colS).get(OCp).i32Const(4).i32Mul().tee(q).get(q).call(fn);
    };
    f.get(tend).get(tend).i32Const(MR).i32DivU().i32Const(MR).i32Mul().tee(full).i32Sub().set(rest);
    if (!(skip & 2)) {
      forStep(f, xi, () => f.i32Const(0), () => f.i32Const(a * a), 1, () => {
        forStep(f, k0, () => f.i32Const(0), () => f.get(OCp), 8, () => {
          forStep(f, i0, () => f.i32Const(0), () => f.get(full), MR, () => micro(MR));
          for (let mr = 1; mr < MR; mr++) {
            f.get(rest).i32Const(mr).i32Eq().if();
            if (mr === 1) {
              // one row: 16 columns at a time from even groups of 8 (an odd k0 was done with
              // the group before it), 8 for a last odd group
              f.get(k0).i32Const(8).i32And().i32Eqz().if();
              f.get(k0).i32Const(16).i32Add().get(OCp).i32LeS().if();
              micro(1, WIDE1(relaxed));
              f.else();
              micro(1);
              f.end();
              f.end();
            } else micro(mr);
            f.end();
          }
        });
      });
    }
    // C) output transform Aᵀ M A + bias of the block's tiles
    const mv = Array.from({ length: a }, () => f.local(V128));
    const tc = Array.from({ length: m }, () => Array.from({ length: a }, () => f.local(V128)));
    const yv = Array.from({ length: m }, () => f.local(V128));
    const tr = Array.from({ length: 4 }, () => f.local(V128));
    if (!(skip & 4)) {
      forStep(f, tl, () => f.i32Const(0), () => f.get(tend), 1, () => {
        f.get(t0).get(tl).i32Add().tee(tt).get(tw).i32DivU().set(ti);
        f.get(tt).get(ti).get(tw).i32Mul().i32Sub().set(tj);
        // rows and columns of the tile inside the output
        f.get(OH).get(ti).i32Const(m).i32Mul().i32Sub().tee(vr).i32Const(m).get(vr).i32Const(m)
          .i32LtS().select().set(vr);
        f.get(OW).get(tj).i32Const(m).i32Mul().i32Sub().tee(vc).i32Const(m).get(vc).i32Const(m)
          .i32LtS().select().set(vc);
        // f = (vr == m) & (vc == m); select above keeps min(·, m)
        f.get(vr).i32Const(m).i32Eq().get(vc).i32Const(m).i32Eq().i32And().set(full);
        forStep(f, k0, () => f.i32Const(0), () => f.get(OCy), 4, () => {
          f.get(bias).get(k0).i32Const(4).i32Mul().i32Add().v128Load().set(bv);
          // column pass: tc[·][s] = Aᵀ M[·][s]
          for (let s = 0; s < a; s++) {
            // q = M + s·mS + (tl·OCp + k0)·4, then steps of α·mS down the column
            f.get(M).get(tl).get(OCp).i32Mul().get(k0).i32Add().i32Const(4).i32Mul().i32Add();
            if (s > 0) f.get(mxi).i32Const(s).i32Mul().i32Add();
            f.set(q);
            for (let r = 0; r < a; r++) {
              f.get(q).v128Load().set(mv[r]!);
              if (r < a - 1) f.get(q).get(mxi).i32Const(a).i32Mul().i32Add().set(q);
            }
            emitLinear(f, AT, mv, tc.map((row) => row[s]!), relaxed, k);
          }
          // ybase = Y + (k0·OH·OW + ti·m·OW + tj·m)·4
          f.get(Y).get(k0).get(plane).i32Mul().i32Add();
          f.get(ti).i32Const(m).i32Mul().get(OW).i32Mul().get(tj).i32Const(m).i32Mul().i32Add();
          f.i32Const(4).i32Mul().i32Add().set(ybase);
          for (let r = 0; r < m; r++) {
            emitLinear(f, AT, tc[r]!, yv, relaxed, k);
            for (let s = 0; s < m; s++) f.get(yv[s]!).get(bv).f32x4Add().set(yv[s]!);
            // row r of the tile if inside the output, its first vc columns, output channel
            // k0 + lane: ybase + lane·plane + r·OW·4 + s·4 (one unrolled case per vc)
            f.get(vr).i32Const(r).i32GtS().if();
            for (let cols = m; cols >= 1; cols--) {
              if (cols > 1) f.get(vc).i32Const(cols).i32Eq().if();
              if (cols === m) {
                // the whole row: transposed to a vector of m columns per output channel, so
                // one store per channel (m = 4) or half a vector (m = 2) instead of m scalar
                // stores (every wasm memory access is bounds-checked in Deno)
                f.get(ybase).get(OW).i32Const(4 * r).i32Mul().i32Add().set(q);
                if (m === 4) {
                  f.get(yv[0]!).get(yv[1]!).f32x4Shuffle([0, 4, 1, 5]).set(tr[0]!);
                  f.get(yv[2]!).get(yv[3]!).f32x4Shuffle([0, 4, 1, 5]).set(tr[1]!);
                  f.get(yv[0]!).get(yv[1]!).f32x4Shuffle([2, 6, 3, 7]).set(tr[2]!);
                  f.get(yv[2]!).get(yv[3]!).f32x4Shuffle([2, 6, 3, 7]).set(tr[3]!);
                  const lanes: [number, number, readonly [number, number, number, number]][] = [
                    [0, 1, [0, 1, 4, 5]],
                    [0, 1, [2, 3, 6, 7]],
                    [2, 3, [0, 1, 4, 5]],
                    [2, 3, [2, 3, 6, 7]],
                  ];
                  lanes.forEach(([p0, p1, sel], lane) => {
                    if (lane > 0) f.get(q).get(plane).i32Add().set(q);
                    f.get(q).get(tr[p0]!).get(tr[p1]!).f32x4Shuffle(sel).v128Store();
                  });
                } else {
                  f.get(yv[0]!).get(yv[1]!).f32x4Shuffle([0, 4, 1, 5]).set(tr[0]!);
                  f.get(yv[0]!).get(yv[1]!).f32x4Shuffle([2, 6, 3, 7]).set(tr[1]!);
                  for (let lane = 0; lane < 4; lane++) {
                    if (lane > 0) f.get(q).get(plane).i32Add().set(q);
                    f.get(q).get(tr[lane >> 1]!).v128Store64Lane(lane & 1);
                  }
                }
                if (cols > 1) f.else();
                continue;
              }
              for (let lane = 0; lane < 4; lane++) {
                f.get(ybase).get(OW).i32Const(4 * r).i32Mul().i32Add();
                if (lane > 0) f.get(plane).i32Const(lane).i32Mul().i32Add();
                f.set(q);
                for (let s = 0; s < cols; s++) {
                  f.get(q).get(yv[s]!).f32x4ExtractLane(lane).f32Store(4 * s);
                }
              }
              if (cols > 1) f.else();
            }
            for (let cols = m; cols > 1; cols--) f.end();
            f.end();
          }
        });
      });
    }
    f.get(t0).get(TB).i32Add().set(t0);
  });
  return f;
}

// filter(WT, U, cp, ocp, uS): U[ξ][r][c] = (G g Gᵀ)[ξ] of g = WT[r][0..9][c] (the 3×3 taps of
// the pair in row-major order) for r < cp and c < ocp, four columns per vector; U[ξ] at U + ξ·uS.
function filterKernel(t: WinogradMatrices, relaxed: boolean): FuncBuilder {
  const { alpha: a, G } = t;
  const f = new FuncBuilder([I32, I32, I32, I32, I32], []);
  const [WT, U, cp, ocp, uS] = [0, 1, 2, 3, 4].map((i) => f.param(i));
  const k = hoistConstants(f, [G]);
  const r = f.local(I32), c = f.local(I32), src = f.local(I32), dst = f.local(I32);
  const tapS = f.local(I32);
  const g = Array.from({ length: 9 }, () => f.local(V128));
  const tmp = Array.from({ length: a }, () => Array.from({ length: 3 }, () => f.local(V128)));
  const out = Array.from({ length: a }, () => f.local(V128));
  f.get(ocp).i32Const(4).i32Mul().set(tapS);
  forStep(f, r, () => f.i32Const(0), () => f.get(cp), 1, () => {
    forStep(f, c, () => f.i32Const(0), () => f.get(ocp), 4, () => {
      // src = WT + (r·9·ocp + c)·4
      f.get(WT).get(r).i32Const(9).i32Mul().get(ocp).i32Mul().get(c).i32Add().i32Const(4).i32Mul()
        .i32Add().set(src);
      for (let tap = 0; tap < 9; tap++) {
        f.get(src).v128Load().set(g[tap]!);
        if (tap < 8) f.get(src).get(tapS).i32Add().set(src);
      }
      // tmp = G g (α×3), column by column
      for (let j = 0; j < 3; j++) {
        emitLinear(f, G, [g[j]!, g[3 + j]!, g[6 + j]!], tmp.map((row) => row[j]!), relaxed, k);
      }
      // U[i·α + j] = tmp[i] · G[j], stored at U + ((ξ·cp + r)·ocp + c)·4
      f.get(U).get(r).get(ocp).i32Mul().get(c).i32Add().i32Const(4).i32Mul().i32Add().set(dst);
      for (let i = 0; i < a; i++) {
        emitLinear(f, G, tmp[i]!, out, relaxed, k);
        for (let j = 0; j < a; j++) {
          f.get(dst).get(out[j]!).v128Store();
          f.get(dst).get(uS).i32Add().set(dst);
        }
      }
    });
  });
  return f;
}

/**
 * Builds the Winograd module binary, with relaxed-simd FMA or plain SIMD128
 * mul + add. `skip` (profiling only; the shipped builds use 0) leaves phases
 * out of the image functions: bit 0 the input transform, bit 1 the
 * products, bit 2 the output transform. With `shared`, the imported memory
 * is shared (for arenas in a `SharedArrayBuffer`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.ok(WebAssembly.validate(buildWinogradModule(false)));
 * ```
 */
export function buildWinogradModule(
  relaxed: boolean,
  skip = 0,
  shared = false,
): Uint8Array<ArrayBuffer> {
  const micros = Array.from({ length: mrOf(relaxed) }, (_, i) => microKernel(relaxed, i + 1));
  micros.push(microKernel(relaxed, 1, 4));
  const pack = packKernel();
  pack.exportName = "wino_pack";
  const f2 = imageKernel(WINOGRAD_F2, relaxed, skip);
  f2.exportName = "wino2_image";
  const f4 = imageKernel(WINOGRAD_F4, relaxed, skip);
  f4.exportName = "wino4_image";
  const g2 = filterKernel(WINOGRAD_F2, relaxed);
  g2.exportName = "wino2_filter";
  const g4 = filterKernel(WINOGRAD_F4, relaxed);
  g4.exportName = "wino4_filter";
  return encodeModule({
    memoryPages: 1,
    importMemory: true,
    shared,
    funcs: [...micros, pack, f2, f4, g2, g4],
  });
}

/**
 * The text of `winograd_bytes.ts` (written and checked by `build.ts`) for the module as built now.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderWinogradBytesModule } from "./winograd_kernel.ts";
 * const text = await Deno.readTextFile(new URL("./winograd_bytes.ts", import.meta.url));
 * assert.equal(renderWinogradBytesModule(), text); // the embedded binaries are current
 * ```
 */
export function renderWinogradBytesModule(): string {
  const relaxed = buildWinogradModule(true), plain = buildWinogradModule(false);
  const relaxedShared = buildWinogradModule(true, 0, true);
  const plainShared = buildWinogradModule(false, 0, true);
  return `// Generated by ops/kernels/wasm/build.ts from winograd_kernel.ts: do not edit, run \`deno task build:wasm\`.
/**
 * The Winograd convolution WebAssembly module as base64, in two builds, each
 * also with a shared memory import, embedded so that it loads when the library is imported from a URL.
 *
 * @module
 */

${
    constDoc(
      `Winograd module using relaxed-simd FMA (${relaxed.length} bytes).`,
      "WINOGRAD_WASM_RELAXED_SIMD",
      "winograd_bytes.ts",
    )
  }
export const WINOGRAD_WASM_RELAXED_SIMD: string = ${base64Literal(relaxed)};

${
    constDoc(
      `Winograd module using SIMD128 mul + add (${plain.length} bytes).`,
      "WINOGRAD_WASM_SIMD",
      "winograd_bytes.ts",
    )
  }
export const WINOGRAD_WASM_SIMD: string = ${base64Literal(plain)};

${
    constDoc(
      `Winograd module using relaxed-simd FMA, shared memory imported, for arenas in a SharedArrayBuffer (${relaxedShared.length} bytes).`,
      "WINOGRAD_WASM_RELAXED_SIMD_SHARED",
      "winograd_bytes.ts",
    )
  }
export const WINOGRAD_WASM_RELAXED_SIMD_SHARED: string = ${base64Literal(relaxedShared)};

${
    constDoc(
      `Winograd module using SIMD128 mul + add, shared memory imported (${plainShared.length} bytes).`,
      "WINOGRAD_WASM_SIMD_SHARED",
      "winograd_bytes.ts",
    )
  }
export const WINOGRAD_WASM_SIMD_SHARED: string = ${base64Literal(plainShared)};
`;
}
