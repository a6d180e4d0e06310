import assert from "node:assert/strict";
import { Executor } from "../../graph/executor.ts";
import { makePlan } from "../../graph/plan.ts";
import { tensor } from "../../graph/tensor.ts";
import { nn } from "../../train/layers.ts";
import { defineModel, loadModel, Model, modelFromBytes, trainingGraph } from "../../train/model.ts";
import { lectureCnnModel, mnistNetModel } from "../../train/models.ts";
import { encodeSafetensors, readSafetensors } from "../../train/safetensors.ts";
import { train, TrainError } from "../../train/train.ts";
import { Rng } from "../../train/random.ts";
import { withTempDir } from "../_temp_dir.ts";

function randoms(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.uniform() * 2 - 1);
}

const smallCnn = (seed = 0) =>
  defineModel({ input: [1, 8, 8], seed }, (x) => {
    const h = nn.maxPool2d(nn.relu(nn.conv2d(x, 3, 3, { padding: 1, name: "conv1" })), 2);
    return nn.linear(nn.dropout(nn.flatten(h), 0.5), 4, { name: "fc" });
  });

Deno.test("regression on in-memory data with MSE, on two threads, learns a linear map", async () => {
  // y = [2 x0 - 3 x1 + 1, x0 + x1]
  const n = 256;
  const make = (count: number, seed: number) => {
    const x = randoms(count * 2, seed);
    const y = new Float32Array(count * 2);
    for (let i = 0; i < count; i++) {
      y[2 * i] = 2 * x[2 * i]! - 3 * x[2 * i + 1]! + 1;
      y[2 * i + 1] = x[2 * i]! + x[2 * i + 1]!;
    }
    return { x: tensor(x, [count, 2]), y: tensor(y, [count, 2]) };
  };
  const model = defineModel({ input: [2], seed: 3 }, (x) => nn.linear(x, 2, { name: "fc" }));
  const before = model.evaluate(make(64, 9)).loss;
  const r = await train({
    model,
    data: { train: make(n, 1), test: make(64, 9) },
    epochs: 20,
    batch: 32,
    lr: 0.1,
    optimizer: "momentum",
    workers: 2,
  });
  assert.equal(r.model, model);
  assert.ok(Number.isNaN(r.test_accuracy));
  assert.equal(r.confusion, undefined);
  assert.ok(r.test_loss < 1e-4 && before > 1, `test loss ${before} -> ${r.test_loss}`);
  const w = [...model.params.get("fc.weight")!].map((v) => Math.round(v * 100) / 100);
  assert.deepEqual(w, [2, -3, 1, 1]);
  // predict on the trained parameters
  const p = model.predict(tensor([1, 1], [1, 2]));
  assert.ok(Math.abs(p.data[0]! - 0) < 1e-2 && Math.abs(p.data[1]! - 2) < 1e-2, `${p.data}`);
});

Deno.test("classification on in-memory data: cross-entropy by default for integer labels", async () => {
  // two classes: the sign of x0 + x1
  const make = (count: number, seed: number) => {
    const x = randoms(count * 2, seed);
    const y = Array.from({ length: count }, (_, i) => (x[2 * i]! + x[2 * i + 1]! > 0 ? 1 : 0));
    return { x, y };
  };
  const model = defineModel({ input: [2], seed: 1 }, (x) => nn.linear(nn.relu(nn.linear(x, 8)), 2));
  const r = await train({
    model,
    data: { train: make(512, 1), test: make(200, 2) },
    epochs: 10,
    lr: 0.1,
    workers: 1,
  });
  assert.ok(r.test_accuracy > 0.95, `accuracy ${r.test_accuracy}`);
  assert.equal(r.confusion!.flat().reduce((a, b) => a + b), 200);
  const e = model.evaluate(make(200, 2));
  assert.equal(e.accuracy, r.test_accuracy);
  assert.deepEqual(e.confusion, r.confusion);
});

