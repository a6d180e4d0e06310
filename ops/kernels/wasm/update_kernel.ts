/**
 * The parallel update's loops for the reduction module (`reduce_kernel.ts`):
 * a unit's gradient made from the tree's top pair of regions (memory 1) in a
 * thread's own scratch (memory 0), and the optimizers' elementwise rules
 * (`train/optim/rules.ts`) on copies of a unit's parameters and state in
 * that scratch.
 *
 * The rules compute as the JavaScript loops do: every operation in float64
 * on float32 values, in the same order, rounded to float32 where JavaScript
 * stores into a `Float32Array` (and read back from there rounded), so the
 * bits are the same. Two elements a round in `f64x2` lanes, the last odd one
 * with scalar `f64`: each rule's body is written once for both.
 *
 * @module
 */

import { F64, FuncBuilder, I32, type Local, V128, type ValType } from "./_asm.ts";

const SCRATCH = 0, REGIONS = 1;

/** Emits one rule body over two lanes (`vec`) or one element. */
class Lanes {
  constructor(readonly f: FuncBuilder, readonly vec: boolean) {}
  /** Pushes `mem[ptr]` as float64(s). */
  ld(ptr: Local, mem = SCRATCH): this {
    const f = this.f.get(ptr);
    if (this.vec) f.v128Load64Zero(0, mem).f64x2PromoteLowF32x4();
    else f.f32Load(0, mem).f64PromoteF32();
    return this;
  }
  /** Pushes float64(`mem[a] + mem[b]`), the sum in float32. */
  ldSum(a: Local, b: Local, mem: number): this {
    const f = this.f;
    if (this.vec) {
      f.get(a).v128Load64Zero(0, mem).get(b).v128Load64Zero(0, mem).f32x4Add()
        .f64x2PromoteLowF32x4();
    } else f.get(a).f32Load(0, mem).get(b).f32Load(0, mem).f32Add().f64PromoteF32();
    return this;
  }
  /** Stores `value()` rounded to float32 at `scratch[ptr]`. */
  st(ptr: Local, value: () => void): this {
    this.f.get(ptr);
    value();
    if (this.vec) this.f.f32x4DemoteF64x2Zero().v128Store64Lane(0, 0, SCRATCH);
    else this.f.f32DemoteF64().f32Store(0, SCRATCH);
    return this;
  }
  /** Rounds the top value to float32 and back, as a store and a load would. */
  round(): this {
    if (this.vec) this.f.f32x4DemoteF64x2Zero().f64x2PromoteLowF32x4();
    else this.f.f32DemoteF64().f64PromoteF32();
    return this;
  }
  /** Pushes the float64 parameter `p` (its splat, `splats[p]`, in vector lanes). */
  k(p: Local): this {
    this.f.get(this.vec ? this.splats.get(p)! : p);
    return this;
  }
  splats = new Map<Local, Local>();
  /** A float64 temporary (a pair of them in vector lanes). */
  tmp(): Local {
    return this.f.local(this.vec ? V128 : F64);
  }
  get(l: Local): this {
    this.f.get(l);
    return this;
  }
  set(l: Local): this {
    this.f.set(l);
    return this;
  }
  tee(l: Local): this {
    this.f.tee(l);
    return this;
  }
  add(): this {
    if (this.vec) this.f.f64x2Add();
    else this.f.f64Add();
    return this;
  }
  sub(): this {
    if (this.vec) this.f.f64x2Sub();
    else this.f.f64Sub();
    return this;
  }
  mul(): this {
    if (this.vec) this.f.f64x2Mul();
    else this.f.f64Mul();
    return this;
  }
  div(): this {
    if (this.vec) this.f.f64x2Div();
    else this.f.f64Div();
    return this;
  }
  sqrt(): this {
    if (this.vec) this.f.f64x2Sqrt();
    else this.f.f64Sqrt();
    return this;
  }
}

/**
 * A function `name(...scalars: f64, ...arrays: i32 byte addresses, n: i32)`
 * running `body` over elements `0..n-1`: two a round, then the odd last one.
 * The addresses advance by 8 bytes a round.
 */
function elementwise(
  name: string,
  scalars: number,
  arrays: number,
  body: (e: Lanes, k: Local[], a: Local[]) => void,
): FuncBuilder {
  const params: ValType[] = [
    ...Array<ValType>(scalars).fill(F64),
    ...Array<ValType>(arrays).fill(I32),
    I32,
  ];
  const f = new FuncBuilder(params, []);
  f.exportName = name;
  const k = Array.from({ length: scalars }, (_, i) => f.param(i));
  const a = Array.from({ length: arrays }, (_, i) => f.param(scalars + i));
  const n = f.param(scalars + arrays);
  const i = f.local(I32), end = f.local(I32);
  const vec = new Lanes(f, true);
  for (const p of k) {
    const s = f.local(V128);
    f.get(p).f64x2Splat().set(s);
    vec.splats.set(p, s);
  }
  f.get(n).i32Const(-2).i32And().set(end);
  f.i32Const(0).set(i);
  f.block();
  f.loop();
  f.get(i).get(end).i32GeS().brIf(1);
  body(vec, k, a);
  for (const p of a) f.get(p).i32Const(8).i32Add().set(p);
  f.get(i).i32Const(2).i32Add().set(i);
  f.br(0);
  f.end();
  f.end();
  f.get(n).i32Const(1).i32And().if();
  body(new Lanes(f, false), k, a);
  f.end();
  return f;
}

