// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../ops/mod.ts";
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { Executor } from "../../graph/executor.ts";
import { Graph } from "../../graph/graph.ts";
import { grad } from "../../graph/grad.ts";
import { makePlan } from "../../graph/plan.ts";
import { vjp } from "../../graph/vjp.ts";
import { mul } from "../../ops/mul.ts";
import { flatten, reshape } from "../../ops/reshape.ts";
import { sum } from "../../ops/sum.ts";
import { checkVjp, randTensor, rng } from "../_grad_check.ts";

const RUNS = 50;
const shape = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 4 });

/** A random shape with `n` elements (1s sprinkled in), and the same with one axis as -1. */
function randomTarget(n: number, seed: number): { target: number[]; inferred: number[] } {
  const r = rng(seed);
  const target: number[] = [];
  let rest = n;
  while (rest > 1 && target.length < 4) {
    const divisors = [...Array(rest).keys()].map((d) => d + 1).filter((d) => rest % d === 0);
    const d = divisors[Math.floor(r() * divisors.length)]!;
    target.push(d);
    rest /= d;
    if (r() < 0.2) target.push(1);
  }
  target.push(rest);
  const k = Math.floor(r() * target.length);
  return { target, inferred: target.map((d, i) => (i === k ? -1 : d)) };
}

Deno.test("reshape keeps the row-major elements and infers a -1 axis", () => {
  fc.assert(
    fc.property(shape, fc.integer(), (s, seed) => {
      const x = randTensor(s, seed);
      const { target, inferred } = randomTarget(x.data.length, seed);
      for (const t of [target, inferred]) {
        const out = vjp((v) => reshape(v, t), x).out;
        assert.deepEqual(out.shape, target);
        assert.deepEqual(out.data, x.data);
      }
    }),
    { numRuns: RUNS },
  );
});

Deno.test("reshape vjp matches finite differences", () => {
  fc.assert(
    fc.property(shape, fc.integer(), (s, seed) => {
      const x = randTensor(s, seed);
      const { inferred } = randomTarget(x.data.length, seed);
      checkVjp((v) => reshape(v, inferred), [x], { seed, full: x.data.length <= 24 });
    }),
    { numRuns: RUNS },
  );
});

Deno.test("flatten merges the axes from startAxis; vjp matches finite differences", () => {
  fc.assert(
    fc.property(
      shape.filter((s) => s.length > 0),
      fc.nat(),
      fc.integer(),
      (s, pick, seed) => {
        const start = pick % s.length;
        const x = randTensor(s, seed);
        const out = vjp((v) => flatten(v, { startAxis: start }), x).out;
        const tail = s.slice(start).reduce((p, q) => p * q, 1);
        assert.deepEqual(out.shape, [...s.slice(0, start), tail]);
        assert.deepEqual(out.data, x.data);
        checkVjp((v) => flatten(v, { startAxis: start }), [x], { seed });
      },
    ),
    { numRuns: 40 },
  );
});

Deno.test("reshape and flatten keep the batch axis and bind it at plan time", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 2, 3]);
  const f = flatten(x);
  const r = reshape(x, [-1, 3, 2]);
  assert.deepEqual(f.shape, [-1, 6]);
  assert.deepEqual(r.shape, [-1, 3, 2]);
  const w = g.input("w", [-1, 6]);
  const [dx] = grad(sum(mul(f, w)), [x]);
  assert.deepEqual(dx!.shape, [-1, 2, 3]);
  const ex = new Executor(makePlan(g, { batch: 2, outputs: [f, r, dx!] }));
  const xs = Array.from({ length: 12 }, (_, i) => i);
  const ws = xs.map((v) => v * 10);
  const [fv, rv, dv] = ex.run({ x: xs, w: ws });
  assert.deepEqual([...fv!], xs);
  assert.deepEqual([...rv!], xs);
  assert.deepEqual([...dv!], ws);
});

Deno.test("reshape errors name the op, the node and the shapes", () => {
  const g = new Graph();
  const x = g.input("x", [-1, 4]);
  assert.throws(
    () => reshape(x, [-1, 3], { name: "r1" }),
    /reshape "r1": cannot reshape a batch of 4-element samples to \[-1,3\] \(x \[N,4\]\)/,
  );
  assert.throws(
    () => reshape(g.input("y", [2, 3]), [4, 2], { name: "r2" }),
    /reshape "r2": 6 elements cannot take the shape \[4,2\] \(x \[2,3\]\)/,
  );
  assert.throws(
    () => reshape(g.input("z", [6]), [-1, -1], { name: "r3" }),
    /reshape "r3": target shape \[-1,-1\] may hold at most one -1/,
  );
  assert.throws(
    () => reshape(g.input("u", [6]), [-1, 4], { name: "r4" }),
    /reshape "r4": cannot infer the -1 axis of \[-1,4\] from 6 elements/,
  );
});
