/**
 * The elementwise-chain pass, A/B in one process, alternately:
 * `deno run -A bench/chains_ab.ts [--rounds N]`. Per model (lecture CNN,
 * mnist-net, and an MLP with layer norm, GELU and dropout built with
 * `nn.*`), one forward and backward pass (loss and every gradient) at batch
 * 64 on the wasm tier, of the graph after `fuseGraph` alone (A) and after
 * `fuseGraph` then `fuseChains` (B), A and B taking turns each round; it
 * prints the chains the pass found, the median step times and their ratio,
 * and per chain the time of the nodes it replaces against the fused node's
 * (medians of the per-kernel times from the executor's `onKernel`).
 *
 * @module
 */
import "../ops/mod.ts";
import { benchArgs } from "./_args.ts";
import { median } from "./_stats.ts";
import { Executor } from "../graph/executor.ts";
import type { Graph } from "../graph/graph.ts";
import { chainGroups, fuseChains, fuseGraph } from "../graph/passes/mod.ts";
import { makePlan } from "../graph/plan.ts";
import { nn } from "../train/layers.ts";
import { defineModel, type TrainingGraph, trainingGraph } from "../train/model.ts";
import { lectureCnn, mnistNet } from "../train/models.ts";

const values = benchArgs("bench/chains_ab.ts", { rounds: { type: "string" } });
const BATCH = 64;

/** flatten, two blocks of linear 256, layer norm, GELU (the first with dropout 0.1), linear 10. */
function lnGeluMlp(): TrainingGraph {
  const m = defineModel({ input: [1, 28, 28], name: "ln-gelu-mlp", seed: 1 }, (x) => {
    let h = nn.flatten(x);
    h = nn.gelu(nn.layerNorm(nn.linear(h, 256, { name: "fc1" }), undefined, { name: "ln1" }));
    h = nn.dropout(h, 0.1, { seed: 3 });
    h = nn.gelu(nn.layerNorm(nn.linear(h, 256, { name: "fc2" }), undefined, { name: "ln2" }));
    return nn.linear(h, 10, { name: "out" });
  });
  return trainingGraph(m, "cross-entropy");
}

const x = new Float32Array(BATCH * 784).map((_, i) => ((i * 7919) % 251) / 251);
const t = new Float32Array(BATCH).map((_, i) => i % 10);
const models: [string, () => TrainingGraph, number][] = [
  ["lecture-cnn", () => lectureCnn(), 200],
  ["mnist-net", () => mnistNet({ seed: 1 }), 15],
  ["ln-gelu-mlp", lnGeluMlp, 200],
];
for (const [name, make, defaultRounds] of models) {
  const rounds = values.rounds ? Number(values.rounds) : defaultRounds;
  const m = make();
  const keep = [m.loss, ...Object.values(m.grads)];
  const a = fuseGraph(m.built, keep);
  const b = fuseChains(a, keep);
  const groups = chainGroups(a, keep);
  console.log(
    `${name}: ${a.nodes.length} -> ${b.nodes.length} nodes; chains: ${
      groups.map((gr) => gr.map((n) => a.node(n).op).join(">")).join(", ") || "none"
    }`,
  );
  if (a === b) continue;
  const graphs: Graph[] = [a, b];
  const exs = graphs.map((g) =>
    new Executor(makePlan(g, { batch: BATCH, outputs: keep.map((k) => g.node(k)) }), {
      seed: 1,
      tier: "wasm",
    })
  );
  const times: number[][] = [[], []];
  // per node, its kernel time in each timed round
  const perNode = graphs.map(() => new Map<string, number[]>());
  const warm = Math.max(2, Math.floor(rounds / 5));
  let step = 0;
  for (let r = 0; r < warm + rounds; r++) {
    for (let k = 0; k < 2; k++) {
      const g = graphs[k]!, per = perNode[k]!;
      const t0 = performance.now();
      exs[k]!.run({ [m.input]: x, [m.target]: t }, {
        step: step++,
        onKernel: r < warm ? undefined : (node, s, e) => {
          const n = g.nodes[node]!.name;
          const list = per.get(n) ?? [];
          if (list.length === 0) per.set(n, list);
          list.push(e - s);
        },
      });
      if (r >= warm) times[k]!.push(performance.now() - t0);
    }
  }
  const [ta, tb] = [median(times[0]!), median(times[1]!)];
  console.log(
    `  fwd+bwd at batch ${BATCH}, wasm, median of ${rounds}: without chains ${
      ta.toFixed(3)
    } ms, with ${tb.toFixed(3)} ms: ${(ta / tb).toFixed(3)}x`,
  );
  let su = 0, sf = 0;
  for (const gr of groups) {
    const med = (k: number, n: string) => median(perNode[k]!.get(n) ?? [0]) * 1000;
    const u = gr.reduce((acc, n) => acc + med(0, n), 0);
    const f = med(1, gr.at(-1)!);
    su += u;
    sf += f;
    const ops = gr.map((n) => a.node(n).op).join(">");
    const shape = JSON.stringify(a.node(gr.at(-1)!).shape);
    console.log(
      `  ${ops.padEnd(30)} ${shape.padEnd(9)} ${u.toFixed(1).padStart(8)} µs -> ${
        f.toFixed(1).padStart(7)
      } µs`,
    );
  }
  console.log(`  all chains (sum of medians): ${su.toFixed(1)} µs -> ${sf.toFixed(1)} µs a step`);
}
