import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import {
  checkConv2dDims,
  conv2dBackwardFilterRef,
  conv2dBackwardInputRef,
  type Conv2dDims,
  conv2dRef,
} from "../../../ops/kernels/conv2d_ref.ts";
import {
  conv2dBackwardFilterFast,
  conv2dBackwardInputFast,
  conv2dFast,
  conv2dFastScratch,
} from "../../../ops/kernels/conv2d_fast.ts";
import { wasmArenaBuffer } from "../../../ops/kernels/elementwise_wasm.ts";
import {
  col2imWasm,
  gemmStagedBytes,
  im2colWasm,
  wasmArena,
  wasmAvailable,
  wasmScratch,
} from "../../../ops/kernels/gemm_wasm.ts";
import { uniformArray } from "../../_rng.ts";

// Deterministic uniform(-1, 1) values from a seed.
const random = (len: number, seed: number): Float64Array => uniformArray(len, seed);

// Float32-representable data, so float32 and float64 runs see the same inputs.
function random32(len: number, seed: number): Float64Array {
  return Float64Array.from(new Float32Array(random(len, seed)));
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function dims(
  n: number,
  c: number,
  h: number,
  w: number,
  oc: number,
  kh: number,
  kw: number,
  stride: number,
  padding: number,
): Conv2dDims {
  const oh = Math.floor((h + 2 * padding - kh) / stride) + 1;
  const ow = Math.floor((w + 2 * padding - kw) / stride) + 1;
  return { n, c, h, w, oc, kh, kw, oh, ow, stride, padding };
}

const sizes = (d: Conv2dDims) => ({
  x: d.n * d.c * d.h * d.w,
  w: d.oc * d.c * d.kh * d.kw,
  y: d.n * d.oc * d.oh * d.ow,
});

// Random convolutions whose kernel fits the padded input.
const convArb = fc
  .record({
    n: fc.integer({ min: 1, max: 3 }),
    c: fc.integer({ min: 1, max: 4 }),
    h: fc.integer({ min: 1, max: 12 }),
    w: fc.integer({ min: 1, max: 12 }),
    oc: fc.integer({ min: 1, max: 5 }),
    kh: fc.integer({ min: 1, max: 4 }),
    kw: fc.integer({ min: 1, max: 4 }),
    stride: fc.integer({ min: 1, max: 3 }),
    padding: fc.integer({ min: 0, max: 2 }),
  })
  .filter((r) => r.h + 2 * r.padding >= r.kh && r.w + 2 * r.padding >= r.kw)
  .map((r) => dims(r.n, r.c, r.h, r.w, r.oc, r.kh, r.kw, r.stride, r.padding));

Deno.test("conv2dRef matches a hand-computed example", () => {
  const d = dims(1, 1, 3, 3, 1, 2, 2, 1, 0);
  const y = new Float64Array(4);
  conv2dRef(
    new Float64Array([1, 2, 3, 4, 5, 6, 7, 8, 9]),
    new Float64Array([1, 0, 0, 1]),
    new Float64Array([0.5]),
    y,
    d,
  );
  assert.deepEqual([...y], [6.5, 8.5, 12.5, 14.5]);
  // Padding 1, stride 2 over a 3×3 image of ones: corners see 4 pixels, edges 6, centre 9.
  const d2 = dims(1, 1, 3, 3, 1, 3, 3, 2, 1);
  const y2 = new Float64Array(4);
  conv2dRef(new Float64Array(9).fill(1), new Float64Array(9).fill(1), null, y2, d2);
  assert.deepEqual([...y2], [4, 4, 4, 4]);
});

Deno.test("conv2dRef matches the direct formula over an explicitly padded input", () => {
  const d = dims(2, 3, 5, 6, 4, 3, 2, 2, 1);
  const x = random(sizes(d).x, 1), w = random(sizes(d).w, 2), b = random(d.oc, 3);
  const y = new Float64Array(sizes(d).y);
  conv2dRef(x, w, b, y, d);
  const p = d.padding, hp = d.h + 2 * p, wp = d.w + 2 * p;
  const xp = new Float64Array(d.n * d.c * hp * wp);
  for (let n = 0; n < d.n; n++) {
    for (let c = 0; c < d.c; c++) {
      for (let i = 0; i < d.h; i++) {
        for (let j = 0; j < d.w; j++) {
          xp[((n * d.c + c) * hp + i + p) * wp + j + p] = x[((n * d.c + c) * d.h + i) * d.w + j];
        }
      }
    }
  }
  for (let n = 0; n < d.n; n++) {
    for (let o = 0; o < d.oc; o++) {
      for (let i = 0; i < d.oh; i++) {
        for (let j = 0; j < d.ow; j++) {
          let want = b[o];
          for (let c = 0; c < d.c; c++) {
            for (let u = 0; u < d.kh; u++) {
              for (let v = 0; v < d.kw; v++) {
                want += xp[((n * d.c + c) * hp + i * d.stride + u) * wp + j * d.stride + v] *
                  w[((o * d.c + c) * d.kh + u) * d.kw + v];
              }
            }
          }
          const got = y[((n * d.oc + o) * d.oh + i) * d.ow + j];
          assert.ok(Math.abs(got - want) < 1e-12, `y[${n},${o},${i},${j}] = ${got}, want ${want}`);
        }
      }
    }
  }
});

Deno.test("conv2d backward refs are the adjoints of the forward in float64", () => {
  fc.assert(
    fc.property(convArb, fc.integer({ min: 0, max: 2 ** 30 }), (d, seed) => {
      const n = sizes(d);
      const x = random(n.x, seed), w = random(n.w, seed + 1), dy = random(n.y, seed + 2);
      const y = new Float64Array(n.y), dx = new Float64Array(n.x), dw = new Float64Array(n.w);
      conv2dRef(x, w, null, y, d);
      conv2dBackwardInputRef(dy, w, dx, d);
      conv2dBackwardFilterRef(x, dy, dw, d);
      const lhs = dot(y, dy);
      const tol = 1e-10 * (1 + Math.abs(lhs));
      assert.ok(Math.abs(lhs - dot(x, dx)) < tol, `<conv(x), dy> ${lhs} vs <x, dx> ${dot(x, dx)}`);
      assert.ok(Math.abs(lhs - dot(w, dw)) < tol, `<conv(x), dy> ${lhs} vs <w, dw> ${dot(w, dw)}`);
    }),
    { numRuns: 200 },
  );
});

// Float32 result vs float64 reference, each element bounded relative to the
// sum of |products| that formed it (computed by the same kernel on |inputs|).
function assertClose(got: Float32Array, want: Float64Array, scale: Float64Array, what: string) {
  for (let i = 0; i < want.length; i++) {
    const bound = 1e-5 * scale[i] + 1e-30;
    if (!(Math.abs(got[i] - want[i]) <= bound)) {
      assert.fail(`${what}: element ${i} is ${got[i]}, want ${want[i]} (bound ${bound})`);
    }
  }
}

const abs = (a: Float64Array) => a.map(Math.abs);

// Where the float32 operands live: "ts" and "wasm" in plain arrays (the wasm
// tier stages them into the GEMM module's memory); "arena" in one executor
// arena with the plan's kernel scratch, the weight outside it like a
// parameter; "arena-w" with the weight inside too.
type Mode = "ts" | "wasm" | "arena" | "arena-w";
const modes: Mode[] = wasmAvailable() ? ["ts", "wasm", "arena", "arena-w"] : ["ts"];

// An allocator of NaN-filled float32 arrays for `mode`, with room for every
// operand of the three passes of `d`.
function placer(mode: Mode, d: Conv2dDims): (len: number) => Float32Array {
  if (mode === "ts" || mode === "wasm") return (len) => new Float32Array(len).fill(NaN);
  const n = sizes(d);
  const pad = (len: number) => Math.ceil(len / 16) * 16;
  const bytes = 4 * (2 * pad(n.x) + 2 * pad(n.y) + 2 * pad(n.w) + pad(d.oc));
  const scratch = Math.max(
    ...(["forward", "input", "filter"] as const).map((p) => conv2dFastScratch(d, p)),
  );
  const buf = wasmArenaBuffer(bytes, scratch * 4)!;
  new Float32Array(buf).fill(NaN); // the scratch too: kernels must write all they read
  let at = 0;
  return (len) => {
    const a = new Float32Array(buf, at * 4, len);
    at += pad(len);
    return a;
  };
}

function checkFast(d: Conv2dDims, seed: number, mode: Mode, bias: boolean): void {
  const n = sizes(d);
  const x = random32(n.x, seed), w = random32(n.w, seed + 1), dy = random32(n.y, seed + 2);
  const b = bias ? random32(d.oc, seed + 3) : null;
  const label = `${mode} ${JSON.stringify(d)}`;
  const tier = mode === "ts" ? "ts" : "wasm";
  const place = placer(mode, d);
  const put = (a: Float64Array) => {
    const out = place(a.length);
    out.set(a);
    return out;
  };
  const x32 = put(x), dy32 = put(dy), b32 = b && new Float32Array(b);
  const w32 = mode === "arena-w" ? put(w) : new Float32Array(w);
  const staged0 = gemmStagedBytes();

  const y = new Float64Array(n.y), ys = new Float64Array(n.y);
  conv2dRef(x, w, b, y, d);
  conv2dRef(abs(x), abs(w), b && abs(b), ys, d);
  const y32 = place(n.y);
  conv2dFast(x32, w32, b32, y32, d, tier);
  assertClose(y32, y, ys, `conv2dFast ${label}`);

  const dx = new Float64Array(n.x), dxs = new Float64Array(n.x);
  conv2dBackwardInputRef(dy, w, dx, d);
  conv2dBackwardInputRef(abs(dy), abs(w), dxs, d);
  const dx32 = place(n.x);
  conv2dBackwardInputFast(dy32, w32, dx32, d, tier);
  assertClose(dx32, dx, dxs, `conv2dBackwardInputFast ${label}`);

  const dw = new Float64Array(n.w), dws = new Float64Array(n.w);
  conv2dBackwardFilterRef(x, dy, dw, d);
  conv2dBackwardFilterRef(abs(x), abs(dy), dws, d);
  const dw32 = place(n.w);
  conv2dBackwardFilterFast(x32, dy32, dw32, d, tier);
  assertClose(dw32, dw, dws, `conv2dBackwardFilterFast ${label}`);

  // on an arena nothing is copied but a weight from outside, once per pass that reads it
  const staged = gemmStagedBytes() - staged0;
  if (mode === "arena") assert.equal(staged, 2 * 4 * n.w, `staged bytes, ${label}`);
  if (mode === "arena-w") assert.equal(staged, 0, `staged bytes, ${label}`);
  if (mode === "wasm") assert.ok(staged >= 4 * (n.x + n.y), `staged bytes, ${label}`);
}

for (const mode of modes) {
  Deno.test(`conv2d fast kernels (${mode}) match the refs for random shapes, strides and padding`, () => {
    fc.assert(
      fc.property(convArb, fc.integer({ min: 0, max: 2 ** 30 }), fc.boolean(), (d, seed, bias) => {
        checkFast(d, seed, mode, bias);
      }),
      { numRuns: mode === "arena" || mode === "arena-w" ? 60 : 150 },
    );
  });

  Deno.test(`conv2d fast kernels (${mode}) match the refs on 1×1 and lecture-like shapes`, () => {
    checkFast(dims(2, 5, 7, 6, 3, 1, 1, 1, 0), 11, mode, true); // pointwise: no im2col
    checkFast(dims(3, 1, 28, 28, 8, 3, 3, 1, 0), 12, mode, true); // conv1 of the lecture, fewer channels
    checkFast(dims(2, 16, 13, 13, 12, 3, 3, 1, 1), 13, mode, false);
    checkFast(dims(2, 3, 17, 15, 4, 5, 4, 3, 2), 14, mode, true);
  });
}

Deno.test({
  name: "conv2d fast kernels on an arena without enough scratch take the copying path",
  ignore: !wasmAvailable(),
  fn() {
    const d = dims(2, 3, 9, 9, 4, 3, 3, 1, 1);
    const n = sizes(d);
    const x = random32(n.x, 5), w = random32(n.w, 6);
    const buf = wasmArenaBuffer(4 * (n.x + n.y), 0)!; // no scratch reserved
    const x32 = new Float32Array(buf, 0, n.x), y32 = new Float32Array(buf, 4 * n.x, n.y);
    x32.set(x);
    y32.fill(NaN);
    const staged0 = gemmStagedBytes();
    conv2dFast(x32, new Float32Array(w), null, y32, d, "wasm");
    assert.ok(gemmStagedBytes() - staged0 >= 4 * (n.x + n.y), "it staged the images");
    const y = new Float64Array(n.y), ys = new Float64Array(n.y);
    conv2dRef(x, w, null, y, d);
    conv2dRef(abs(x), abs(w), null, ys, d);
    assertClose(y32, y, ys, "conv2dFast without scratch");
  },
});

Deno.test("conv2d kernels reject inconsistent dims and short arrays", () => {
  const d = dims(1, 2, 5, 5, 3, 3, 3, 1, 0);
  const x = new Float32Array(50), w = new Float32Array(54), y = new Float32Array(27);
  assert.throws(() => conv2dFast(x, w, null, y, { ...d, oh: 4 }), /output should be 3×3/);
  assert.throws(() => conv2dRef(x, w, null, y, { ...d, stride: 0 }), /stride ≥ 1/);
  assert.throws(
    () => conv2dBackwardFilterFast(x, y.subarray(1), w, d),
    /y has 26 elements, needs 27/,
  );
  assert.throws(() => checkConv2dDims("t", d, { b: new Float32Array(2) }), /b has 2 elements/);
});

Deno.test({
  name: "im2colWasm and col2imWasm lay out and fold back windows, in wasm memory only",
  ignore: !wasmAvailable(),
  fn() {
    const d = dims(1, 1, 3, 3, 1, 2, 2, 1, 0);
    const [x, col, dx] = wasmScratch([9, 16, 9])!;
    x.set([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    im2colWasm(x, col, d);
    assert.deepEqual([...col], [1, 2, 4, 5, 2, 3, 5, 6, 4, 5, 7, 8, 5, 6, 8, 9]);
    col.fill(1);
    dx.fill(NaN);
    col2imWasm(col, dx, d);
    assert.deepEqual([...dx], [1, 2, 1, 2, 4, 2, 1, 2, 1]);
    assert.throws(() => im2colWasm(new Float32Array(9), col, d), /views from wasmScratch/);
  },
});

Deno.test({
  name: "conv2d wasm kernels work on operands in wasm memory while the memory grows",
  ignore: !wasmAvailable(),
  fn() {
    const region = (a: Float64Array) => {
      const r = wasmArena(a.length)!;
      r.view().set(a);
      return r;
    };
    // Each pass gets a shape whose im2col columns (36·OH·OW bytes) exceed the
    // whole memory, so laying out its scratch grows the memory, detaching the
    // views of the operands it was handed.
    const shapeBeyond = (bytes: number) => {
      const side = Math.ceil(Math.sqrt(bytes / 36)) + 3;
      return dims(1, 1, side, side, 2, 3, 3, 1, 0);
    };
    const memBytes = () => wasmArena(0)!.view().buffer.byteLength;
    for (const pass of ["fwd", "bwd-input", "bwd-filter"]) {
      const d = shapeBeyond(memBytes());
      const n = sizes(d);
      const x = random32(n.x, 1), w = random32(n.w, 2), b = random32(d.oc, 3);
      const dy = random32(n.y, 4);
      const rx = region(x), rw = region(w), rb = region(b), rdy = region(dy);
      const out = wasmArena(pass === "fwd" ? n.y : pass === "bwd-input" ? n.x : n.w)!;
      const before = out.view();
      const want = new Float64Array(out.length), scale = new Float64Array(out.length);
      if (pass === "fwd") {
        conv2dFast(rx.view(), rw.view(), rb.view(), out.view(), d, "wasm");
        conv2dRef(x, w, b, want, d);
        conv2dRef(abs(x), abs(w), abs(b), scale, d);
      } else if (pass === "bwd-input") {
        conv2dBackwardInputFast(rdy.view(), rw.view(), out.view(), d, "wasm");
        conv2dBackwardInputRef(dy, w, want, d);
        conv2dBackwardInputRef(abs(dy), abs(w), scale, d);
      } else {
        conv2dBackwardFilterFast(rx.view(), rdy.view(), out.view(), d, "wasm");
        conv2dBackwardFilterRef(x, dy, want, d);
        conv2dBackwardFilterRef(abs(x), abs(dy), scale, d);
      }
      assert.notEqual(out.view().buffer, before.buffer, `${pass}: the memory should have grown`);
      assertClose(out.view(), want, scale, `${pass} on arena views`);
    }
  },
});
