// The helping thread of bench/assist_rate.ts: adopts the owner's arena and waits helping until told to stop.
import { adoptArenaMemory } from "../ops/kernels/elementwise_wasm.ts";
import "../ops/kernels/conv2d_relu_pool_wasm.ts";
import { Assist, type AssistBoard } from "../ops/kernels/assist.ts";

// a worker's global scope (the default lib types `self` as a window)
const scope = self as unknown as {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(message: string): void;
};

scope.onmessage = (e: MessageEvent) => {
  const { board, memory, scratch, stop } = e.data as {
    board: AssistBoard;
    memory: WebAssembly.Memory;
    scratch: number;
    stop: Int32Array;
  };
  const a = new Assist(board, 1);
  a.adopt(1, adoptArenaMemory(memory, scratch));
  scope.postMessage("ready");
  while (Atomics.load(stop, 0) === 0) a.waitHelping(stop, 0, 0, 1000);
  scope.postMessage("done");
};