Deno.test("in-memory data that does not fit the model is refused with the shapes", async () => {
  const model = defineModel({ input: [3] }, (x) => nn.linear(x, 2));
  const bad = { x: tensor(new Float32Array(8), [4, 2]), y: [0, 1, 0, 1] };
  const good = { x: new Float32Array(12), y: [0, 1, 0, 1] };
  await assert.rejects(
    train({ model, data: { train: bad, test: good }, workers: 1 }),
    (e: Error) => e instanceof TrainError && /\[4,2\].*\[n,3\]/.test(e.message),
  );
  await assert.rejects(
    train({ model, data: { train: good, test: { x: new Float32Array(12), y: [0, 5, 0, 1] } } }),
    /label 1 is 5, expected a class id in 0\.\.1/,
  );
  await assert.rejects(
    train({ model, data: { train: { x: new Float32Array(10), y: [0] }, test: good } }),
    /10 values are not a whole number of samples/,
  );
  await assert.rejects(
    train({ model, data: "mnist", workers: 1 }),
    /samples of shape \[1,28,28\] do not match the model's input \[3\]/,
  );
});

Deno.test("predict equals the training graph's evaluation outputs, in any batch size", () => {
  const model = smallCnn(5);
  const n = 300; // more than one chunk of 256
  const x = randoms(n * 64, 7);
  const got = model.predict(tensor(x, [n, 1, 8, 8]));
  assert.deepEqual(got.shape, [n, 4]);
  const spec = trainingGraph(model, "cross-entropy");
  const out = spec.built.node(spec.output);
  const ex = new Executor(makePlan(spec.built, { batch: n, outputs: [out], prune: true }), {
    params: model.params,
  });
  const [want] = ex.run({ x }, { training: false, step: 3 });
  assert.deepEqual(got.data, want);
  // training mode differs (the dropout is active), so predict really is evaluation
  ex.invalidate();
  const [trained] = ex.run({ x }, { training: true, step: 3 });
  assert.notDeepEqual(got.data, trained);
  // plain arrays and one sample at a time give the same rows
  const one = model.predict(x.subarray(64 * 299, 64 * 300));
  assert.deepEqual(one.data, got.data.subarray(4 * 299));
  assert.throws(() => model.predict(tensor(new Float32Array(64), [1, 8, 8])), /\[1,8,8\]/);
});

Deno.test("save and loadModel in a fresh process give identical outputs", async () => {
  await withTempDir(async (dir) => {
    const model = smallCnn(2);
    const path = `${dir}/m.safetensors`;
    await model.save(path);
    const { tensors, metadata } = await readSafetensors(path);
    assert.deepEqual(tensors["conv1.weight"]!.shape, [3, 1, 3, 3]);
    assert.deepEqual(tensors["fc.weight"]!.shape, [4, 48]);
    assert.equal(metadata.format, "denograd.model");
    assert.equal(metadata.input, "[1,8,8]");
    const x = randoms(5 * 64, 11);
    const script = `
      import { loadModel } from "${new URL("../../mod.ts", import.meta.url).href}";
      const m = await loadModel(${JSON.stringify(path)});
      const x = new Float32Array(${JSON.stringify([...x])});
      console.log(JSON.stringify([...m.predict(x).data]));
    `;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const fresh = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.deepEqual(fresh, [...model.predict(x).data]);
    const again = await loadModel(path);
    assert.deepEqual(again.predict(x).data, model.predict(x).data);
  });
});

Deno.test("loadModel names an unregistered op and says to register it", async () => {
  await withTempDir(async (dir) => {
    const model = defineModel({ input: [2] }, (x) => nn.linear(x, 2, { name: "fc" }));
    const path = `${dir}/m.safetensors`;
    await model.save(path);
    const { tensors, metadata } = await readSafetensors(path);
    const graph = JSON.parse(metadata.graph!);
    graph.nodes.at(-1).op = "my_custom_op";
    await Deno.writeFile(
      path,
      encodeSafetensors(tensors, { ...metadata, graph: JSON.stringify(graph) }),
    );
    await assert.rejects(loadModel(path), /op "my_custom_op", which is not registered: import/);
    await Deno.writeFile(path, encodeSafetensors(tensors));
    await assert.rejects(loadModel(path), /holds no model graph/);
  });
});

