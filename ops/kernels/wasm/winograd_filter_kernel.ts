// x: (N, C, H, W), dy: (N, OC, OH, OW) -> dw: (OC, C, 3, 3), stride 1, float32
/**
 * Source of the Winograd filter-gradient WebAssembly SIMD module (see
 * `../winograd_filter_ref.ts` for the algorithm). It imports its memory
 * (`env.mem`): an executor's arena, where x and dy already are, or a memory
 * of the driver's own that x and dy are copied into. The TypeScript driver
 * (`../winograd_filter_wasm.ts`) calls, per chunk of images:
 * - `stage(src, dst, C, H, W, Cp, Hp, Wp, pad, n)`: n images (C, H, W) at src
 *   → (Hp, Wp, Cp) at dst, channels last, zeros around (pad rows/columns
 *   before the image) and in channels C … Cp−1, so that a vector holds one
 *   pixel of four channels and the transforms need no bounds checks;
 * - `xin2`/`xin4(src, dst, tilesH, tilesW, n, Cp, Hp, Wp, Ts)`: the input
 *   transform V = Bᵀ d B of every α×α tile of every staged image, written
 *   as V[ξ][t][c] (ξ < α² the transform point, t < T = n·tilesH·tilesW the
 *   tile, Ts ≥ T rows of Cp floats from one ξ to the next);
 * - `xdy2`/`xdy4(...)`: the same shape of call for the output-gradient
 *   transform A dY Aᵀ of the m×m tiles of the staged dy, as M[ξ][t][k];
 * - `accum(V, M, dU, T, Ts, Cp, OCp, nxi)`: dU[ξ] (Cp × OCp) += V[ξ]ᵀ·M[ξ]
 *   for each ξ < nxi, an MR×NR register-blocked micro-kernel over the T
 *   tiles; `accum0(…)` the same with = instead of += (a group's first chunk
 *   needs no zeroed dU);
 * and once at the end `xout2`/`xout4(dU, dw, Cp, OCp, parts, count,
 * stride)`: dw[k][c] = Gᵀ S G (3×3), laid out (OCp, Cp, 3, 3), where S is
 * dU plus the accumulators of the other `count` image groups (`stride`
 * bytes apart from `parts` on), added in that order: S[i] = (…(dU[i] +
 * P₀[i]) + P₁[i]) + … (no pass of its own over the accumulators).
 *
 * All addresses are bytes; Cp must be a multiple of MR (4) and OCp of NR (8).
 *
 * @module
 */

import { encodeModule, FuncBuilder, I32, type Local, uleb, V128 } from "./_asm.ts";
import { winograd, type WinogradTile } from "../winograd_ref.ts";
import { base64Literal, constDoc } from "./_render.ts";

// Instructions the shared encoder lacks, appended as raw bytes.
function simd(f: FuncBuilder, sub: number): void {
  f.code.push(0xfd);
  uleb(f.code, sub);
}
function f32x4Const(f: FuncBuilder, v: number): void {
  simd(f, 0x0c);
  for (const b of new Uint8Array(new Float32Array([v, v, v, v]).buffer)) f.code.push(b);
}
function f32x4Sub(f: FuncBuilder): void {
  simd(f, 0xe5);
}
function f32x4Neg(f: FuncBuilder): void {
  simd(f, 0xe1);
}

/**
 * Rows of the micro-tile (input channels c, broadcast) and its columns in
 * f32x4 vectors (output channels k): 8 accumulators + 2 vectors of M + 1
 * broadcast fit the 15 xmm registers V8 allocates, as in the GEMM module.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(MR * NR, 32); // products per step of the tile loop
 * ```
 */
export const MR = 4, NRV = 2;
/**
 * Columns of the micro-tile: output channels are padded to a multiple of it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(NR, 4 * NRV);
 * ```
 */
export const NR: number = NRV * 4;

