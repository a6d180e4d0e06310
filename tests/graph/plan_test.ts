// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../ops/mod.ts";
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { Executor } from "../../graph/executor.ts";
import { Graph, type Node } from "../../graph/graph.ts";
import { grad } from "../../graph/grad.ts";
import { numel } from "../../graph/op.ts";
import { makePlan, type Plan } from "../../graph/plan.ts";
import { add } from "../../ops/add.ts";
import { conv2d } from "../../ops/conv2d.ts";
import { matmul } from "../../ops/matmul.ts";
import { mean } from "../../ops/mean.ts";
import { mul } from "../../ops/mul.ts";
import { relu } from "../../ops/relu.ts";
import { reshape } from "../../ops/reshape.ts";
import { scale } from "../../ops/scale.ts";
import { sub } from "../../ops/sub.ts";
import { uniformArray } from "../_rng.ts";

// Pairs of nodes whose buffers overlap while both values are needed: node i
// is written while j's value is still to be read (by i itself or a later
// node), or j is persistent. Empty for a correct plan.
function liveOverlaps(plan: Plan): string[] {
  const nodes = plan.graph.nodes;
  const lastUse = nodes.map(() => -1);
  // readers pruned from the plan never run
  nodes.forEach((r, i) => {
    if (plan.offsets[i]! >= 0) r.inputs.forEach((j) => (lastUse[j] = Math.max(lastUse[j]!, i)));
  });
  const bad: string[] = [];
  for (let i = 0; i < nodes.length; i++) {
    const oi = plan.offsets[i]!;
    if (oi < 0) continue;
    const ni = Math.max(1, numel(plan.shapes[i]!));
    for (let j = 0; j < i; j++) {
      const oj = plan.offsets[j]!;
      if (oj < 0 || !(lastUse[j]! >= i || plan.persistent[j])) continue;
      const nj = Math.max(1, numel(plan.shapes[j]!));
      if (oi < oj + nj && oj < oi + ni) {
        const why = nodes[i]!.inputs.includes(j) ? "its input" : "a live node";
        bad.push(`${nodes[i]!.op} #${i} overlaps ${why} ${nodes[j]!.op} #${j}`);
      }
    }
  }
  return bad;
}

// A random graph of [N, 4] values: elementwise ops, square matmuls (same-size
// output, so a free-list would hand it its own input's buffer), a loss and
// its gradients.
const step = fc.record({
  op: fc.constantFrom("relu", "scale", "add", "mul", "sub", "matmul"),
  a: fc.nat(),
  b: fc.nat(),
});

function randomGraph(steps: { op: string; a: number; b: number }[]): [Graph, Node[]] {
  const g = new Graph();
  const pool: Node[] = [g.input("x", [-1, 4]), g.input("y", [-1, 4])];
  const params = [0, 1].map((k) => g.param(`w${k}`, [4, 4], { kind: "uniform", bound: 0.5 }));
  pool.push(...[0, 1].map((k) => g.param(`v${k}`, [4], { kind: "uniform", bound: 0.5 })));
  for (const { op, a, b } of steps) {
    const x = pool[a % pool.length]!, y = pool[b % pool.length]!;
    if (x.shape.length !== 2 && op !== "add" && op !== "mul" && op !== "sub") continue;
    const out = op === "relu"
      ? relu(x)
      : op === "scale"
      ? scale(x, 0.5)
      : op === "add"
      ? add(x, y)
      : op === "mul"
      ? mul(x, y)
      : op === "sub"
      ? sub(x, y)
      : matmul(x, params[b % 2]!);
    pool.push(out);
  }
  const last = pool.at(-1)!;
  const loss = mean(mul(last, last));
  const wrt = [
    ...params,
    ...pool.filter((n) => g.nodes[n.id]!.op === "param" && n.shape.length === 1),
  ];
  // parameters the loss does not reach get no gradient
  return [g, [loss, ...grad(loss, wrt).filter((n): n is Node => n !== null)]];
}

Deno.test("plan invariant: no node's buffer overlaps an input or a value still to be read", () => {
  fc.assert(
    fc.property(fc.array(step, { minLength: 1, maxLength: 25 }), fc.boolean(), (steps, prune) => {
      const [g, outs] = randomGraph(steps);
      const plan = makePlan(g, { batch: 3, outputs: outs, prune });
      assert.deepEqual(liveOverlaps(plan), []);
    }),
    { numRuns: 150 },
  );
});

Deno.test("the invariant check sees a node sharing its input's buffer", () => {
  const g = new Graph();
  const y = relu(g.input("x", [4, 4]));
  const plan = makePlan(g, { outputs: [y] });
  const broken = { ...plan, offsets: plan.offsets.map(() => 0) };
  assert.deepEqual(liveOverlaps(broken), ["relu #1 overlaps its input input #0"]);
});

// A graph whose buffers a plan can share between same-size operands: a 3x3
// padding-1 convolution (output as large as its input), a square matmul.
function sameSizeModel(): [Graph, Node[]] {
  const g = new Graph();
  const x = g.input("x", [-1, 2, 5, 5]);
  const t = g.input("t", [-1, 50]);
  const w1 = g.param("w1", [2, 2, 3, 3], { kind: "uniform", bound: 0.4 });
  const w2 = g.param("w2", [2, 2, 3, 3], { kind: "uniform", bound: 0.4 });
  const m = g.param("m", [50, 50], { kind: "uniform", bound: 0.2 });
  const h = relu(conv2d(relu(conv2d(x, w1, null, { padding: 1 })), w2, null, { padding: 1 }));
  const z = matmul(relu(matmul(reshape(h, [-1, 50]), m)), m);
  const d = sub(z, t);
  const loss = mean(mul(d, d));
  return [g, [loss, ...(grad(loss, [w1, w2, m]) as Node[])]];
}

Deno.test("shared and unshared plans agree in float64 on the reference tier (conv 3x3 pad 1, square matmul)", () => {
  const [g, outs] = sameSizeModel();
  const batch = 3;
  const shared = makePlan(g, { batch, outputs: outs, dtype: "float64" });
  const all = g.nodes.map((_, i) => g.node(i));
  const unshared = makePlan(g, { batch, outputs: all, dtype: "float64" });
  assert.ok(shared.arenaLength < unshared.arenaLength, "the shared plan reuses buffers");
  assert.deepEqual(liveOverlaps(shared), []);
  const feeds = { x: uniformArray(batch * 50, 1), t: uniformArray(batch * 50, 2) };
  const a = new Executor(shared, { seed: 7 });
  const b = new Executor(unshared, { params: a.params });
  const got = a.run(feeds).map((v) => [...v]);
  const want = b.run(feeds, { outputs: outs }).map((v) => [...v]);
  assert.deepEqual(got, want);
});
