// Inputs the executor used to accept silently (or crash on with a bare
// TypeError): each is now an error naming the input, the buffer or the tier.
import assert from "node:assert/strict";
import "../../ops/mod.ts";
import { conv2d, relu } from "../../ops/mod.ts";
import { Executor } from "../../graph/executor.ts";
import { Graph } from "../../graph/graph.ts";
import { makePlan } from "../../graph/plan.ts";

function throwsWith(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (e: Error) => {
    for (const p of parts) assert.ok(e.message.includes(p), `"${e.message}" lacks "${p}"`);
    return true;
  });
}

function reluOf(shape: number[]) {
  const g = new Graph();
  const y = relu(g.input("x", shape));
  return new Executor(makePlan(g, { outputs: [y] }));
}

Deno.test("run({}) with an input never fed is an error naming the input", () => {
  const ex = reluOf([3]);
  throwsWith(() => ex.run({}), 'input "x"', "never fed");
  // once fed, later runs may leave it out
  ex.run({ x: [1, -1, 2] });
  assert.deepEqual([...ex.run({})[0]!], [1, 0, 2]);
});

Deno.test("a null, string or non-numeric feed is an error naming the input", () => {
  const ex = reluOf([2]);
  throwsWith(() => ex.run({ x: null as never }), 'input "x"', "got null");
  throwsWith(() => ex.run({ x: "ab" as never }), 'input "x"', "string");
  throwsWith(() => ex.run({ x: [1, "a"] as never }), 'input "x"', "string", "index 1");
  throwsWith(() => ex.run(null as never), "feeds must be an object");
});

Deno.test("an unknown tier is an error", () => {
  const g = new Graph();
  const y = relu(g.input("x", [2]));
  throwsWith(() => new Executor(makePlan(g, { outputs: [y] }), { tier: "gpu" as never }), '"gpu"');
});

Deno.test("a plan too big to allocate is an error naming the largest buffer and the size", () => {
  const net = new Graph();
  const h = conv2d(
    net.input("x", [-1, 1, 28, 28]),
    net.param("w", [32, 1, 3, 3], { kind: "constant", value: 0 }),
  );
  const plan = makePlan(net, { batch: 1e9, outputs: [relu(h)] });
  throwsWith(
    () => new Executor(plan),
    "cannot allocate",
    "GiB",
    'conv2d "',
    "[1000000000,32,26,26]",
  );
  const g = new Graph();
  const y = conv2d(
    g.input("x", [1, 1, 28, 28]),
    g.param("w", [32, 1, 3, 3], { kind: "constant", value: 0 }),
    undefined,
    {
      padding: 1e6,
    },
  );
  throwsWith(() => new Executor(makePlan(g, { outputs: [y] })), "[1,32,2000026,2000026]");
  // past 2^53 elements the plan itself refuses, naming the node
  throwsWith(() => makePlan(net, { batch: 1e15 }), 'input "x"', "too many");
});
