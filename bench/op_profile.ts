/**
 * `deno run -A bench/op_profile.ts --model mnist-net`: a simple per-op
 * timer. Every registered op's forward is wrapped with a clock for the
 * duration of the run, training steps run on one executor at the given
 * micro-batch, and a table prints the mean milliseconds a step per op and
 * output shape, with its share of the step.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Executor } from "../graph/executor.ts";
import { lookupOp, type OpDef, type Tier } from "../graph/op.ts";
import { makePlan } from "../graph/plan.ts";
import { lectureCnn, mnistNet } from "../train/models.ts";
import { fuseGraph } from "../graph/passes/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string", default: "lecture-cnn" },
    batch: { type: "string", default: "32" },
    steps: { type: "string", default: "30" },
    kernels: { type: "string", default: "wasm" },
    fuse: { type: "string", default: "true" },
  },
});
const batch = Number(values.batch), steps = Number(values.steps);
const spec = values.model === "mnist-net" ? mnistNet({ seed: 1 }) : lectureCnn();
const g = spec.built;
const outputs = [g.node(spec.loss), ...Object.values(spec.grads).map((n) => g.node(n))];
const names = outputs.map((o) => o.name);
const fg = values.fuse === "true" ? fuseGraph(g, names) : g;
const fused = { graph: fg, outputs: names.map((n) => fg.node(n)) };
const plan = makePlan(fused.graph, { batch, outputs: fused.outputs });
const ex = new Executor(plan, { seed: 1, tier: values.kernels as Tier });

const times = new Map<string, number>();
const wrapped = new Map<OpDef, OpDef["forward"]>();
for (const r of fused.graph.nodes) {
  if (r.op === "input" || r.op === "param") continue;
  const op = lookupOp(r.op);
  if (wrapped.has(op)) continue;
  const inner = op.forward;
  wrapped.set(op, inner);
  op.forward = (ins, out, ctx) => {
    const t0 = performance.now();
    inner.call(op, ins, out, ctx);
    const key = `${op.name} [${ctx.outShape.join(",")}]`;
    times.set(key, (times.get(key) ?? 0) + performance.now() - t0);
  };
}
const x = new Float32Array(batch * 784).map((_, i) => (i * 7919 % 256) / 255);
const t = new Float32Array(batch).map((_, i) => i % 10);
let total = 0;
for (let s = 0; s < steps + 5; s++) {
  if (s === 5) {
    times.clear();
    total = 0;
  }
  ex.invalidate();
  const t0 = performance.now();
  ex.run({ x, target: t }, { step: s });
  total += performance.now() - t0;
}
for (const [op, f] of wrapped) op.forward = f;
const rows = [...times].sort((a, b) => b[1] - a[1]);
console.log(
  `${values.model}, micro-batch ${batch}, ${values.kernels}, fuse ${values.fuse}: ${
    (total / steps).toFixed(3)
  } ms a step (${(batch * steps / total * 1000).toFixed(0)} samples/s)`,
);
for (const [k, v] of rows) {
  console.log(
    `${(v / steps).toFixed(3).padStart(8)} ms ${(100 * v / total).toFixed(1).padStart(5)}%  ${k}`,
  );
}