Deno.test("init from a PyTorch-style file (no metadata): names and shapes checked, each named", async () => {
  await withTempDir(async (dir) => {
    const fresh = lectureCnnModel({ channels: 2, seed: 4 });
    const tensors = Object.fromEntries(
      fresh.paramShapes().map(([k, shape]) => [k, { shape, data: fresh.params.get(k)! }]),
    );
    const path = `${dir}/torch.safetensors`;
    await Deno.writeFile(path, encodeSafetensors(tensors));
    const digits = {
      train: { x: new Float32Array(4 * 784), y: [0, 1, 2, 3] },
      test: { x: randoms(8 * 784, 2).map(Math.abs), y: [0, 1, 2, 3, 4, 5, 6, 7] },
    };
    // --epochs 0 evaluates the loaded parameters without training
    const r = await train({
      model: lectureCnnModel({ channels: 2, seed: 1 }),
      data: digits,
      init: path,
      epochs: 0,
      workers: 1,
    });
    assert.equal(r.steps, 0);
    for (const [k, v] of fresh.params) assert.deepEqual(r.model.params.get(k), v, k);
    assert.deepEqual(r.test_loss, fresh.evaluate(digits.test).loss);
    // a transposed weight, a missing bias and an extra tensor, all named in one error
    const w = tensors["fc.weight"]!;
    const bad = {
      "conv1.weight": tensors["conv1.weight"]!,
      "conv1.bias": tensors["conv1.bias"]!,
      "fc.weight": { shape: [w.shape[1]!, w.shape[0]!], data: w.data },
      "num_batches_tracked": { shape: [], data: new Float32Array(1) },
    };
    await Deno.writeFile(path, encodeSafetensors(bad));
    await assert.rejects(
      train({ model: lectureCnnModel({ channels: 2 }), data: digits, init: path, workers: 1 }),
      (e: Error) =>
        e instanceof TrainError &&
        e.message.includes('"fc.weight" has shape [338,10] but the model needs [10,338]') &&
        e.message.includes('"fc.bias" [10] is missing') &&
        e.message.includes('"num_batches_tracked" is not a parameter of the model'),
    );
  });
});

Deno.test("checkpoints store real shapes; resume refuses a transposed parameter", async () => {
  await withTempDir(async (dir) => {
    const data = {
      train: {
        x: randoms(64 * 64, 1).map(Math.abs),
        y: Array.from({ length: 64 }, (_, i) => i % 4),
      },
      test: {
        x: randoms(16 * 64, 2).map(Math.abs),
        y: Array.from({ length: 16 }, (_, i) => i % 4),
      },
    };
    const ck = `${dir}/ck.safetensors`;
    await train({ model: smallCnn(), data, epochs: 1, batch: 16, workers: 1, checkpoint: ck });
    const { tensors, metadata } = await readSafetensors(ck);
    assert.deepEqual(tensors["conv1.weight"]!.shape, [3, 1, 3, 3]);
    assert.deepEqual(tensors["optimizer/fc.weight.momentum"]!.shape, [4, 48]);
    const w = tensors["fc.weight"]!;
    tensors["fc.weight"] = { shape: [48, 4], data: w.data };
    await Deno.writeFile(ck, encodeSafetensors(tensors, metadata));
    await assert.rejects(
      train({ model: smallCnn(), data, epochs: 2, batch: 16, workers: 1, resume: ck }),
      /Cannot resume from .*"fc\.weight" has shape \[48,4\] \(192 values\) but the run needs \[4,48\]/,
    );
  });
});

