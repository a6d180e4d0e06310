// The shared finite-difference checker. Everything runs in float64 on the
// reference kernels: ⟨J v, u⟩ from central differences along a random
// direction v must equal ⟨v, Jᵀ u⟩ from the VJP for a random cotangent u,
// and for tiny shapes the whole Jacobian is compared entry by entry.
import { Graph, type Node } from "../graph/graph.ts";
import type { Tensor } from "../graph/tensor.ts";
import { vjpWith } from "../graph/vjp.ts";
import { uniformArray } from "./_rng.ts";

export { rng } from "./_rng.ts";

/** A float64 tensor with uniform values in [lo, hi). */
export function randTensor(shape: number[], seed: number, lo = -1, hi = 1): Tensor<Float64Array> {
  return { shape, data: uniformArray(shape.reduce((a, b) => a * b, 1), seed, lo, hi) };
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
  lhs: number;
  rhs: number;
  relErr: number;
}

let coverage: Set<string> | null = null;

/**
 * While `into` is a set, {@linkcode checkVjp} checks nothing: it only adds to
 * `into` the name of every op whose VJP the check would exercise (the ops
 * `fn` applies to a differentiated primal). tests/ops/registry_test.ts uses
 * it to find registered ops that no finite-difference test covers.
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
 * Checks the VJP of `fn` at `primals` against central differences; throws an
 * error with the numbers when they disagree.
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
  const u = randTensor(res.out.shape, seed * 7919 + 1).data;
  const vs = primals.map((p, i) =>
    constant.has(i) ? new Float64Array(p.data.length) : randTensor(p.shape, seed * 31 + i).data
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
  if (!(Math.abs(lhs - rhs) <= rtol * (Math.abs(lhs) + Math.abs(rhs)) + atol)) {
    throw new Error(
      `VJP disagrees with finite differences: <Jv,u> = ${lhs}, <v,J^T u> = ${rhs}, rel. error ${relErr}`,
    );
  }
  if (opts.full) {
    checkFullJacobian(f, base, res.backward, constant, eps, rtol, atol, res.out.data.length);
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
            `Jacobian entry d out[${o}] / d x${i}[${j}]: finite differences give ${fd}, the VJP ${an}`,
          );
        }
      }
    }
  });
  // leave the executor holding the values at base, as checkVjp found it
  f(base);
}
