import assert from "node:assert/strict";
import {
  ASSIST,
  Assist,
  assistBoard,
  AssistStall,
  registerAssistRunner,
} from "../../../ops/kernels/assist.ts";
import { helperWorker } from "./_helper_worker.ts";

registerAssistRunner(97, (buf, ints, at, _floats, _fat, c) => {
  let x = 0;
  for (let i = 0; i < 200; i++) x += Math.sqrt(i + c);
  new Int32Array(buf)[c] = ints[at]! * 1000 + c + (x < 0 ? 1 : 0);
});

const helper = (board: ReturnType<typeof assistBoard>, arena: SharedArrayBuffer) =>
  helperWorker(new URL("./_assist_worker.ts", import.meta.url), { board, arena });

Deno.test("assist: a helper thread runs chunks of the owner's jobs, every output as the owner's", async () => {
  const board = assistBoard(2);
  const arena = new SharedArrayBuffer(4 * 64);
  const out = new Int32Array(arena);
  const h = helper(board, arena);
  try {
    await h.next(1);
    const owner = new Assist(board, 0);
    owner.adopt(5, arena, true);
    let opened = 0;
    for (let job = 1; job <= 3000; job++) {
      const at = owner.open(arena, 97, 64);
      assert.ok(at >= 0);
      opened++;
      board.ints[at] = job;
      owner.publish();
      owner.finish();
      for (let c = 0; c < 64; c++) {
        if (out[c] !== job * 1000 + c) assert.fail(`job ${job} chunk ${c}: ${out[c]}`);
      }
    }
    assert.equal(opened, 3000);
    assert.ok(owner.helpedChunks > 0, "the helper ran no chunk");
    Atomics.store(h.stop, 0, 1);
    Atomics.notify(h.stop, 0);
    await h.next(2);
    assert.deepEqual(h.messages, ["ready", "done"]);
    assert.deepEqual(h.errors, []);
  } finally {
    h.worker.terminate();
  }
});

Deno.test("assist: an owner whose helper stalls on a chunk throws AssistStall, naming the thread", async () => {
  // the owner's chunks take 20 ms each, so the waiting helper claims one of the 50 early on
  registerAssistRunner(96, () => {
    const t0 = performance.now();
    while (performance.now() - t0 < 20);
  });
  const board = assistBoard(2);
  const arena = new SharedArrayBuffer(4 * 64);
  const h = helper(board, arena);
  try {
    await h.next(1);
    const owner = new Assist(board, 0);
    owner.adopt(5, arena, true);
    const at = owner.open(arena, 96, 50);
    assert.ok(at >= 0);
    owner.publish();
    // the helper claims a chunk and sleeps 3 s in it; the owner runs the rest and gives up
    assert.throws(
      () => owner.finish(),
      (e) => e instanceof AssistStall && /thread 0 .*unfinished/.test(e.message),
    );
    // the slot is usable again
    Atomics.store(h.stop, 0, 1);
    Atomics.notify(h.stop, 0);
    await h.next(2);
  } finally {
    h.worker.terminate();
  }
});

