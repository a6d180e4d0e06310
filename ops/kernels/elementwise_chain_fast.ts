// The float32 tier of `elementwise_chain`: each program is compiled once
// into a JavaScript function (new Function) with one loop over the output,
// every step a local variable computed with the formula of the unfused op's
// float32 kernel and rounded with Math.fround, so the result equals the
// unfused composition bit for bit (the same double expression, the same
// rounding), transcendental steps included. The loop runs over the output
// as rows of its last axis; an input is read directly (same shape), as a
// hoisted scalar, once per row (constant along the last axis, like a
// [N, 1] statistic) or at a row base (a trailing-axes tensor like a [C]
// bias). Other broadcasts return false and the op runs the interpreter.
// Tested against the reference (elementwise_chain_ref.ts) in
// tests/ops/kernels/elementwise_chain_fast_test.ts.
import type { Shape } from "../../graph/op.ts";
import { hash4Finish, hash4Prefix } from "../../graph/hash.ts";
import { cdfApprox, INV_SQRT_2PI } from "./activation_fast.ts";
import type { ChainRunInfo, ChainStep } from "./elementwise_chain_ref.ts";

/** How an input is read in the row loop. */
type Kind = "full" | "scalar" | "row" | "col";

type Compiled = (
  ins: readonly Float32Array[],
  out: Float32Array,
  outer: number,
  inner: number,
  par: Float64Array,
  drop: Float64Array,
  step: number,
  offset: number,
  per: number,
) => void;

interface Prepared {
  fn: Compiled;
  outer: number;
  inner: number;
  per: number;
  par: Float64Array;
  drop: Float64Array;
  dropSteps: number[];
}

const compiled = new Map<string, Compiled>();
// per inShapes array (an executor's node context keeps its own): the attrs and
// outShape prepared for, and the result; executors of one graph share attrs
const prepared = new WeakMap<
  readonly Shape[],
  { attrs: object; outShape: Shape; p: Prepared | null }
>();

/**
 * The block of a right-aligned broadcast: element `i` of the output reads
 * input element `floor(i / inner) % mid`; null when the input's own axes
 * are not one contiguous run of the output's (ignoring axes of size 1).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { layout } from "./elementwise_chain_fast.ts";
 * assert.deepEqual(layout([4, 1], [4, 8]), { inner: 8, mid: 4 });
 * assert.deepEqual(layout([8], [4, 8]), { inner: 1, mid: 8 });
 * assert.equal(layout([2, 1, 5], [2, 3, 5]), null);
 * ```
 */
export function layout(inShape: Shape, outShape: Shape): { inner: number; mid: number } | null {
  const r = outShape.length, lead = r - inShape.length;
  let first = -1, last = -1, broken = false, mid = 1;
  for (let ax = 0; ax < r; ax++) {
    const o = outShape[ax]!, d = ax < lead ? 1 : inShape[ax - lead]!;
    if (o === 1) continue;
    if (d === o) {
      if (last >= 0 && broken) return null;
      if (first < 0) first = ax;
      last = ax;
      mid *= d;
    } else if (last >= 0) broken = true;
  }
  let inner = 1;
  for (let ax = last + 1; ax < r && last >= 0; ax++) inner *= outShape[ax]!;
  return { inner, mid };
}

function literal(v: number): string {
  return Object.is(v, -0) ? "(-0)" : `(${String(v)})`;
}