// Pushes Σ_q coefs[q]·value(q) as one v128: positive terms first (no
// negation unless all are negative), and one multiplication when every
// nonzero coefficient has the same magnitude, 2·(d3 − d1) say.
function combo(f: FuncBuilder, coefs: readonly number[], value: (q: number) => void): void {
  const terms = coefs.map((co, q) => [co, q] as const).filter(([co]) => co !== 0);
  terms.sort((x, y) => Number(y[0] > 0) - Number(x[0] > 0) || x[1] - y[1]);
  if (terms.length === 0) {
    f.v128Zero();
    return;
  }
  const mag = Math.abs(terms[0][0]);
  const common = mag !== 1 && terms.every(([co]) => Math.abs(co) === mag);
  terms.forEach(([co, q], i) => {
    value(q);
    if (!common && Math.abs(co) !== 1) {
      f32x4Const(f, Math.abs(co));
      f.f32x4Mul();
    }
    if (i === 0) {
      if (co < 0) f32x4Neg(f);
    } else if (co < 0) f32x4Sub(f);
    else f.f32x4Add();
  });
  if (common) {
    f32x4Const(f, mag);
    f.f32x4Mul();
  }
}

// Rows i < j of L that differ only in the sign of their odd-indexed
// entries (Bᵀ's rows for a pair of points ±p, A's too): both come from
// E ± O with E the even-indexed and O the odd-indexed part; found from the
// matrices, so it serves whichever points winograd_ref.ts chose.
function evenOddPairs(l: readonly (readonly number[])[]): Map<number, number> {
  const pairs = new Map<number, number>();
  const used = new Set<number>();
  for (let i = 0; i < l.length; i++) {
    if (used.has(i)) continue;
    for (let j = i + 1; j < l.length; j++) {
      if (used.has(j)) continue;
      const odd = l[i].some((v, q) => q % 2 === 1 && v !== 0);
      if (odd && l[j].every((v, q) => v === (q % 2 === 0 ? l[i][q] : -l[i][q]))) {
        pairs.set(i, j);
        used.add(i).add(j);
        break;
      }
    }
  }
  return pairs;
}

// Computes the rows of L·v (v pushed by value(q)) into out[], pairing
// rows that share their even and odd parts.
function applyRows(
  f: FuncBuilder,
  l: readonly (readonly number[])[],
  value: (q: number) => void,
  out: Local[],
  e: Local,
  o: Local,
): void {
  const pairs = evenOddPairs(l);
  const paired = new Set([...pairs.values()]);
  for (let i = 0; i < l.length; i++) {
    if (paired.has(i)) continue;
    const j = pairs.get(i);
    if (j === undefined) {
      combo(f, l[i], value);
      f.set(out[i]);
      continue;
    }
    combo(f, l[i].map((v, q) => (q % 2 === 0 ? v : 0)), value);
    f.set(e);
    combo(f, l[i].map((v, q) => (q % 2 === 1 ? v : 0)), value);
    f.set(o);
    f.get(e).get(o).f32x4Add().set(out[i]);
    f.get(e).get(o);
    f32x4Sub(f);
    f.set(out[j]);
  }
}

// out = L·X·Lᵀ for L (r × q) over v128 values: X[a][b] pushed by load(a, b),
// out[i][j] consumed by store(i, j, push) in row-major order.
function sandwich(
  f: FuncBuilder,
  l: readonly (readonly number[])[],
  load: (a: number, b: number) => void,
  store: (i: number, j: number, push: () => void) => void,
): void {
  const r = l.length, q = l[0].length;
  const row: Local[] = Array.from({ length: q }, () => f.local(V128));
  const e = f.local(V128), o = f.local(V128);
  // t[a][j] = Σ_b X[a][b]·L[j][b]
  const t: Local[][] = Array.from(
    { length: q },
    () => Array.from({ length: r }, () => f.local(V128)),
  );
  for (let a = 0; a < q; a++) {
    for (let b = 0; b < q; b++) {
      load(a, b);
      f.set(row[b]);
    }
    applyRows(f, l, (b) => f.get(row[b]), t[a], e, o);
  }
  // out[i][j] = Σ_a L[i][a]·t[a][j], a column at a time, then stored row-major
  const out: Local[][] = Array.from(
    { length: r },
    () => Array.from({ length: r }, () => f.local(V128)),
  );
  for (let j = 0; j < r; j++) {
    applyRows(f, l, (a) => f.get(t[a][j]), out.map((row) => row[j]), e, o);
  }
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < r; j++) store(i, j, () => f.get(out[i][j]));
  }
}

