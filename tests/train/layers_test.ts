import assert from "node:assert/strict";
import { Executor } from "../../graph/executor.ts";
import { makePlan } from "../../graph/plan.ts";
import { gelu } from "../../ops/gelu.ts";
import { erf } from "../../ops/kernels/erf.ts";
import { LocalRunner } from "../../train/parallel/local.ts";
import { WorkerPool } from "../../train/parallel/pool.ts";
import type { GradientRunner, SharedData } from "../../train/parallel/spec.ts";
import { defineModel } from "../../train/model.ts";
import { nn } from "../../train/layers.ts";
import { trainingGraph } from "../../train/model.ts";
import { readSafetensors } from "../../train/safetensors.ts";
import { train } from "../../train/train.ts";
import { rng } from "../_grad_check.ts";

Deno.test("nn.batchNorm2d makes PyTorch's five tensors; the buffers are not trained", () => {
  const model = defineModel({ input: [1, 6, 6] }, (x) => {
    const h = nn.batchNorm2d(nn.conv2d(x, 3, 3));
    return nn.linear(nn.flatten(nn.layerNorm(h, [4, 4])), 2);
  });
  assert.deepEqual([...model.params.keys()], [
    "conv1.weight",
    "conv1.bias",
    "bn1.weight",
    "bn1.bias",
    "bn1.running_mean",
    "bn1.running_var",
    "bn1.num_batches_tracked",
    "ln1.weight",
    "ln1.bias",
    "fc1.weight",
    "fc1.bias",
  ]);
  assert.deepEqual([...model.params.get("bn1.running_var")!], [1, 1, 1]);
  assert.deepEqual(model.graph.node("bn1.num_batches_tracked").shape, []);
  assert.deepEqual(model.graph.node("ln1.weight").shape, [4, 4]);
  const spec = trainingGraph(model, "cross-entropy");
  assert.deepEqual(spec.buffers, [
    "bn1.running_mean",
    "bn1.running_var",
    "bn1.num_batches_tracked",
  ]);
  assert.equal(spec.grads["bn1.running_mean"], "bn1.running_mean.next");
  assert.throws(
    () => defineModel({ input: [4] }, (x) => nn.batchNorm2d(x)),
    /batchNorm2d "bn1": .* expected \[N, C, H, W\]/,
  );
  assert.throws(
    () => defineModel({ input: [4] }, (x) => nn.layerNorm(x, [5])),
    /normalized shape \[5\] must be the trailing axes/,
  );
});

/** n samples of shape [2, 2, 2] (two channels) and labels 0/1. */
function data(n: number, seed: number) {
  const r = rng(seed);
  return {
    x: Float32Array.from({ length: n * 8 }, (_, i) => r() * 4 + (i % 8 < 4 ? 1 : -2)),
    y: Array.from({ length: n }, (_, i) => i % 2),
  };
}

Deno.test("batch norm's running statistics follow PyTorch's update (momentum 0.1, unbiased variance) and serve evaluation", async () => {
  // batch norm straight on the input: its statistics depend on the data only
  const model = defineModel(
    { input: [2, 2, 2] },
    (x) => nn.linear(nn.flatten(nn.batchNorm2d(x)), 2),
  );
  const train_ = data(8, 1);
  await train({
    model,
    data: { train: train_, test: data(4, 2) },
    epochs: 2,
    batch: 8,
    workers: 1,
    lr: 0.1,
  });
  // per channel over the 8 samples × 4 pixels: one full-batch step per epoch
  for (let c = 0; c < 2; c++) {
    const v: number[] = [];
    for (let s = 0; s < 8; s++) for (let k = 0; k < 4; k++) v.push(train_.x[s * 8 + c * 4 + k]!);
    const mu = v.reduce((a, b) => a + b, 0) / 32;
    const unbiased = v.reduce((a, b) => a + (b - mu) ** 2, 0) / 31;
    // after two updates from (0, 1): 0.9·(0.1 mu) + 0.1 mu, and 0.9·(0.9 + 0.1 u) + 0.1 u
    const rm = model.params.get("bn1.running_mean")![c]!,
      rv = model.params.get("bn1.running_var")![c]!;
    assert.ok(Math.abs(rm - 0.19 * mu) < 1e-5, `running_mean[${c}] ${rm} vs ${0.19 * mu}`);
    assert.ok(Math.abs(rv - (0.81 + 0.19 * unbiased)) < 1e-5, `running_var[${c}] ${rv}`);
  }
  assert.deepEqual([...model.params.get("bn1.num_batches_tracked")!], [2]);
  // evaluation normalises with the running estimates, not the batch's: one sample suffices
  const one = data(1, 3).x;
  const y = model.predict(one).data;
  const p = (k: string) => model.params.get(k)!;
  const xhat = [...one].map((v, i) => {
    const c = i < 4 ? 0 : 1;
    return ((v - p("bn1.running_mean")[c]!) / Math.sqrt(p("bn1.running_var")[c]! + 1e-5)) *
        p("bn1.weight")[c]! +
      p("bn1.bias")[c]!;
  });
  for (let o = 0; o < 2; o++) {
    let want = p("fc1.bias")[o]!;
    for (let i = 0; i < 8; i++) want += p("fc1.weight")[o * 8 + i]! * xhat[i]!;
    assert.ok(Math.abs(y[o]! - want) < 1e-4, `output ${o}: ${y[o]} vs ${want}`);
  }
});

