import "../../ops/mod.ts";
import assert from "node:assert/strict";
import fc from "npm:fast-check@3.23.2";
import { Graph } from "../../graph/graph.ts";
import { vjp } from "../../graph/vjp.ts";
import { tensor } from "../../graph/tensor.ts";
import { crossEntropy } from "../../ops/cross_entropy.ts";
import { logSoftmax } from "../../ops/log_softmax.ts";
import { nllLoss, type Reduction } from "../../ops/nll_loss.ts";
import { checkVjp, randTensor, rng } from "../_grad_check.ts";

const ceCase = fc.record({
  n: fc.integer({ min: 1, max: 5 }),
  c: fc.integer({ min: 1, max: 6 }),
  reduction: fc.constantFrom<Reduction>("mean", "sum", "none"),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
});

function labels(n: number, c: number, seed: number) {
  const r = rng(seed);
  return { shape: [n], data: Float64Array.from({ length: n }, () => Math.floor(r() * c)) };
}

Deno.test("cross_entropy vjp matches finite differences for every reduction", () => {
  fc.assert(
    fc.property(ceCase, ({ n, c, reduction, seed }) => {
      const x = randTensor([n, c], seed, -3, 3);
      checkVjp((a, t) => crossEntropy(a, t, { reduction }), [x, labels(n, c, seed)], {
        seed,
        constant: [1],
        full: n * c <= 12,
      });
    }),
    { numRuns: 60 },
  );
});

Deno.test("cross_entropy equals nllLoss(logSoftmax(x)) in value and gradient", () => {
  fc.assert(
    fc.property(ceCase, ({ n, c, reduction, seed }) => {
      const x = randTensor([n, c], seed, -5, 5), t = labels(n, c, seed);
      const a = vjp((v, l) => crossEntropy(v, l, { reduction }), x, t);
      const b = vjp((v, l) => nllLoss(logSoftmax(v), l, { reduction }), x, t);
      a.out.data.forEach((v, i) => assert.ok(Math.abs(v - b.out.data[i]!) < 1e-13));
      const dy = randTensor(a.out.shape, seed + 1).data;
      const ga = a.backward(dy)[0]!.data, gb = b.backward(dy)[0]!.data;
      ga.forEach((v, i) => assert.ok(Math.abs(v - gb[i]!) < 1e-14, `dx[${i}] ${v} vs ${gb[i]}`));
    }),
    { numRuns: 60 },
  );
});

Deno.test("cross_entropy stays finite for huge logits in float32", () => {
  const { out, backward } = vjp(
    (x, t) => crossEntropy(x, t, { reduction: "none" }),
    tensor([[1e30, -1e30, 0], [3e38, 3e38, 3e38]]),
    tensor([1, 2]),
  );
  assert.deepEqual([...out.data], [
    Math.fround(2e30),
    Math.fround(Math.log(3)),
  ]);
  assert.ok(backward([1, 1])[0]!.data.every(Number.isFinite));
});

Deno.test("cross_entropy names the sample with a bad target and checks shapes", () => {
  assert.throws(
    () => vjp((x, t) => crossEntropy(x, t), tensor([[0, 1], [2, 3]]), tensor([1, 2])),
    /cross_entropy: target of sample 1 is 2, not a class index in 0..1/,
  );
  const g = new Graph();
  assert.throws(
    () => crossEntropy(g.input("x", [-1, 3]), g.input("t", [4]), { name: "ce" }),
    /cross_entropy "ce": logits hold N samples but target holds 4/,
  );
});
