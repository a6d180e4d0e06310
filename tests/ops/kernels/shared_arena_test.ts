// Shared arenas (sharedWasmArenaBuffer, adoptArenaMemory): kernels run on a
// shared WebAssembly memory by the build with a shared memory import, in this
// thread and in a worker that was posted the memory, with the bits of an
// unshared arena.
import assert from "node:assert/strict";
import {
  adoptArenaMemory,
  arenaCopyWithin,
  arenaFill,
  arenaKernels,
  arenaMemory,
  arenaScratch,
  arenaSet,
  arenaZero,
  elementwiseWasm,
  isSharedBuffer,
  sharedWasmArenaBuffer,
  wasmArenaBuffer,
} from "../../../ops/kernels/elementwise_wasm.ts";
import { convReluPoolWasm } from "../../../ops/kernels/conv2d_relu_pool_wasm.ts";
import type { ConvReluPoolDims } from "../../../ops/kernels/conv2d_relu_pool_ref.ts";
import { ReduceWasm, sharedRegions } from "../../../ops/kernels/reduce_wasm.ts";
import type { HelpReply, HelpRequest } from "./_shared_arena_worker.ts";

const bits = (a: Float32Array) => new Uint32Array(a.slice().buffer);
const simd = wasmArenaBuffer(64) !== null;

Deno.test({
  name: "sharedWasmArenaBuffer: a registered shared memory the elementwise module runs on",
  ignore: !simd,
  fn() {
    const buf = sharedWasmArenaBuffer(1000, 4096)!;
    assert.ok(buf instanceof SharedArrayBuffer && isSharedBuffer(buf));
    const mem = arenaMemory(buf)!;
    assert.equal(mem.buffer, buf);
    assert.deepEqual(arenaScratch(buf), { byteOffset: 1024, byteLength: 65536 - 1024 });
    const src = new Float32Array(buf, 0, 8), y = new Float32Array(buf, 64, 8);
    src.set([-1, 2, -3, 4, 0, -0.5, 6, -7]);
    elementwiseWasm(src, y)!.relu(0, 64, 8);
    assert.deepEqual([...y], [0, 2, 0, 4, 0, 0, 6, 0]);
    assert.deepEqual(arenaKernels(buf), ["elementwise"]);
  },
});

Deno.test({
  name:
    "arenaFill, arenaZero, arenaCopyWithin on a shared arena: the bytes of fill and copyWithin on a plain buffer",
  ignore: !simd,
  fn() {
    const n = 301;
    const buf = sharedWasmArenaBuffer(4 * n + 64)!;
    const a = new Float32Array(buf, 12, n), ref = new Float32Array(n);
    // the floats just past `a`: never written
    const after = new Float32Array(buf, 12 + 4 * n, 8).fill(7);
    const init = () => {
      for (let i = 0; i < n; i++) a[i] = ref[i] = Math.sin(i) * 1e3;
    };
    const values = [0, -0, 1.5, NaN, -Infinity, 1e-45, 0.1];
    for (let t = 0; t < 80; t++) {
      init();
      // ends past the view (clipped, as fill and copyWithin do) from case 40 on
      const lo = (t * 37) % n, hi = t < 40 ? Math.min(n, lo + ((t * 53) % 97)) : lo + 150;
      const v = values[t % values.length]!;
      const op = t % 3;
      if (op === 0) {
        arenaFill(a, v, lo, hi);
        ref.fill(v, lo, hi);
      } else if (op === 1) {
        arenaZero(a, lo, hi);
        ref.fill(0, lo, hi);
      } else {
        const to = t < 40 ? (t * 11) % n : n - 1 - (t % 5);
        arenaCopyWithin(a, to, lo, hi);
        ref.copyWithin(to, lo, hi);
      }
      assert.deepEqual(bits(a), bits(ref), `case ${t}: op ${op} [${lo}, ${hi}) value ${v}`);
      assert.deepEqual([...after], new Array(8).fill(7), `case ${t}: past the view`);
    }
    // arenaSet: a copy inside the arena, overlapping too; as set, a longer source throws
    init();
    arenaSet(a.subarray(5, 105), a.subarray(0, 90));
    ref.set(ref.subarray(0, 90), 5);
    assert.deepEqual(bits(a), bits(ref));
    assert.deepEqual([...after], new Array(8).fill(7));
    assert.throws(() => arenaSet(a.subarray(0, 2), a.subarray(0, 3)), RangeError);
  },
});

Deno.test({
  name: "adoptArenaMemory: rejects an unshared memory and a scratch start outside the memory",
  ignore: !simd,
  fn() {
    assert.throws(
      () => adoptArenaMemory(new WebAssembly.Memory({ initial: 1, maximum: 1 }), 0),
      /not shared/,
    );
    const mem = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    assert.throws(() => adoptArenaMemory(mem, 65537), /scratch start 65537/);
    assert.throws(() => adoptArenaMemory(mem, 1.5), /scratch start 1.5/);
    // adopting a memory of this thread's own changes nothing
    const buf = sharedWasmArenaBuffer(256, 1024)!;
    assert.equal(adoptArenaMemory(arenaMemory(buf)!, 512), buf);
    assert.equal(arenaScratch(buf)!.byteOffset, 256);
  },
});