function mulTo(f: FuncBuilder, out: Local, a: Local, b: Local): void {
  f.get(a).get(b).i32Mul().set(out);
}

// stage(src, dst, C, H, W, Cp, Hp, Wp, pad, n): channels-last copy, four
// channels × four columns at a time through a 4×4 transpose, the channels
// past the last multiple of four and the columns past the last multiple of
// four one float at a time.
function stageKernel(): FuncBuilder {
  const f = new FuncBuilder(Array(10).fill(I32), []);
  const [src, dst, C, H, W, Cp, Hp, Wp, pad, n] = Array.from({ length: 10 }, (_, i) => f.param(i));
  const img = f.local(I32), c = f.local(I32), h = f.local(I32), w = f.local(I32);
  const q = f.local(I32), cs = f.local(I32), s = f.local(I32), c4 = f.local(I32);
  const w4 = f.local(I32), plane = f.local(I32), i = f.local(I32);
  const sp: Local[] = Array.from({ length: 4 }, () => f.local(I32));
  const r: Local[] = Array.from({ length: 4 }, () => f.local(V128));
  const t: Local[] = Array.from({ length: 4 }, () => f.local(V128));
  f.get(Cp).i32Const(4).i32Mul().set(cs);
  f.get(H).get(W).i32Mul().i32Const(4).i32Mul().set(plane); // bytes per channel plane
  f.get(C).i32Const(-4).i32And().set(c4);
  f.get(W).i32Const(-4).i32And().set(w4);
  // Zero the staged block where the copy leaves gaps: the border and the padding channels.
  f.get(Cp).get(C).i32Ne().get(pad).i32Or().get(Hp).get(H).i32Ne().i32Or().get(Wp).get(W).i32Ne();
  f.i32Or().if();
  f.get(dst).i32Const(0).get(n).get(Hp).i32Mul().get(Wp).i32Mul().get(cs).i32Mul().memoryFill();
  f.end();
  // for (i = 0; i < lim; i += step) body(), checked before the first pass
  const loop = (v: Local, from: () => void, lim: () => void, step: number, body: () => void) => {
    from();
    f.set(v);
    f.block();
    f.get(v);
    lim();
    f.i32GeS().brIf(0);
    f.loop();
    body();
    f.get(v).i32Const(step).i32Add().tee(v);
    lim();
    f.i32LtS().brIf(0);
    f.end();
    f.end();
  };
  const zero = () => f.i32Const(0);
  // q = dst + (((img·Hp + h + pad)·Wp + pad)·Cp + c)·4
  const rowStart = () => {
    f.get(img).get(Hp).i32Mul().get(h).i32Add().get(pad).i32Add().get(Wp).i32Mul();
    f.get(pad).i32Add().get(Cp).i32Mul().get(c).i32Add().i32Const(4).i32Mul();
    f.get(dst).i32Add().set(q);
  };
  // s = src + ((img·C + c)·H + h)·W·4
  const srcRow = () => {
    f.get(img).get(C).i32Mul().get(c).i32Add().get(H).i32Mul().get(h).i32Add().get(W).i32Mul();
    f.i32Const(4).i32Mul().get(src).i32Add().set(s);
  };
  loop(img, zero, () => f.get(n), 1, () => {
    loop(c, zero, () => f.get(c4), 4, () => {
      loop(h, zero, () => f.get(H), 1, () => {
        rowStart();
        srcRow();
        for (let k = 0; k < 4; k++) f.get(s).get(plane).i32Const(k).i32Mul().i32Add().set(sp[k]);
        loop(w, zero, () => f.get(w4), 4, () => {
          for (let k = 0; k < 4; k++) f.get(sp[k]).v128Load().set(r[k]);
          // rows (channels) × 4 columns -> columns × 4 channels
          f.get(r[0]).get(r[1]).f32x4Shuffle([0, 4, 1, 5]).set(t[0]);
          f.get(r[2]).get(r[3]).f32x4Shuffle([0, 4, 1, 5]).set(t[1]);
          f.get(r[0]).get(r[1]).f32x4Shuffle([2, 6, 3, 7]).set(t[2]);
          f.get(r[2]).get(r[3]).f32x4Shuffle([2, 6, 3, 7]).set(t[3]);
          const out: [number, number, readonly [number, number, number, number]][] = [
            [0, 1, [0, 1, 4, 5]],
            [0, 1, [2, 3, 6, 7]],
            [2, 3, [0, 1, 4, 5]],
            [2, 3, [2, 3, 6, 7]],
          ];
          for (const [x, y, lanes] of out) {
            f.get(q).get(t[x]).get(t[y]).f32x4Shuffle(lanes).v128Store();
            f.get(q).get(cs).i32Add().set(q);
          }
          for (let k = 0; k < 4; k++) f.get(sp[k]).i32Const(16).i32Add().set(sp[k]);
        });
        // the last W mod 4 columns
        loop(w, () => f.get(w4), () => f.get(W), 1, () => {
          for (let k = 0; k < 4; k++) {
            f.get(q).get(sp[k]).f32Load().f32Store(4 * k);
            f.get(sp[k]).i32Const(4).i32Add().set(sp[k]);
          }
          f.get(q).get(cs).i32Add().set(q);
        });
      });
    });
    // the last C mod 4 channels
    loop(c, () => f.get(c4), () => f.get(C), 1, () => {
      loop(h, zero, () => f.get(H), 1, () => {
        rowStart();
        srcRow();
        loop(i, zero, () => f.get(W), 1, () => {
          f.get(q).get(s).f32Load().f32Store();
          f.get(q).get(cs).i32Add().set(q);
          f.get(s).i32Const(4).i32Add().set(s);
        });
      });
    });
  });
  return f;
}

