import "../../../ops/mod.ts";
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3.23.2";
import { conv2dBackwardFilterRef, type Conv2dDims } from "../../../ops/kernels/conv2d_ref.ts";
import { conv2dBackwardFilterFast } from "../../../ops/kernels/conv2d_fast.ts";
import {
  winogradBackwardFilterWasm,
  winogradFilterApplies,
  winogradFilterGroups,
  winogradFilterScratch,
  winogradFilterVariant,
} from "../../../ops/kernels/winograd_filter_wasm.ts";
import { gemmStagedBytes } from "../../../ops/kernels/gemm_wasm.ts";
import { sharedWasmArenaBuffer, wasmArenaBuffer } from "../../../ops/kernels/elementwise_wasm.ts";
import {
  Assist,
  ASSIST_KIND,
  assistBoard,
  assistRunner,
  registerAssistRunner,
  setActiveAssist,
  setAssistScratchSlots,
} from "../../../ops/kernels/assist.ts";
import { setWinogradEnabled } from "../../../ops/kernels/winograd_wasm.ts";
import type { WinogradTile } from "../../../ops/kernels/winograd_ref.ts";
import { Executor } from "../../../graph/executor.ts";
import { Graph } from "../../../graph/graph.ts";
import { makePlan } from "../../../graph/plan.ts";
import { conv2dBackwardFilter } from "../../../ops/conv2d_backward_filter.ts";
import { uniformArray } from "../../_rng.ts";

const available = winogradFilterVariant() !== null;
const variants = ["relaxed-simd", "simd"] as const;

/**
 * Error bounds, relative to Σ|x||dy| over the terms of the largest of the
 * nine taps of the same filter pair (see tapMax; the direct float32 sum's
 * own error is a few times 1e-8 of it). Measured on
 * mnist-net's conv2 (N = 64, 32→64 channels, 26×26, N·tiles = 64·36),
 * worst tap: F(2×2) 1.5e-7, F(4×4) 2.5e-7 with the forward's points 0, ±1, 2,
 * −½ (9.4e-7 with 0, ±1, ±2), the direct wasm GEMM 8.8e-9; the bounds
 * leave a margin of 10× or more.
 */
const TOL: Record<WinogradTile, number> = { 2: 2e-6, 4: 1e-5 };

function dims(n: number, c: number, h: number, w: number, oc: number, padding: number): Conv2dDims {
  const oh = h + 2 * padding - 2, ow = w + 2 * padding - 2;
  return { n, c, h, w, oc, kh: 3, kw: 3, oh, ow, stride: 1, padding };
}

// Float32-representable data, so float32 and float64 runs see the same inputs.
function random32(len: number, seed: number): Float32Array {
  return new Float32Array(uniformArray(len, seed));
}

// The transforms mix all nine taps of a filter pair (k, c), so a tap's
// rounding error scales with the largest Σ|x||dy| among them, not its own
// (a tap that reads only padding has a zero sum and a tiny nonzero error).
function tapMax(scale: Float64Array): Float64Array {
  const out = new Float64Array(scale.length);
  for (let kc = 0; kc < scale.length; kc += 9) {
    out.fill(Math.max(...scale.subarray(kc, kc + 9)), kc, kc + 9);
  }
  return out;
}

// The float64 direct gradient and its value on |x|, |dy|.
function reference(x: Float32Array, dy: Float32Array, d: Conv2dDims): [Float64Array, Float64Array] {
  const want = new Float64Array(d.oc * d.c * 9), scale = new Float64Array(d.oc * d.c * 9);
  const x64 = Float64Array.from(x), dy64 = Float64Array.from(dy);
  conv2dBackwardFilterRef(x64, dy64, want, d);
  conv2dBackwardFilterRef(x64.map(Math.abs), dy64.map(Math.abs), scale, d);
  return [want, tapMax(scale)];
}

// Worst |got − want| / Σ|x||dy| over the taps.
function worstError(got: Float32Array, want: Float64Array, scale: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) / Math.max(scale[i], 1e-30);
    worst = Math.max(worst, Number.isNaN(e) ? Infinity : e);
  }
  return worst;
}