Deno.test("a resumed custom model ends with the same bits as an uninterrupted run", async () => {
  await withTempDir(async (dir) => {
    const data = {
      train: {
        x: randoms(96 * 64, 1).map(Math.abs),
        y: Array.from({ length: 96 }, (_, i) => i % 4),
      },
      test: {
        x: randoms(16 * 64, 2).map(Math.abs),
        y: Array.from({ length: 16 }, (_, i) => i % 4),
      },
    };
    const opts = { data, epochs: 2, batch: 16, workers: 1, lr: 0.05 };
    const whole = await train({ model: smallCnn(), ...opts });
    const ck = `${dir}/ck.safetensors`;
    const part = await train({ model: smallCnn(), ...opts, checkpoint: ck, maxSteps: 7 });
    assert.ok(part.interrupted);
    const rest = await train({ model: smallCnn(), ...opts, resume: ck });
    for (const [k, v] of whole.model.params) assert.deepEqual(rest.model.params.get(k), v, k);
  });
});

Deno.test("the built-in models are Models with the lecture's tensor names", () => {
  assert.deepEqual(lectureCnnModel().paramShapes(), [
    ["conv1.weight", [32, 1, 3, 3]],
    ["conv1.bias", [32]],
    ["fc.weight", [10, 5408]],
    ["fc.bias", [10]],
  ]);
  const m = mnistNetModel();
  assert.ok(m instanceof Model);
  assert.deepEqual(m.paramShapes().map(([k]) => k), [
    "conv1.weight",
    "conv1.bias",
    "conv2.weight",
    "conv2.bias",
    "fc1.weight",
    "fc1.bias",
    "fc2.weight",
    "fc2.bias",
  ]);
});

Deno.test("resume and init name a tensor stored in a dtype the reader does not take (U32)", async () => {
  await withTempDir(async (dir) => {
    const data = {
      train: {
        x: randoms(32 * 64, 1).map(Math.abs),
        y: Array.from({ length: 32 }, (_, i) => i % 4),
      },
      test: { x: randoms(8 * 64, 2).map(Math.abs), y: Array.from({ length: 8 }, (_, i) => i % 4) },
    };
    const ck = `${dir}/ck.safetensors`;
    await train({ model: smallCnn(), data, epochs: 1, batch: 16, workers: 1, checkpoint: ck });
    // "F32" -> "U32" in the header of one tensor: same sizes, another dtype
    const bytes = await Deno.readFile(ck);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    const at = header.indexOf('"F32"', header.indexOf('"fc.bias"'));
    bytes.set(new TextEncoder().encode('"U32"'), 8 + at);
    await Deno.writeFile(ck, bytes);
    const opts = { data, epochs: 2, batch: 16, workers: 1 };
    await assert.rejects(
      train({ model: smallCnn(), ...opts, resume: ck }),
      /Cannot resume from .*tensor "fc\.bias": unsupported dtype "U32"/,
    );
    await assert.rejects(
      train({ model: smallCnn(), ...opts, init: ck }),
      /init \(--init\): .*tensor "fc\.bias": unsupported dtype "U32"/,
    );
  });
});

