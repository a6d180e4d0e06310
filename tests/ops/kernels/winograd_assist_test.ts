import assert from "node:assert/strict";
import {
  Assist,
  assistBoard,
  setActiveAssist,
  setAssistScratchSlots,
} from "../../../ops/kernels/assist.ts";
import { helperWorker } from "./_helper_worker.ts";
import type { Conv2dDims } from "../../../ops/kernels/conv2d_ref.ts";
import {
  arenaMemory,
  arenaScratch,
  sharedWasmArenaBuffer,
} from "../../../ops/kernels/elementwise_wasm.ts";
import { wasmAvailable } from "../../../ops/kernels/gemm_wasm.ts";
import type { WinogradTile } from "../../../ops/kernels/winograd_ref.ts";
import {
  conv2dBackwardInputWinogradWasm,
  conv2dWinogradWasm,
  winogradScratch,
} from "../../../ops/kernels/winograd_wasm.ts";
import { uniformArray } from "../../_rng.ts";

const PAGE = 65536;

function dims(n: number, c: number, h: number, w: number, oc: number, p: number): Conv2dDims {
  const oh = h + 2 * p - 2, ow = w + 2 * p - 2;
  return { n, c, h, w, oc, kh: 3, kw: 3, oh, ow, stride: 1, padding: p };
}

const data = (len: number, seed: number) => new Float32Array(uniformArray(len, seed));

// One layer's pass: its sizes, tile, and the threads its arena has scratch for.
interface Case {
  d: Conv2dDims;
  flip: boolean;
  m: WinogradTile;
  slots: number;
  label: string;
}

const cases: Case[] = [];
// in place (OC 16) and staged (OC 6, not a multiple of 4) outputs; F(4×4) on 12×12 and F(2×2)
// on 7×7 (the tiles the default rule picks there, which the scratch hooks reserve for); each with
// scratch for two threads and for one (which must open no job)
for (const [c, oc] of [[16, 16], [12, 6]] as const) {
  for (const flip of [false, true]) {
    for (const [m, h] of [[4, 12], [2, 7]] as const) {
      for (const slots of [2, 1]) {
        const d = dims(7, flip ? oc : c, h, h, flip ? c : oc, 1);
        const pass = flip ? "input" : "forward";
        cases.push({
          d,
          flip,
          m,
          slots,
          label: `C ${d.c} OC ${d.oc} ${pass} F(${m}) ${slots} slot(s)`,
        });
      }
    }
  }
}

const scratchFor = (d: Conv2dDims, flip: boolean, slots: number) => {
  const was = setAssistScratchSlots(slots);
  try {
    return winogradScratch(d, flip ? "input" : "forward");
  } finally {
    setAssistScratchSlots(was);
  }
};

// A shared arena holding x then y with exactly `scratch` floats of scratch up to a page's end
// (so that it has room for no more slots than asked), and the two views.
function arena(xl: number, yl: number, scratch: number) {
  const pages = Math.ceil(((xl + yl + 16) * 4 + scratch * 4) / PAGE);
  const start = Math.floor((pages * PAGE - scratch * 4) / 64) * 64;
  const buf = sharedWasmArenaBuffer(start, pages * PAGE - start);
  if (!buf || !arenaMemory(buf)) return null;
  assert.equal(buf.byteLength, pages * PAGE);
  return {
    buf,
    x: new Float32Array(buf, 0, xl),
    y: new Float32Array(buf, (xl + 16) * 4, yl),
  };
}

function call(k: Case, x: Float32Array, w: Float32Array, b: Float32Array | null, y: Float32Array) {
  const ok = k.flip
    ? conv2dBackwardInputWinogradWasm(x, w, y, k.d, k.m)
    : conv2dWinogradWasm(x, w, b, y, k.d, k.m);
  assert.ok(ok, `${k.label} should be served`);
}

Deno.test({
  name:
    "Winograd forward and backward-input with a helper thread: the images it runs, in its own scratch slot, leave the bits of the kernel alone",
  ignore: !wasmAvailable(),
  async fn() {
    const setups = cases.map((k, i) => {
      const { d, flip } = k;
      const xl = flip ? d.n * d.oc * d.oh * d.ow : d.n * d.c * d.h * d.w;
      const yl = flip ? d.n * d.c * d.h * d.w : d.n * d.oc * d.oh * d.ow;
      const one = scratchFor(d, flip, 1), two = scratchFor(d, flip, 2);
      assert.ok(two > one && one > 0, `${k.label}: scratch ${one} for 1 thread, ${two} for 2`);
      const slots = k.slots;
      const a = arena(xl, yl, slots === 2 ? two : one);
      if (!a) return null;
      const x = data(xl, 10 + i), w = data(d.oc * d.c * 9, 20 + i);
      a.x.set(x);
      const b = flip ? null : data(d.oc, 30 + i);
      // the kernel alone: on plain arrays (its own memory) and on the arena without a board
      const want = new Float32Array(yl).fill(NaN);
      call(k, x, w, b, want);
      a.y.fill(NaN);
      call(k, a.x, w, b, a.y);
      assert.deepEqual(a.y, want, `${k.label}: the arena path alone`);
      return { k, a, w, b, want, slots, one, two };
    });
    if (setups.some((s) => s === null)) return; // no shared wasm memory here
    const board = assistBoard(2);
    const owner = new Assist(board, 0);
    const arenas = setups.map((s, i) => {
      owner.adopt(5 + i, s!.a.buf, true);
      return { memory: arenaMemory(s!.a.buf)!, scratchStart: arenaScratch(s!.a.buf)!.byteOffset };
    });
    const { worker, stop, errors, messages, next } = helperWorker(
      new URL("./_winograd_assist_worker.ts", import.meta.url),
      { board, arenas },
    );
    try {
      await next(1);
      setActiveAssist(owner);
      for (const s of setups) {
        const { k, a, w, b, want, slots, one, two } = s!;
        const sc = arenaScratch(a.buf)!.byteOffset / 4;
        // slot 1 of the scratch: from the end of the one-thread part to the end of the two
        const slot1 = new Float32Array(a.buf, (sc + one - 16) * 4, slots === 2 ? two - one : 0);
        let helped = 0;
        for (let rep = 0; rep < 400 && helped < 5; rep++) {
          a.y.fill(NaN);
          slot1.fill(NaN);
          const before = owner.helpedChunks;
          call(k, a.x, w, b, a.y);
          assert.deepEqual(a.y, want, `${k.label}, rep ${rep}: not the kernel's bits alone`);
          const ran = owner.helpedChunks - before;
          if (ran === 0) continue;
          assert.equal(slots, 2, `${k.label}: a job was opened with scratch for one thread`);
          helped++;
          // the helper packed its images into slot 1, not into the owner's slot 0
          assert.ok(slot1.some((v) => !Number.isNaN(v)), `${k.label}: slot 1 unused by the helper`);
        }
        if (slots === 2) assert.ok(helped > 0, `${k.label}: the helper ran no image in 400 calls`);
        else assert.equal(helped, 0);
      }
    } finally {
      setActiveAssist(null);
      Atomics.store(stop, 0, 1);
      Atomics.notify(stop, 0);
      await next(2).catch(() => {});
      worker.terminate();
    }
    assert.deepEqual(errors, []);
    assert.deepEqual(messages, ["ready", "done"]);
  },
});
