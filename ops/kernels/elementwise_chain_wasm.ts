// ins, out: float32 views of one executor arena that lives in a WebAssembly memory
/**
 * The WebAssembly SIMD tier of `elementwise_chain`: a program is compiled
 * (once, with the encoder `wasm/_asm.ts`, when a kernel first runs it) into
 * one function that walks the output four elements a vector, and
 * instantiated on each executor arena's memory (`arenaMemory`), so it reads
 * and writes the arena in place (compiled a second time with a shared
 * memory import for arenas in a `SharedArrayBuffer`). It serves the steps whose float32 result it
 * can give bit for bit (NaN payloads aside): add, sub, mul and div as
 * float32 vector arithmetic (exact for float32 operands: the double result
 * rounded once is the float32 operation's), scale and the leaky ReLU slopes
 * and dropout's 1/(1 - p) in float64 lanes rounded to float32 (JavaScript's
 * double product, then `Math.fround`), relu, relu_backward, pow with
 * exponent 1 or 2, constants, and dropout with its mask hash in 32-bit
 * integer lanes (the same hash as `graph/hash.ts`). Inputs must have the
 * output's shape or be scalars, and each row (a sample with dropout, else
 * the whole output) a multiple of four elements long. Anything else returns
 * false and the op runs the JavaScript kernel.
 *
 * @module
 */
import type { Shape } from "../../graph/op.ts";
import { arenaMemory, isSharedBuffer, noteArenaKernel } from "./elementwise_wasm.ts";
import {
  encodeModule,
  FuncBuilder,
  I32,
  type Local,
  uleb,
  V128,
  type ValType,
} from "./wasm/_asm.ts";
import type { ChainRunInfo, ChainStep } from "./elementwise_chain_ref.ts";
import { layout } from "./elementwise_chain_fast.ts";

const F64 = 0x7c as ValType;
const WASM_STEPS = new Set([
  "const",
  "add",
  "sub",
  "mul",
  "div",
  "scale",
  "pow",
  "relu",
  "relu_backward",
  "leaky_relu",
  "leaky_relu_backward",
  "dropout",
]);

function raw(f: FuncBuilder, ...bytes: number[]): FuncBuilder {
  for (const b of bytes) f.code.push(b);
  return f;
}
function simd(f: FuncBuilder, sub: number): FuncBuilder {
  f.code.push(0xfd);
  uleb(f.code, sub);
  return f;
}
function shuffle(f: FuncBuilder, lanes: number[]): FuncBuilder {
  simd(f, 0x0d);
  for (const l of lanes) for (let b = 0; b < 4; b++) f.code.push(l * 4 + b);
  return f;
}
function f64Const(f: FuncBuilder, v: number): FuncBuilder {
  raw(f, 0x44);
  for (const b of new Uint8Array(new Float64Array([v]).buffer)) f.code.push(b);
  return f;
}
const I32X4_SPLAT = 0x11, F64X2_SPLAT = 0x14, V128_XOR = 0x51, V128_BITSELECT = 0x52;
const I32X4_GE_U = 0x40, I32X4_SHR_U = 0xad, I32X4_ADD = 0xae, I32X4_MUL = 0xb5;
const F32X4_DEMOTE = 0x5e, F64X2_PROMOTE = 0x5f, F64X2_MUL = 0xf2;
const F32X4_GT = 0x44, F32X4_ADD = 0xe4, F32X4_SUB = 0xe5, F32X4_MUL = 0xe6, F32X4_DIV = 0xe7;
const F32X4_MAX = 0xe9, V128_AND = 0x4e, V128_OR = 0x50;
const I32_XOR = 0x73, I32_MUL = 0x6c, I32_ADD = 0x6a, I32_SHR_U = 0x76;

function splatI32(f: FuncBuilder, v: number): FuncBuilder {
  return simd(f.i32Const(v | 0), I32X4_SPLAT);
}

