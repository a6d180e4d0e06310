/**
 * `deno run -A bench/assist_rate.ts`: how much a helping thread takes of
 * the lecture CNN's fused convolution (32 images, 32 channels), forward and
 * backward: each call timed on the main thread alone, then with a worker
 * that polls the board (`ops/kernels/assist.ts`) and runs the channels it
 * claims on the main thread's shared arena, the two taking turns by rounds.
 * Prints per round the µs of a call alone and helped, and the channels the
 * helper ran per call.
 *
 * @module
 */
import { benchArgs } from "./_args.ts";
import {
  arenaMemory,
  arenaScratch,
  sharedWasmArenaBuffer,
} from "../ops/kernels/elementwise_wasm.ts";
import { convReluPoolWasm } from "../ops/kernels/conv2d_relu_pool_wasm.ts";
import { Assist, assistBoard, helpedChunks, setActiveAssist } from "../ops/kernels/assist.ts";

const values = benchArgs(
  "bench/assist_rate.ts",
  {
    rounds: { type: "string", default: "4" },
    calls: { type: "string", default: "200" },
  },
  Deno.args,
  {
    rounds: "rounds of alone-then-helped timing, per pass",
    calls: "kernel calls timed per side of a round",
  },
);
const rounds = Number(values.rounds), calls = Number(values.calls);
for (const [flag, v] of [["rounds", rounds], ["calls", calls]] as const) {
  if (!Number.isInteger(v) || v < 1) {
    console.error(`error: bench/assist_rate.ts: --${flag} must be a whole number ≥ 1, got ${v}`);
    Deno.exit(2);
  }
}

const d = { n: 32, c: 1, h: 28, w: 28, oc: 32, kh: 3, kw: 3, ph: 13, pw: 13 };
const half = d.n * d.oc * d.ph * d.pw, xLen = d.n * 784;
const buf = sharedWasmArenaBuffer(4 * (xLen + 3 * half), 4096);
const memory = buf && arenaMemory(buf);
if (!buf || !memory) {
  console.error("error: bench/assist_rate.ts: no WebAssembly SIMD here, so no shared wasm arena");
  Deno.exit(1);
}
let seed = 1;
const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
const x = new Float32Array(buf, 0, xLen);
const packed = new Float32Array(buf, 4 * xLen, 2 * half);
const dy = new Float32Array(buf, 4 * (xLen + 2 * half), half);
for (let i = 0; i < xLen; i++) x[i] = rnd();
for (let i = 0; i < half; i++) dy[i] = rnd() - 0.5;
const w = Float32Array.from({ length: 288 }, () => rnd() - 0.5), b = new Float32Array(32);
const out = new Float32Array(320);
const k = convReluPoolWasm(d, [x, packed, dy])!;
k.forward(x, w, b, packed);

const board = assistBoard(2);
const owner = new Assist(board, 0);
owner.adopt(1, buf, true);
const stop = new Int32Array(new SharedArrayBuffer(4));
const worker = new Worker(new URL("./_assist_worker.ts", import.meta.url), { type: "module" });
worker.onerror = (e) => {
  e.preventDefault();
  console.error(`error: bench/assist_rate.ts: the helper died: ${e.message}`);
  Deno.exit(1);
};
const said = (what: string) =>
  new Promise<void>((r) => worker.onmessage = (e) => e.data === what && r());
const ready = said("ready");
worker.postMessage({ board, memory, scratch: arenaScratch(buf)!.byteOffset, stop });
await ready;

/** µs per call of the forward or backward, with the helper's help or alone. */
function time(n: number, helped: boolean, forward: boolean): number {
  setActiveAssist(helped ? owner : null);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) forward ? k.forward(x, w, b, packed) : k.backward(x, packed, dy, out);
  setActiveAssist(null);
  return ((performance.now() - t0) / n) * 1000;
}
console.log("pass      round  alone µs  helped µs  helper channels/call (of 32)");
for (const forward of [true, false]) {
  time(20, false, forward), time(20, true, forward);
  for (let r = 0; r < rounds; r++) {
    const c0 = helpedChunks(board);
    const alone = time(calls, false, forward), helped = time(calls, true, forward);
    const share = (helpedChunks(board) - c0) / calls;
    console.log(
      `${forward ? "forward " : "backward"}  ${String(r).padStart(5)}  ${
        alone.toFixed(0).padStart(8)
      }` +
        `  ${helped.toFixed(0).padStart(9)}  ${share.toFixed(1).padStart(6)}`,
    );
  }
}
const done = said("done");
Atomics.store(stop, 0, 1);
Atomics.notify(stop, 0);
await done;
worker.terminate();
