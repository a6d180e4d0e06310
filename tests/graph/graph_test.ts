import assert from "node:assert/strict";
import { Executor } from "../../graph/executor.ts";
import { Graph, type GraphJSON } from "../../graph/graph.ts";
import { grad } from "../../graph/grad.ts";
import { makePlan } from "../../graph/plan.ts";
import "../../ops/mod.ts";
import { linear } from "../../ops/linear.ts";
import { mean } from "../../ops/mean.ts";
import { mul } from "../../ops/mul.ts";
import { relu } from "../../ops/relu.ts";

function model(): { g: Graph; loss: number; grads: number[] } {
  const g = new Graph();
  const x = g.input("x", [-1, 4]);
  const w = g.param("w", [3, 4], { kind: "uniform", bound: 0.5 });
  const b = g.param("b", [3], { kind: "uniform", bound: 0.5 });
  const h = relu(linear(x, w, b));
  const loss = mean(mul(h, h), { name: "loss" });
  const gs = grad(loss, [w, b]).map((n) => n!.id);
  return { g, loss: loss.id, grads: gs };
}

Deno.test("a graph survives a JSON round trip and computes the same values", () => {
  const { g, loss, grads } = model();
  const json = JSON.parse(JSON.stringify(g.toJSON())) as GraphJSON;
  const h = Graph.fromJSON(json);
  assert.deepEqual(h.toJSON(), g.toJSON());
  const x = Float32Array.from({ length: 20 }, (_, i) => Math.cos(i));
  const run = (graph: Graph) => {
    const outs = [loss, ...grads].map((i) => graph.node(i));
    return new Executor(makePlan(graph, { batch: 5, outputs: outs }), { seed: 9 }).run({ x }).map((
      a,
    ) => [...a]);
  };
  assert.deepEqual(run(h), run(g));
});

Deno.test("graph JSON with an unknown op or a wrong shape is rejected with the node named", () => {
  const { g } = model();
  const json = g.toJSON();
  const bad = structuredClone(json);
  bad.nodes[3]!.op = "frobnicate";
  assert.throws(() => Graph.fromJSON(bad), /Unknown op "frobnicate"/);
  const wrong = structuredClone(json);
  wrong.nodes[3]!.shape = [7, 7];
  assert.throws(
    () => Graph.fromJSON(wrong),
    /node "linear_3" has shape \[7,7\] but linear gives \[N,3\]/,
  );
});

Deno.test("node names are unique and sources are validated", () => {
  const g = new Graph();
  g.input("x", [-1, 2]);
  assert.throws(() => g.input("x", [2]), /already exists/);
  assert.throws(() => g.input("y", [2, -1]), /-1 only for the batch axis/);
  assert.throws(
    () => g.param("p", [-1, 2], { kind: "constant", value: 0 }),
    /must be whole sizes|batch axis/,
  );
});
