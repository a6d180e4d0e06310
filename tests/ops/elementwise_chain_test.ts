// elementwise_chain: its VJP (the program expanded back into its ops) against
// finite differences, and its forward on every tier against the unfused
// composition of the ops it stands for, bit for bit (NaN to any NaN).
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import "../../ops/mod.ts";
import { Executor } from "../../graph/executor.ts";
import { Graph, type Node } from "../../graph/graph.ts";
import { lookupOp, type Tier } from "../../graph/op.ts";
import { makePlan } from "../../graph/plan.ts";
import { type ChainStep, elementwiseChain, exp, fill } from "../../ops/mod.ts";
import { checkVjp, randTensor } from "../_grad_check.ts";
import { type ChainCase, chainCaseArb, sameValue } from "./_chain_programs.ts";

const LN_BACKWARD: ChainStep[] = [
  // layer norm's input gradient as the pass finds it: inputs dxhat·w [N,D], rstd [N,1],
  // the mean-expanded term [N,D], x − mean [N,D]
  { op: "mul", args: [0, 1] },
  { op: "mul", args: [2, 3] },
  { op: "mul", args: [2, 3] },
  { op: "add", args: [4, 5] },
  { op: "add", args: [7, 6] },
];

Deno.test("elementwise_chain VJP: a layer-norm backward chain with [N, 1] and [N, D] inputs", () => {
  checkVjp(
    (a, r, e, d) => elementwiseChain([a, r, e, d], LN_BACKWARD),
    [randTensor([3, 4], 1), randTensor([3, 1], 2), randTensor([3, 4], 3), randTensor([3, 4], 4)],
  );
});

Deno.test("elementwise_chain VJP: activations, their backwards, constants and broadcast [D] inputs", () => {
  const steps: ChainStep[] = [
    { op: "const", args: [], attrs: { value: 1.5 } },
    { op: "scale", args: [0], attrs: { factor: 0.7 } },
    { op: "add", args: [3, 1] }, // + a [4] bias
    { op: "gelu", args: [4] },
    { op: "tanh", args: [5] },
    { op: "sigmoid", args: [4] },
    { op: "mul", args: [6, 7] },
    { op: "sub", args: [8, 2] }, // − the constant
    { op: "div", args: [9, 2] },
    { op: "exp", args: [10] },
    { op: "pow", args: [11], attrs: { exponent: 1.5 } },
    { op: "log", args: [12] },
    { op: "leaky_relu", args: [13], attrs: { slope: 0.2 } },
    { op: "gelu_backward", args: [14, 0] },
    { op: "tanh_backward", args: [6, 15] },
    { op: "sigmoid_backward", args: [7, 16] },
    { op: "leaky_relu_backward", args: [0, 17], attrs: { slope: 0.3 } },
    { op: "relu", args: [18] },
    { op: "relu_backward", args: [5, 19] },
    { op: "dropout", args: [20], attrs: { p: 0.4, seed: 2 } },
  ];
  checkVjp(
    (x, b) => elementwiseChain([x, b], steps),
    [randTensor([3, 4], 5, 0.2, 1), randTensor([4], 6, 0.2, 1)],
    { step: 1 },
  );
});

Deno.test("elementwise_chain VJP: each input's own cotangent when one input feeds another", () => {
  // inputs x and e^x: the chain's VJP is partial in each, and grad adds the path through exp
  checkVjp((x) => elementwiseChain([x, exp(x)], [{ op: "mul", args: [0, 1] }]), [
    randTensor([5], 7),
  ]);
});

Deno.test("elementwise_chain's shape rule names a bad program", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 3]);
  const bad = (steps: unknown, msg: RegExp) =>
    assert.throws(() => elementwiseChain([x], steps as ChainStep[], { name: "c" }), msg);
  bad([], /elementwise_chain "c": steps must be a non-empty list/);
  bad([{ op: "cosh", args: [0] }], /step 0 \("cosh"\): unknown step/);
  bad([{ op: "add", args: [0] }], /step 0 \("add"\): expected 2 operand/);
  bad([{ op: "exp", args: [1] }], /operand 1 is neither an input/);
  bad([{ op: "scale", args: [0] }], /attribute factor must be a finite number, got undefined/);
  bad([{ op: "dropout", args: [0], attrs: { p: 2, seed: 0 } }], /p must be a probability/);
  // an input the program leaves unread still has to broadcast to the output
  const y = g.input("y", [2, 1, 3]);
  assert.throws(
    () => elementwiseChain([x, y], [{ op: "exp", args: [0] }]),
    /the inputs broadcast beyond the output's shape/,
  );
  // a backward step checks its operands as its op does
  assert.throws(
    () => elementwiseChain([x, y], [{ op: "relu_backward", args: [0, 1] }]),
    /step 0 \("relu_backward"\): x and dy must have the same shape/,
  );
});

// The unfused graph of a chain case: each step as its own op.
function unfused(g: Graph, ins: Node[], steps: ChainStep[]): Node {
  const vals: Node[] = [...ins];
  for (const s of steps) {
    vals.push(
      s.op === "const"
        ? fill([], s.attrs!.value!, g)
        : g.apply(lookupOp(s.op), s.args.map((a) => vals[a]!), s.attrs ?? {}),
    );
  }
  return vals.at(-1)!;
}

function runCase(c: ChainCase, tier: Tier, dtype: "float32" | "float64", fused: boolean) {
  const g = new Graph();
  const ins = c.inShapes.map((s, k) => g.input(`x${k}`, s));
  const out = fused ? elementwiseChain(ins, c.steps) : unfused(g, ins, c.steps);
  const ex = new Executor(makePlan(g, { dtype, outputs: [out] }), { tier });
  const feeds = Object.fromEntries(c.values.map((v, k) => [`x${k}`, v]));
  return [...ex.run(feeds, { training: true, step: 2, sampleOffset: 1 })[0]!];
}

for (
  const [tier, dtype] of [["wasm", "float32"], ["ts", "float32"], ["ref", "float32"], [
    "ref",
    "float64",
  ]] as const
) {
  Deno.test(`elementwise_chain equals the unfused ops bit for bit: ${tier} tier, ${dtype}`, () => {
    // the ts tier's ReLU turns −∞ into NaN ((v + |v|) / 2); every other kernel gives 0, as the chain does
    const exclude = tier === "ts" ? ["relu"] : [];
    fc.assert(
      fc.property(chainCaseArb({ exclude }), (c) => {
        const want = runCase(c, tier, dtype, false);
        const got = runCase(c, tier, dtype, true);
        assert.equal(got.length, want.length);
        for (let i = 0; i < got.length; i++) {
          assert.ok(sameValue(got[i]!, want[i]!), `element ${i}: ${got[i]}, want ${want[i]}`);
        }
      }),
      { numRuns: 150 },
    );
  });
}
