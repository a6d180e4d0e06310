// A thread that helps Winograd calls: adopts the arenas it is sent (shared wasm memories, ids from
// 5 up) as thread 1 of the board, and waits helping until told to stop.
import { Assist, type AssistBoard } from "../../../ops/kernels/assist.ts";
import { adoptArenaMemory } from "../../../ops/kernels/elementwise_wasm.ts";
// registers the runner of ASSIST_KIND.WINOGRAD in this thread
import "../../../ops/kernels/winograd_wasm.ts";

// a worker's global scope (the default lib types `self` as a window)
const scope = self as unknown as {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(message: string): void;
};

scope.onmessage = (e: MessageEvent) => {
  const { board, arenas, stop } = e.data as {
    board: AssistBoard;
    arenas: { memory: WebAssembly.Memory; scratchStart: number }[];
    stop: Int32Array;
  };
  const a = new Assist(board, 1);
  arenas.forEach((s, i) => a.adopt(5 + i, adoptArenaMemory(s.memory, s.scratchStart)));
  scope.postMessage("ready");
  while (Atomics.load(stop, 0) === 0) a.waitHelping(stop, 0, 0, 50);
  scope.postMessage("done");
};
