// Mutated safetensors files (truncated, bytes flipped, lengths changed,
// headers that lie): every read either returns exactly what the bytes say or
// throws one plain Error naming the file, quickly; never another exception
// type, never a hang.
import assert from "node:assert/strict";
import fc from "npm:fast-check@3.23.2";
import { decodeSafetensors, encodeSafetensors, readSafetensors } from "../../train/safetensors.ts";

const NAME = "fuzz.safetensors";
const BOUND_MS = 2000;

const valid = encodeSafetensors({
  "conv.weight": { shape: [2, 1, 2, 2], data: Float32Array.from({ length: 8 }, (_, i) => i - 3.5) },
  "conv.bias": { shape: [2], data: new Float32Array([0.25, -0.75]) },
  scalar: { shape: [], data: new Float32Array([Math.E]) },
  empty: { shape: [0, 3], data: new Float32Array(0) },
}, { step: "42", history: '{"loss":[[1,2]]}' });
const headerLen = Number(new DataView(valid.buffer).getBigUint64(0, true));

/** An independent reading of what a file that parsed must have contained. */
function checkAgainstBytes(bytes: Uint8Array, got: ReturnType<typeof decodeSafetensors>): void {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  assert.deepEqual(Object.keys(got.tensors).sort(), names.sort());
  for (const name of names) {
    const { dtype, shape, data_offsets: [b, e] } = header[name];
    const raw = bytes.slice(8 + n + b, 8 + n + e);
    assert.deepEqual(got.tensors[name]!.shape, shape);
    if (dtype === "F32") {
      assert.deepEqual(
        new Uint8Array(got.tensors[name]!.data.buffer),
        raw,
        `tensor ${name} holds the bytes its offsets name`,
      );
    } else {
      // a header that says another dtype (a lie the reader cannot see through): the values
      // those bytes hold as that dtype, each as the nearest float32
      assert.deepEqual(
        Array.from(got.tensors[name]!.data),
        Array.from(valuesAs(dtype, raw), (v) => Math.fround(Number(v))),
        `tensor ${name} holds its bytes read as ${dtype}`,
      );
    }
  }
  assert.deepEqual(got.metadata, header.__metadata__ ?? {});
}

/** `raw` read as `dtype` by the runtime's own typed arrays (little-endian host). */
function valuesAs(dtype: string, raw: Uint8Array): ArrayLike<number | bigint> {
  const buf = raw.slice().buffer;
  switch (dtype) {
    case "F64":
      return new Float64Array(buf);
    case "F16":
      return new Float16Array(buf);
    case "BF16":
      return new Float32Array(Uint32Array.from(new Uint16Array(buf), (h) => h << 16).buffer);
    case "I64":
      return new BigInt64Array(buf);
    case "I32":
      return new Int32Array(buf);
    case "I16":
      return new Int16Array(buf);
    case "I8":
      return new Int8Array(buf);
    case "U8":
      return new Uint8Array(buf);
  }
  throw new Error(`the reader took a dtype the test does not know: ${dtype}`);
}

function readOrNamedError(bytes: Uint8Array): void {
  const t0 = performance.now();
  let got;
  try {
    got = decodeSafetensors(bytes, NAME);
  } catch (e) {
    assert.equal(
      Object.getPrototypeOf(e),
      Error.prototype,
      `${(e as Error).name}: ${(e as Error).message}`,
    );
    assert.ok(
      (e as Error).message.startsWith(`safetensors file "${NAME}": `),
      (e as Error).message,
    );
    assert.equal((e as Error).message.includes("\n"), false);
    return;
  } finally {
    assert.ok(performance.now() - t0 < BOUND_MS, "the read took too long");
  }
  checkAgainstBytes(bytes, got);
}