// xform(src, dst, tilesH, tilesW, n, Cp, Hp, Wp, T): L·X·Lᵀ of each q×q tile
// (tile origin step m) of the staged images, four channels at a time.
function xformKernel(l: readonly (readonly number[])[], m: number): FuncBuilder {
  const r = l.length, q = l[0].length;
  const f = new FuncBuilder(Array(9).fill(I32), []);
  const [src, dst, tilesH, tilesW, n, Cp, Hp, Wp, T] = Array.from(
    { length: 9 },
    (_, i) => f.param(i),
  );
  const img = f.local(I32), ty = f.local(I32), tx = f.local(I32), cb = f.local(I32);
  const cs = f.local(I32), rs = f.local(I32), xs = f.local(I32), base = f.local(I32);
  const vt = f.local(I32), p = f.local(I32);
  const rows: Local[] = Array.from({ length: q }, () => f.local(I32));
  const cols: Local[] = Array.from({ length: q }, () => f.local(I32));
  f.get(Cp).i32Const(4).i32Mul().set(cs); // bytes per pixel
  mulTo(f, rs, Wp, cs); // bytes per staged row
  f.get(T).get(cs).i32Mul().set(xs); // bytes per transform point ξ
  for (let j = 0; j < q; j++) f.get(cs).i32Const(j).i32Mul().set(cols[j]);
  f.get(dst).set(vt);
  const loop = (i: Local, lim: () => void, step: number, body: () => void) => {
    f.i32Const(0).set(i);
    f.loop();
    body();
    f.get(i).i32Const(step).i32Add().tee(i);
    lim();
    f.i32LtS().brIf(0);
    f.end();
  };
  loop(img, () => f.get(n), 1, () => {
    loop(ty, () => f.get(tilesH), 1, () => {
      loop(tx, () => f.get(tilesW), 1, () => {
        // base = src + (img·Hp + ty·m)·rs + tx·m·cs
        f.get(img).get(Hp).i32Mul().get(ty).i32Const(m).i32Mul().i32Add().get(rs).i32Mul();
        f.get(tx).i32Const(m).i32Mul().get(cs).i32Mul().i32Add().get(src).i32Add().set(base);
        loop(cb, () => f.get(cs), 16, () => {
          for (let a = 0; a < q; a++) {
            f.get(base).get(cb).i32Add().i32Const(a).get(rs).i32Mul().i32Add().set(rows[a]);
          }
          f.get(vt).get(cb).i32Add().set(p);
          sandwich(
            f,
            l,
            (a, b) => f.get(rows[a]).get(cols[b]).i32Add().v128Load(),
            (_i, _j, push) => {
              f.get(p);
              push();
              f.v128Store();
              f.get(p).get(xs).i32Add().set(p);
            },
          );
        });
        f.get(vt).get(cs).i32Add().set(vt);
      });
    });
  });
  void r;
  return f;
}