/** `scratch[dst] = regions[a] + regions[b]` (float32 sum), four a round. */
function sumTo(): FuncBuilder {
  const f = new FuncBuilder([I32, I32, I32, I32], []);
  f.exportName = "sum_to";
  const dst = f.param(0), a = f.param(1), b = f.param(2), n = f.param(3);
  const i = f.local(I32), end = f.local(I32), all = f.local(I32);
  f.get(n).i32Const(-4).i32And().i32Const(2).i32Shl().set(end);
  f.get(n).i32Const(2).i32Shl().set(all);
  f.i32Const(0).set(i);
  for (const [limit, step] of [[end, 16], [all, 4]] as const) {
    f.block();
    f.loop();
    f.get(i).get(limit).i32GeS().brIf(1);
    f.get(dst).get(i).i32Add();
    if (step === 16) {
      f.get(a).get(i).i32Add().v128Load(0, REGIONS);
      f.get(b).get(i).i32Add().v128Load(0, REGIONS);
      f.f32x4Add().v128Store(0, SCRATCH);
    } else {
      f.get(a).get(i).i32Add().f32Load(0, REGIONS);
      f.get(b).get(i).i32Add().f32Load(0, REGIONS);
      f.f32Add().f32Store(0, SCRATCH);
    }
    f.get(i).i32Const(step).i32Add().set(i);
    f.br(0);
    f.end();
    f.end();
  }
  return f;
}

/**
 * The update's functions, all on memory 0 (a thread's scratch) and reading
 * memory 1 (the regions); addresses in bytes, `n` in elements:
 * - `sum_to(dst, a, b, n)`: `s = g + h`;
 * - `sum_scale_to(k, dst, a, b, n)`: `s = fround(g + h) · k`;
 * - `scale_to(k, dst, a, n)`: `s = g · k` (k = 1: a copy);
 * - `sgd(lr, wd, p, g, n)`: `p -= lr · (g + wd · p)`;
 * - `sgd_m{fresh}{nesterov}(lr, mu, wd, p, g, buf, n)`: SGD with momentum;
 * - `adam` / `adam_shrink(lr, beta1, 1 − beta1, beta2, 1 − beta2, eps, c1, c2, l2, shrink, p, g, m, v, n)`:
 *   Adam, and AdamW's shrink of the weight first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { updateFuncs } from "./update_kernel.ts";
 * const names = updateFuncs().map((f) => f.exportName);
 * assert.deepEqual(names.slice(0, 4), ["sum_to", "sum_scale_to", "scale_to", "sgd"]);
 * assert.ok(names.includes("adam_shrink"));
 * ```
 */
export function updateFuncs(): FuncBuilder[] {
  const out = [sumTo()];
  out.push(elementwise("sum_scale_to", 1, 3, (e, [k], [dst, a, b]) => {
    e.st(dst!, () => e.ldSum(a!, b!, REGIONS).k(k!).mul());
  }));
  out.push(elementwise("scale_to", 1, 2, (e, [k], [dst, a]) => {
    e.st(dst!, () => e.ld(a!, REGIONS).k(k!).mul());
  }));
  // p[i] = p[i] - lr * (g[i] + wd * p[i])
  out.push(elementwise("sgd", 2, 2, (e, [lr, wd], [p, g]) => {
    const pv = e.tmp();
    e.st(p!, () => e.ld(p!).tee(pv).k(lr!).ld(g!).k(wd!).get(pv).mul().add().mul().sub());
  }));
  for (const fresh of [0, 1]) {
    for (const nesterov of [0, 1]) {
      // gi = g + wd * p; buf = fresh ? gi : mu * buf + gi; p -= lr * (nesterov ? gi + mu * buf : buf)
      out.push(elementwise(`sgd_m${fresh}${nesterov}`, 3, 3, (e, [lr, mu, wd], [p, g, buf]) => {
        const pv = e.tmp(), gi = e.tmp(), bv = e.tmp();
        e.ld(p!).set(pv);
        e.ld(g!).k(wd!).get(pv).mul().add().set(gi);
        if (fresh) e.get(gi);
        else e.k(mu!).ld(buf!).mul().get(gi).add();
        e.round().set(bv);
        e.st(buf!, () => e.get(bv));
        e.st(p!, () => {
          e.get(pv).k(lr!);
          if (nesterov) e.get(gi).k(mu!).get(bv).mul().add();
          else e.get(bv);
          e.mul().sub();
        });
      }));
    }
  }
  for (const shrink of [false, true]) {
    out.push(elementwise(
      shrink ? "adam_shrink" : "adam",
      10,
      4,
      (e, [lr, b1, ob1, b2, ob2, eps, c1, c2, l2, sh], [p, g, m, v]) => {
        const pv = e.tmp(), gi = e.tmp(), mv = e.tmp(), vv = e.tmp();
        // AdamW: p = fround(p * shrink), stored before the update reads it again
        e.ld(p!);
        if (shrink) e.k(sh!).mul().round();
        e.set(pv);
        e.ld(g!).k(l2!).get(pv).mul().add().set(gi);
        // m = beta1 * m + (1 - beta1) * gi
        e.k(b1!).ld(m!).mul().k(ob1!).get(gi).mul().add().round().set(mv);
        e.st(m!, () => e.get(mv));
        // v = beta2 * v + (1 - beta2) * gi * gi
        e.k(b2!).ld(v!).mul().k(ob2!).get(gi).mul().get(gi).mul().add().round().set(vv);
        e.st(v!, () => e.get(vv));
        // p = p - (lr * (m / c1)) / (sqrt(v / c2) + eps)
        e.st(
          p!,
          () =>
            e.get(pv).k(lr!).get(mv).k(c1!).div().mul().get(vv).k(c2!).div().sqrt().k(eps!).add()
              .div().sub(),
        );
      },
    ));
  }
  return out;
}