Deno.test("a custom op the workers were not given is named, with the way to pass it", async () => {
  const { halve } = await import("../_halve_op.ts");
  const model = defineModel({ input: [4] }, (x) => nn.linear(halve(x), 2));
  const d = { x: new Float32Array(64 * 4), y: Array.from({ length: 64 }, (_, i) => i % 2) };
  await assert.rejects(
    train({ model, data: { train: d, test: d }, workers: 2, epochs: 1 }),
    /op "test_halve" is not registered there; pass the module that registers it in train\(\{ opModules/,
  );
  // with the module passed, the same run trains
  const r = await train({
    model,
    data: { train: d, test: d },
    workers: 2,
    epochs: 1,
    opModules: [new URL("../_halve_op.ts", import.meta.url)],
  });
  assert.equal(r.steps, 2);
});

Deno.test("toBytes is what save writes, and modelFromBytes reads it as loadModel reads the file", async () => {
  await withTempDir(async (dir) => {
    const model = lectureCnnModel({ channels: 3, seed: 5 });
    const path = `${dir}/m.safetensors`;
    await model.save(path);
    const bytes = model.toBytes();
    assert.deepEqual(bytes, await Deno.readFile(path));
    const x = new Float32Array(2 * 28 * 28).map((_, i) => (i % 7) / 7);
    const fromFile = await loadModel(path);
    const fromBytes = modelFromBytes(bytes, { source: "dropped.safetensors" });
    assert.deepEqual(fromBytes.predict(x), fromFile.predict(x));
    assert.deepEqual(fromBytes.predict(x), model.predict(x));
    // a file that is not a model is refused with the name given
    const weights = encodeSafetensors({ w: { shape: [1], data: new Float32Array(1) } });
    assert.throws(
      () => modelFromBytes(weights, { source: "w.safetensors" }),
      /Cannot load model "w\.safetensors": it holds no model graph/,
    );
  });
});

Deno.test("evaluate() on something that is not { x, y } says what it expected", () => {
  const model = defineModel({ input: [2] }, (x) => nn.linear(x, 3));
  for (const bad of [{}, { x: new Float32Array(2) }, null, { x: [1, 2], y: 3 }]) {
    assert.throws(
      () => model.evaluate(bad as never),
      /^Error: data: expected \{ x, y \} arrays or a Dataset, got /,
      JSON.stringify(bad),
    );
  }
  // the lines a well-formed call takes are unchanged
  const r = model.evaluate({ x: new Float32Array(4), y: [0, 2] });
  assert.equal(r.confusion.length, 3);
});

Deno.test("in-memory data with a NaN or an infinity is refused naming the set, sample and value", async () => {
  const model = defineModel({ input: [2] }, (x) => nn.linear(x, 3));
  const good = { x: [0, 0, 1, 1, 2, 2], y: [0, 1, 2] };
  await assert.rejects(
    train({ model, data: { train: { x: [0, 0, 1, NaN], y: [0, 1] }, test: good }, workers: 1 }),
    (e: Error) =>
      e instanceof TrainError &&
      /^data "train": sample 1 holds NaN at index 1 of its 2 values/.test(e.message),
  );
  await assert.rejects(
    train({ model, data: { train: good, test: { x: [Infinity, 0], y: [0] } }, workers: 1 }),
    /TrainError: data "test": sample 0 holds Infinity at index 0 of its 2 values/,
  );
  const reg = defineModel({ input: [2] }, (x) => nn.linear(x, 1));
  await assert.rejects(
    train({ model: reg, data: { train: { x: [0, 0, 1, 1], y: [0.5, NaN] }, test: good } }),
    /TrainError: data "train": the target of sample 1 holds NaN at index 0 of its 1 values/,
  );
});

Deno.test("an unknown loss is refused by name, not taken for MSE", async () => {
  const model = defineModel({ input: [2] }, (x) => nn.linear(x, 3));
  const d = { x: [0, 0, 1, 1, 2, 2], y: [0, 1, 2] };
  await assert.rejects(
    train({ model, data: { train: d, test: d }, loss: "ce" as never }),
    (e: Error) =>
      e instanceof TrainError &&
      e.message === 'train: unknown loss "ce" (expected cross-entropy or mse)',
  );
});

Deno.test("class ids in a Float32Array: the target-count error says MSE was chosen and why", async () => {
  const model = defineModel({ input: [2] }, (x) => nn.linear(x, 3));
  const d = { x: [0, 0, 1, 1, 2, 2], y: new Float32Array([0, 1, 2]) };
  await assert.rejects(
    train({ model, data: { train: d, test: d } }),
    /y holds 3; the loss is mse because y is a Float32Array: pass class ids as numbers, an Int32Array or a Uint8Array, or loss: "cross-entropy"/,
  );
  // with the loss named, the same arrays train as a classifier
  const r = await train({ model, data: { train: d, test: d }, loss: "cross-entropy", workers: 1 });
  assert.equal(r.confusion?.length, 3);
});

Deno.test("opModules that are not absolute URLs are refused naming the entry", async () => {
  const model = defineModel({ input: [2] }, (x) => nn.linear(x, 3));
  const d = { x: [0, 0, 1, 1, 2, 2], y: [0, 1, 2] };
  await assert.rejects(
    train({ model, data: { train: d, test: d }, workers: 2, opModules: ["./my_op.ts"] }),
    (e: Error) =>
      e instanceof TrainError &&
      e.message.startsWith(
        'train: opModules[0] "./my_op.ts" is not an absolute URL; use new URL("./my_op.ts", import.meta.url)',
      ),
  );
});

Deno.test("a parameter the loss does not depend on is named instead of crashing", async () => {
  const model = defineModel({ input: [4] }, (x) => {
    nn.linear(x, 3, { name: "dead" }); // built, but not on the way to the output
    return nn.linear(x, 2, { name: "fc" });
  });
  const d = { x: new Float32Array(8 * 4), y: [0, 1, 0, 1, 0, 1, 0, 1] };
  await assert.rejects(
    train({ model, data: { train: d, test: d }, workers: 1 }),
    (e: Error) =>
      e.message ===
        'The loss does not depend on the parameters "dead.weight", "dead.bias": the model\'s output "fc" does not use them; build the model without them',
  );
  // evaluation needs no gradients: the same model evaluates and predicts
  assert.equal(model.evaluate(d).confusion.length, 2);
});

Deno.test("resuming from a model file says it is one and points to init", async () => {
  await withTempDir(async (dir) => {
    const model = defineModel({ input: [2] }, (x) => nn.linear(x, 2, { name: "fc" }));
    await model.save(`${dir}/m.safetensors`);
    const d = { x: new Float32Array(8), y: [0, 1, 0, 1] };
    await assert.rejects(
      train({ model, data: { train: d, test: d }, workers: 1, resume: `${dir}/m.safetensors` }),
      /Cannot resume from ".*m\.safetensors": it is a model file \(saveModel, --save-model\), not a checkpoint \(checkpoint, --checkpoint\); start from its parameters with init \(--init\)/,
    );
  });
});

Deno.test("init from an ONNX file says init reads safetensors and how to start from ONNX", async () => {
  await withTempDir(async (dir) => {
    const { toOnnx } = await import("../../train/onnx/to_onnx.ts");
    const model = defineModel({ input: [2] }, (x) => nn.linear(x, 2, { name: "fc" }));
    await Deno.writeFile(`${dir}/m.onnx`, toOnnx(model));
    const d = { x: new Float32Array(8), y: [0, 1, 0, 1] };
    await assert.rejects(
      train({ model, data: { train: d, test: d }, workers: 1, init: `${dir}/m.onnx` }),
      /init \(--init\) reads safetensors: load an ONNX model with loadModel and train it/,
    );
  });
});

Deno.test("a model without parameters is refused for training, and still evaluates", async () => {
  const { scale } = await import("../../ops/mod.ts");
  const model = defineModel({ input: [3], name: "doubler" }, (x) => scale(x, 2));
  const d = { x: [1, 0, 0, 0, 1, 0], y: [0, 1] };
  await assert.rejects(
    train({ model, data: { train: d, test: d }, workers: 1 }),
    (e: Error) =>
      e instanceof TrainError &&
      e.message ===
        'train: the model "doubler" has no parameters to train; evaluate it with model.evaluate(data), or pass epochs: 0',
  );
  const r = await train({ model, data: { train: d, test: d }, workers: 1, epochs: 0 });
  assert.equal(r.test_accuracy, 1);
});
