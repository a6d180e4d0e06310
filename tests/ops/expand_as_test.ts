// every op registers itself on import; grad finds fill, add, sum, reshape by name
import "../../ops/mod.ts";
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { Executor } from "../../graph/executor.ts";
import { Graph } from "../../graph/graph.ts";
import { grad } from "../../graph/grad.ts";
import { makePlan } from "../../graph/plan.ts";
import { expandAs } from "../../ops/expand_as.ts";
import { sum } from "../../ops/sum.ts";
import { checkVjp, randTensor } from "../_grad_check.ts";

const RUNS = 50;

/** A target shape, and a shape that broadcasts to it: leading axes dropped, some set to 1. */
const broadcastPair = fc.tuple(
  fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 4 }),
  fc.nat(),
  fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
).map(([like, dropPick, ones]) => {
  const drop = dropPick % (like.length + 1);
  const y = like.slice(drop).map((d, i) => (ones[i] ? 1 : d));
  return [y, like] as const;
});

/** The element of `y` that broadcasting places at flat index `i` of `like`. */
function source(i: number, y: readonly number[], like: readonly number[]): number {
  let j = 0, stride = 1;
  for (let a = like.length - 1, b = y.length - 1; a >= 0; a--, b--) {
    const c = i % like[a]!;
    i = Math.floor(i / like[a]!);
    if (b < 0) continue;
    if (y[b] !== 1) j += c * stride;
    stride *= y[b]!;
  }
  return j;
}

Deno.test("expandAs forward copies each element to its broadcast positions", () => {
  fc.assert(
    fc.property(broadcastPair, fc.boolean(), fc.integer(), ([ys, ls], useMean, seed) => {
      const y = randTensor([...ys], seed);
      const like = randTensor([...ls], seed + 1);
      // forward only: vjp() would differentiate, and a mean's expand has no VJP
      const g = new Graph();
      const e = expandAs(g.input("y", ys), g.input("like", ls), { mean: useMean });
      assert.deepEqual(e.shape, ls);
      const ex = new Executor(makePlan(g, { dtype: "float64", outputs: [e] }));
      const out = { data: ex.run({ y: y.data, like: like.data })[0]! };
      const copies = like.data.length / y.data.length;
      for (let i = 0; i < out.data.length; i++) {
        const want = y.data[source(i, ys, ls)]! / (useMean ? copies : 1);
        assert.ok(Math.abs(out.data[i]! - want) < 1e-15, `out[${i}]`);
      }
    }),
    { numRuns: RUNS },
  );
});

Deno.test("expandAs vjp sums the cotangent over the copies (finite differences)", () => {
  fc.assert(
    fc.property(broadcastPair, fc.integer(), ([ys, ls], seed) => {
      const y = randTensor([...ys], seed);
      const like = randTensor([...ls], seed + 1);
      // like lends only its shape: no gradient, so it is held constant
      checkVjp((a, b) => expandAs(a, b), [y, like], {
        seed,
        constant: [1],
        full: like.data.length <= 24,
      });
    }),
    { numRuns: RUNS },
  );
});

Deno.test("expandAs with mean divides by the run-time batch", () => {
  const g = new Graph();
  const b = g.input("b", [1, 3]);
  const x = g.input("x", [-1, 3]);
  const e = expandAs(b, x, { mean: true });
  const plain = expandAs(b, x);
  const [db] = grad(sum(plain), [b]);
  const ex = new Executor(makePlan(g, { batch: 4, outputs: [e, db!] }));
  const [ev, dbv] = ex.run({ b: [4, 8, 12], x: new Float32Array(12) });
  assert.deepEqual([...ev!], [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]);
  assert.deepEqual([...dbv!], [4, 4, 4]);
});

Deno.test("expandAs errors name the op and node; a mean's VJP is not differentiated", () => {
  const g = new Graph();
  assert.throws(
    () => expandAs(g.input("y", [2, 3]), g.input("x", [-1, 3]), { name: "ex" }),
    /expand_as "ex": shapes cannot be broadcast together at axis 0 \(y \[2,3\], like \[N,3\]\)/,
  );
  assert.throws(
    () => expandAs(g.input("v", [3]), g.input("x1", [3, 1]), { name: "ex2" }),
    /expand_as "ex2": y does not broadcast to the shape of like \(y \[3\], like \[3,1\]\)/,
  );
  const y = g.input("z", [1]);
  const m = expandAs(y, g.input("w", [3]), { mean: true, name: "spread" });
  assert.throws(() => grad(sum(m), [y]), /expand_as "spread": the derivative of a mean's VJP/);
});