// accum(V, M, dU, T, Ts, Cp, OCp, nxi): dU[ξ] (Cp × OCp) += Σ_{t<T} V[ξ][t]ᵀ M[ξ][t],
// with Ts ≥ T rows between transform points; `fresh`: dU[ξ] = that sum, dU's contents unread
// (a function of its own: a branch on a flag in the loop nest slowed the whole call 1.7%)
function accumKernel(relaxed: boolean, fresh: boolean, shuffle: boolean): FuncBuilder {
  const f = new FuncBuilder(Array(8).fill(I32), []);
  const [V, M, dU, T, Ts, Cp, OCp, nxi] = Array.from({ length: 8 }, (_, i) => f.param(i));
  const xi = f.local(I32), c0 = f.local(I32), k0 = f.local(I32), t = f.local(I32);
  const sa = f.local(I32), sb = f.local(I32), pa0 = f.local(I32), pb0 = f.local(I32);
  const pc0 = f.local(I32), pa = f.local(I32), pb = f.local(I32), pc = f.local(I32);
  const cb = f.local(I32), kb = f.local(I32);
  const acc: Local[][] = Array.from(
    { length: MR },
    () => Array.from({ length: NRV }, () => f.local(V128)),
  );
  const bv: Local[] = Array.from({ length: NRV }, () => f.local(V128));
  const av = f.local(V128), aq = f.local(V128);
  f.get(Cp).i32Const(4).i32Mul().set(sa);
  f.get(OCp).i32Const(4).i32Mul().set(sb);
  f.get(V).set(pa0);
  f.get(M).set(pb0);
  f.get(dU).set(pc0);
  const loop = (i: Local, lim: () => void, step: number, body: () => void) => {
    f.i32Const(0).set(i);
    f.loop();
    body();
    f.get(i).i32Const(step).i32Add().tee(i);
    lim();
    f.i32LtS().brIf(0);
    f.end();
  };
  loop(xi, () => f.get(nxi), 1, () => {
    loop(c0, () => f.get(Cp), MR, () => {
      f.get(c0).i32Const(4).i32Mul().set(cb);
      loop(k0, () => f.get(OCp), NR, () => {
        f.get(k0).i32Const(4).i32Mul().set(kb);
        // pc = pc0 + c0·sb + kb
        f.get(pc0).get(c0).get(sb).i32Mul().i32Add().get(kb).i32Add().set(pc);
        for (let i = 0; i < MR; i++) {
          for (let v = 0; v < NRV; v++) {
            // a fresh dU starts from zeros instead of what it holds (no pass to zero it first)
            if (fresh) f.v128Zero().set(acc[i][v]);
            else f.get(pc).v128Load(16 * v).set(acc[i][v]);
          }
          if (i < MR - 1 && !fresh) f.get(pc).get(sb).i32Add().set(pc);
        }
        f.get(pa0).get(cb).i32Add().set(pa);
        f.get(pb0).get(kb).i32Add().set(pb);
        f.get(T).set(t);
        f.loop();
        for (let v = 0; v < NRV; v++) f.get(pb).v128Load(16 * v).set(bv[v]);
        // on a shared memory, the MR values of V in one load, each broadcast by a shuffle: wasm
        // memory accesses are bounds-checked where V8 has no trap handler (Deno), and on a shared
        // memory each check reloads the memory's size (the whole kernel 1.090 -> 1.035 of the
        // unshared one); on an unshared memory four broadcast loads (1.5% faster there). The
        // values are the same either way, so are the bits.
        if (shuffle) f.get(pa).v128Load().set(aq);
        for (let i = 0; i < MR; i++) {
          if (shuffle) f.get(aq).get(aq).f32x4Shuffle([i, i, i, i]).set(av);
          else f.get(pa).v128Load32Splat(4 * i).set(av);
          for (let v = 0; v < NRV; v++) {
            if (relaxed) f.get(av).get(bv[v]).get(acc[i][v]).f32x4RelaxedMadd();
            else f.get(acc[i][v]).get(av).get(bv[v]).f32x4Mul().f32x4Add();
            f.set(acc[i][v]);
          }
        }
        f.get(pa).get(sa).i32Add().set(pa);
        f.get(pb).get(sb).i32Add().set(pb);
        f.get(t).i32Const(1).i32Sub().tee(t).brIf(0);
        f.end();
        f.get(pc0).get(c0).get(sb).i32Mul().i32Add().get(kb).i32Add().set(pc);
        for (let i = 0; i < MR; i++) {
          for (let v = 0; v < NRV; v++) f.get(pc).get(acc[i][v]).v128Store(16 * v);
          if (i < MR - 1) f.get(pc).get(sb).i32Add().set(pc);
        }
      });
    });
    // next ξ: V and M advance by Ts rows, dU by Cp rows
    f.get(pa0).get(Ts).get(sa).i32Mul().i32Add().set(pa0);
    f.get(pb0).get(Ts).get(sb).i32Mul().i32Add().set(pb0);
    f.get(pc0).get(Cp).get(sb).i32Mul().i32Add().set(pc0);
  });
  return f;
}

