// A thread that helps: registers test runners, adopts the arena, and waits helping until told to stop.
import { Assist, type AssistBoard, registerAssistRunner } from "../../../ops/kernels/assist.ts";

// kind 97: chunk c writes ints[at] * 1000 + c at int c of the arena, after some work
registerAssistRunner(97, (buf, ints, at, _floats, _fat, c) => {
  let x = 0;
  for (let i = 0; i < 200; i++) x += Math.sqrt(i + c);
  new Int32Array(buf)[c] = ints[at]! * 1000 + c + (x < 0 ? 1 : 0);
});
// kind 96: never finishes in time (a helper that stalls)
registerAssistRunner(96, () => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3000);
});

// a worker's global scope (the default lib types `self` as a window)
const scope = self as unknown as {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(message: string): void;
};

scope.onmessage = (e: MessageEvent) => {
  const { board, arena, stop } = e.data as {
    board: AssistBoard;
    arena: SharedArrayBuffer;
    stop: Int32Array;
  };
  const a = new Assist(board, 1);
  a.adopt(5, arena);
  scope.postMessage("ready");
  while (Atomics.load(stop, 0) === 0) a.waitHelping(stop, 0, 0, 50);
  scope.postMessage(a.helpedMs >= 0 ? "done" : "bad");
};