// Shapes the kernel takes (≥ 4 channels each way), with channel counts off
// the 4/8 blocks, outputs off the tile, images smaller than a tile, and a
// chunk size from one image up to all of them.
const convArb = fc
  .record({
    n: fc.integer({ min: 1, max: 3 }),
    c: fc.integer({ min: 4, max: 13 }),
    h: fc.integer({ min: 1, max: 14 }),
    w: fc.integer({ min: 1, max: 14 }),
    oc: fc.integer({ min: 4, max: 17 }),
    padding: fc.integer({ min: 0, max: 2 }),
  })
  .filter((r) => r.h + 2 * r.padding >= 3 && r.w + 2 * r.padding >= 3)
  .map((r) => dims(r.n, r.c, r.h, r.w, r.oc, r.padding));

for (const variant of variants) {
  Deno.test({
    name: `winogradBackwardFilterWasm (${variant}) matches the float64 direct gradient`,
    ignore: !available,
    fn() {
      if (winogradFilterVariant(variant) !== variant) return; // this build does not run here
      try {
        fc.assert(
          fc.property(
            convArb,
            fc.integer(),
            fc.constantFrom<WinogradTile>(2, 4),
            fc.constantFrom(1, 1 << 20),
            (d, seed, tile, chunkBytes) => {
              const x = random32(d.n * d.c * d.h * d.w, seed);
              const dy = random32(d.n * d.oc * d.oh * d.ow, seed + 1);
              const [want, scale] = reference(x, dy, d);
              const got = new Float32Array(want.length).fill(NaN);
              assert.equal(winogradBackwardFilterWasm(x, dy, got, d, { tile, chunkBytes }), true);
              const e = worstError(got, want, scale);
              assert.ok(e <= TOL[tile], `F(${tile}) ${JSON.stringify(d)}: error ${e}`);
            },
          ),
          { numRuns: 60 },
        );
      } finally {
        winogradFilterVariant("auto");
      }
    },
  });
}

Deno.test({
  name: "winogradBackwardFilterWasm: a long reduction (N·tiles = 64·36) stays within the bounds",
  ignore: !available,
  fn() {
    const d = dims(64, 8, 26, 26, 8, 0);
    const x = random32(d.n * d.c * d.h * d.w, 11);
    const dy = random32(d.n * d.oc * d.oh * d.ow, 12);
    const [want, scale] = reference(x, dy, d);
    const direct = new Float32Array(want.length);
    conv2dBackwardFilterFast(x, dy, direct, d, "wasm");
    const eDirect = worstError(direct, want, scale);
    for (const tile of [2, 4] as const) {
      const got = new Float32Array(want.length);
      winogradBackwardFilterWasm(x, dy, got, d, { tile });
      const e = worstError(got, want, scale);
      assert.ok(e <= TOL[tile], `F(${tile}): error ${e} (direct ${eDirect})`);
    }
  },
});

Deno.test({
  name: "winogradBackwardFilterWasm propagates NaN wherever the direct gradient has it",
  ignore: !available,
  fn() {
    fc.assert(
      fc.property(
        convArb,
        fc.integer(),
        fc.nat(),
        fc.boolean(),
        fc.constantFrom<WinogradTile>(2, 4),
        (
          d,
          seed,
          at,
          inX,
          tile,
        ) => {
          const x = random32(d.n * d.c * d.h * d.w, seed);
          const dy = random32(d.n * d.oc * d.oh * d.ow, seed + 1);
          if (inX) x[at % x.length] = NaN;
          else dy[at % dy.length] = NaN;
          const [want] = reference(x, dy, d);
          const got = new Float32Array(want.length);
          winogradBackwardFilterWasm(x, dy, got, d, { tile });
          // the transforms mix the taps: NaN may reach more of them, never fewer
          for (let i = 0; i < want.length; i++) {
            if (Number.isNaN(want[i])) assert.ok(Number.isNaN(got[i]), `dw[${i}] should be NaN`);
          }
        },
      ),
      { numRuns: 40 },
    );
  },
});

Deno.test("winogradBackwardFilterWasm declines what it does not cover and leaves dw alone", () => {
  const cases: Conv2dDims[] = [
    { ...dims(1, 8, 9, 9, 8, 0), stride: 2, oh: 4, ow: 4 },
    { ...dims(1, 8, 9, 9, 8, 0), kh: 5, kw: 5, oh: 5, ow: 5 },
    dims(1, 1, 28, 28, 32, 0), // mnist-net's conv1: one input channel
    dims(1, 8, 9, 9, 3, 1),
    dims(1, 3, 9, 9, 8, 1),
  ];
  for (const d of cases) {
    assert.equal(winogradFilterApplies(d), false, JSON.stringify(d));
    const dw = new Float32Array(d.oc * d.c * d.kh * d.kw).fill(7);
    const ok = winogradBackwardFilterWasm(
      new Float32Array(d.n * d.c * d.h * d.w),
      new Float32Array(d.n * d.oc * d.oh * d.ow),
      dw,
      d,
    );
    assert.equal(ok, false);
    assert.ok(dw.every((v) => v === 7));
  }
  assert.equal(winogradFilterApplies(dims(2, 32, 26, 26, 64, 0)), available);
});