function expression(s: ChainStep, x: string, y: string, d: number): string {
  const a = s.attrs ?? {};
  switch (s.op) {
    case "const":
      return literal(a.value!);
    case "add":
      return `${x} + ${y}`;
    case "sub":
      return `${x} - ${y}`;
    case "mul":
      return `${x} * ${y}`;
    case "div":
      return `${x} / ${y}`;
    case "scale":
      return `${x} * ${literal(a.factor!)}`;
    case "pow": {
      const p = a.exponent!;
      return p === 2 ? `${x} * ${x}` : p === 1 ? x : `${x} ** ${literal(p)}`;
    }
    case "exp":
      return `Math.exp(${x})`;
    case "log":
      return `Math.log(${x})`;
    case "tanh":
      return `Math.tanh(${x})`;
    case "sigmoid":
      return `1 / (1 + Math.exp(-${x}))`;
    case "relu":
      return `(${x} > 0 || ${x} !== ${x} ? ${x} : 0)`;
    case "leaky_relu":
      return `(${x} > 0 ? ${x} : ${x} * ${literal(a.slope!)})`;
    case "gelu":
      return `${x} * cdf(${x})`;
    case "relu_backward":
      return `(${x} > 0 ? ${y} : 0)`;
    case "leaky_relu_backward":
      return `(${x} > 0 ? ${y} : ${y} * ${literal(a.slope!)})`;
    case "sigmoid_backward":
      return `${y} * ${x} * (1 - ${x})`;
    case "tanh_backward":
      return `${y} * (1 - ${x} * ${x})`;
    case "gelu_backward":
      return `${y} * (cdf(${x}) + ${x} * ${literal(INV_SQRT_2PI)} * Math.exp(-0.5 * ${x} * ${x}))`;
    case "dropout":
      return `(dm${d} === 2 ? (hf(dp${d}, e0 + j) >= dt${d} ? ${x} * dk${d} : 0) : dm${d} === 0 ? ${x} : 0)`;
    default:
      throw new Error(`elementwise_chain: step "${s.op}" has no float32 kernel`);
  }
}

function generate(steps: readonly ChainStep[], kinds: readonly Kind[]): string {
  const nIn = kinds.length;
  const name = (k: number) => (k < nIn ? `x${k}` : `t${k - nIn}`);
  const head: string[] = [], row: string[] = [], body: string[] = [];
  kinds.forEach((kind, k) => {
    head.push(`const a${k} = ins[${k}];`);
    if (kind === "scalar") head.push(`const x${k} = a${k}[0];`);
    if (kind === "row" || kind === "col") {
      head.push(`const q${k} = par[${2 * k}], m${k} = par[${2 * k + 1}];`);
    }
    if (kind === "row") row.push(`const x${k} = a${k}[Math.floor(o * inner / q${k}) % m${k}];`);
    if (kind === "col") {
      row.push(`const b${k} = (o * inner) % m${k};`);
      body.push(`const x${k} = a${k}[b${k} + j];`);
    }
    if (kind === "full") body.push(`const x${k} = a${k}[i];`);
  });
  let d = 0;
  const drops: number[] = [];
  steps.forEach((s, k) => {
    if (s.op === "dropout") {
      drops.push(k);
      head.push(
        `const dm${d} = drop[${4 * d}], dt${d} = drop[${4 * d + 1}], dk${d} = drop[${
          4 * d + 2
        }], ds${d} = drop[${4 * d + 3}];`,
      );
      row.push(`const dp${d} = dm${d} === 2 ? hp(ds${d}, step, offset + smp) : 0;`);
    }
    const e = expression(s, name(s.args[0]!), name(s.args[1] ?? 0), d);
    if (s.op === "dropout") d++;
    body.push(
      k === steps.length - 1 ? `out[i] = ${e};` : `const t${k} = Math.fround(${e});`,
    );
  });
  if (drops.length) {
    row.unshift("const smp = Math.floor(o * inner / per), e0 = o * inner - smp * per;");
  }
  return [
    '"use strict";',
    "return function chain(ins, out, outer, inner, par, drop, step, offset, per) {",
    ...head,
    "for (let o = 0, i = 0; o < outer; o++) {",
    ...row,
    "for (let j = 0; j < inner; j++, i++) {",
    ...body,
    "}",
    "}",
    "};",
  ].join("\n");
}