Deno.test("assist: no job on a foreign arena, without a runner, of one chunk or on a board of one thread; a bad thread is refused", () => {
  const board = assistBoard(2);
  const mine = new SharedArrayBuffer(64), other = new SharedArrayBuffer(64);
  const a = new Assist(board, 0), b = new Assist(board, 1);
  a.adopt(1, mine, true);
  assert.equal(a.open(other, 97, 8), -1); // not this thread's arena
  assert.equal(a.open(mine, 12345, 8), -1); // no runner
  assert.equal(a.open(mine, 97, 1), -1); // one chunk: nothing to share
  const alone = new Assist(assistBoard(1), 0);
  alone.adopt(1, mine, true);
  assert.equal(alone.open(mine, 97, 8), -1); // nobody to share with
  const at = a.open(mine, 97, 8);
  assert.ok(at >= 0);
  // b never adopted the arena: it cannot help, and the owner runs every chunk
  a.publish();
  assert.equal(b.help(), 0);
  board.ints[at] = 4;
  a.finish();
  assert.deepEqual([...new Int32Array(mine, 0, 8)], [
    4000,
    4001,
    4002,
    4003,
    4004,
    4005,
    4006,
    4007,
  ]);
  assert.equal(a.helpedChunks, 0);
  assert.throws(() => new Assist(board, 2), /thread 2 is not one of the board's 2/);
});

Deno.test("assist: a thread's replacement goes on from the tag its predecessor left on the board", () => {
  const board = assistBoard(2);
  const arena = new SharedArrayBuffer(64);
  const first = new Assist(board, 1);
  first.adopt(1, arena, true);
  // it dies with its first job open: a helper may have read that job's counter
  first.open(arena, 97, 4);
  first.publish();
  const stale = Atomics.load(board.ints, 32 + ASSIST.CLAIM);
  const next = new Assist(board, 1);
  next.adopt(2, arena, true);
  const at = next.open(arena, 97, 4);
  board.ints[at] = 9;
  next.publish();
  const now = Atomics.load(board.ints, 32 + ASSIST.CLAIM);
  assert.notEqual(now >>> 16, stale >>> 16, "the new job reuses the dead owner's tag");
  // the stale helper's claim fails
  assert.notEqual(Atomics.compareExchange(board.ints, 32 + ASSIST.CLAIM, stale, stale + 1), stale);
  next.finish();
  assert.deepEqual([...new Int32Array(arena, 0, 4)], [9000, 9001, 9002, 9003]);
});

Deno.test("assist: a job opened with slots is helped only by threads below them, each run told its thread", () => {
  const board = assistBoard(3);
  const arena = new SharedArrayBuffer(64);
  const ran: [number, number][] = []; // (chunk, thread)
  registerAssistRunner(96, (_buf, _ints, _at, _f, _fat, c, thread) => {
    ran.push([c, thread]);
  });
  const owner = new Assist(board, 0), inside = new Assist(board, 1), outside = new Assist(board, 2);
  owner.adopt(5, arena, true);
  inside.adopt(5, arena);
  outside.adopt(5, arena);
  assert.ok(owner.open(arena, 96, 6, 2) >= 0);
  owner.publish();
  assert.equal(outside.help(), 0); // thread 2 has no scratch in the owner's arena
  assert.equal(inside.help(), 6);
  owner.finish();
  // a helper takes a small job's chunks from the back
  assert.deepEqual(ran, [5, 4, 3, 2, 1, 0].map((c) => [c, 1]));
  ran.length = 0;
  assert.ok(owner.open(arena, 96, 3, 2) >= 0);
  owner.publish();
  owner.finish(); // nobody helped: the owner ran them all, as thread 0
  assert.deepEqual(ran, [[0, 0], [1, 0], [2, 0]]);
  // an owner outside the slots, or slots for one thread, opens no job
  const third = new Assist(board, 2);
  third.adopt(6, arena, true);
  assert.equal(third.open(arena, 96, 4, 2), -1);
  assert.equal(owner.open(arena, 96, 4, 1), -1);
});

Deno.test("assist: the owner takes a small job's chunks from the front and helpers from the back, each chunk once; a job of more than 255 chunks goes in order", () => {
  const board = assistBoard(2);
  const arena = new SharedArrayBuffer(64);
  const ran: [number, number][] = []; // (chunk, thread)
  let helper: Assist | null = null;
  // every chunk once: the helper's from the back until it meets the owner's first
  registerAssistRunner(95, (_buf, _ints, _at, _f, _fat, c, thread) => {
    ran.push([c, thread]);
    // the owner's first chunk lets the helper in, which takes all that is left
    if (thread === 0 && ran.length === 1) helper!.help();
  });
  const owner = new Assist(board, 0);
  helper = new Assist(board, 1);
  owner.adopt(4, arena, true);
  helper.adopt(4, arena);
  for (const chunks of [2, 7, 255, 256, 300]) {
    ran.length = 0;
    assert.ok(owner.open(arena, 95, chunks) >= 0);
    owner.publish();
    owner.finish();
    const want: [number, number][] = chunks <= 255
      ? [
        [0, 0],
        ...Array.from({ length: chunks - 1 }, (_, i) => [chunks - 1 - i, 1] as [number, number]),
      ]
      : [[0, 0], ...Array.from({ length: chunks - 1 }, (_, i) => [i + 1, 1] as [number, number])];
    assert.deepEqual(ran, want, `${chunks} chunks`);
  }
});