// xout(dU, dw, Cp, OCp, parts, count, stride): dw[k][c] (3×3, laid out (OCp, Cp, 9)) =
// Gᵀ S[·][c][k] G, S = (…(dU + P_0) + P_1) + … + P_{count−1}, P_j the array at parts + j·stride
function xoutKernel(gt: readonly (readonly number[])[]): FuncBuilder {
  const a = gt[0].length;
  const f = new FuncBuilder(Array(7).fill(I32), []);
  const [dU, dw, Cp, OCp, parts, count, stride] = Array.from({ length: 7 }, (_, i) => f.param(i));
  const q = f.local(I32), pp = f.local(I32), j = f.local(I32), sum = f.local(V128);
  const c = f.local(I32), kb = f.local(I32), xs = f.local(I32), ks = f.local(I32);
  const p = f.local(I32), ob = f.local(I32), ocb = f.local(I32);
  const lanes: Local[] = Array.from({ length: 4 }, () => f.local(I32));
  const out: Local[] = Array.from({ length: 9 }, () => f.local(V128));
  f.get(Cp).get(OCp).i32Mul().i32Const(4).i32Mul().set(xs); // bytes per ξ
  f.get(Cp).i32Const(36).i32Mul().set(ks); // bytes per output channel k
  f.get(OCp).i32Const(4).i32Mul().set(ocb);
  const loop = (i: Local, lim: () => void, step: number, body: () => void) => {
    f.i32Const(0).set(i);
    f.loop();
    body();
    f.get(i).i32Const(step).i32Add().tee(i);
    lim();
    f.i32LtS().brIf(0);
    f.end();
  };
  loop(c, () => f.get(Cp), 1, () => {
    loop(kb, () => f.get(ocb), 16, () => {
      // dU[ξ][c][k..k+3] at dU + ξ·xs + c·ocb + kb, loaded in ξ order, plus the
      // parts' at the same offset, in order
      const xiPtr = (i0: number, j0: number) => {
        f.get(c).get(ocb).i32Mul().get(kb).i32Add();
        f.get(xs).i32Const(i0 * a + j0).i32Mul().i32Add().set(q);
        f.get(dU).get(q).i32Add().v128Load().set(sum);
        f.get(parts).get(q).i32Add().set(pp);
        f.get(count).set(j);
        f.block().loop();
        f.get(j).i32Eqz().brIf(1);
        f.get(sum).get(pp).v128Load().f32x4Add().set(sum);
        f.get(pp).get(stride).i32Add().set(pp);
        f.get(j).i32Const(1).i32Sub().set(j);
        f.br(0).end().end();
        f.get(sum);
      };
      sandwich(f, gt, xiPtr, (i, j, push) => {
        push();
        f.set(out[i * 3 + j]);
      });
      // output channel k = kb/4 + lane: dw + (k·Cp + c)·36
      f.get(kb).i32Const(4).i32DivU().get(ks).i32Mul().get(c).i32Const(36).i32Mul().i32Add();
      f.get(dw).i32Add().set(ob);
      for (let l = 0; l < 4; l++) {
        f.get(ob).get(ks).i32Const(l).i32Mul().i32Add().set(lanes[l]);
        for (let e = 0; e < 9; e++) {
          f.get(lanes[l]).get(out[e]).f32x4ExtractLane(l).f32Store(4 * e);
        }
      }
      void p;
    });
  });
  return f;
}