function prepare(
  steps: readonly ChainStep[],
  inShapes: readonly Shape[],
  outShape: Shape,
): Prepared | null {
  const r = outShape.length;
  let n = 1;
  for (const v of outShape) n *= v;
  const dropSteps = steps.flatMap((s, k) => (s.op === "dropout" ? [k] : []));
  // rows of the last axis; a rank-1 output with dropout runs one sample a row
  let inner = r === 0 ? 1 : outShape[r - 1]!;
  if (r === 1 && dropSteps.length) inner = 1;
  if (inner === 0 || n === 0) inner = 1;
  const outer = n / inner;
  const samples = r === 0 ? 1 : outShape[0]!;
  const per = samples === 0 ? 1 : n / samples;
  const kinds: Kind[] = [];
  const par = new Float64Array(2 * inShapes.length);
  for (const [k, s] of inShapes.entries()) {
    const l = layout(s, outShape);
    if (!l) return null;
    par[2 * k] = l.inner;
    par[2 * k + 1] = l.mid;
    if (l.mid === 1) kinds.push("scalar");
    else if (l.inner === 1 && l.mid === n) kinds.push("full");
    else if (l.inner === 1 && l.mid % inner === 0) kinds.push("col");
    else if (l.inner % inner === 0) kinds.push("row");
    else return null;
  }
  const key = `${kinds.join()}|${JSON.stringify(steps)}`;
  let fn = compiled.get(key);
  if (!fn) {
    fn = new Function("hp", "hf", "cdf", generate(steps, kinds))(
      hash4Prefix,
      hash4Finish,
      cdfApprox,
    ) as Compiled;
    compiled.set(key, fn);
  }
  const drop = new Float64Array(4 * dropSteps.length);
  return { fn, outer, inner, per, par, drop, dropSteps };
}

// ins[k]: inShapes[k] (broadcast to outShape) -> out: outShape, float32
/**
 * The program `steps` over float32 `ins` into `out` in one pass, with a
 * function compiled for the program and the inputs' broadcasts once and
 * cached (keyed by the `inShapes` array, which an executor keeps per node,
 * with `attrs` and `outShape`). Returns false, doing nothing, for a broadcast it
 * does not serve; the caller then runs the reference interpreter.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chainF32 } from "./elementwise_chain_fast.ts";
 * const attrs = { steps: [{ op: "mul", args: [0, 1] }, { op: "exp", args: [2] }] };
 * const out = new Float32Array(4);
 * const run = { training: true, step: 0, sampleOffset: 0 };
 * const ins = [new Float32Array([0, 1, 2, 3]), new Float32Array([0, 1])];
 * assert.ok(chainF32(attrs, ins, [[2, 2], [2, 1]], out, [2, 2], run));
 * assert.deepEqual([...out], [1, 1, Math.fround(Math.E ** 2), Math.fround(Math.E ** 3)]);
 * ```
 */
export function chainF32(
  attrs: { steps: readonly ChainStep[] },
  ins: readonly Float32Array[],
  inShapes: readonly Shape[],
  out: Float32Array,
  outShape: Shape,
  run: ChainRunInfo,
): boolean {
  let c = prepared.get(inShapes);
  if (!c || c.attrs !== attrs || c.outShape !== outShape) {
    c = { attrs, outShape, p: prepare(attrs.steps, inShapes, outShape) };
    prepared.set(inShapes, c);
  }
  const p = c.p;
  if (!p) return false;
  for (let d = 0; d < p.dropSteps.length; d++) {
    const a = attrs.steps[p.dropSteps[d]!]!.attrs!;
    const prob = a.p!;
    p.drop[4 * d] = !run.training || prob === 0 ? 0 : prob === 1 ? 1 : 2;
    p.drop[4 * d + 1] = prob * 4294967296;
    p.drop[4 * d + 2] = 1 / (1 - prob);
    p.drop[4 * d + 3] = a.seed!;
  }
  p.fn(ins, out, p.outer, p.inner, p.par, p.drop, run.step, run.sampleOffset, p.per);
  return true;
}