// conv2d_backward_filter on the wasm tier, with and without `winograd: false`.
function runOp(x: Float32Array, dy: Float32Array, d: Conv2dDims, winograd?: boolean): Float32Array {
  const g = new Graph();
  const xn = g.input("x", [d.n, d.c, d.h, d.w]);
  const dyn = g.input("dy", [d.n, d.oc, d.oh, d.ow]);
  const dw = conv2dBackwardFilter(xn, dyn, {
    kernelSize: [3, 3],
    padding: d.padding,
    ...(winograd === false ? { winograd } : {}),
  });
  const ex = new Executor(makePlan(g, { outputs: [dw] }), { tier: "wasm" });
  return Float32Array.from(ex.run({ x, dy })[0]!);
}

Deno.test({
  name:
    "conv2d_backward_filter runs Winograd on the wasm tier unless winograd: false or switched off",
  ignore: !available,
  fn() {
    const d = dims(3, 16, 10, 10, 16, 1);
    const x = random32(d.n * d.c * d.h * d.w, 3), dy = random32(d.n * d.oc * d.oh * d.ow, 4);
    const [want, scale] = reference(x, dy, d);
    const wino = new Float32Array(want.length), direct = new Float32Array(want.length);
    winogradBackwardFilterWasm(x, dy, wino, d);
    conv2dBackwardFilterFast(x, dy, direct, d, "wasm");
    assert.notDeepEqual(wino, direct, "the two kernels round differently on this case");
    const staged0 = gemmStagedBytes();
    assert.deepEqual(runOp(x, dy, d), wino);
    assert.equal(
      gemmStagedBytes() - staged0,
      0,
      "on the executor's arena nothing is staged into another memory",
    );
    assert.deepEqual(runOp(x, dy, d, false), direct);
    const was = setWinogradEnabled(false); // --no-winograd
    try {
      assert.equal(winogradFilterApplies(d), false);
      assert.deepEqual(runOp(x, dy, d), direct);
    } finally {
      setWinogradEnabled(was);
    }
    assert.ok(worstError(wino, want, scale) <= TOL[4]);
  },
});

Deno.test({
  name:
    "winogradBackwardFilterWasm on an arena (unshared or shared) stages nothing outside it, equal to the copying path",
  ignore: !available,
  fn() {
    fc.assert(
      fc.property(convArb, fc.integer(), fc.constantFrom<WinogradTile>(2, 4), (d, seed, tile) => {
        const nx = d.n * d.c * d.h * d.w, ny = d.n * d.oc * d.oh * d.ow, nw = d.oc * d.c * 9;
        const x = random32(nx, seed), dy = random32(ny, seed + 1);
        const copied = new Float32Array(nw);
        let staged0 = gemmStagedBytes();
        winogradBackwardFilterWasm(x, dy, copied, d, { tile });
        assert.equal(
          gemmStagedBytes() - staged0,
          4 * (nx + ny),
          "the copying path stages x and dy",
        );
        const need = 4 * winogradFilterScratch(d, { tile }); // a multiple of 64
        const data = 4 * (nx + ny + nw);
        for (const short of [false, true]) {
          // Arenas come in whole pages: to leave the scratch 64 bytes short,
          // end the executor's part that much too late.
          const pages = Math.ceil((data + need) / 65536);
          const buf = short
            ? wasmArenaBuffer(pages * 65536 - need + 64, need - 64)!
            : wasmArenaBuffer(data, need)!;
          const xa = new Float32Array(buf, 0, nx), dya = new Float32Array(buf, 4 * nx, ny);
          const dwa = new Float32Array(buf, 4 * (nx + ny), nw).fill(NaN);
          xa.set(x);
          dya.set(dy);
          staged0 = gemmStagedBytes();
          assert.equal(winogradBackwardFilterWasm(xa, dya, dwa, d, { tile }), true);
          assert.deepEqual(dwa, copied);
          // with too little scratch it copies instead (and still answers)
          const want = short ? 4 * (nx + ny) : 0;
          assert.equal(gemmStagedBytes() - staged0, want, `short of scratch: ${short}`);
        }
        // a shared arena runs the shared-memory build (its accumulation broadcasts V by
        // shuffles, not loads): the same bits
        const shared = sharedWasmArenaBuffer(data, need)!;
        const xs = new Float32Array(shared, 0, nx), dys = new Float32Array(shared, 4 * nx, ny);
        const dws = new Float32Array(shared, 4 * (nx + ny), nw).fill(NaN);
        xs.set(x);
        dys.set(dy);
        staged0 = gemmStagedBytes();
        assert.equal(winogradBackwardFilterWasm(xs, dys, dws, d, { tile }), true);
        assert.equal(gemmStagedBytes() - staged0, 0, "in place on the shared arena");
        assert.deepEqual(dws, copied);
      }),
      { numRuns: 30 },
    );
  },
});