/**
 * Builds the module binary, with relaxed-simd FMA in the accumulation or
 * plain mul + add; with `shared`, the imported memory is shared (for arenas
 * in a `SharedArrayBuffer`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.ok(WebAssembly.validate(buildWinogradFilterModule(false)));
 * ```
 */
export function buildWinogradFilterModule(
  relaxed: boolean,
  shared = false,
): Uint8Array<ArrayBuffer> {
  const funcs: FuncBuilder[] = [];
  const add = (f: FuncBuilder, name: string) => {
    f.exportName = name;
    funcs.push(f);
  };
  add(stageKernel(), "stage");
  add(accumKernel(relaxed, false, shared), "accum");
  add(accumKernel(relaxed, true, shared), "accum0");
  for (const m of [2, 4] as WinogradTile[]) {
    const { AT: at, BT: bt, G: g } = winograd(m);
    const aMat = at[0].map((_, j) => at.map((row) => row[j])); // A (α × m)
    const gtMat = g[0].map((_, j) => g.map((row) => row[j])); // Gᵀ (3 × α)
    add(xformKernel(bt, m), `xin${m}`);
    add(xformKernel(aMat, m), `xdy${m}`);
    add(xoutKernel(gtMat), `xout${m}`);
  }
  return encodeModule({ memoryPages: 1, importMemory: true, shared, funcs });
}

/**
 * The text of `winograd_filter_bytes.ts` for the module as built from
 * source now; `build.ts` writes it and `--check` compares it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.match(renderWinogradFilterBytesModule(), /export const WINOGRAD_FILTER_WASM_SIMD/);
 * ```
 */
export function renderWinogradFilterBytesModule(): string {
  const relaxed = buildWinogradFilterModule(true), plain = buildWinogradFilterModule(false);
  const relaxedShared = buildWinogradFilterModule(true, true);
  const plainShared = buildWinogradFilterModule(false, true);
  return `// Generated by ops/kernels/wasm/build.ts from winograd_filter_kernel.ts: do not edit, run \`deno task build:wasm\`.
/**
 * The Winograd filter-gradient WebAssembly module as base64, in two builds,
 * each also with a shared memory import, embedded so that it loads when the library is imported from a URL.
 *
 * @module
 */

${
    constDoc(
      `Winograd filter gradient with relaxed-simd FMA (${relaxed.length} bytes).`,
      "WINOGRAD_FILTER_WASM_RELAXED_SIMD",
      "winograd_filter_bytes.ts",
    )
  }
export const WINOGRAD_FILTER_WASM_RELAXED_SIMD: string = ${base64Literal(relaxed)};

${
    constDoc(
      `Winograd filter gradient with SIMD128 mul + add (${plain.length} bytes).`,
      "WINOGRAD_FILTER_WASM_SIMD",
      "winograd_filter_bytes.ts",
    )
  }
export const WINOGRAD_FILTER_WASM_SIMD: string = ${base64Literal(plain)};

${
    constDoc(
      `Winograd filter gradient with relaxed-simd FMA, shared memory imported, for arenas in a SharedArrayBuffer (${relaxedShared.length} bytes).`,
      "WINOGRAD_FILTER_WASM_RELAXED_SIMD_SHARED",
      "winograd_filter_bytes.ts",
    )
  }
export const WINOGRAD_FILTER_WASM_RELAXED_SIMD_SHARED: string = ${base64Literal(relaxedShared)};

${
    constDoc(
      `Winograd filter gradient with SIMD128 mul + add, shared memory imported (${plainShared.length} bytes).`,
      "WINOGRAD_FILTER_WASM_SIMD_SHARED",
      "winograd_filter_bytes.ts",
    )
  }
export const WINOGRAD_FILTER_WASM_SIMD_SHARED: string = ${base64Literal(plainShared)};
`;
}
