/**
 * A simple per-op timer: `deno run -A bench/op_profile.ts --model mnist-net`.
 * Builds one executor for the unfused graph and one for the fused graph
 * (the training graph after `fuseGraph`), runs their training steps in turn
 * so that a slow spell of the machine hits both, with every registered op's
 * forward wrapped in a clock, and prints for each the mean milliseconds a
 * step per op and output shape, with its share of the step.
 *
 * @module
 */
import { benchArgs } from "./_args.ts";
import { Executor } from "../graph/executor.ts";
import { lookupOp, type OpDef, type Tier } from "../graph/op.ts";
import { makePlan } from "../graph/plan.ts";
import { fuseGraph } from "../graph/passes/mod.ts";
import { lectureCnn, mnistNet } from "../train/models.ts";

const values = benchArgs("bench/op_profile.ts", {
  model: { type: "string", default: "lecture-cnn" },
  batch: { type: "string", default: "32" },
  steps: { type: "string", default: "30" },
  kernels: { type: "string", default: "wasm" },
});
const batch = Number(values.batch), steps = Number(values.steps);
const spec = values.model === "mnist-net" ? mnistNet({ seed: 1 }) : lectureCnn();
const names = [spec.loss, ...Object.values(spec.grads)];
const configs = [false, true].map((fuse) => {
  const g = fuse ? fuseGraph(spec.built, names) : spec.built;
  const plan = makePlan(g, { batch, outputs: names.map((n) => g.node(n)) });
  const ex = new Executor(plan, { seed: 1, tier: values.kernels as Tier });
  return { fuse, g, ex, times: new Map<string, number>(), total: 0 };
});

let current = configs[0]!;
const wrapped = new Map<OpDef, OpDef["forward"]>();
for (const { g } of configs) {
  for (const r of g.nodes) {
    if (r.op === "input" || r.op === "param") continue;
    const op = lookupOp(r.op);
    if (wrapped.has(op)) continue;
    const inner = op.forward;
    wrapped.set(op, inner);
    op.forward = (ins, out, ctx) => {
      const t0 = performance.now();
      inner.call(op, ins, out, ctx);
      const key = `${op.name} [${ctx.outShape.join(",")}]`;
      current.times.set(key, (current.times.get(key) ?? 0) + performance.now() - t0);
    };
  }
}
const x = new Float32Array(batch * 784).map((_, i) => ((i * 7919) % 256) / 255);
const t = new Float32Array(batch).map((_, i) => i % 10);
for (let s = 0; s < steps + 5; s++) {
  for (const c of configs) {
    current = c;
    if (s === 5) {
      c.times.clear();
      c.total = 0;
    }
    c.ex.invalidate();
    const t0 = performance.now();
    c.ex.run({ x, target: t }, { step: s });
    c.total += performance.now() - t0;
  }
}
for (const [op, f] of wrapped) op.forward = f;
for (const c of configs) {
  const rows = [...c.times].sort((a, b) => b[1] - a[1]);
  console.log(
    `${values.model}, micro-batch ${batch}, ${values.kernels}, ${c.fuse ? "fused" : "unfused"}: ${
      (c.total / steps).toFixed(3)
    } ms a step (${((batch * steps) / c.total * 1000).toFixed(0)} samples/s)`,
  );
  for (const [k, v] of rows) {
    const ms = (v / steps).toFixed(3).padStart(8);
    console.log(`${ms} ms ${(100 * v / c.total).toFixed(1).padStart(5)}%  ${k}`);
  }
}
const [u, f] = configs;
console.log(`fused step ${(u!.total / f!.total).toFixed(2)}x the unfused one's speed`);
