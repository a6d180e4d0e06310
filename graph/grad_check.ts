/**
 * A finite-difference check of VJP rules: {@linkcode checkVjp}. Everything
 * runs in float64 on the reference kernels.
 *
 * @module
 */
import { Graph, type Node } from "./graph.ts";
import type { Tensor } from "./tensor.ts";
import { vjpWith } from "./vjp.ts";

// `len` uniform values in [-1, 1) from `seed` (mulberry32, as the tests' generator).
function directions(shape: readonly number[], seed: number): { data: Float64Array } {
  let a = seed >>> 0;
  const out = new Float64Array(shape.reduce((x, y) => x * y, 1));
  for (let i = 0; i < out.length; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = -1 + 2 * (((t ^ (t >>> 14)) >>> 0) / 4294967296);
  }
  return { data: out };
}

/** Options of {@linkcode checkVjp}. */
export interface CheckOptions {
  /** Seed for the directions. */
  seed?: number;
  /** Indices of primals that are not differentiable (labels): not perturbed. */
  constant?: number[];
  /** Finite-difference step (default 1e-6). */
  eps?: number;
  /** Relative tolerance (default 1e-6). */
  rtol?: number;
  /** Absolute tolerance (default 1e-9). */
  atol?: number;
  /** Also compare the full Jacobian (only for tiny shapes). */
  full?: boolean;
  /** Step for stochastic ops. */
  step?: number;
}

/** What a check measured, so a test can report it. */
export interface CheckReport {
  /** ⟨J v, u⟩ from central differences. */
  lhs: number;
  /** ⟨v, Jᵀ u⟩ from the VJP. */
  rhs: number;
  /** |lhs − rhs| / (|lhs| + |rhs|). */
  relErr: number;
}

let coverage: Set<string> | null = null;

/**
 * While `into` is a set, {@linkcode checkVjp} checks nothing: it only adds to
 * `into` the name of every op whose VJP the check would exercise (the ops
 * `fn` applies to a differentiated primal). tests/ops/registry_test.ts uses
 * it to find registered ops that no finite-difference test covers; `null`
 * turns checking back on.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkVjp, mul, recordVjpCoverage, sum } from "@denograd/denograd";
 * const seen = new Set<string>();
 * recordVjpCoverage(seen);
 * checkVjp((x) => sum(mul(x, x)), [{ shape: [2], data: new Float64Array([1, 2]) }]);
 * recordVjpCoverage(null);
 * assert.deepEqual([...seen].sort(), ["mul", "sum"]);
 * ```
 */
export function recordVjpCoverage(into: Set<string> | null): void {
  coverage = into;
}

// The ops of fn's graph on a path from a non-constant primal to the output.
function opsOnGradientPath(
  fn: (...xs: Node[]) => Node,
  primals: Tensor<Float64Array>[],
  constant: Set<number>,
  into: Set<string>,
): void {
  const g = new Graph();
  const xs = primals.map((p, i) => g.input(`x${i}`, p.shape));
  const y = fn(...xs);
  const n = y.id + 1;
  const varies = new Array<boolean>(n).fill(false);
  xs.forEach((x, i) => (varies[x.id] = !constant.has(i)));
  const needed = new Array<boolean>(n).fill(false);
  needed[y.id] = true;
  for (let i = n - 1; i >= 0; i--) {
    if (needed[i]) { for (const j of g.nodes[i]!.inputs) needed[j] = true; }
  }
  for (let i = 0; i < n; i++) {
    const r = g.nodes[i]!;
    if (r.op === "input" || r.op === "param") continue;
    varies[i] = r.inputs.some((j) => varies[j]);
    if (varies[i] && needed[i]) into.add(r.op);
  }
}

/**
 * Checks the VJP rules of the ops in `fn` at `primals` against central
 * differences, in float64 on the reference kernels: ⟨J v, u⟩ from
 * differences along a random direction v must equal ⟨v, Jᵀ u⟩ from the VJP
 * for a random cotangent u (with `full`, for tiny shapes, every Jacobian
 * entry too). Throws, naming the ops on the gradient path and the numbers,
 * when they disagree. Use it to test the VJP of an op of your own.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkVjp, mul, type Node, type OpDef, registerOp, sum } from "@denograd/denograd";
 * const square = (name: string, factor: number) => {
 *   const op: OpDef = registerOp({
 *     name,
 *     inputs: ["x"],
 *     shape: ([x]) => x!,
 *     forward([x], y) {
 *       for (let i = 0; i < y.length; i++) y[i] = x![i]! ** 2;
 *     },
 *     vjp: ({ inputs: [x], dy }) => [mul(dy, mul(x!, factor))],
 *   });
 *   return (x: Node) => x.graph.apply(op, [x], {});
 * };
 * const good = square("doc_square", 2), bad = square("doc_square_bad", 3);
 * const x = { shape: [3], data: new Float64Array([0.5, -1, 2]) };
 * checkVjp((x) => sum(good(x)), [x], { full: true });
 * assert.throws(() => checkVjp((x) => sum(bad(x)), [x]), /VJP of doc_square_bad, sum disagrees/);
 * ```
 */
