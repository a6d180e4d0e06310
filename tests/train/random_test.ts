import assert from "node:assert/strict";
import { hash32, hashUniform, Rng } from "../../train/random.ts";

function draw(rng: Rng, n: number): number[] {
  return Array.from({ length: n }, () => rng.next());
}

Deno.test("Rng gives the same stream for the same seed and different streams for different seeds", () => {
  const a = draw(new Rng(42), 100);
  assert.deepEqual(draw(new Rng(42), 100), a);
  assert.notDeepEqual(draw(new Rng(43), 100), a);
  // Seeds that differ only above bit 32 must not collide.
  assert.notDeepEqual(draw(new Rng(2 ** 32 + 42), 100), a);
  for (const v of a) assert.ok(Number.isInteger(v) && v >= 0 && v < 2 ** 32);
});

Deno.test("Rng output is pinned so streams stay reproducible across versions", () => {
  // Regenerating these means every seeded run in the project changes: do it on purpose only.
  const rng = new Rng(0);
  const first = draw(rng, 3);
  assert.deepEqual(first, draw(new Rng(0), 3));
  assert.equal(first.length, 3);
  assert.deepEqual(first, PINNED_SEED0);
});

const PINNED_SEED0 = [3057525111, 1332429758, 2598142239];

Deno.test("Rng.next from a given state matches the published sfc32 step", () => {
  // sfc32 as written in Chris Doty-Humphrey's PractRand, transcribed independently here.
  function* sfc32(a: number, b: number, c: number, d: number) {
    while (true) {
      a >>>= 0, b >>>= 0, c >>>= 0, d >>>= 0;
      // tmp = a + b + counter++; a = b ^ (b >> 9); b = c + (c << 3); c = rotl(c, 21) + tmp
      const t = (((a + b) | 0) + d) | 0;
      d = (d + 1) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (((c << 21) | (c >>> 11)) + t) | 0;
      yield t >>> 0;
    }
  }
  const state = [0x9e3779b9, 0x243f6a88, 0xb7e15162, 5];
  const ref = sfc32(state[0], state[1], state[2], state[3]);
  const rng = Rng.fromState(state);
  for (let i = 0; i < 1000; i++) assert.equal(rng.next(), ref.next().value);
});

Deno.test("Rng state round trip continues the same stream, through JSON", () => {
  const rng = new Rng(7);
  draw(rng, 13);
  rng.normal();
  const saved = JSON.parse(JSON.stringify(rng.state()));
  const expected = draw(rng, 50);
  const restored = Rng.fromState(saved);
  assert.deepEqual(draw(restored, 50), expected);
  assert.deepEqual(restored.state(), rng.state());
});

Deno.test("Rng.fromState rejects malformed states", () => {
  assert.throws(() => Rng.fromState([1, 2, 3]), /4 integers/);
  assert.throws(() => Rng.fromState([1, 2, 3, -1]), /4 integers/);
  assert.throws(() => Rng.fromState([1, 2, 3, 2 ** 32]), /4 integers/);
  assert.throws(() => new Rng(1.5), /safe integer, got 1.5/);
});

Deno.test("Rng.uniform is in [0,1) with mean near 0.5 and even deciles", () => {
  const rng = new Rng(123);
  const n = 100_000;
  let sum = 0;
  const bins = new Array(10).fill(0);
  for (let i = 0; i < n; i++) {
    const u = rng.uniform();
    assert.ok(u >= 0 && u < 1);
    sum += u;
    bins[Math.floor(u * 10)]++;
  }
  assert.ok(Math.abs(sum / n - 0.5) < 0.01, `mean ${sum / n}`);
  for (const b of bins) assert.ok(Math.abs(b - n / 10) < 600, `decile count ${b}`);
});

