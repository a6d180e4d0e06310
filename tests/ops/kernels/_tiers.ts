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

// the float32 values where a fast formula can part from its reference:
// infinities, zeros of both signs, NaN of both signs (x86 makes negative ones),
// the largest and smallest magnitudes, as bit patterns
export const SPECIAL_BITS: readonly number[] = [
  0x7f800000, // +Infinity
  0xff800000, // -Infinity
  0x00000000, // +0
  0x80000000, // -0
  0x7fc00000, // NaN
  0xffc00000, // NaN with the sign bit, as x86 produces for 0 * Infinity
  0x7f800001, // signalling NaN
  0xff800001,
  0x7f7fffff, // the largest float32
  0xff7fffff,
  0x00000001, // the smallest subnormal
  0x80000001,
  0x3f800000, // 1
  0xbf800000, // -1
];

// float32 values from their bit patterns
export function fromBits(bits: readonly number[]): Float32Array {
  return new Float32Array(Uint32Array.from(bits).buffer);
}

// every special value as x against every one as w (the upstream gradient)
export function specialPairs(): { x: Float32Array; w: Float32Array } {
  const k = SPECIAL_BITS.length;
  return {
    x: fromBits(Array.from({ length: k * k }, (_, i) => SPECIAL_BITS[i % k]!)),
    w: fromBits(Array.from({ length: k * k }, (_, i) => SPECIAL_BITS[Math.floor(i / k)]!)),
  };
}
