// a: (M, K), b: (N, K) -> c: (M, N) = a · bᵀ, all row-major, float32
/**
 * Source of `gemm_nt`, the A·Bᵀ product for operands whose rows are both
 * contiguous along K: each C entry is a dot product, vectorised along K,
 * so neither operand needs packing. It serves the shapes where packing
 * costs more than it saves: a small M or N against a long K, as in the
 * filter gradient of a convolution (K = OH·OW) and a Linear layer's forward
 * pass (K = in features).
 *
 * `gemm_nt(a, b, c, m, n, k, add)`: byte addresses; with add ≠ 0 the
 * product is added to C.
 *
 * @module
 */

import { F32, FuncBuilder, I32, type Local, V128 } from "./_asm.ts";

/**
 * Tile of the dot kernel: MR rows of A against NR rows of B.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NT_MR, NT_NR, ntTiles } from "./gemm_nt_kernel.ts";
 * assert.equal(NT_MR * NT_NR, 8); // 8 accumulators of four lanes
 * assert.equal(ntTiles(false).length, 4);
 * ```
 */
export const NT_MR = 4;
/**
 * See {@link NT_MR}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NT_NR } from "./gemm_nt_kernel.ts";
 * assert.equal(NT_NR, 2);
 * ```
 */
export const NT_NR = 2;

// A B row block of about this many bytes stays in L2 while every A tile passes.
const B_BLOCK_BYTES = 196608;

// tile(a, b, c, k, ld, ldc, add): C[mr×nr at c] (+)= A[mr rows at a] · B[nr rows at b]ᵀ
function dotTile(mr: number, nr: number, relaxed: boolean): FuncBuilder {
  const f = new FuncBuilder([I32, I32, I32, I32, I32, I32, I32], []);
  const a = f.param(0), b = f.param(1), c = f.param(2), k = f.param(3), ld = f.param(4);
  const ldc = f.param(5), add = f.param(6);
  const ap: Local[] = [], bp: Local[] = [];
  for (let i = 0; i < mr; i++) ap.push(f.local(I32));
  for (let j = 0; j < nr; j++) bp.push(f.local(I32));
  const acc: Local[][] = [], sum: Local[][] = [];
  for (let i = 0; i < mr; i++) {
    acc.push([]);
    for (let j = 0; j < nr; j++) acc[i].push(f.local(V128)); // locals start at zero
  }
  for (let i = 0; i < mr; i++) {
    sum.push([]);
    for (let j = 0; j < nr; j++) sum[i].push(f.local(F32));
  }
  const bv: Local[] = [];
  for (let j = 0; j < nr; j++) bv.push(f.local(V128));
  const av = f.local(V128);
  const as = f.local(F32);
  const bs: Local[] = [];
  for (let j = 0; j < nr; j++) bs.push(f.local(F32));
  const iters = f.local(I32), cp = f.local(I32);

  f.get(a).set(ap[0]);
  for (let i = 1; i < mr; i++) f.get(ap[i - 1]).get(ld).i32Add().set(ap[i]);
  f.get(b).set(bp[0]);
  for (let j = 1; j < nr; j++) f.get(bp[j - 1]).get(ld).i32Add().set(bp[j]);

  const vecStep = (off: number) => {
    for (let j = 0; j < nr; j++) f.get(bp[j]).v128Load(off).set(bv[j]);
    for (let i = 0; i < mr; i++) {
      f.get(ap[i]).v128Load(off).set(av);
      for (let j = 0; j < nr; j++) {
        if (relaxed) f.get(av).get(bv[j]).get(acc[i][j]).f32x4RelaxedMadd();
        else f.get(acc[i][j]).get(av).get(bv[j]).f32x4Mul().f32x4Add();
        f.set(acc[i][j]);
      }
    }
  };
  const advance = (bytes: number) => {
    for (const p of [...ap, ...bp]) f.get(p).i32Const(bytes).i32Add().set(p);
  };
  // Two vectors (8 floats) per iteration, then one more vector if k & 4.
  f.get(k).i32Const(3).i32ShrU().set(iters);
  f.block();
  f.get(iters).i32Eqz().brIf(0);
  f.loop();
  vecStep(0);
  vecStep(16);
  advance(32);
  f.get(iters).i32Const(1).i32Sub().tee(iters).brIf(0);
  f.end();
  f.end();
  f.get(k).i32Const(4).i32And().if();
  vecStep(0);
  advance(16);
  f.end();
  // Horizontal sums, pairwise.
  for (let i = 0; i < mr; i++) {
    for (let j = 0; j < nr; j++) {
      f.get(acc[i][j]).f32x4ExtractLane(0).get(acc[i][j]).f32x4ExtractLane(1).f32Add();
      f.get(acc[i][j]).f32x4ExtractLane(2).get(acc[i][j]).f32x4ExtractLane(3).f32Add();
      f.f32Add().set(sum[i][j]);
    }
  }
  // The k % 4 tail, scalar.
  f.get(k).i32Const(3).i32And().set(iters);
  f.block();
  f.get(iters).i32Eqz().brIf(0);
  f.loop();
  for (let j = 0; j < nr; j++) f.get(bp[j]).f32Load().set(bs[j]);
  for (let i = 0; i < mr; i++) {
    f.get(ap[i]).f32Load().set(as);
    for (let j = 0; j < nr; j++) {
      f.get(sum[i][j]).get(as).get(bs[j]).f32Mul().f32Add().set(sum[i][j]);
    }
  }
  advance(4);
  f.get(iters).i32Const(1).i32Sub().tee(iters).brIf(0);
  f.end();
  f.end();
  // C = sum, or C += sum.
  f.get(c).set(cp);
  for (let i = 0; i < mr; i++) {
    for (let j = 0; j < nr; j++) {
      f.get(cp).get(sum[i][j]);
      f.get(cp).f32Load(4 * j).f32Const(0).get(add).select().f32Add();
      f.f32Store(4 * j);
    }
    if (i < mr - 1) f.get(cp).get(ldc).i32Add().set(cp);
  }
  return f;
}

