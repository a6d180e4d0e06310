// The parallel update's WebAssembly loops against the JavaScript ones they
// replace (`applyRuleAt` of train/optim/rules.ts and Updater's last sum):
// the same bits (a NaN for a NaN) for random values of every magnitude,
// zeros of both signs, infinities and NaNs, every SGD variant and Adam/AdamW
// with random hyper-parameters, odd and even lengths.
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { sharedRegions, UpdateWasm } from "../../../ops/kernels/reduce_wasm.ts";
import { applyRuleAt } from "../../../train/optim/rules.ts";

const UNIT = 64;
const regions = sharedRegions(4 * UNIT);
const w = UpdateWasm.of(regions, UNIT);

/** The bits of `a`, every NaN as the canonical quiet NaN. */
function bitsOf(a: Float32Array): number[] {
  const u = new Uint32Array(a.slice().buffer);
  return [...u].map((b, j) => Number.isNaN(a[j]) ? 0x7fc00000 : b);
}

const valueArb = fc.oneof(
  { weight: 6, arbitrary: fc.double({ min: -2, max: 2, noNaN: true }) },
  { weight: 2, arbitrary: fc.integer({ min: 0, max: 0xffffffff }) },
  { weight: 1, arbitrary: fc.constantFrom(0, -0, Infinity, -Infinity, NaN, 1e-40, -3e38) },
).map((v) =>
  typeof v === "number" && Number.isInteger(v) && v > 2
    ? new Float32Array(new Uint32Array([v]).buffer)[0]!
    : v
);
const arrayArb = (n: number) => fc.array(valueArb, { minLength: n, maxLength: n });
const caseArb = fc.integer({ min: 0, max: UNIT }).chain((n) =>
  fc.record({
    n: fc.constant(n),
    g: arrayArb(n),
    h: arrayArb(n),
    p: arrayArb(n),
    a: arrayArb(n),
    b: arrayArb(n),
    k: fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), fc.constant(1)),
    lr: fc.double({ min: 1e-5, max: 2, noNaN: true }),
    mu: fc.double({ min: 0, max: 0.99, noNaN: true }),
    wd: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 0.1, noNaN: true })),
    beta1: fc.double({ min: 0.5, max: 0.999, noNaN: true }),
    beta2: fc.double({ min: 0.9, max: 0.9999, noNaN: true }),
    eps: fc.constantFrom(1e-8, 1e-6),
    step: fc.integer({ min: 1, max: 1000 }),
    shrink: fc.oneof(fc.constant(1), fc.double({ min: 0.9, max: 1, noNaN: true })),
  })
);

Deno.test("update wasm: runs here", () => {
  assert.ok(w, "the reduce module does not run here");
});

Deno.test("update wasm: last sums, clipping scales and every rule give the JavaScript loops' bits", () => {
  const u = w!;
  fc.assert(
    fc.property(caseArb, (c) => {
      const { n } = c;
      // g in region 0 at an odd offset, h in region 2
      const ga = 1, hb = 2 * UNIT + 3;
      regions.set(c.g, ga);
      regions.set(c.h, hb);
      const g = Float32Array.from(c.g), h = Float32Array.from(c.h);
      const want = new Float32Array(n);

      u.sum(ga, hb, n);
      for (let j = 0; j < n; j++) want[j] = g[j]! + h[j]!;
      assert.deepEqual(bitsOf(u.grad.subarray(0, n)), bitsOf(want), "sum");
      u.scale(c.k, ga, n);
      for (let j = 0; j < n; j++) want[j] = g[j]! * c.k;
      assert.deepEqual(bitsOf(u.grad.subarray(0, n)), bitsOf(want), "scale");
      u.sumScale(c.k, ga, hb, n);
      for (let j = 0; j < n; j++) want[j] = Math.fround(g[j]! + h[j]!) * c.k;
      assert.deepEqual(bitsOf(u.grad.subarray(0, n)), bitsOf(want), "sumScale");

      const grad = u.grad.slice(0, n);
      const rules: [string, "sgd" | "adam", number[], (s: Float64Array) => void][] = [
        ["sgd", "sgd", [c.lr, 0, c.wd, 0, 0], (s) => u.sgd(s[0]!, s[2]!, n)],
      ];
      for (const nesterov of [0, 1]) {
        for (const fresh of [0, 1]) {
          rules.push([
            `sgd momentum nesterov ${nesterov} fresh ${fresh}`,
            "sgd",
            [c.lr, c.mu === 0 ? 0.5 : c.mu, c.wd, nesterov, fresh],
            (s) => u.sgdMomentum(s[0]!, s[1]!, s[2]!, fresh === 1, nesterov === 1, n),
          ]);
        }
      }
      const c1 = 1 - c.beta1 ** c.step, c2 = 1 - c.beta2 ** c.step;
      rules.push([
        `adam shrink ${c.shrink}`,
        "adam",
        [c.lr, c.beta1, c.beta2, c.eps, c1, c2, c.wd, c.shrink],
        (s) => u.adam(s, n),
      ]);
      for (const [name, rule, scalars, run] of rules) {
        const s = new Float64Array(8);
        s.set(scalars);
        const p = Float32Array.from(c.p), a = Float32Array.from(c.a), b = Float32Array.from(c.b);
        u.p.set(p);
        u.a.set(a);
        u.b.set(b);
        run(s);
        applyRuleAt(rule, s, p, grad, 0, a, rule === "sgd" ? a : b, 0, n);
        assert.deepEqual(bitsOf(u.p.subarray(0, n)), bitsOf(p), `${name}: p`);
        if (rule === "adam" || s[1] !== 0) {
          assert.deepEqual(bitsOf(u.a.subarray(0, n)), bitsOf(a), `${name}: a`);
        }
        if (rule === "adam") assert.deepEqual(bitsOf(u.b.subarray(0, n)), bitsOf(b), `${name}: b`);
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("update wasm: none over regions in a plain buffer", () => {
  assert.equal(UpdateWasm.of(sharedRegions(16, false), 4), null);
});