// the vector in local v times the float64 splat in local k, rounded to float32 lanes
function timesF64(f: FuncBuilder, v: Local, k: Local, tmp: Local): void {
  simd(f.get(v), F64X2_PROMOTE).get(k);
  simd(simd(f, F64X2_MUL), F32X4_DEMOTE).set(tmp);
  shuffle(f.get(v).get(v), [2, 3, 0, 1]);
  simd(simd(simd(f, F64X2_PROMOTE).get(k), F64X2_MUL), F32X4_DEMOTE);
  f.set(v);
  shuffle(f.get(tmp).get(v), [0, 1, 4, 5]);
}

// h ^= h >>> 16; h *= 0x85ebca6b; h ^= h >>> 13; h *= 0xc2b2ae35; h ^= h >>> 16 (h in local, i32)
function fmixScalar(f: FuncBuilder, h: Local): void {
  const xs = (s: number) => raw(f.get(h).get(h).i32Const(s), I32_SHR_U, I32_XOR).set(h);
  const mul = (k: number) => raw(f.get(h).i32Const(k | 0), I32_MUL).set(h);
  xs(16), mul(0x85ebca6b), xs(13), mul(0xc2b2ae35), xs(16);
}
function fmixVector(f: FuncBuilder, h: Local): void {
  const xs = (s: number) => {
    simd(simd(f.get(h).get(h).i32Const(s), I32X4_SHR_U), V128_XOR).set(h);
  };
  const mul = (k: number) => simd(splatI32(f.get(h), k), I32X4_MUL).set(h);
  xs(16), mul(0x85ebca6b), xs(13), mul(0xc2b2ae35), xs(16);
}

interface Compiled {
  module: WebAssembly.Module;
  dropSteps: number[];
}

/** How an input is read: whole, one value, one value a row (splat), or the same row each row. */
type Kind = "full" | "scalar" | "row" | "col";

