import assert from "node:assert/strict";
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  writeSafetensorsAtomic,
} from "../../train/safetensors.ts";

const enc = new TextEncoder();

/** Assembles a file by hand from the spec: u64 LE length, header text as given, data bytes. */
function rawFile(header: string, data: ArrayLike<number> = []): Uint8Array {
  const h = enc.encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setUint32(0, h.length, true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function f32Bytes(values: number[]): number[] {
  return [...new Uint8Array(new Float32Array(values).buffer)];
}

Deno.test("safetensors round trip keeps several tensors and metadata", () => {
  const tensors = {
    "conv1.weight": {
      shape: [2, 1, 3, 3],
      data: Float32Array.from({ length: 18 }, (_, i) => i / 7),
    },
    "conv1.bias": { shape: [2], data: new Float32Array([-1.5, 2.25]) },
    "fc.weight": { shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => -i * 1e-3) },
    scalar: { shape: [], data: new Float32Array([Math.PI]) },
    empty: { shape: [0, 5], data: new Float32Array(0) },
    special: { shape: [4], data: new Float32Array([NaN, Infinity, -Infinity, -0]) },
  };
  const metadata = { step: "1200", config: '{"lr":0.01}', "ünïcode ✓": "ok" };
  const bytes = encodeSafetensors(tensors, metadata);
  const back = decodeSafetensors(bytes, "rt.safetensors");
  assert.deepEqual(back.metadata, metadata);
  assert.deepEqual(Object.keys(back.tensors).sort(), Object.keys(tensors).sort());
  for (const [name, t] of Object.entries(tensors)) {
    assert.deepEqual(back.tensors[name].shape, t.shape, name);
    // Compare bit patterns so NaN and -0 count too.
    assert.deepEqual(
      new Uint32Array(back.tensors[name].data.buffer),
      new Uint32Array(t.data.slice().buffer),
      name,
    );
  }
  // The decoded arrays are copies, not views into the file bytes.
  assert.notEqual(back.tensors["fc.weight"].data.buffer, bytes.buffer);
});

Deno.test("safetensors layout: u64 length prefix, header padded with spaces to 8, data after", () => {
  const bytes = encodeSafetensors({ w: { shape: [3], data: new Float32Array([1, 2, 3]) } });
  const view = new DataView(bytes.buffer);
  const n = view.getUint32(0, true);
  assert.equal(view.getUint32(4, true), 0);
  assert.equal(n % 8, 0);
  assert.equal(bytes.length, 8 + n + 12);
  const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  assert.match(header, /^\{.*\} *$/);
  assert.equal(header.trimEnd(), '{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}');
  assert.deepEqual([...bytes.subarray(8 + n)], f32Bytes([1, 2, 3]));
});

Deno.test("safetensors bytes match what the reference writer produces, byte for byte", () => {
  // The reference (Rust, behind Python's safetensors) sorts tensors by name, writes compact
  // JSON with __metadata__ first, keys dtype/shape/data_offsets, pads with spaces to 8.
  const header = '{"__metadata__":{"format":"pt"},' +
    '"a.weight":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},' +
    '"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}';
  assert.equal(header.length, 148); // so 4 spaces of padding make 152
  const expected = [
    ...[152, 0, 0, 0, 0, 0, 0, 0],
    ...enc.encode(header + "    "),
    ...[0x00, 0x00, 0x40, 0x40, 0x00, 0x00, 0x80, 0x40], // a.weight = [3, 4]
    ...[0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40], // b = [1, 2]
  ];
  const bytes = encodeSafetensors(
    {
      b: { shape: [2], data: new Float32Array([1, 2]) },
      "a.weight": { shape: [1, 2], data: new Float32Array([3, 4]) },
    },
    { format: "pt" },
  );
  assert.deepEqual([...bytes], expected);

  // A header needing padding: 54 bytes of JSON become 56.
  const padded = encodeSafetensors({ x: { shape: [1], data: new Float32Array([0.5]) } });
  const json = '{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
  assert.equal(json.length, 54);
  assert.deepEqual([...padded], [
    ...[56, 0, 0, 0, 0, 0, 0, 0],
    ...enc.encode(json + "  "),
    ...[0x00, 0x00, 0x00, 0x3f],
  ]);
});

Deno.test("safetensors reads files laid out by others: unpadded header, any key order", () => {
  // From the reference implementation's documentation: a 60-byte header, not a multiple of 8.
  const doc = rawFile(
    '{"test":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}',
    f32Bytes([1, -2, 3, -4]),
  );
  const a = decodeSafetensors(doc, "doc.safetensors");
  assert.deepEqual(a.tensors.test.shape, [2, 2]);
  assert.deepEqual([...a.tensors.test.data], [1, -2, 3, -4]);
  assert.deepEqual(a.metadata, {});
  const reordered = rawFile(
    '{"z":{"data_offsets":[0,4],"shape":[1],"dtype":"F32"},"__metadata__":{"k":"v"},' +
      '"a":{"shape":[],"dtype":"F32","data_offsets":[4,8]}}\n  ',
    f32Bytes([7, 8]),
  );
  const b = decodeSafetensors(reordered);
  assert.deepEqual([...b.tensors.z.data], [7]);
  assert.deepEqual(b.tensors.a.shape, []);
  assert.deepEqual([...b.tensors.a.data], [8]);
  assert.deepEqual(b.metadata, { k: "v" });
});

Deno.test("safetensors errors name the file and what is wrong", () => {
  const f = "bad.safetensors";
  const check = (bytes: Uint8Array, pattern: RegExp) =>
    assert.throws(() => decodeSafetensors(bytes, f), (e: Error) => {
      assert.ok(e.message.startsWith(`safetensors file "${f}": `), e.message);
      assert.match(e.message, pattern);
      return true;
    });
  const t = (offs: string, shape = "[2]") =>
    `{"dtype":"F32","shape":${shape},"data_offsets":${offs}}`;

  check(new Uint8Array(5), /too short .* only 5 bytes/);
  const huge = rawFile("{}");
  new DataView(huge.buffer).setUint32(0, 1000, true);
  check(huge, /bad header length 1000: the file has only 2 bytes after the length/);
  const overflow = rawFile("{}");
  new DataView(overflow.buffer).setUint32(4, 1, true);
  check(overflow, /header length 4294967298 is larger than the limit/);
  // another kind of file: an ONNX model begins with protobuf field 1 (0x08)
  const onnx = Uint8Array.from([0x08, 0x08, 0x12, 0x07, ...new TextEncoder().encode("pytorch")]);
  check(onnx, /not a safetensors file: it does not begin with a header length and a JSON header/);
  check(rawFile("{not json"), /not valid UTF-8 JSON/);
  check(rawFile("[1,2]"), /must be a JSON object/);
  const badUtf8 = rawFile('{"a":1}');
  badUtf8[10] = 0xff;
  check(badUtf8, /not valid UTF-8 JSON/);
  check(
    rawFile('{"w":{"dtype":"U32","shape":[1],"data_offsets":[0,4]}}', [0, 0, 0, 0]),
    /tensor "w": unsupported dtype "U32"; supported: F32, F64, F16, BF16, I64, I32, I16, I8, U8/,
  );
  check(
    rawFile(`{"w":${t("[0,8]", "[2,-1]")}}`, new Array(8).fill(0)),
    /tensor "w": invalid shape/,
  );
  check(
    rawFile(`{"w":${t("[0,12]")}}`, new Array(12).fill(0)),
    /tensor "w": shape \[2\] needs 8 bytes of F32 but data_offsets \[0, 12\] span 12/,
  );
  check(rawFile(`{"w":${t("[8,0]")}}`), /data_offsets must be \[begin, end\]/);
  check(rawFile(`{"w":${t("[0]")}}`), /data_offsets must be \[begin, end\]/);
  check(
    rawFile(`{"w":${t("[0,8]")}}`, [0, 0, 0, 0]),
    /tensor "w": data_offsets \[0, 8\] out of range, the data area has 4 bytes/,
  );
  check(
    rawFile(`{"a":${t("[0,8]")},"b":${t("[4,12]")}}`, new Array(12).fill(0)),
    /tensor "b": data_offsets \[4, 12\] overlap another tensor/,
  );
  check(
    rawFile(`{"a":${t("[0,8]")},"b":${t("[12,20]")}}`, new Array(20).fill(0)),
    /tensor "b": data_offsets \[12, 20\] leave a gap, expected begin 8/,
  );
  check(
    rawFile(`{"a":${t("[0,8]")}}`, new Array(10).fill(0)),
    /the tensors cover 8 bytes but the data area has 10/,
  );
  check(rawFile('{"__metadata__":{"n":3}}'), /metadata "n" must be a string, got 3/);
  check(rawFile('{"w":5}'), /tensor "w": entry must be an object, got 5/);
});

Deno.test("encodeSafetensors rejects inconsistent tensors and metadata", () => {
  assert.throws(
    () => encodeSafetensors({ w: { shape: [2, 3], data: new Float32Array(5) } }),
    /tensor "w" has shape \[2,3\] \(6 values\) but 5 values/,
  );
  assert.throws(
    () => encodeSafetensors({ w: { shape: [1.5], data: new Float32Array(1) } }),
    /tensor "w" has an invalid shape \[1.5\]/,
  );
  assert.throws(
    () => encodeSafetensors({ __metadata__: { shape: [1], data: new Float32Array(1) } }),
    /reserved/,
  );
  assert.throws(
    () => encodeSafetensors({}, { step: 3 as unknown as string }),
    /metadata value for "step" must be a string, got number/,
  );
});

Deno.test("encodeSafetensors writes a tensor that is a view into a larger buffer", () => {
  const big = new Float32Array([9, 1, 2, 3, 9]);
  const bytes = encodeSafetensors({ v: { shape: [3], data: big.subarray(1, 4) } });
  assert.deepEqual([...decodeSafetensors(bytes).tensors.v.data], [1, 2, 3]);
});

Deno.test("writeSafetensorsAtomic writes through a temporary file and readSafetensors reads it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denograd_st_" });
  try {
    const path = `${dir}/model.safetensors`;
    const tensors = { w: { shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) } };
    await writeSafetensorsAtomic(path, tensors, { step: "1" });
    assert.deepEqual(await Deno.readFile(path), encodeSafetensors(tensors, { step: "1" }));
    // Overwriting replaces the file whole and leaves no temporary behind.
    await writeSafetensorsAtomic(path, { w: { shape: [1], data: new Float32Array([5]) } });
    const back = await readSafetensors(path);
    assert.deepEqual([...back.tensors.w.data], [5]);
    assert.deepEqual(back.metadata, {});
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names, ["model.safetensors"]);

    await assert.rejects(
      writeSafetensorsAtomic(`${dir}/no/such/dir/m.safetensors`, tensors),
      /safetensors file ".*\/no\/such\/dir\/m.safetensors": writing failed/,
    );
    await assert.rejects(
      readSafetensors(`${dir}/missing`),
      /"[^"]*\/missing": cannot read it: file not found/,
    );
    await Deno.writeFile(`${dir}/junk`, new Uint8Array([1, 2, 3]));
    await assert.rejects(
      readSafetensors(`${dir}/junk`),
      /safetensors file "[^"]*\/junk": too short/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("I64, I32, F64, F16 and BF16 tensors (PyTorch's num_batches_tracked) read as float32", () => {
  // as safetensors.torch.save_file lays out a BatchNorm: the I64 scalar first, then the F32s
  const header = JSON.stringify({
    "bn1.num_batches_tracked": { dtype: "I64", shape: [], data_offsets: [0, 8] },
    "bn1.running_mean": { dtype: "F32", shape: [2], data_offsets: [8, 16] },
    "i32": { dtype: "I32", shape: [2], data_offsets: [16, 24] },
    "f64": { dtype: "F64", shape: [2], data_offsets: [24, 40] },
    "f16": { dtype: "F16", shape: [3], data_offsets: [40, 46] },
    "bf16": { dtype: "BF16", shape: [1], data_offsets: [46, 48] },
  });
  const data = new DataView(new ArrayBuffer(48));
  data.setBigInt64(0, 938n, true);
  data.setFloat32(8, 0.25, true);
  data.setFloat32(12, -1.5, true);
  data.setInt32(16, -7, true);
  data.setInt32(20, 1 << 24, true);
  data.setFloat64(24, 0.1, true);
  data.setFloat64(32, -3, true);
  data.setUint16(40, 0x3c00, true); // 1
  data.setUint16(42, 0xc100, true); // -2.5
  data.setUint16(44, 0x0001, true); // 2^-24, the smallest subnormal
  data.setUint16(46, 0x3fc0, true); // 1.5
  const { tensors } = decodeSafetensors(rawFile(header, new Uint8Array(data.buffer)), "bn.st");
  const got = Object.fromEntries(
    Object.entries(tensors).map(([k, t]) => [k, [t.shape, [...t.data]]]),
  );
  assert.deepEqual(got, {
    "bn1.num_batches_tracked": [[], [938]],
    "bn1.running_mean": [[2], [0.25, -1.5]],
    "i32": [[2], [-7, 16777216]],
    "f64": [[2], [Math.fround(0.1), -3]],
    "f16": [[3], [1, -2.5, 2 ** -24]],
    "bf16": [[1], [1.5]],
  });
});