Deno.test({
  name:
    "winogradBackwardFilterWasm: images in 1, 2, 4, 8 groups of one-image chunks stay within the bounds",
  ignore: !available,
  fn() {
    // 32 one-image chunks, as mnist-net's conv2 at micro-batch 32
    const d = dims(32, 8, 26, 26, 12, 0);
    const x = random32(d.n * d.c * d.h * d.w, 21);
    const dy = random32(d.n * d.oc * d.oh * d.ow, 22);
    const [want, scale] = reference(x, dy, d);
    const seen: Float32Array[] = [];
    for (const tile of [2, 4] as const) {
      for (const maxGroups of [1, 2, 4, 8]) {
        const opts = { tile, maxGroups, chunkBytes: 1 };
        assert.equal(winogradFilterGroups(d, opts), maxGroups);
        const got = new Float32Array(want.length);
        winogradBackwardFilterWasm(x, dy, got, d, opts);
        const e = worstError(got, want, scale);
        assert.ok(e <= TOL[tile], `F(${tile}), ${maxGroups} groups: error ${e}`);
        if (tile === 4) seen.push(got);
      }
    }
    // the groups are summed apart: another order of additions, other bits
    assert.notDeepEqual(seen[0], seen[2]);
  },
});

Deno.test("winogradFilterGroups: one a chunk up to the most, fixed by the sizes, not the threads", () => {
  const d = dims(32, 32, 26, 26, 64, 0);
  if (!available) return assert.equal(winogradFilterGroups(d), 0);
  assert.equal(winogradFilterGroups(d, { maxGroups: 8 }), 8);
  assert.equal(winogradFilterGroups(d, { maxGroups: 1 }), 1);
  assert.equal(winogradFilterGroups(dims(3, 32, 26, 26, 64, 0), { maxGroups: 8 }), 3);
  // a chunk of all the images: one group, no job
  assert.equal(winogradFilterGroups(dims(4, 8, 6, 6, 8, 1)), 1);
  const was = setAssistScratchSlots(4);
  try {
    assert.equal(winogradFilterGroups(d, { maxGroups: 8 }), 8);
    // staging for four threads, the accumulators once
    const one = (setAssistScratchSlots(1), winogradFilterScratch(d));
    const four = (setAssistScratchSlots(4), winogradFilterScratch(d));
    setAssistScratchSlots(2);
    const two = winogradFilterScratch(d);
    assert.equal(four - two, 2 * (two - one));
    assert.ok(two - one > 0);
    // one group: nobody can help, no staging for them
    setAssistScratchSlots(4);
    const small = dims(4, 8, 6, 6, 8, 1);
    const s4 = winogradFilterScratch(small);
    setAssistScratchSlots(1);
    assert.equal(winogradFilterScratch(small), s4);
  } finally {
    setAssistScratchSlots(was);
  }
});