function generate(
  steps: readonly ChainStep[],
  kinds: readonly Kind[],
  shared: boolean,
): Compiled {
  const nIn = kinds.length;
  const dropSteps = steps.flatMap((s, k) => (s.op === "dropout" ? [k] : []));
  // out, ins, rows, per, step, offset, then per dropout: seed, T, keep scale, m2, m0
  const params: ValType[] = [I32, ...kinds.map(() => I32), I32, I32, I32, I32];
  for (const _ of dropSteps) params.push(I32, I32, F64, I32, I32);
  const f = new FuncBuilder(params, []);
  f.exportName = "chain";
  const pOut = 0, pRows = nIn + 1, pPer = nIn + 2, pStep = nIn + 3, pOff = nIn + 4;
  const pDrop = (d: number, j: number) => nIn + 5 + 5 * d + j;
  const row = f.local(I32), e = f.local(I32), at = f.local(I32), base = f.local(I32);
  const h = f.local(I32), ev = f.local(V128), tmp = f.local(V128), hv = f.local(V128);
  const x = kinds.map(() => f.local(V128));
  const t = steps.map(() => f.local(V128));
  const consts = new Map<string, Local>();
  const splatF32 = (v: number): Local => {
    const key = `f32:${Object.is(v, -0) ? "-0" : v}`;
    let l = consts.get(key);
    if (l === undefined) {
      l = f.local(V128);
      consts.set(key, l);
      f.f32Const(v).f32x4Splat().set(l);
    }
    return l;
  };
  const splatF64 = (v: number): Local => {
    const key = `f64:${Object.is(v, -0) ? "-0" : v}`;
    let l = consts.get(key);
    if (l === undefined) {
      l = f.local(V128);
      consts.set(key, l);
      simd(f64Const(f, v), F64X2_SPLAT).set(l);
    }
    return l;
  };
  // the product with a constant, in float32 lanes when the constant is a float32 (then exact)
  const times = (v: Local, k: number, into: Local) => {
    if (Math.fround(k) === k) {
      f.get(v).get(splatF32(k));
      simd(f, F32X4_MUL).set(into);
    } else {
      f.get(v).set(into);
      timesF64(f, into, splatF64(k), tmp);
      f.set(into);
    }
  };
  const zero = splatF32(0);
  // every constant splat before the loops
  for (const s of steps) {
    const a = s.attrs ?? {};
    if (s.op === "const") splatF32(Math.fround(a.value!));
    const k = s.op === "scale" ? a.factor : s.op.startsWith("leaky") ? a.slope : undefined;
    if (k !== undefined) void (Math.fround(k) === k ? splatF32(k) : splatF64(k));
  }
  // per dropout step: the keep scale's splat, T's, m2's, m0's and the row's prefix
  const drop = dropSteps.map((_, d) => {
    const ks = f.local(V128), tv = f.local(V128), m2 = f.local(V128), m0 = f.local(V128);
    const pre = f.local(V128);
    simd(f.get(pDrop(d, 2)), F64X2_SPLAT).set(ks);
    simd(f.get(pDrop(d, 1)), I32X4_SPLAT).set(tv);
    simd(f.get(pDrop(d, 3)), I32X4_SPLAT).set(m2);
    simd(f.get(pDrop(d, 4)), I32X4_SPLAT).set(m0);
    return { ks, tv, m2, m0, pre };
  });
  kinds.forEach((k, i) => {
    if (k === "scalar") f.get(1 + i).v128Load32Splat().set(x[i]!);
  });
  f.i32Const(0).set(row);
  f.block().loop();
  f.get(row).get(pRows).i32GeS().brIf(1);
  f.get(row).get(pPer).i32Mul().i32Const(4).i32Mul().set(base);
  dropSteps.forEach((_, d) => {
    // hash4Prefix(seed, step, offset + row)
    raw(f.i32Const(0x9e3779b9 | 0).get(pDrop(d, 0)), I32_XOR).set(h);
    raw(f.get(h).get(pStep).i32Const(0x85ebca6b | 0), I32_XOR);
    raw(f.i32Const(0xcc9e2d51 | 0), I32_MUL, I32_ADD).set(h);
    fmixScalar(f, h);
    raw(f.get(h).get(pOff).get(row), I32_ADD).i32Const(0xc2b2ae35 | 0);
    raw(f, I32_XOR).i32Const(0x1b873593 | 0);
    raw(f, I32_MUL, I32_ADD).set(h);
    fmixScalar(f, h);
    simd(f.get(h), I32X4_SPLAT).set(drop[d]!.pre);
  });
  kinds.forEach((k, i) => {
    if (k === "row") {
      f.get(1 + i).get(row).i32Const(4).i32Mul().i32Add().v128Load32Splat().set(x[i]!);
    }
  });
  // ev = [0, 1, 2, 3]
  simd(f, 0x0c);
  for (const v of [0, 1, 2, 3]) for (let b = 0; b < 4; b++) f.code.push(b === 0 ? v : 0);
  f.set(ev);
  f.i32Const(0).set(e);
  f.block().loop();
  f.get(e).get(pPer).i32GeS().brIf(1);
  f.get(base).get(e).i32Const(4).i32Mul().i32Add().set(at);
  kinds.forEach((k, i) => {
    if (k === "full") f.get(1 + i).get(at).i32Add().v128Load().set(x[i]!);
    if (k === "col") f.get(1 + i).get(e).i32Const(4).i32Mul().i32Add().v128Load().set(x[i]!);
  });
  const val = (a: number) => (a < nIn ? x[a]! : t[a - nIn]!);
  let d = 0;
  steps.forEach((s, k) => {
    const a = s.attrs ?? {};
    const p = s.args.map(val);
    const out = t[k]!;
    const bin = (code: number) => simd(f.get(p[0]!).get(p[1]!), code).set(out);
    switch (s.op) {
      case "const":
        f.get(splatF32(Math.fround(a.value!))).set(out);
        break;
      case "add":
        bin(F32X4_ADD);
        break;
      case "sub":
        bin(F32X4_SUB);
        break;
      case "mul":
        bin(F32X4_MUL);
        break;
      case "div":
        bin(F32X4_DIV);
        break;
      case "scale":
        times(p[0]!, a.factor!, out);
        break;
      case "pow":
        if (a.exponent === 1) f.get(p[0]!).set(out);
        else simd(f.get(p[0]!).get(p[0]!), F32X4_MUL).set(out);
        break;
      case "relu":
        simd(f.get(p[0]!).get(zero), F32X4_MAX).set(out);
        break;
      case "relu_backward":
        simd(simd(f.get(p[1]!).get(p[0]!).get(zero), F32X4_GT), V128_AND).set(out);
        break;
      case "leaky_relu":
        times(p[0]!, a.slope!, out);
        f.get(p[0]!).get(out);
        simd(simd(f.get(p[0]!).get(zero), F32X4_GT), V128_BITSELECT).set(out);
        break;
      case "leaky_relu_backward":
        times(p[1]!, a.slope!, out);
        f.get(p[1]!).get(out);
        simd(simd(f.get(p[0]!).get(zero), F32X4_GT), V128_BITSELECT).set(out);
        break;
      case "dropout": {
        const dr = drop[d++]!;
        // hash4Finish(prefix, e) for the four elements
        simd(splatI32(f.get(ev), 0x27d4eb2f), V128_XOR);
        simd(splatI32(f, 0x165667b1), I32X4_MUL);
        simd(f.get(dr.pre), I32X4_ADD).set(hv);
        fmixVector(f, hv);
        // kept where the mode is "mask" and hash >= T, or everywhere in evaluation
        simd(f.get(hv).get(dr.tv), I32X4_GE_U);
        simd(simd(f.get(dr.m2), V128_AND).get(dr.m0), V128_OR).set(hv);
        f.get(p[0]!).set(out);
        timesF64(f, out, dr.ks, tmp);
        simd(f.get(hv), V128_AND).set(out);
        break;
      }
    }
  });
  f.get(pOut).get(at).i32Add().get(t.at(-1)!).v128Store();
  simd(splatI32(f.get(ev), 4), I32X4_ADD).set(ev);
  f.get(e).i32Const(4).i32Add().set(e);
  f.br(0).end().end();
  f.get(row).i32Const(1).i32Add().set(row);
  f.br(0).end().end();
  const bytes = encodeModule({ memoryPages: 1, importMemory: true, shared, funcs: [f] });
  return { module: new WebAssembly.Module(bytes), dropSteps };
}

