import assert from "node:assert/strict";
import { decodeModel, encodeModel, type ModelMsg } from "../../../train/onnx/schema.ts";

Deno.test("the ONNX schema subset round-trips every field denograd writes", () => {
  const model: ModelMsg = {
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }],
    producerName: "denograd",
    producerVersion: "0.1.0",
    graph: {
      name: "g",
      node: [{
        opType: "Conv",
        name: "conv",
        input: ["x", "w"],
        output: ["y"],
        attribute: [
          { name: "strides", type: 7, ints: [2, 2] },
          { name: "alpha", type: 1, f: 0.5 },
          { name: "group", type: 2, i: 3 },
          { name: "mode", type: 3, s: new TextEncoder().encode("constant") },
        ],
      }],
      initializer: [{
        name: "w",
        dims: [1, 1, 1, 2],
        dataType: 1,
        rawData: new Uint8Array(new Float32Array([1.5, -2]).buffer),
      }, { name: "big", dims: [2], dataType: 7, int64Data: [2 ** 40, -3] }],
      input: [{
        name: "x",
        type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: "N" }, { dimValue: 4 }] } } },
      }],
      output: [{ name: "y" }],
    },
    metadataProps: [{ key: "k", value: "v" }],
  };
  const back = decodeModel(encodeModel(model));
  const g = back.graph!;
  assert.deepEqual(back.opsetImport, [{ domain: "", version: 17 }]);
  assert.equal(back.irVersion, 8);
  const attrs = g.node![0]!.attribute!.slice(0, 3);
  assert.deepEqual(attrs.map((a) => a.ints ?? a.f ?? a.i), [[2, 2], 0.5, 3]);
  assert.equal(new TextDecoder().decode(g.node![0]!.attribute![3]!.s!), "constant");
  assert.deepEqual([...new Float32Array(new Uint8Array(g.initializer![0]!.rawData!).buffer)], [
    1.5,
    -2,
  ]);
  assert.deepEqual(g.initializer![1]!.int64Data, [2 ** 40, -3]);
  assert.deepEqual(g.input![0]!.type!.tensorType!.shape!.dim, [{ dimParam: "N" }, { dimValue: 4 }]);
  assert.deepEqual(back.metadataProps, [{ key: "k", value: "v" }]);
});

Deno.test("repeated integers are written packed, as proto3 does", () => {
  const ints = Array.from({ length: 50 }, (_, i) => i);
  const bytes = (n: number[]) =>
    encodeModel({ graph: { node: [{ attribute: [{ name: "a", type: 7, ints: n }] }] } }).length;
  // packed: one tag and a length for the list, then one byte per small value
  assert.ok(bytes(ints) - bytes([]) <= 50 + 4, `${bytes(ints) - bytes([])} bytes for 50 ints`);
});

Deno.test("an invalid message is refused before it is written", () => {
  assert.throws(
    () => encodeModel({ graph: { node: [{ opType: 5 as unknown as string }] } }),
    /^Error: Cannot write ONNX: .*opType/,
  );
});
