// Resuming refuses a checkpoint it cannot continue exactly, naming the tensor
// or metadata field; each case here was accepted (or crashed) before.
import assert from "node:assert/strict";
import { allocDataset, type Split } from "../../train/data/dataset.ts";
import { readSafetensors, writeSafetensorsAtomic } from "../../train/safetensors.ts";
import { train, TrainError, type TrainEvent } from "../../train/train.ts";

function noise(count: number, name: string): Split["train"] {
  const ds = allocDataset({ name, count, sampleShape: [1, 28, 28], numClasses: 10 });
  let s = 7;
  for (let i = 0; i < ds.images.length; i++) {
    ds.images[i] = ((s = (s * 69069 + 1) >>> 0) >>> 8) / 2 ** 24;
  }
  for (let i = 0; i < count; i++) ds.labels[i] = i % 10;
  return ds;
}
const split: Split = { train: noise(64, "noise train"), test: noise(16, "noise test") };
const base = { split, channels: 2, batch: 8, workers: 1, seed: 3, epochs: 2 } as const;

async function withCheckpoint(
  opts: Record<string, unknown>,
  fn: (path: string, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/ck.st`;
    await train({ ...base, ...opts, checkpoint: path, maxSteps: 11 });
    await fn(path, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Rewrites the checkpoint at `path` through `edit`. */
async function tamper(
  path: string,
  edit: (
    t: Record<string, { shape: number[]; data: Float32Array }>,
    m: Record<string, string>,
  ) => void,
): Promise<void> {
  const { tensors, metadata } = await readSafetensors(path);
  edit(tensors, metadata);
  await writeSafetensorsAtomic(path, tensors, metadata);
}

async function refused(path: string, opts: Record<string, unknown>, ...parts: string[]) {
  await assert.rejects(train({ ...base, ...opts, resume: path }), (e: Error) => {
    assert.ok(e instanceof TrainError, `${e.name}: ${e.message}`);
    for (const p of parts) assert.ok(e.message.includes(p), `"${e.message}" lacks "${p}"`);
    return true;
  });
}

const cases: [string, Record<string, unknown>, (t: any, m: any) => void, string[]][] = [
  ["optimizer state of the wrong size", { optimizer: "adam", lr: 1e-3 }, (t) => {
    t[Object.keys(t).find((k) => k.endsWith(".exp_avg"))!] = {
      shape: [3],
      data: new Float32Array(3),
    };
  }, ['.exp_avg"', "3 values"]],
  ["missing optimizer state", {}, (t) => {
    for (const k of Object.keys(t)) if (k.startsWith("optimizer/")) delete t[k];
  }, ["optimizer state", "is missing"]],
  ["an extra tensor", {}, (t) => {
    t["stray"] = { shape: [1], data: new Float32Array(1) };
  }, ['"stray"', "does not have"]],
  ["a NaN in a parameter", {}, (t) => {
    t[Object.keys(t).find((k) => k.endsWith(".bias"))!].data[1] = NaN;
  }, ['.bias"', "NaN at index 1"]],
  ['epoch "abc"', {}, (_, m) => (m.epoch = "abc"), ['"epoch"', '"abc"']],
  ['epoch "1000000"', {}, (_, m) => (m.epoch = "1000000"), ['"step"', "epoch 1000000"]],
  ['step_in_epoch "1000"', {}, (_, m) => (m.step_in_epoch = "1000"), [
    '"step_in_epoch" is 1000 but an epoch of this run has 8 steps',
  ]],
  ['step "-5"', {}, (_, m) => (m.step = "-5"), ['"step"', '"-5"']],
  ["a bad history", {}, (_, m) => (m.history = "{"), ['"history"', "not valid JSON"]],
  ["a history of the wrong form", {}, (_, m) => (m.history = '{"loss":5}'), ['"history"']],
  ["no epoch field", {}, (_, m) => delete m.epoch, ['"epoch" is missing']],
  ["epoch_loss_sum NaN", {}, (_, m) => (m.epoch_loss_sum = "NaN"), ['"epoch_loss_sum"', '"NaN"']],
  ["epoch_loss_steps past step_in_epoch", {}, (_, m) => (m.epoch_loss_steps = "99"), [
    '"epoch_loss_steps"',
    '"99"',
  ]],
];
for (const [what, opts, edit, parts] of cases) {
  Deno.test(`resume refuses a checkpoint with ${what}, naming it`, async () => {
    await withCheckpoint(opts, async (path) => {
      await tamper(path, edit);
      await refused(path, opts, ...parts);
    });
  });
}

Deno.test("resume refuses a different --seed, --batch or --lr, saying which", async () => {
  await withCheckpoint({}, async (path) => {
    await refused(path, { seed: 4 }, "seed 3 (--seed)", "not 4");
    await refused(path, { batch: 4 }, "batch 8 (--batch)", "not 4");
    // at step 3 of an epoch that batch 32 makes 2 steps long: still the batch, not a bad field
    await refused(
      path,
      { batch: 32 },
      "batch 8 (--batch); resume with the same batch size, not 32",
    );
    await refused(path, { lr: 0.01 }, "lr 0.05 (--lr)", "not 0.01");
  });
});

Deno.test("a resume with the same flags still works after the checks", async () => {
  await withCheckpoint({ optimizer: "adam", lr: 1e-3 }, async (path) => {
    const r = await train({ ...base, optimizer: "adam", lr: 1e-3, resume: path });
    assert.equal(r.steps, 16);
  });
});

Deno.test("resuming with --epochs at or below the checkpoint's epoch evaluates it and says so", async () => {
  await withCheckpoint({}, async (path) => {
    const events: TrainEvent[] = [];
    const r = await train({ ...base, epochs: 1, resume: path, onEvent: (e) => events.push(e) });
    assert.ok(Number.isFinite(r.test_accuracy) && Number.isFinite(r.test_loss));
    const w = events.find((e) => e.event === "warning");
    assert.ok(w && w.event === "warning" && /nothing to train/.test(w.message));
  });
});

Deno.test("zero training or test samples is an error naming the set", async () => {
  const empty = allocDataset({
    name: "empty set",
    count: 0,
    sampleShape: [1, 28, 28],
    numClasses: 10,
  });
  for (const s of [{ train: empty, test: split.test }, { train: split.train, test: empty }]) {
    await assert.rejects(
      train({ ...base, split: s }),
      (e: Error) => e instanceof TrainError && e.message.includes('"empty set" has no samples'),
    );
  }
});

Deno.test("an abort during the end-of-epoch evaluation stops it within a chunk", async () => {
  const bigTest = noise(4000, "noise test");
  const ac = new AbortController();
  const events: TrainEvent[] = [];
  const r = await train({
    ...base,
    split: { train: split.train, test: bigTest },
    signal: ac.signal,
    onEvent: (e) => {
      events.push(e);
      // a timer, like a signal listener, runs only when the loop yields
      if (e.event === "step" && e.step === e.steps_per_epoch) setTimeout(() => ac.abort(), 0);
    },
  });
  assert.equal(r.interrupted, true);
  assert.equal(r.steps, 8);
  assert.equal(events.filter((e) => e.event === "epoch").length, 0);
});

Deno.test("a Ctrl-C mid-epoch reports the last evaluation's figures with the step they measured", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ac = new AbortController();
    const events: TrainEvent[] = [];
    const r = await train({
      ...base,
      epochs: 3,
      checkpoint: `${dir}/ck.st`,
      signal: ac.signal,
      onEvent: (e) => {
        events.push(e);
        if (e.event === "step" && e.global_step === 11) ac.abort();
      },
    });
    assert.equal(r.interrupted, true);
    assert.equal(r.steps, 11);
    // epoch 1's evaluation (step 8) stands: the parameters returned and saved are at step 11
    assert.equal(r.tested_at_step, 8);
    const epoch = events.find((e) => e.event === "epoch")!;
    assert.ok(epoch.event === "epoch" && r.test_loss === epoch.test_loss);
    const done = events.at(-1)!;
    assert.ok(done.event === "done" && done.tested_at_step === 8 && done.steps === 11);
    // a finished run measured its own parameters, and wrote its last checkpoint once
    const saved: string[] = [];
    const whole = await train({
      ...base,
      epochs: 2,
      checkpoint: `${dir}/whole.st`,
      onEvent: (e) => e.event === "checkpoint" && saved.push(`${e.step} ${e.reason}`),
    });
    assert.equal(whole.tested_at_step, whole.steps);
    assert.deepEqual(saved, ["8 epoch", "16 epoch"]);
    // one stopped before any evaluation measured nothing
    const early = new AbortController();
    const none = await train({
      ...base,
      signal: early.signal,
      onEvent: (e) => e.event === "step" && e.global_step === 2 && early.abort(),
    });
    assert.equal(none.tested_at_step, null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an unknown kernel tier is refused before anything runs", async () => {
  await assert.rejects(
    train({ ...base, kernels: "gpu" as never }),
    (e: Error) => e instanceof TrainError && e.message.includes('"gpu"'),
  );
});

Deno.test("an epoch resumed in its middle reports the same train_loss as an uninterrupted one", async () => {
  const losses = async (opts: Record<string, unknown>) => {
    const epochs: number[] = [];
    await train({
      ...base,
      ...opts,
      onEvent: (e) => void (e.event === "epoch" && epochs.push(e.train_loss)),
    });
    return epochs;
  };
  const whole = await losses({});
  const dir = await Deno.makeTempDir();
  try {
    // 8 steps an epoch: stopped at step 11, in the middle of the second epoch
    const first = await losses({ checkpoint: `${dir}/ck.st`, maxSteps: 11 });
    const rest = await losses({ resume: `${dir}/ck.st` });
    assert.deepEqual([...first, ...rest], whole);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