type ChainFn = (...args: number[]) => void;
interface Prepared {
  fn: ChainFn;
  args: number[];
  full: number;
  dropSteps: number[];
  nIn: number;
}

const modules = new Map<string, Compiled>();
const instances = new WeakMap<ArrayBufferLike, Map<string, ChainFn>>();
// per inShapes array (an executor's node context keeps its own): the attrs,
// outShape and arena prepared for, and the result
const prepared = new WeakMap<
  readonly Shape[],
  { attrs: object; outShape: Shape; buf: ArrayBufferLike; p: Prepared | null }
>();
let simdOk: boolean | undefined;

function prepare(
  steps: readonly ChainStep[],
  inShapes: readonly Shape[],
  outShape: Shape,
  buf: ArrayBufferLike,
): Prepared | null {
  if (!steps.every((s) => WASM_STEPS.has(s.op))) return null;
  if (steps.some((s) => s.op === "pow" && s.attrs!.exponent !== 1 && s.attrs!.exponent !== 2)) {
    return null;
  }
  const mem = arenaMemory(buf);
  if (!mem) return null;
  let n = 1;
  for (const v of outShape) n *= v;
  // rows: the samples (axis 0) when dropout or a per-row or per-column input needs them
  const r0 = outShape.length === 0 ? 1 : outShape[0]!;
  const lays = inShapes.map((s) => layout(s, outShape));
  if (lays.some((l) => l === null)) return null;
  const whole = lays.every((l) => l!.mid === 1 || (l!.inner === 1 && l!.mid === n));
  const hasDrop = steps.some((s) => s.op === "dropout");
  const rows = whole && !hasDrop ? 1 : r0;
  const per = rows === 0 ? 0 : n / rows;
  const kinds: Kind[] = [];
  for (const l of lays) {
    const { inner, mid } = l!;
    if (mid === 1) kinds.push("scalar");
    else if (inner === 1 && mid === n) kinds.push("full");
    else if (inner === per && mid === rows) kinds.push("row");
    else if (inner === 1 && mid === per) kinds.push("col");
    else return null;
  }
  if (per % 4 !== 0 || n === 0) return null;
  if (simdOk === undefined) {
    simdOk = typeof WebAssembly === "object" &&
      WebAssembly.validate(encodeModule({ memoryPages: 1, funcs: [simdProbe()] }));
  }
  if (!simdOk) return null;
  const shared = isSharedBuffer(buf);
  const key = `${kinds.join()}|${JSON.stringify(steps)}`;
  const modKey = shared ? `shared|${key}` : key;
  let c = modules.get(modKey);
  if (!c) modules.set(modKey, c = generate(steps, kinds, shared));
  let byKey = instances.get(buf);
  if (!byKey) instances.set(buf, byKey = new Map());
  let fn = byKey.get(key);
  if (!fn) {
    const inst = new WebAssembly.Instance(c.module, { env: { mem } });
    fn = inst.exports.chain as ChainFn;
    byKey.set(key, fn);
    noteArenaKernel(buf, "elementwise_chain");
  }
  const args = new Array<number>(1 + inShapes.length + 4 + 5 * c.dropSteps.length).fill(0);
  args[inShapes.length + 1] = rows;
  args[inShapes.length + 2] = per;
  return { fn, args, full: n, dropSteps: c.dropSteps, nIn: inShapes.length };
}

