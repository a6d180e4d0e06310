import assert from "node:assert/strict";
import { EXPORTABLE_OPS, graphToOnnx, toOnnx } from "../../../train/onnx/to_onnx.ts";
import { decodeModel } from "../../../train/onnx/schema.ts";
import { lectureCnn, lectureCnnModel, mnistNetModel } from "../../../train/models.ts";
import { defineModel, Model } from "../../../train/model.ts";
import { nn } from "../../../train/layers.ts";
import { Graph } from "../../../graph/graph.ts";
import { add, layerNorm } from "../../../ops/mod.ts";
import { initParams } from "../../../graph/params.ts";
import { lookupOp } from "../../../graph/op.ts";
import { argmaxRows, maxAbsDiff, pattern, runOrt } from "./_ort.ts";
import { everyOpModel } from "./_every_op.ts";

async function checkInOrt(label: string, model: Model, batches: number[]): Promise<number> {
  const bytes = toOnnx(model);
  let worst = 0;
  const cols = model.outputShape.at(-1)!;
  for (const b of batches) {
    const x = pattern(b * model.input.reduce((p, d) => p * d, 1), b);
    const ours = model.predict(x);
    const theirs = await runOrt(bytes, "x", x, [b, ...model.input]);
    assert.deepEqual(theirs.dims, ours.shape);
    const d = maxAbsDiff(ours.data, theirs.data);
    assert.ok(d <= 1e-4, `${label} batch ${b}: max |Model.predict - ONNX Runtime| = ${d}`);
    assert.deepEqual(argmaxRows(ours.data, cols), argmaxRows(theirs.data, cols), `${label} argmax`);
    worst = Math.max(worst, d);
  }
  console.log(`${label}: max |Model.predict - ONNX Runtime| = ${worst.toExponential(2)}`);
  return worst;
}

Deno.test("the lecture CNN exported to ONNX gives Model.predict's outputs in ONNX Runtime at two batch sizes", async () => {
  await checkInOrt("lecture-cnn", lectureCnnModel({ seed: 5 }), [1, 7]);
});

Deno.test("mnist-net exported to ONNX (dropout removed) gives Model.predict's outputs in ONNX Runtime", async () => {
  await checkInOrt("mnist-net", mnistNetModel({ seed: 5 }), [3]);
});

Deno.test("a model with every exportable op gives Model.predict's outputs in ONNX Runtime", async () => {
  const { graph, output } = everyOpModel();
  const params = initParams(graph, { seed: 5 }) as Map<string, Float32Array>;
  await checkInOrt("every-op", new Model(graph, output.name, params), [1, 4]);
});

Deno.test("the every-op model covers every registered exportable op", () => {
  const { graph } = everyOpModel();
  const used = new Set(graph.nodes.map((r) => r.op));
  const registered = EXPORTABLE_OPS.filter((op) => {
    try {
      return !!lookupOp(op);
    } catch {
      return false;
    }
  });
  assert.deepEqual(registered.filter((op) => !used.has(op)), []);
});

Deno.test("export writes opset 17, a symbolic batch axis and parameters as initializers under their names", () => {
  const m = lectureCnn({ channels: 4 });
  const params = initParams(m.built, { seed: 1 });
  const msg = decodeModel(graphToOnnx(m.built, { output: m.logp, params }));
  assert.deepEqual(msg.opsetImport, [{ domain: "", version: 17 }]);
  const g = msg.graph!;
  assert.deepEqual(g.input!.map((v) => v.name), ["x"]);
  const dims = g.input![0]!.type!.tensorType!.shape!.dim!;
  assert.deepEqual(dims, [{ dimParam: "N" }, { dimValue: 1 }, { dimValue: 28 }, { dimValue: 28 }]);
  assert.deepEqual(g.initializer!.map((t) => [t.name, t.dims]), [
    ["conv1.weight", [4, 1, 3, 3]],
    ["conv1.bias", [4]],
    ["fc.weight", [10, 676]],
    ["fc.bias", [10]],
  ]);
  const w = g.initializer![0]!;
  const back = new Float32Array(new Uint8Array(w.rawData!).buffer);
  assert.deepEqual([...back], [...params.get("conv1.weight")!]);
  assert.deepEqual(g.node!.map((n) => n.opType), [
    "Conv",
    "Relu",
    "MaxPool",
    "Constant",
    "Reshape",
    "Gemm",
    "LogSoftmax",
  ]);
});

Deno.test("exporting through an op with no ONNX form names the op and node", () => {
  const m = lectureCnn({ channels: 2 });
  assert.throws(
    () => graphToOnnx(m.built, { output: m.loss, params: initParams(m.built) }),
    /^Error: Cannot export nll_loss "loss": op "nll_loss" has no ONNX form/,
  );
});

Deno.test("exporting without a parameter's value names the parameter", () => {
  const m = lectureCnn({ channels: 2 });
  const params = initParams(m.built);
  params.delete("fc.bias");
  assert.throws(
    () => graphToOnnx(m.built, { output: m.logp, params }),
    /Cannot export parameter "fc.bias": no value was given for it/,
  );
});

Deno.test("a model with nn.batchNorm2d exports its evaluation form: running statistics, no batch statistics", async () => {
  const model = defineModel({ input: [2, 6, 6] }, (x) => {
    const h = nn.relu(nn.batchNorm2d(nn.conv2d(x, 3, 3, { name: "conv" }), { name: "bn" }));
    return nn.linear(nn.flatten(h), 4, { name: "fc" });
  });
  // running statistics that are not the initial zeros and ones
  model.params.get("bn.running_mean")!.set([0.3, -0.2, 0.1]);
  model.params.get("bn.running_var")!.set([0.5, 2, 1.5]);
  model.params.get("bn.weight")!.set([1.5, 0.5, -1]);
  const onnx = decodeModel(toOnnx(model)).graph!;
  assert.deepEqual(onnx.node!.map((n) => n.opType).filter((t) => t !== "Constant"), [
    "Conv",
    "BatchNormalization",
    "Relu",
    "Reshape",
    "Gemm",
  ]);
  const names = onnx.initializer!.map((t) => t.name);
  assert.ok(names.includes("bn.running_mean") && names.includes("bn.running_var"));
  assert.ok(!names.includes("bn.num_batches_tracked"), names.join());
  await checkInOrt("batch-norm model", model, [1, 5]);
});

Deno.test("batch norm and layer norm leave as single ONNX nodes unless an inner value is read elsewhere", async () => {
  const { graph, output } = everyOpModel();
  const params = initParams(graph, { seed: 5 }) as Map<string, Float32Array>;
  const types = decodeModel(toOnnx(new Model(graph, output.name, params))).graph!.node!
    .map((n) => n.opType);
  assert.ok(types.includes("BatchNormalization") && types.includes("LayerNormalization"));
  assert.ok(!types.includes("ReduceMean") || types.filter((t) => t === "ReduceMean").length === 1);
  // a layer norm whose mean is also read by another op stays in its component ops
  const g = new Graph();
  const x = g.input("x", [-1, 5]);
  const y = layerNorm(x, null, null, { name: "ln" });
  const mu = g.nodes.findIndex((r) => r.op === "mean");
  const out = add(y, g.node(mu), { name: "out" });
  const leaky = new Model(g, out.name, new Map());
  const t2 = decodeModel(toOnnx(leaky)).graph!.node!.map((n) => n.opType);
  assert.ok(!t2.includes("LayerNormalization") && t2.includes("ReduceMean"), t2.join());
  await checkInOrt("layer norm read inside", leaky, [3]);
});
