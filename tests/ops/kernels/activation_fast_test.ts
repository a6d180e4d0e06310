// The float32 activation kernels against the references, forward and
// backward, through the executor with tier "ts" versus "ref".
import assert from "node:assert/strict";
import "../../../ops/mod.ts";
import fc from "npm:fast-check@3.23.2";
import { Executor } from "../../../graph/executor.ts";
import { Graph, type Node } from "../../../graph/graph.ts";
import { grad } from "../../../graph/grad.ts";
import { makePlan } from "../../../graph/plan.ts";
import { exp } from "../../../ops/exp.ts";
import { gelu } from "../../../ops/gelu.ts";
import { leakyRelu } from "../../../ops/leaky_relu.ts";
import { log } from "../../../ops/log.ts";
import { mul } from "../../../ops/mul.ts";
import { sigmoid } from "../../../ops/sigmoid.ts";
import { sum } from "../../../ops/sum.ts";
import { tanh } from "../../../ops/tanh.ts";
import { rng } from "../../_grad_check.ts";
import { specialPairs } from "./_tiers.ts";

function run(f: (x: Node) => Node, x: Float32Array, w: Float32Array, tier: "ref" | "ts") {
  const g = new Graph();
  const xn = g.input("x", [x.length]);
  const y = f(xn);
  const [dx] = grad(sum(mul(y, g.input("w", [x.length]))), [xn]);
  const [yv, dxv] = new Executor(makePlan(g, { outputs: [y, dx!] }), { tier }).run({ x, w });
  return [yv!.slice(), dxv!.slice()];
}

const cases: [string, (x: Node) => Node, number, number][] = [
  ["exp", (x) => exp(x), -20, 20],
  ["log", (x) => log(x), 1e-3, 50],
  ["sigmoid", (x) => sigmoid(x), -30, 30],
  ["tanh", (x) => tanh(x), -10, 10],
  ["leakyRelu", (x) => leakyRelu(x, { slope: 0.1 }), -5, 5],
  ["gelu", (x) => gelu(x), -12, 12],
];

for (const [name, f, lo, hi] of cases) {
  Deno.test(`ts ${name} and its backward match the float32 reference within float32 rounding`, () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200 }), fc.integer(), (n, seed) => {
        const r = rng(seed);
        const x = Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
        const w = Float32Array.from({ length: n }, () => 2 * r() - 1);
        if (name !== "log") x[0] = 0;
        const [y, dx] = run(f, x, w, "ts");
        const [yr, dxr] = run(f, x, w, "ref");
        for (const [a, b, what] of [[y!, yr!, "y"], [dx!, dxr!, "dx"]] as const) {
          for (let i = 0; i < n; i++) {
            const tol = 4e-7 * Math.abs(b[i]!) + 3e-7;
            assert.ok(
              Math.abs(a[i]! - b[i]!) <= tol,
              `${name} ${what}(${x[i]}): ts ${a[i]}, ref ${b[i]}`,
            );
          }
        }
      }),
      { numRuns: 60 },
    );
  });
}

for (const [name, f] of cases) {
  Deno.test(`ts ${name} and its backward match the reference on ±Infinity, -0, NaN of either sign and subnormals`, () => {
    const { x, w } = specialPairs();
    const [y, dx] = run(f, x, w, "ts");
    const [yr, dxr] = run(f, x, w, "ref");
    for (const [a, b, what] of [[y!, yr!, "y"], [dx!, dxr!, "dx"]] as const) {
      for (let i = 0; i < x.length; i++) {
        const p = a[i]!, q = b[i]!;
        // non-finite results must be the same value; finite ones within float32 rounding
        const same = Number.isFinite(p) && Number.isFinite(q)
          ? Math.abs(p - q) <= 4e-7 * Math.abs(q) + 3e-7
          : Object.is(p, q);
        assert.ok(same, `${name} ${what}(x ${x[i]}, dy ${w[i]}): ts ${p}, ref ${q}`);
      }
    }
  });
}