Deno.test("an integer that a float32 cannot hold exactly is named with its tensor", () => {
  const big = new DataView(new ArrayBuffer(16));
  big.setBigInt64(8, 2n ** 24n + 1n, true);
  assert.throws(
    () =>
      decodeSafetensors(
        rawFile(
          '{"steps":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}',
          new Uint8Array(big.buffer),
        ),
        "big.st",
      ),
    {
      message:
        'safetensors file "big.st": tensor "steps": I64 value 16777217 at index 1 is not exactly representable as a 32-bit float',
    },
  );
  const i32 = new DataView(new ArrayBuffer(4));
  i32.setInt32(0, 2 ** 30 + 1, true);
  assert.throws(
    () =>
      decodeSafetensors(
        rawFile(
          '{"n":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}',
          new Uint8Array(i32.buffer),
        ),
      ),
    /tensor "n": I32 value 1073741825 at index 0 is not exactly representable/,
  );
  const f64 = new DataView(new ArrayBuffer(8));
  f64.setFloat64(0, 1e300, true);
  assert.throws(
    () =>
      decodeSafetensors(
        rawFile(
          '{"x":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}',
          new Uint8Array(f64.buffer),
        ),
      ),
    /tensor "x": F64 value 1e\+300 at index 0 is beyond the range of a 32-bit float/,
  );
});
