/**
 * The elementwise activations, reference loop (baseline) against the float32
 * TypeScript kernel, forward and backward, on one lecture-CNN activation
 * (64 × 32 × 26 × 26 floats): `deno bench bench/activation_bench.ts`.
 *
 * @module
 */
import "../ops/mod.ts";
import { Executor } from "../graph/executor.ts";
import { Graph, type Node } from "../graph/graph.ts";
import { grad } from "../graph/grad.ts";
import { makePlan } from "../graph/plan.ts";
import { exp, gelu, leakyRelu, mul, sigmoid, sum, tanh } from "../ops/mod.ts";

const shape = [64, 32, 26, 26];
const n = shape.reduce((a, b) => a * b, 1);
const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 4);
const w = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.11));

const ops: [string, (v: Node) => Node][] = [
  ["exp", (v) => exp(v)],
  ["sigmoid", (v) => sigmoid(v)],
  ["tanh", (v) => tanh(v)],
  ["leakyRelu", (v) => leakyRelu(v)],
  ["gelu", (v) => gelu(v)],
];

for (const [name, f] of ops) {
  for (const tier of ["ref", "ts"] as const) {
    const g = new Graph();
    const xn = g.input("x", shape);
    const y = f(xn);
    const [dx] = grad(sum(mul(y, g.input("w", shape))), [xn]);
    const ex = new Executor(makePlan(g, { outputs: [dx!] }), { tier });
    let k = 0;
    Deno.bench({
      name: `${name} forward + backward, ${tier}`,
      group: name,
      baseline: tier === "ref",
      fn: () => {
        // a changed input each time, so the reactive executor reruns everything
        x[0] = k++ % 7;
        ex.run({ x, w });
      },
    });
  }
}