Deno.test("Rng.normal has mean 0 and variance 1", () => {
  const rng = new Rng(5);
  const n = 100_000;
  let s = 0, s2 = 0;
  for (let i = 0; i < n; i++) {
    const z = rng.normal();
    assert.ok(Number.isFinite(z));
    s += z;
    s2 += z * z;
  }
  const mean = s / n;
  assert.ok(Math.abs(mean) < 0.02, `mean ${mean}`);
  assert.ok(Math.abs(s2 / n - mean * mean - 1) < 0.03, `variance ${s2 / n - mean * mean}`);
});

Deno.test("Rng.int covers [0, n) evenly and rejects bad n", () => {
  const rng = new Rng(9);
  const counts = new Array(7).fill(0);
  for (let i = 0; i < 70_000; i++) counts[rng.int(7)]++;
  for (const c of counts) assert.ok(Math.abs(c - 10_000) < 500, `count ${c}`);
  // For n near 2^32 a plain modulo would make the low third twice as likely as the rest.
  const n = 3 * 2 ** 30;
  let low = 0;
  for (let i = 0; i < 30_000; i++) if (rng.int(n) < 2 ** 30) low++;
  assert.ok(Math.abs(low / 30_000 - 1 / 3) < 0.02, `low third share ${low / 30_000}`);
  assert.equal(rng.int(1), 0);
  const big = rng.int(2 ** 32);
  assert.ok(big >= 0 && big < 2 ** 32);
  assert.throws(() => rng.int(0), /integer in \[1, 2\^32\], got 0/);
  assert.throws(() => rng.int(2.5), /got 2.5/);
});

Deno.test("Rng.shuffle permutes plain and typed arrays reproducibly", () => {
  const a = Array.from({ length: 100 }, (_, i) => i);
  const b = Uint32Array.from(a);
  const c = Int32Array.from(a);
  new Rng(3).shuffle(a);
  new Rng(3).shuffle(b);
  new Rng(3).shuffle(c);
  assert.deepEqual([...b], a);
  assert.deepEqual([...c], a);
  assert.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i));
  assert.notDeepEqual(a, Array.from({ length: 100 }, (_, i) => i));
  const d = Array.from({ length: 100 }, (_, i) => i);
  new Rng(4).shuffle(d);
  assert.notDeepEqual(d, a);
});

Deno.test("hash32 is stable, order-sensitive and arity-sensitive", () => {
  assert.equal(hash32(1, 2, 3), hash32(1, 2, 3));
  assert.notEqual(hash32(1, 2, 3), hash32(3, 2, 1));
  assert.notEqual(hash32(0), hash32(0, 0));
  assert.notEqual(hash32(), hash32(0));
  for (const h of [hash32(), hash32(1), hash32(-1, 2 ** 31), hash32(1, 2, 3, 4, 5)]) {
    assert.ok(Number.isInteger(h) && h >= 0 && h < 2 ** 32);
  }
  assert.deepEqual(
    [hash32(), hash32(0), hash32(1, 2, 3), hash32(42, 1000, 7, 99)],
    PINNED_HASHES,
  );
});

const PINNED_HASHES = [3274644509, 3252695327, 2339639824, 766726205];

Deno.test("hashUniform equals hash32 scaled and is uniform over neighbouring keys", () => {
  assert.equal(hashUniform(42, 1, 2, 3), hash32(42, 1, 2, 3) / 2 ** 32);
  let sum = 0;
  let flips = 0;
  const n = 100_000;
  for (let i = 0; i < n; i++) {
    const u = hashUniform(7, 100, i >> 10, i & 1023);
    assert.ok(u >= 0 && u < 1);
    sum += u;
    // Keys that differ by one element index must look independent.
    if ((u < 0.5) !== (hashUniform(7, 100, i >> 10, (i & 1023) + 1) < 0.5)) flips++;
  }
  assert.ok(Math.abs(sum / n - 0.5) < 0.01, `mean ${sum / n}`);
  assert.ok(Math.abs(flips / n - 0.5) < 0.01, `neighbour disagreement ${flips / n}`);
});
