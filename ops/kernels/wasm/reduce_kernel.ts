/**
 * The gradient reduction's WebAssembly module: the float loops of the
 * worker pool's gradient tree (`train/parallel/reduce.ts`) with SIMD128, on
 * two imported memories (multi-memory): memory 0 `env.arena`, an executor's
 * arena (where a micro-batch's gradients are), and memory 1 `env.regions`,
 * the shared gradient regions. Addresses are byte offsets, `n` counts floats.
 *
 * The same bits as the JavaScript loops they replace:
 * - `scale(w, src, dst, n)`: `regions[dst] = w · arena[src]`, float32
 *   multiply. JavaScript multiplies in float64 and rounds once; when `w` is a
 *   float32 the float64 product of two float32s is exact, so rounding it is
 *   the float32 product.
 * - `scale64(w, src, dst, n)`: the same with a float64 `w` (a share like
 *   32/100 is no float32): promote, multiply in float64, round, as JavaScript does.
 * - `add_scaled(w, src, dst, n)` / `add_scaled64`: `regions[dst] += round(w · arena[src])`.
 *   JavaScript adds the two float32s in float64 and rounds once: float64 has
 *   53 ≥ 2·24 + 2 bits, so that double rounding equals the float32 sum.
 * - `add(a, b, n)`: `regions[a] += regions[b]`.
 *
 * With a thread's own scratch memory as memory 0, the parallel update's
 * functions of `update_kernel.ts` (a unit's last sum, the optimizers' rules).
 *
 * No fused multiply-add anywhere: it would skip the product's rounding.
 *
 * @module
 */

import {
  encodeModule,
  F32,
  F64,
  FuncBuilder,
  I32,
  type Local,
  SHARED_MAX_PAGES,
  V128,
} from "./_asm.ts";
import { base64Literal, constDoc } from "./_render.ts";
import { updateFuncs } from "./update_kernel.ts";

const ARENA = 0, REGIONS = 1;

/** Emits `for (i = 0; i < end; i += step) body()` over byte offsets. */
function loopBytes(f: FuncBuilder, i: Local, end: Local, step: number, body: () => void): void {
  f.block();
  f.loop();
  f.get(i).get(end).i32GeS().brIf(1);
  body();
  f.get(i).i32Const(step).i32Add().set(i);
  f.br(0);
  f.end();
  f.end();
}

/**
 * `regions[dst + i] (+)= w · arena[src + i]` for `i < n`, `w` of type
 * `wide ? f64 : f32`: four lanes a round, then one at a time.
 */
function scaleFunc(name: string, wide: boolean, add: boolean): FuncBuilder {
  const f = new FuncBuilder([wide ? F64 : F32, I32, I32, I32], []);
  f.exportName = name;
  const w = f.param(0), src = f.param(1), dst = f.param(2), n = f.param(3);
  const i = f.local(I32), end = f.local(I32), all = f.local(I32);
  const wv = f.local(V128), v = f.local(V128);
  f.get(w);
  if (wide) f.f64x2Splat();
  else f.f32x4Splat();
  f.set(wv);
  f.get(n).i32Const(-4).i32And().i32Const(2).i32Shl().set(end);
  f.get(n).i32Const(2).i32Shl().set(all);
  f.i32Const(0).set(i);
  loopBytes(f, i, end, 16, () => {
    f.get(dst).get(i).i32Add();
    if (add) f.get(dst).get(i).i32Add().v128Load(0, REGIONS);
    if (wide) {
      f.get(src).get(i).i32Add().v128Load(0, ARENA).set(v);
      f.get(v).f64x2PromoteLowF32x4().get(wv).f64x2Mul().f32x4DemoteF64x2Zero();
      f.get(v).get(v).f32x4Shuffle([2, 3, 2, 3]).f64x2PromoteLowF32x4().get(wv).f64x2Mul()
        .f32x4DemoteF64x2Zero();
      f.f32x4Shuffle([0, 1, 4, 5]);
    } else {
      f.get(wv).get(src).get(i).i32Add().v128Load(0, ARENA).f32x4Mul();
    }
    // the region's value first, as in `g[at + j] + fround(w * src[j])`
    if (add) f.f32x4Add();
    f.v128Store(0, REGIONS);
  });
  loopBytes(f, i, all, 4, () => {
    f.get(dst).get(i).i32Add();
    if (add) f.get(dst).get(i).i32Add().f32Load(0, REGIONS);
    f.get(w).get(src).get(i).i32Add().f32Load(0, ARENA);
    if (wide) f.f64PromoteF32().f64Mul().f32DemoteF64();
    else f.f32Mul();
    if (add) f.f32Add();
    f.f32Store(0, REGIONS);
  });
  return f;
}