function simdProbe(): FuncBuilder {
  const f = new FuncBuilder([], []);
  f.v128Zero().drop();
  return f;
}

/**
 * The program `steps` over float32 `ins` into `out` in one pass of a
 * WebAssembly SIMD function compiled for it (see the module notes). Returns
 * false, doing nothing, when it cannot serve the call: a step or broadcast
 * it does not handle, a row length not a multiple of four, an array outside
 * an executor's wasm arena, or no WebAssembly SIMD.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chainWasm } from "./elementwise_chain_wasm.ts";
 * import { wasmArenaBuffer } from "./elementwise_wasm.ts";
 * const buf = wasmArenaBuffer(64);
 * const attrs = { steps: [{ op: "add", args: [0, 1] }, { op: "relu", args: [2] }] };
 * const run = { training: true, step: 0, sampleOffset: 0 };
 * if (buf) {
 *   const a = new Float32Array(buf, 0, 4).fill(1), b = new Float32Array(buf, 16, 4);
 *   b.set([-2, 0, 1, 2]);
 *   const y = new Float32Array(buf, 32, 4);
 *   assert.ok(chainWasm(attrs, [a, b], [[4], [4]], y, [4], run));
 *   assert.deepEqual([...y], [0, 1, 2, 3]);
 * }
 * // a plain array is not an arena
 * const y = new Float32Array(4);
 * assert.equal(chainWasm(attrs, [y, y], [[4], [4]], y, [4], run), false);
 * ```
 */
export function chainWasm(
  attrs: { steps: readonly ChainStep[] },
  ins: readonly Float32Array[],
  inShapes: readonly Shape[],
  out: Float32Array,
  outShape: Shape,
  run: ChainRunInfo,
): boolean {
  const buf = out.buffer;
  for (const a of ins) if (a.buffer !== buf) return false;
  let c = prepared.get(inShapes);
  if (!c || c.attrs !== attrs || c.outShape !== outShape || c.buf !== buf) {
    c = { attrs, outShape, buf, p: prepare(attrs.steps, inShapes, outShape, buf) };
    prepared.set(inShapes, c);
  }
  const p = c.p;
  if (!p) return false;
  const args = p.args;
  args[0] = out.byteOffset;
  for (let k = 0; k < p.nIn; k++) args[1 + k] = ins[k]!.byteOffset;
  args[p.nIn + 3] = run.step | 0;
  args[p.nIn + 4] = run.sampleOffset | 0;
  for (let d = 0; d < p.dropSteps.length; d++) {
    const a = attrs.steps[p.dropSteps[d]!]!.attrs!;
    const prob = a.p!;
    const at = p.nIn + 5 + 5 * d;
    const t = Math.ceil(prob * 4294967296);
    const mode = !run.training || prob === 0 ? 0 : prob === 1 || t > 0xffffffff ? 1 : 2;
    args[at] = a.seed! | 0;
    args[at + 1] = t | 0;
    args[at + 2] = mode === 2 ? 1 / (1 - prob) : 1;
    args[at + 3] = mode === 2 ? -1 : 0;
    args[at + 4] = mode === 0 ? -1 : 0;
  }
  p.fn(...args);
  return true;
}