Deno.test({
  name: "ReduceWasm reads a gradient in a shared arena: the bits it reads from an unshared one",
  ignore: !simd || ReduceWasm.of(sharedRegions(8)) === null,
  fn() {
    const n = 1001;
    const src = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 3);
    const out: Float32Array[] = [];
    for (const buf of [wasmArenaBuffer(4 * n + 64)!, sharedWasmArenaBuffer(4 * n + 64)!]) {
      const g = new Float32Array(buf, 64, n);
      g.set(src);
      const regions = sharedRegions(2 * n);
      const k = ReduceWasm.of(regions)!;
      assert.ok(k.scale(0.37, g, 0, n) && k.addScaled(1.25, g, 0, n));
      out.push(regions.slice(0, n));
      assert.ok(arenaKernels(buf).includes("reduce"));
    }
    assert.deepEqual(bits(out[1]!), bits(out[0]!));
  },
});

/** The layer's arrays laid out in `buf`: x, packed, dy, then scratch. */
function layout(buf: ArrayBufferLike, d: ConvReluPoolDims) {
  const half = d.n * d.oc * d.ph * d.pw;
  const x = new Float32Array(buf, 0, d.n * d.h * d.w);
  const packed = new Float32Array(buf, x.byteLength, 2 * half);
  const dy = new Float32Array(buf, packed.byteOffset + packed.byteLength, half);
  x.set(Float32Array.from(x, (_, i) => Math.sin(i * 0.37) + 0.1));
  dy.set(Float32Array.from(dy, (_, i) => Math.cos(i * 0.11)));
  packed.fill(NaN);
  return { x, packed, dy, bytes: dy.byteOffset + dy.byteLength };
}

Deno.test({
  name:
    "a worker that adopts a posted shared arena runs the fused conv on some output channels: the values this thread's own run writes",
  ignore: !simd,
  async fn() {
    const d: ConvReluPoolDims = { n: 5, c: 1, h: 28, w: 28, oc: 8, kh: 3, kw: 3, ph: 13, pw: 13 };
    const w = Float32Array.from({ length: d.oc * 9 }, (_, i) => Math.cos(i * 1.3) * 0.4);
    const b = Float32Array.from({ length: d.oc }, (_, i) => (i - 4) * 0.05);
    const bytes = layout(new ArrayBuffer(1 << 20), d).bytes;
    // every channel on this thread, on an unshared arena
    const own = layout(wasmArenaBuffer(bytes)!, d);
    const k0 = convReluPoolWasm(d, [own.x, own.packed, own.dy])!;
    k0.forward(own.x, w, b, own.packed);
    const grads0 = new Float32Array(d.oc * 10);
    k0.backward(own.x, own.packed, own.dy, grads0);
    assert.ok(!own.packed.some(Number.isNaN));
    // channels 0-2 here, 3-7 in the worker, on one shared arena
    const buf = sharedWasmArenaBuffer(bytes, 4096)!;
    const sh = layout(buf, d);
    const k = convReluPoolWasm(d, [sh.x, sh.packed, sh.dy])!;
    const split = 3;
    k.forward(sh.x, w, b, sh.packed, 0, split);
    assert.ok(sh.packed.some(Number.isNaN), "the worker's channels are not written yet");
    const worker = new Worker(new URL("./_shared_arena_worker.ts", import.meta.url), {
      type: "module",
    });
    try {
      const reply = await new Promise<HelpReply>((resolve, reject) => {
        worker.onmessage = (e: MessageEvent<HelpReply>) => resolve(e.data);
        worker.onerror = (e) => {
          e.preventDefault();
          reject(new Error(`worker: ${e.message}`));
        };
        const req: HelpRequest = {
          memory: arenaMemory(buf)!,
          scratchStart: arenaScratch(buf)!.byteOffset,
          d,
          at: { x: sh.x.byteOffset, packed: sh.packed.byteOffset, dy: sh.dy.byteOffset },
          w,
          b,
          from: split,
          to: d.oc,
        };
        worker.postMessage(req);
      });
      assert.ok(reply.sameBuffer, "memory.buffer is one object in the worker");
      assert.deepEqual(reply.kernels, ["elementwise", "conv_relu_pool"]);
      // y and the codes of every channel: this thread's run and the worker's
      assert.deepEqual(bits(sh.packed), bits(own.packed));
      const grads = new Float32Array(d.oc * 10).fill(NaN);
      k.backward(sh.x, sh.packed, sh.dy, grads, 0, split);
      for (let o = split; o < d.oc; o++) {
        for (let j = 0; j < 9; j++) grads[o * 9 + j] = reply.grads[o * 9 + j]!;
        grads[d.oc * 9 + o] = reply.grads[d.oc * 9 + o]!;
      }
      assert.deepEqual(bits(grads), bits(grads0));
      assert.ok(arenaKernels(buf).includes("conv_relu_pool"));
    } finally {
      worker.terminate();
    }
  },
});
