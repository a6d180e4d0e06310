import assert from "node:assert/strict";
import { polynomialData } from "../../../train/data/synthetic.ts";

Deno.test("polynomialData without noise is the polynomial of x", () => {
  const { x, t } = polynomialData({ count: 200, coefficients: [0.5, -2, 3], noise: 0, seed: 1 });
  assert.equal(x.length, 200);
  assert.equal(t.length, 200);
  for (let i = 0; i < 200; i++) {
    assert.ok(x[i] >= -1 && x[i] <= 1, `x ${x[i]}`);
    assert.equal(t[i], Math.fround(0.5 - 2 * x[i] + 3 * x[i] * x[i]));
  }
});

Deno.test("polynomialData respects xRange and spreads x over it", () => {
  const { x } = polynomialData({
    count: 10_000,
    coefficients: [0, 0, 0],
    noise: 0,
    seed: 2,
    xRange: [2, 6],
  });
  let min = Infinity, max = -Infinity, sum = 0;
  for (const v of x) {
    min = Math.min(min, v);
    max = Math.max(max, v);
    sum += v;
  }
  assert.ok(min >= 2 && min < 2.01, `min ${min}`);
  assert.ok(max <= 6 && max > 5.99, `max ${max}`);
  assert.ok(Math.abs(sum / x.length - 4) < 0.05, `mean ${sum / x.length}`);
});

Deno.test("polynomialData noise has the requested standard deviation", () => {
  const w: [number, number, number] = [1, 2, -1];
  const { x, t } = polynomialData({ count: 50_000, coefficients: w, noise: 0.3, seed: 3 });
  let s = 0, s2 = 0;
  for (let i = 0; i < x.length; i++) {
    const r = t[i] - (w[0] + w[1] * x[i] + w[2] * x[i] * x[i]);
    s += r;
    s2 += r * r;
  }
  const mean = s / x.length;
  const sd = Math.sqrt(s2 / x.length - mean * mean);
  assert.ok(Math.abs(mean) < 0.01, `mean residual ${mean}`);
  assert.ok(Math.abs(sd - 0.3) < 0.01, `residual sd ${sd}`);
});

Deno.test("polynomialData is reproducible from the seed", () => {
  const opts = { count: 50, coefficients: [1, 1, 1] as [number, number, number], noise: 0.1 };
  const a = polynomialData({ ...opts, seed: 9 });
  const b = polynomialData({ ...opts, seed: 9 });
  const c = polynomialData({ ...opts, seed: 10 });
  assert.deepEqual(b, a);
  assert.notDeepEqual(c.x, a.x);
});

Deno.test("polynomialData rejects bad options with the value", () => {
  const base = { count: 5, coefficients: [1, 1, 1] as [number, number, number], noise: 0, seed: 0 };
  assert.throws(() => polynomialData({ ...base, count: -1 }), /count .* got -1/);
  assert.throws(() => polynomialData({ ...base, noise: -0.5 }), /noise .* got -0.5/);
  assert.throws(() => polynomialData({ ...base, xRange: [1, 1] }), /xRange .* got \[1, 1\]/);
  assert.throws(
    () => polynomialData({ ...base, coefficients: [1, NaN, 1] }),
    /coefficients .* got \[1, NaN, 1\]/,
  );
});