Deno.test("a conv net with nn.batchNorm2d: 1, 2 and 3 threads and two micro-batch sizes give the full-batch result", async () => {
  const model = defineModel({ input: [1, 6, 6], seed: 3 }, (x) => {
    const h = nn.maxPool2d(gelu(nn.batchNorm2d(nn.conv2d(x, 3, 3))), 2);
    return nn.linear(nn.flatten(h), 4);
  });
  const spec = trainingGraph(model, "cross-entropy");
  const n = 24, side = 36;
  const r = rng(11);
  const images = new Float32Array(new SharedArrayBuffer(4 * n * side));
  const labels = new Uint8Array(new SharedArrayBuffer(n));
  for (let i = 0; i < n * side; i++) images[i] = r() * 2 - 0.5;
  for (let i = 0; i < n; i++) labels[i] = i % 4;
  const data: SharedData = { images, labels, sampleSize: side };
  const params = new Map<string, Float32Array>();
  for (const [k, v] of model.params) {
    params.set(k, new Float32Array(new SharedArrayBuffer(4 * v.length)));
    params.get(k)!.set(v);
  }
  const indices = Uint32Array.from({ length: 20 }, (_, i) => (i * 7) % n);
  // the reference: one executor over the whole batch (batch_sum is the identity there)
  const g = spec.built;
  const names = Object.keys(spec.grads);
  const outs = [spec.loss, ...names.map((k) => spec.grads[k]!)].map((k) => g.node(k));
  const ex = new Executor(makePlan(g, { batch: indices.length, outputs: outs }), { params });
  const x = new Float32Array(indices.length * side), y = new Float32Array(indices.length);
  indices.forEach((s, i) => {
    x.set(images.subarray(s * side, (s + 1) * side), i * side);
    y[i] = labels[s]!;
  });
  const full = ex.run({ x, [spec.target]: y }).map((v) => Float32Array.from(v));
  const step = async (runner: GradientRunner) => {
    const grads = new Map<string, Float32Array>();
    const { loss } = await runner.step(indices, 0, grads);
    await runner.close();
    return [Float32Array.of(loss), ...names.map((k) => grads.get(k)!)];
  };
  // the buffers' slots hold their next values: the running statistics of the full batch
  assert.ok(names.includes("bn1.running_var"));
  for (const microBatch of [8, 5]) {
    const local = await step(new LocalRunner(spec, { params, data, maxBatch: 32, microBatch }));
    local.forEach((v, i) => {
      // conv1.bias has no gradient through batch norm: its values are rounding noise, hence 1e-6
      const scale = Math.max(...full[i]!.map(Math.abs));
      v.forEach((a, j) =>
        assert.ok(
          Math.abs(a - full[i]![j]!) <= 2e-5 * scale + 1e-6,
          `micro-batch ${microBatch}, ${i ? names[i - 1] : "loss"}[${j}]: ${a} vs ${full[i]![j]}`,
        )
      );
    });
    for (const workers of [2, 3]) {
      const pool = await WorkerPool.create(spec, {
        workers,
        params,
        data,
        maxBatch: 32,
        microBatch,
      });
      assert.deepEqual(await step(pool), local, `${workers} threads, micro-batch ${microBatch}`);
    }
  }
});

Deno.test("a CNN with batch norm and GELU trains through train(): 1 and 2 threads give the same loss curve", async () => {
  const make = () =>
    defineModel({ input: [1, 28, 28], seed: 2 }, (x) => {
      const h = nn.maxPool2d(gelu(nn.batchNorm2d(nn.conv2d(x, 4, 3, { padding: 1 }))), 2);
      return nn.linear(nn.flatten(h), 10);
    });
  const run = async (workers: number) => {
    const model = make();
    const losses: number[] = [];
    const r = await train({
      model,
      epochs: 2,
      batch: 32,
      workers,
      trainLimit: 256,
      testLimit: 100,
      onEvent: (e) => e.event === "step" && losses.push(e.loss),
    });
    return { losses, r, model };
  };
  const one = await run(1), two = await run(2);
  assert.equal(one.losses.length, 16);
  assert.deepEqual(two.losses, one.losses);
  for (const [k, v] of one.model.params) assert.deepEqual(two.model.params.get(k), v, k);
  assert.equal(two.r.test_accuracy, one.r.test_accuracy);
  // it learned, and the running statistics moved from their start
  assert.ok(
    one.losses.slice(-4).reduce((a, b) => a + b) < one.losses.slice(0, 4).reduce((a, b) => a + b),
  );
  assert.deepEqual([...one.model.params.get("bn1.num_batches_tracked")!], [16]);
  assert.ok(one.model.params.get("bn1.running_var")!.some((v) => v !== 1));
});

