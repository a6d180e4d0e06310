// train()'s default thread count: the hardware threads, but no more than a step's micro-batches,
// since a thread without one only waits (batch 32 is one micro-batch: it runs in-process)
import assert from "node:assert/strict";
import { defineModel, nn, train } from "../../mod.ts";

const data = {
  train: {
    x: new Float32Array(128 * 4).fill(0.5),
    y: Array.from({ length: 128 }, (_, i) => i % 2),
  },
  test: { x: new Float32Array(8).fill(0.5), y: [0, 1] },
};

async function startOf(opts: { batch: number; workers?: number }) {
  const seen: { event: string; workers?: number; message?: string }[] = [];
  const model = defineModel({ input: [4] }, (x) => nn.linear(x, 2));
  await train({ model, data, maxSteps: 1, ...opts, onEvent: (e) => void seen.push(e) });
  return {
    workers: seen.find((e) => e.event === "start")!.workers,
    warnings: seen.filter((e) => e.event === "warning").map((e) => e.message!),
  };
}

Deno.test("train() uses no more threads than a step has micro-batches unless told", async () => {
  const hw = navigator.hardwareConcurrency ?? 1;
  assert.deepEqual(await startOf({ batch: 32 }), { workers: 1, warnings: [] });
  assert.deepEqual(await startOf({ batch: 64 }), { workers: Math.min(hw, 2), warnings: [] });
  assert.deepEqual(await startOf({ batch: 128 }), { workers: Math.min(hw, 4), warnings: [] });
  // asked for, it gets them, with the warning that one waits
  const two = await startOf({ batch: 32, workers: 2 });
  assert.equal(two.workers, 2);
  assert.match(
    two.warnings.join("\n"),
    /workers \(--workers\) is 2 but a step of batch 32 is one micro-batch/,
  );
});

Deno.test("train() warns when workers asks for more threads than the machine has", async () => {
  const hw = navigator.hardwareConcurrency ?? 1;
  const many = await startOf({ batch: 32 * (hw + 1), workers: hw + 1 });
  assert.equal(many.workers, hw + 1);
  assert.match(
    many.warnings.join("\n"),
    new RegExp(`workers \\(--workers\\) is ${hw + 1} but this machine has ${hw} hardware thread`),
  );
});