/** `regions[a + i] += regions[b + i]` for `i < n`. */
function addFunc(): FuncBuilder {
  const f = new FuncBuilder([I32, I32, I32], []);
  f.exportName = "add";
  const a = f.param(0), b = f.param(1), n = f.param(2);
  const i = f.local(I32), end = f.local(I32), all = f.local(I32);
  f.get(n).i32Const(-4).i32And().i32Const(2).i32Shl().set(end);
  f.get(n).i32Const(2).i32Shl().set(all);
  f.i32Const(0).set(i);
  loopBytes(f, i, end, 16, () => {
    f.get(a).get(i).i32Add();
    f.get(a).get(i).i32Add().v128Load(0, REGIONS);
    f.get(b).get(i).i32Add().v128Load(0, REGIONS);
    f.f32x4Add().v128Store(0, REGIONS);
  });
  loopBytes(f, i, all, 4, () => {
    f.get(a).get(i).i32Add();
    f.get(a).get(i).i32Add().f32Load(0, REGIONS);
    f.get(b).get(i).i32Add().f32Load(0, REGIONS);
    f.f32Add().f32Store(0, REGIONS);
  });
  return f;
}

/**
 * Largest shared regions memory the module accepts, in 64 KiB pages (4 GiB).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { REGION_MAX_PAGES } from "./reduce_kernel.ts";
 * assert.equal(REGION_MAX_PAGES * 65536, 2 ** 32);
 * ```
 */
export const REGION_MAX_PAGES = 65536;

/**
 * Builds the module: imports `env.arena` (any unshared memory, or with
 * `sharedArena` any shared one: an arena in a `SharedArrayBuffer`) and
 * `env.regions` (a shared memory of at most {@linkcode REGION_MAX_PAGES}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildReduceModule } from "./reduce_kernel.ts";
 * const bytes = buildReduceModule();
 * assert.deepEqual([...bytes.subarray(0, 4)], [0, 0x61, 0x73, 0x6d]);
 * assert.ok(WebAssembly.validate(bytes));
 * ```
 */
export function buildReduceModule(sharedArena = false): Uint8Array<ArrayBuffer> {
  return encodeModule({
    memoryPages: 0,
    memoryImports: [
      sharedArena
        ? { name: "arena", pages: 0, shared: true, maxPages: SHARED_MAX_PAGES }
        : { name: "arena", pages: 0 },
      { name: "regions", pages: 0, shared: true, maxPages: REGION_MAX_PAGES },
    ],
    funcs: [
      scaleFunc("scale", false, false),
      scaleFunc("scale64", true, false),
      scaleFunc("add_scaled", false, true),
      scaleFunc("add_scaled64", true, true),
      addFunc(),
      ...updateFuncs(),
    ],
  });
}

/**
 * The text of `reduce_bytes.ts`, written and checked by `build.ts`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderReduceBytesModule } from "./reduce_kernel.ts";
 * assert.match(renderReduceBytesModule(), /export const REDUCE_WASM/);
 * ```
 */
export function renderReduceBytesModule(): string {
  const bytes = buildReduceModule(), shared = buildReduceModule(true);
  return `// Generated by ops/kernels/wasm/build.ts from reduce_kernel.ts: do not edit, run \`deno task build:wasm\`.
/**
 * The gradient reduction's WebAssembly module as base64, embedded so that it
 * loads when the library is imported from a URL.
 *
 * @module
 */

${
    constDoc(
      `Leaf scale/add and region add with SIMD128, two memories imported (${bytes.length} bytes).`,
      "REDUCE_WASM",
      "reduce_bytes.ts",
    )
  }
export const REDUCE_WASM: string = ${base64Literal(bytes)};

${
    constDoc(
      `The same with the arena imported as a shared memory, for arenas in a SharedArrayBuffer (${shared.length} bytes).`,
      "REDUCE_WASM_SHARED_ARENA",
      "reduce_bytes.ts",
    )
  }
export const REDUCE_WASM_SHARED_ARENA: string = ${base64Literal(shared)};
`;
}