const mutation = fc.oneof(
  // truncate
  fc.nat({ max: valid.length }).map((n) => (b: Uint8Array) => b.slice(0, n)),
  // flip bytes anywhere
  fc.array(fc.tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 1, max: 255 })), {
    minLength: 1,
    maxLength: 4,
  }).map((flips) => (b: Uint8Array) => {
    const c = b.slice();
    for (const [i, x] of flips) c[i]! ^= x;
    return c;
  }),
  // flip bytes in the header text only (keeps the length field honest)
  fc.tuple(fc.nat({ max: headerLen - 1 }), fc.integer({ min: 1, max: 255 })).map(
    ([i, x]) => (b: Uint8Array) => {
      const c = b.slice();
      c[8 + i]! ^= x;
      return c;
    },
  ),
  // change the header length
  fc.bigUintN(64).map((len) => (b: Uint8Array) => {
    const c = b.slice();
    new DataView(c.buffer).setBigUint64(0, len, true);
    return c;
  }),
  // append or drop data bytes
  fc.integer({ min: -16, max: 16 }).map((d) => (b: Uint8Array) => {
    if (d < 0) return b.slice(0, b.length + d);
    const c = new Uint8Array(b.length + d);
    c.set(b);
    return c;
  }),
);

// headers that lie: rewrite one entry's dtype, shape or offsets, or the metadata
const lie = fc.record({
  name: fc.constantFrom("conv.weight", "conv.bias", "scalar", "empty", "__metadata__", "__proto__"),
  field: fc.constantFrom("dtype", "shape", "data_offsets", "whole"),
  value: fc.oneof(
    fc.constantFrom("F16", "F64", "I32", null, "", -1, 1e300, [], {}, [-1], [1.5], [2 ** 53, 2]),
    fc.array(fc.integer({ min: -4, max: 1 << 30 }), { maxLength: 4 }),
    fc.tuple(fc.nat({ max: 64 }), fc.nat({ max: 64 })),
    fc.string({ maxLength: 4 }),
  ),
});

function withLie(l: { name: string; field: string; value: unknown }): Uint8Array {
  const header = JSON.parse(new TextDecoder().decode(valid.subarray(8, 8 + headerLen)));
  if (l.field === "whole") header[l.name] = l.value;
  else {
    header[l.name] = { ...(header[l.name] ?? {}), [l.field]: l.value };
  }
  const text = new TextEncoder().encode(JSON.stringify(header));
  const data = valid.subarray(8 + headerLen);
  const out = new Uint8Array(8 + text.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  out.set(data, 8 + text.length);
  return out;
}

Deno.test("fuzz: mutated safetensors bytes read right or fail naming the file", () => {
  readOrNamedError(valid);
  fc.assert(fc.property(mutation, (m) => readOrNamedError(m(valid))), { numRuns: 800 });
});

Deno.test("fuzz: safetensors headers that lie are caught, naming the file", () => {
  // always tried: dtypes the reader converts, over bytes written as F32 (one failed in CI)
  const examples: [{ name: string; field: string; value: unknown }][] = [];
  for (const name of ["conv.weight", "conv.bias", "scalar"]) {
    for (const value of ["I32", "F16", "F64", "BF16", "I16", "I8", "U8", "I64"]) {
      examples.push([{ name, field: "dtype", value }]);
    }
  }
  fc.assert(fc.property(lie, (l) => readOrNamedError(withLie(l))), { numRuns: 500, examples });
});

Deno.test("fuzz: a mutated safetensors file on disk reads right or fails naming its path", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/ck.st`;
    await fc.assert(
      fc.asyncProperty(mutation, async (m) => {
        await Deno.writeFile(path, m(valid));
        try {
          await readSafetensors(path);
        } catch (e) {
          assert.equal(Object.getPrototypeOf(e), Error.prototype);
          assert.ok((e as Error).message.startsWith(`safetensors file "${path}": `));
        }
      }),
      { numRuns: 50 },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a header whose bytes turn into a newline gives a one-line error that shows it escaped", () => {
  const bytes = valid.slice();
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + headerLen));
  // the first digit of the first data offset becomes a line feed: no longer JSON
  const at = text.indexOf('"data_offsets":[') + '"data_offsets":['.length;
  bytes[8 + at] = 0x0a;
  assert.throws(
    () => decodeSafetensors(bytes, NAME),
    (e: Error) =>
      e.message.startsWith(`safetensors file "${NAME}": the header is not valid UTF-8 JSON (`) &&
      !e.message.includes("\n") && e.message.includes("\\u000a"),
  );
});
