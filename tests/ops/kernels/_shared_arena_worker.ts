// A helper thread of shared_arena_test.ts: adopts an arena memory posted by
// the main thread and runs the fused conv kernel on some of its output channels.
import { adoptArenaMemory, arenaKernels } from "../../../ops/kernels/elementwise_wasm.ts";
import { convReluPoolWasm } from "../../../ops/kernels/conv2d_relu_pool_wasm.ts";
import type { ConvReluPoolDims } from "../../../ops/kernels/conv2d_relu_pool_ref.ts";

/** What the main thread posts. */
export interface HelpRequest {
  memory: WebAssembly.Memory;
  scratchStart: number;
  d: ConvReluPoolDims;
  /** Byte offsets in the arena of x, packed ([y, codes]) and dy. */
  at: { x: number; packed: number; dy: number };
  w: Float32Array;
  b: Float32Array;
  from: number;
  to: number;
}

/** What the worker answers. */
export interface HelpReply {
  /** `memory.buffer` was one object on every access, and the adopted buffer. */
  sameBuffer: boolean;
  /** arenaKernels of the adopted buffer after the run. */
  kernels: string[];
  /** The backward's [dw, db] with the channels from..to filled in (the rest NaN). */
  grads: Float32Array;
}

// a worker's global scope (the default lib types `self` as a window)
const scope = self as unknown as {
  onmessage: ((e: MessageEvent<HelpRequest>) => void) | null;
  postMessage(message: HelpReply): void;
};

scope.onmessage = (e) => {
  const { memory, scratchStart, d, at, w, b, from, to } = e.data;
  const first = memory.buffer;
  const buf = adoptArenaMemory(memory, scratchStart);
  const sameBuffer = first === buf && memory.buffer === buf;
  const half = d.n * d.oc * d.ph * d.pw;
  const x = new Float32Array(buf, at.x, d.n * d.c * d.h * d.w);
  const packed = new Float32Array(buf, at.packed, 2 * half);
  const dy = new Float32Array(buf, at.dy, half);
  const k = convReluPoolWasm(d, [x, packed, dy]);
  if (!k) throw new Error("worker: no wasm kernel on the adopted arena");
  k.forward(x, w, b, packed, from, to);
  const grads = new Float32Array(d.oc * 10).fill(NaN);
  k.backward(x, packed, dy, grads, from, to);
  const reply: HelpReply = { sameBuffer, kernels: arenaKernels(buf), grads };
  scope.postMessage(reply);
};