/**
 * The tile functions `ntDriver` calls, in the order it expects their indices.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ntTiles } from "./gemm_nt_kernel.ts";
 * const tiles = ntTiles(false);
 * assert.equal(tiles.length, 4);
 * assert.ok(tiles.every((f) => f.code.length > 0));
 * ```
 */
export function ntTiles(relaxed: boolean): FuncBuilder[] {
  return [
    dotTile(NT_MR, NT_NR, relaxed),
    dotTile(NT_MR, 1, relaxed),
    dotTile(1, NT_NR, relaxed),
    dotTile(1, 1, relaxed),
  ];
}

/**
 * gemm_nt(a, b, c, m, n, k, add), calling the four `ntTiles` functions,
 * which sit at indices `first` … `first + 3` of the module.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ntDriver } from "./gemm_nt_kernel.ts";
 * const f = ntDriver(1);
 * assert.equal(f.params.length, 7); // a, b, c, m, n, k, add
 * assert.deepEqual(f.results, []);
 * ```
 */
export function ntDriver(first: number): FuncBuilder {
  const f = new FuncBuilder([I32, I32, I32, I32, I32, I32, I32], []);
  const a = f.param(0), b = f.param(1), c = f.param(2), m = f.param(3), n = f.param(4);
  const k = f.param(5), add = f.param(6);
  const ld = f.local(I32), ldc = f.local(I32), nb = f.local(I32), jb = f.local(I32);
  const je = f.local(I32), i0 = f.local(I32), j0 = f.local(I32);

  f.get(k).i32Const(4).i32Mul().set(ld);
  f.get(n).i32Const(4).i32Mul().set(ldc);
  // nb = max(NR, floor(B_BLOCK_BYTES / ld / NR) · NR): B rows per L2 block.
  f.i32Const(B_BLOCK_BYTES).get(ld).i32DivU().i32Const(NT_NR).i32DivU().i32Const(NT_NR).i32Mul();
  f.set(nb);
  f.get(nb).i32Const(NT_NR).get(nb).i32Const(NT_NR).i32GtS().select().set(nb);

  // while (cond) { body }
  const whileLoop = (cond: () => void, body: () => void) => {
    f.block();
    f.loop();
    cond();
    f.i32Eqz().brIf(1);
    body();
    f.br(0);
    f.end();
    f.end();
  };
  const tileCall = (fn: number) => {
    // a + i0·ld, b + j0·ld, c + (i0·n + j0)·4, k, ld, ldc, add
    f.get(a).get(i0).get(ld).i32Mul().i32Add();
    f.get(b).get(j0).get(ld).i32Mul().i32Add();
    f.get(c).get(i0).get(n).i32Mul().get(j0).i32Add().i32Const(4).i32Mul().i32Add();
    f.get(k).get(ld).get(ldc).get(add).call(fn);
  };
  const rowOfTiles = (wide: number, narrow: number) => {
    f.get(jb).set(j0);
    whileLoop(() => f.get(j0).i32Const(NT_NR).i32Add().get(je).i32LeS(), () => {
      tileCall(wide);
      f.get(j0).i32Const(NT_NR).i32Add().set(j0);
    });
    whileLoop(() => f.get(j0).get(je).i32LtS(), () => {
      tileCall(narrow);
      f.get(j0).i32Const(1).i32Add().set(j0);
    });
  };

  f.i32Const(0).set(jb);
  whileLoop(() => f.get(jb).get(n).i32LtS(), () => {
    f.get(jb).get(nb).i32Add().set(je);
    f.get(je).get(n).get(je).get(n).i32LtS().select().set(je);
    f.i32Const(0).set(i0);
    whileLoop(() => f.get(i0).i32Const(NT_MR).i32Add().get(m).i32LeS(), () => {
      rowOfTiles(first, first + 1);
      f.get(i0).i32Const(NT_MR).i32Add().set(i0);
    });
    whileLoop(() => f.get(i0).get(m).i32LtS(), () => {
      rowOfTiles(first + 2, first + 3);
      f.get(i0).i32Const(1).i32Add().set(i0);
    });
    f.get(jb).get(nb).i32Add().set(jb);
  });
  return f;
}
