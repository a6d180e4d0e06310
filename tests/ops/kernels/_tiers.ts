// Runs an op graph and its gradient on one kernel tier, for comparing the
// fast float32 tiers with the reference one.
import "../../../ops/mod.ts";
import { Executor } from "../../../graph/executor.ts";
import { Graph } from "../../../graph/graph.ts";
import { grad } from "../../../graph/grad.ts";
import { makePlan } from "../../../graph/plan.ts";
import { mul } from "../../../ops/mul.ts";
import { sum } from "../../../ops/sum.ts";
import { rng } from "../../_grad_check.ts";

/** A graph input node. */
export type In = ReturnType<Graph["input"]>;

// Runs f and its gradient at float32 with the given tier; returns [y, dx].
export function runTier(
  f: (x: In) => In,
  shape: number[],
  x: Float32Array,
  w: Float32Array,
  tier: "ref" | "ts" | "wasm",
): [number[], number[]] {
  const g = new Graph();
  const xn = g.input("x", shape);
  const y = f(xn);
  const wn = g.input("w", y.shape);
  const [dx] = grad(sum(mul(y, wn)), [xn]);
  const ex = new Executor(makePlan(g, { outputs: [y, dx!] }), { tier });
  const [yv, dxv] = ex.run({ x, w });
  // -0 and 0 are the same number; deepEqual would tell them apart
  return [[...yv!].map((v) => v + 0), [...dxv!].map((v) => v + 0)];
}

// values on a coarse grid so that ties and exact zeros are common
export function grid(n: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => Math.round((r() - 0.5) * 8) / 4);
}