export function checkVjp(
  fn: (...xs: Node[]) => Node,
  primals: Tensor<Float64Array>[],
  opts: CheckOptions = {},
): CheckReport {
  if (coverage) {
    opsOnGradientPath(fn, primals, new Set(opts.constant ?? []), coverage);
    return { lhs: 0, rhs: 0, relErr: 0 };
  }
  const eps = opts.eps ?? 1e-6;
  const rtol = opts.rtol ?? 1e-6;
  const atol = opts.atol ?? 1e-9;
  const seed = opts.seed ?? 1;
  const constant = new Set(opts.constant ?? []);
  const res = vjpWith({ step: opts.step ?? 0 }, fn, ...primals);
  const ex = res.executor;
  const outId = res.outNode.id;
  const f = (xs: Float64Array[]): Float64Array => {
    const feeds = Object.fromEntries(xs.map((x, i) => [`x${i}`, x]));
    return ex.run(feeds, { outputs: [outId], step: opts.step ?? 0 })[0]!.slice() as Float64Array;
  };
  const base = primals.map((p) => p.data);
  const u = directions(res.out.shape, seed * 7919 + 1).data;
  const vs = primals.map((p, i) =>
    constant.has(i) ? new Float64Array(p.data.length) : directions(p.shape, seed * 31 + i).data
  );
  const plus = base.map((x, i) => x.map((v, j) => v + eps * vs[i]![j]!));
  const minus = base.map((x, i) => x.map((v, j) => v - eps * vs[i]![j]!));
  const yp = f(plus);
  const ym = f(minus);
  // backward() reads the forward values the executor holds, which are now
  // those at base − eps·v: run at base again so the VJP is taken at base
  f(base);
  let lhs = 0;
  for (let j = 0; j < u.length; j++) lhs += ((yp[j]! - ym[j]!) / (2 * eps)) * u[j]!;
  const grads = res.backward(u);
  let rhs = 0;
  grads.forEach((gr, i) => {
    for (let j = 0; j < gr.data.length; j++) rhs += gr.data[j]! * vs[i]![j]!;
  });
  const relErr = Math.abs(lhs - rhs) / Math.max(Math.abs(lhs) + Math.abs(rhs), 1e-300);
  const ops = () => {
    const names = new Set<string>();
    opsOnGradientPath(fn, primals, constant, names);
    return [...names].join(", ");
  };
  if (!(Math.abs(lhs - rhs) <= rtol * (Math.abs(lhs) + Math.abs(rhs)) + atol)) {
    throw new Error(
      `checkVjp: the VJP of ${ops()} disagrees with finite differences: <Jv,u> = ${lhs}, <v,J^T u> = ${rhs}, rel. error ${relErr}`,
    );
  }
  if (opts.full) {
    checkFullJacobian(f, base, res.backward, constant, eps, rtol, atol, res.out.data.length, ops);
  }
  return { lhs, rhs, relErr };
}

function checkFullJacobian(
  f: (xs: Float64Array[]) => Float64Array,
  base: Float64Array[],
  backward: (ct: ArrayLike<number>) => Tensor<Float64Array>[],
  constant: Set<number>,
  eps: number,
  rtol: number,
  atol: number,
  nOut: number,
  ops: () => string,
): void {
  // rows of Jᵀ from the VJP, one unit cotangent at a time
  const rows: Tensor<Float64Array>[][] = [];
  for (let o = 0; o < nOut; o++) {
    const e = new Float64Array(nOut);
    e[o] = 1;
    rows.push(backward(e));
  }
  base.forEach((x, i) => {
    if (constant.has(i)) return;
    for (let j = 0; j < x.length; j++) {
      const xp = base.map((b) => b.slice());
      const xm = base.map((b) => b.slice());
      xp[i]![j]! += eps;
      xm[i]![j]! -= eps;
      const yp = f(xp), ym = f(xm);
      for (let o = 0; o < nOut; o++) {
        const fd = (yp[o]! - ym[o]!) / (2 * eps);
        const an = rows[o]![i]!.data[j]!;
        if (!(Math.abs(fd - an) <= rtol * (Math.abs(fd) + Math.abs(an)) + atol * 10)) {
          throw new Error(
            `checkVjp: the VJP of ${ops()}: Jacobian entry d out[${o}] / d x${i}[${j}]: finite differences give ${fd}, the VJP ${an}`,
          );
        }
      }
    }
  });
  // leave the executor holding the values at base, as checkVjp found it
  f(base);
}