Deno.test("a batch-norm model resumes exactly from a checkpoint: running statistics included, no optimizer state for them", async () => {
  const make = () =>
    defineModel({ input: [2, 2, 2], seed: 6 }, (x) => nn.linear(nn.flatten(nn.batchNorm2d(x)), 2));
  const sets = { train: data(40, 4), test: data(8, 5) };
  const base = {
    data: sets,
    epochs: 2,
    batch: 8,
    workers: 1,
    optimizer: "adam" as const,
    lr: 1e-2,
  };
  const whole = make();
  await train({ ...base, model: whole });
  const dir = await Deno.makeTempDir();
  try {
    const ckpt = `${dir}/bn.safetensors`;
    const first = make();
    const r = await train({ ...base, model: first, checkpoint: ckpt, maxSteps: 3 });
    assert.ok(r.interrupted);
    const { tensors } = await readSafetensors(ckpt);
    assert.ok("optimizer/fc1.weight.exp_avg" in tensors);
    assert.ok(!Object.keys(tensors).some((k) => k.startsWith("optimizer/bn1.running")));
    assert.deepEqual([...tensors["bn1.num_batches_tracked"]!.data], [3]);
    const resumed = make();
    await train({ ...base, model: resumed, resume: ckpt });
    for (const [k, v] of whole.params) assert.deepEqual(resumed.params.get(k), v, k);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the parameter-free helpers apply their ops: gelu, leakyRelu, sigmoid, tanh, avgPool2d, globalAvgPool2d", () => {
  const model = defineModel({ input: [1, 4, 4] }, (x) => {
    const a = nn.avgPool2d(nn.leakyRelu(x, 0.5), 3, { stride: 1, padding: 1 });
    const b = nn.maxPool2d(nn.gelu(a), 2, { padding: 1 });
    return nn.flatten(nn.globalAvgPool2d(nn.tanh(nn.sigmoid(b))));
  });
  const ops = model.graph.nodes.map((r) => r.op);
  for (const op of ["leaky_relu", "avg_pool2d", "gelu", "max_pool2d", "sigmoid", "tanh", "mean"]) {
    assert.ok(ops.includes(op), `${op} in ${ops}`);
  }
  assert.deepEqual(model.graph.node(model.output).shape, [-1, 1]);
  const y = model.predict(new Float32Array(16).fill(-2)).data[0]!;
  // leaky: -1; the 3x3 average with padding of a constant -1 plane: corners -4/9, edges -6/9,
  // centre -1; the padded 2x2 max pool's nine windows hold one corner, two edge cells or four
  // centre cells each; then the global mean of tanh(sigmoid(gelu(.)))
  const g = (v: number) => v * 0.5 * (1 + erf(v / Math.SQRT2));
  const f = (v: number) => Math.tanh(1 / (1 + Math.exp(-g(v))));
  const want = (4 * f(-4 / 9) + 4 * f(-6 / 9) + f(-1)) / 9;
  assert.ok(Math.abs(y - want) < 1e-6, `${y} vs ${want}`);
});

Deno.test("a PyTorch file with BatchNorm's I64 num_batches_tracked loads (as safetensors.torch writes it)", async () => {
  const model = defineModel(
    { input: [1, 6, 6] },
    (x) => nn.linear(nn.flatten(nn.batchNorm2d(nn.conv2d(x, 3, 3))), 2),
  );
  // the I64 scalar first, then the F32 tensors, each filled with its index + 1
  const header: Record<string, unknown> = {
    "bn1.num_batches_tracked": { dtype: "I64", shape: [], data_offsets: [0, 8] },
  };
  const shapes = new Map(model.paramShapes());
  let at = 8;
  const f32: number[] = [];
  [...shapes].forEach(([k, shape], i) => {
    if (k === "bn1.num_batches_tracked") return;
    const n = shape.reduce((a, b) => a * b, 1);
    header[k] = { dtype: "F32", shape, data_offsets: [at, at + 4 * n] };
    for (let j = 0; j < n; j++) f32.push(i + 1);
    at += 4 * n;
  });
  const h = new TextEncoder().encode(JSON.stringify(header));
  const bytes = new Uint8Array(8 + h.length + at);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, h.length, true);
  bytes.set(h, 8);
  view.setBigInt64(8 + h.length, 938n, true);
  f32.forEach((v, j) => view.setFloat32(8 + h.length + 8 + 4 * j, v, true));
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/torch.safetensors`, bytes);
    await model.loadWeights(`${dir}/torch.safetensors`);
    assert.deepEqual([...model.params.get("bn1.num_batches_tracked")!], [938]);
    assert.deepEqual([...model.params.get("bn1.running_var")!], [6, 6, 6]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
