import assert from "node:assert/strict";
import { onnxToGraph } from "../../../train/onnx/from_onnx.ts";
import { graphToOnnx } from "../../../train/onnx/to_onnx.ts";
import { decodeModel, encodeModel, type ModelMsg } from "../../../train/onnx/schema.ts";
import { initParams } from "../../../graph/params.ts";
import { argmaxRows, maxAbsDiff, pattern, runHere } from "./_ort.ts";
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

for (const name of ["lecture_cnn", "mnist_net"]) {
  Deno.test(`${name}.onnx from PyTorch gives PyTorch's stored outputs within 1e-4`, () => {
    const { bytes, fx } = readFixture(name);
    const m = onnxToGraph(bytes);
    assert.equal(m.input, "x");
    assert.deepEqual(m.inputShape, [-1, 1, 28, 28]);
    const out = m.graph.node(m.output);
    const y = runHere(m.graph, out, m.params, m.input, fx.input.data, fx.input.shape[0]!);
    const d = maxAbsDiff(y, fx.output.data);
    console.log(`${name}: max |denograd - PyTorch| = ${d.toExponential(2)}`);
    assert.ok(d <= 1e-4, `max difference ${d}`);
    assert.deepEqual(argmaxRows(y, 10), argmaxRows(fx.output.data, 10));
  });
}

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