Deno.test({
  name:
    "winogradBackwardFilterWasm with help: any thread may run any group in its own slot, the bits are the kernel's alone",
  ignore: !available,
  async fn() {
    const d = dims(12, 8, 14, 14, 12, 1);
    const opts = { chunkBytes: 1, maxGroups: 4 }; // 12 one-image chunks in 4 groups
    const nx = d.n * d.c * d.h * d.w, ny = d.n * d.oc * d.oh * d.ow, nw = d.oc * d.c * 9;
    const x = random32(nx, 31), dy = random32(ny, 32);
    const alone = new Float32Array(nw);
    winogradBackwardFilterWasm(x, dy, alone, d, opts); // the copying path, on its own memory
    const [want, scale] = reference(x, dy, d);
    assert.ok(worstError(alone, want, scale) <= TOL[4]);
    const was = setAssistScratchSlots(3);
    const need = 4 * winogradFilterScratch(d, opts); // three staging slots
    setAssistScratchSlots(1);
    const needOne = 4 * winogradFilterScratch(d, opts);
    setAssistScratchSlots(was);
    const arena = (shared: boolean, scratch: number) => {
      const bytes = 4 * (nx + ny + nw);
      const buf = shared
        ? sharedWasmArenaBuffer(bytes, scratch)!
        : wasmArenaBuffer(bytes, scratch)!;
      const xa = new Float32Array(buf, 0, nx), dya = new Float32Array(buf, 4 * nx, ny);
      const dwa = new Float32Array(buf, 4 * (nx + ny), nw);
      xa.set(x);
      dya.set(dy);
      return { buf, xa, dya, dwa };
    };
    const board = assistBoard(3);
    const owner = new Assist(board, 0);
    const helpers = [new Assist(board, 1), new Assist(board, 2)];
    const A = arena(true, need);
    owner.adopt(1, A.buf, true);
    for (const h of helpers) h.adopt(1, A.buf);
    const kind = ASSIST_KIND.WINOGRAD_FILTER, run = assistRunner(kind)!;
    const ran: [number, number][] = []; // (group, thread)
    // before the owner runs a chunk, `meddle` may let a helper claim the rest
    let meddle: ((thread: number) => void) | null = null;
    registerAssistRunner(kind, (buf, ints, at, fl, fat, chunk, thread) => {
      const m = meddle;
      meddle = null;
      m?.(thread);
      ran.push([chunk, thread]);
      run(buf, ints, at, fl, fat, chunk, thread);
    });
    const call = (dwa: Float32Array, xa = A.xa, dya = A.dya) => {
      ran.length = 0;
      dwa.fill(NaN);
      assert.equal(winogradBackwardFilterWasm(xa, dya, dwa, d, opts), true);
      return [...ran].sort((p, q) => p[0] - q[0] || p[1] - q[1]);
    };
    try {
      // no board: in order, slot 0, no job
      assert.deepEqual(call(A.dwa), []);
      assert.deepEqual(A.dwa, alone);
      setActiveAssist(owner);
      // a job nobody helps: the owner runs the four groups
      assert.deepEqual(call(A.dwa), [[0, 0], [1, 0], [2, 0], [3, 0]]);
      assert.deepEqual(A.dwa, alone);
      // the owner runs group 0 after helper 1 ran groups 1-3 in its slot
      const before = owner.helpedChunks;
      meddle = () => helpers[0]!.help();
      assert.deepEqual(call(A.dwa), [[0, 0], [1, 1], [2, 1], [3, 1]]);
      assert.deepEqual(A.dwa, alone);
      assert.equal(owner.helpedChunks - before, 3);
      // all four by helper 2, through the owner's publish, before the owner claims one
      const publish = owner.publish;
      owner.publish = function () {
        publish.call(this);
        helpers[1]!.help();
      };
      try {
        assert.deepEqual(call(A.dwa), [[0, 2], [1, 2], [2, 2], [3, 2]]);
      } finally {
        owner.publish = publish;
      }
      assert.deepEqual(A.dwa, alone);
      // scratch with one staging slot: no job (open refuses), the owner alone, the same bits
      const B = arena(true, needOne);
      owner.adopt(2, B.buf, true);
      assert.deepEqual(call(B.dwa, B.xa, B.dya), []);
      assert.deepEqual(B.dwa, alone);
      // an unshared arena: the same
      const C = arena(false, need);
      assert.deepEqual(call(C.dwa, C.xa, C.dya), []);
      assert.deepEqual(C.dwa, alone);
      // warm, a call makes no typed array, not even a view: on a shared arena with a job, on an
      // unshared one, copying plain arrays
      registerAssistRunner(kind, run);
      const { countTypedArrays } = await import("../../_alloc_count.ts");
      const plain = new Float32Array(nw);
      const seen = await countTypedArrays(() => {
        for (let i = 0; i < 3; i++) {
          winogradBackwardFilterWasm(A.xa, A.dya, A.dwa, d, opts);
          winogradBackwardFilterWasm(C.xa, C.dya, C.dwa, d, opts);
          winogradBackwardFilterWasm(x, dy, plain, d, opts);
        }
      });
      assert.deepEqual(seen.byKind, {});
      assert.deepEqual(plain, alone);
    } finally {
      setActiveAssist(null);
      registerAssistRunner(kind, run);
    }
  },
});
