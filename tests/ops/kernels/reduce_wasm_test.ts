// The gradient reduction's WebAssembly loops against the JavaScript loops of
// GradTree (copied here as the reference): the same bits for random float32
// bit patterns (subnormals, zeros, infinities, NaNs), weights that are
// float32 values and weights that are not (32/100), odd lengths and
// unaligned offsets in both memories. A NaN result must be a NaN, its
// payload free: where two NaNs meet, which one V8's JavaScript keeps is the
// compiler's choice (the first run found JS keeping the second operand's
// and wasm the first's), so no loop can promise it.
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { ReduceWasm, regionMemory, sharedRegions } from "../../../ops/kernels/reduce_wasm.ts";
import { wasmArenaBuffer } from "../../../ops/kernels/elementwise_wasm.ts";

const ARENA_FLOATS = 4096;
const REGION_FLOATS = 4096;
const arenaBuf = wasmArenaBuffer(4 * ARENA_FLOATS);
const regions = sharedRegions(REGION_FLOATS);
const kernels = ReduceWasm.of(regions);

// the JavaScript loops of GradTree, the reference
function writeRef(g: Float32Array, at: number, w: number, src: Float32Array): void {
  for (let j = 0; j < src.length; j++) g[at + j] = w * src[j]!;
}
function addScaledRef(g: Float32Array, at: number, w: number, src: Float32Array): void {
  for (let j = 0; j < src.length; j++) g[at + j] = g[at + j]! + Math.fround(w * src[j]!);
}
function addRef(g: Float32Array, a: number, b: number, n: number): void {
  for (let j = 0; j < n; j++) g[a + j] = g[a + j]! + g[b + j]!;
}

/** The bits of `a`, every NaN as the canonical quiet NaN. */
function bitsOf(a: Float32Array): Uint32Array {
  const u = new Uint32Array(a.slice().buffer);
  for (let j = 0; j < u.length; j++) if (Number.isNaN(a[j])) u[j] = 0x7fc00000;
  return u;
}

// float32 bit patterns, half of them drawn from the special classes
const special = [
  0x00000000, // +0
  0x80000000, // -0
  0x00000001, // smallest subnormal
  0x807fffff, // largest negative subnormal
  0x7f800000, // +Inf
  0xff800000, // -Inf
  0x7fc00000, // quiet NaN
  0x7fa00001, // signalling NaN with a payload
  0xffc12345, // negative NaN with a payload
  0x7f7fffff, // largest finite
  0x00800000, // smallest normal
];
const bitsArb = fc.oneof(
  fc.integer({ min: 0, max: 0xffffffff }),
  fc.constantFrom(...special),
  // small magnitudes near the subnormal range, where products underflow
  fc.tuple(fc.integer({ min: 0, max: 0x01ffffff }), fc.boolean())
    .map(([b, negative]) => negative ? (b | 0x80000000) >>> 0 : b),
);
const weightArb = fc.oneof(
  fc.integer({ min: 1, max: 512 }).chain((n) => fc.integer({ min: 1, max: n }).map((m) => m / n)),
  fc.double({ min: -4, max: 4, noNaN: true }),
  fc.constantFrom(0, -0, 0.125, 1, 2 ** -130, 1e-40, 3e38),
);
const caseArb = fc.record({
  n: fc.integer({ min: 0, max: 67 }),
  src: fc.integer({ min: 0, max: 200 }),
  at: fc.integer({ min: 0, max: 200 }),
  other: fc.integer({ min: 1000, max: 1200 }),
  w: weightArb,
  bits: fc.array(bitsArb, { minLength: 134, maxLength: 134 }),
});

function fill(a: Float32Array, bits: number[], from: number): void {
  const u = new Uint32Array(a.length);
  for (let j = 0; j < u.length; j++) u[j] = bits[(from + j) % bits.length]! >>> 0;
  a.set(new Float32Array(u.buffer));
}

Deno.test("reduce wasm: runs here (SIMD and multi-memory), regions in a shared wasm memory", () => {
  assert.ok(arenaBuf, "no wasm arena");
  assert.ok(regionMemory(regions.buffer), "regions not in a wasm memory");
  assert.ok(kernels, "the reduce module does not run here");
});

Deno.test("reduce wasm: scale, add_scaled and add give the JavaScript loops' bits", () => {
  const k = kernels!;
  fc.assert(
    fc.property(caseArb, ({ n, src, at, other, w, bits }) => {
      const s = new Float32Array(arenaBuf!, 4 * src, n);
      fill(s, bits, 0);
      const before = new Float32Array(regions.length);
      fill(before, bits, 67);
      const ref = before.slice();

      regions.set(before);
      assert.ok(k.scale(w, s, at, n));
      writeRef(ref, at, w, s);
      assert.deepEqual(bitsOf(regions), bitsOf(ref), `scale w=${w}`);

      assert.ok(k.addScaled(w, s, other, n));
      addScaledRef(ref, other, w, s);
      assert.deepEqual(bitsOf(regions), bitsOf(ref), `addScaled w=${w}`);

      k.add(at, other, n);
      addRef(ref, at, other, n);
      assert.deepEqual(bitsOf(regions), bitsOf(ref), "add");
    }),
    { numRuns: 400 },
  );
});

Deno.test("reduce wasm: long runs (many SIMD rounds and a tail) match too", () => {
  const k = kernels!;
  const n = 3001;
  const s = new Float32Array(arenaBuf!, 4, n);
  const u = new Uint32Array(n);
  for (let j = 0; j < n; j++) u[j] = (Math.imul(j, 2654435761) ^ (j << 7)) >>> 0;
  s.set(new Float32Array(u.buffer));
  const ref = new Float32Array(regions.length);
  regions.fill(0);
  for (const w of [0.32, 0.125]) {
    assert.ok(k.scale(w, s, 3, n));
    writeRef(ref, 3, w, s);
    assert.ok(k.addScaled(w, s, 3, n));
    addScaledRef(ref, 3, w, s);
    k.add(3, 3, n);
    addRef(ref, 3, 3, n);
    assert.deepEqual(bitsOf(regions), bitsOf(ref), `w=${w}`);
  }
});

Deno.test("reduce wasm: declines sources outside a wasm arena and plain region buffers", () => {
  const k = kernels!;
  regions.fill(7);
  assert.equal(k.scale(0.5, new Float32Array(8), 0, 8), false);
  assert.equal(k.addScaled(0.5, new Float32Array(8), 0, 8), false);
  assert.equal(k.scale(0.5, new Float64Array(arenaBuf!, 0, 4), 0, 4), false);
  assert.deepEqual([...regions.subarray(0, 8)], [7, 7, 7, 7, 7, 7, 7, 7]);
  assert.equal(ReduceWasm.of(new Float32Array(new SharedArrayBuffer(64))), null);
  assert.equal(ReduceWasm.of(sharedRegions(16, false)), null);
});
