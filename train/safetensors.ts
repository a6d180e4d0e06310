/**
 * The safetensors checkpoint format, float32 only: an 8-byte little-endian
 * header length N, N bytes of JSON
 * `{"__metadata__": {...}, name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}}`
 * padded with spaces to a multiple of 8, then the tensors' little-endian
 * bytes back to back. Files written here are laid out byte for byte as the
 * reference implementation writes them (tensors sorted by name, compact
 * JSON, metadata first), so Python's `safetensors.torch.load_file` reads them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readSafetensors, writeSafetensorsAtomic } from "./safetensors.ts";
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await writeSafetensorsAtomic(path, {
 *   "fc.weight": { shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
 * }, { step: "100" });
 * const { tensors, metadata } = await readSafetensors(path);
 * assert.deepEqual([tensors["fc.weight"]!.shape, metadata.step], [[2, 3], "100"]);
 * await Deno.remove(path);
 * ```
 *
 * @module
 */

/**
 * A tensor as stored in a file: its shape and row-major float32 values.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeSafetensors, encodeSafetensors, type StoredTensor } from "./safetensors.ts";
 * const bias: StoredTensor = { shape: [10], data: new Float32Array(10) };
 * const { tensors } = decodeSafetensors(encodeSafetensors({ "fc.bias": bias }));
 * assert.deepEqual(tensors["fc.bias"]!.shape, [10]);
 * ```
 */
export interface StoredTensor {
  /** Dimensions, outermost first; `[]` for a scalar. */
  shape: number[];
  /** `prod(shape)` values in row-major order. */
  data: Float32Array;
}

/** The reference implementation refuses headers above 100 MB; so do we, before allocating. */
const MAX_HEADER = 100_000_000;

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function validShape(shape: unknown): shape is number[] {
  return Array.isArray(shape) && shape.every((d) => Number.isSafeInteger(d) && d >= 0);
}

/**
 * Orders strings by Unicode code point, which is the byte order of their
 * UTF-8 encodings and so the order the reference writer sorts names in
 * (plain `<` compares UTF-16 code units and differs above U+FFFF).
 */
function byCodePoint(a: string, b: string): number {
  const x = [...a], y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0)! - y[i].codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/**
 * Serialises float32 tensors and optional string metadata to safetensors bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeSafetensors } from "./safetensors.ts";
 * const bytes = encodeSafetensors({ b: { shape: [2], data: new Float32Array([1, 2]) } });
 * // 8-byte header length, the JSON header padded to a multiple of 8, then 8 bytes of data
 * const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
 * assert.equal(headerLength % 8, 0);
 * assert.equal(bytes.length, 8 + headerLength + 8);
 * ```
 */
export function encodeSafetensors(
  tensors: Record<string, { shape: number[]; data: Float32Array }>,
  metadata?: Record<string, string>,
): Uint8Array {
  // The reference writer orders by dtype alignment, then name; with one dtype that is the name.
  const names = Object.keys(tensors).sort(byCodePoint);
  const header: Record<string, unknown> = {};
  // Like the reference writer, any metadata object given (even empty) is written.
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new TypeError(
          `safetensors: metadata value for "${k}" must be a string, got ${typeof v}`,
        );
      }
    }
    header.__metadata__ = { ...metadata };
  }
  let offset = 0;
  for (const name of names) {
    if (name === "__metadata__") {
      throw new Error(`safetensors: "__metadata__" is reserved and cannot name a tensor`);
    }
    const { shape, data } = tensors[name];
    if (!validShape(shape)) {
      throw new RangeError(
        `safetensors: tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`,
      );
    }
    if (!(data instanceof Float32Array)) {
      throw new TypeError(`safetensors: tensor "${name}" data must be a Float32Array`);
    }
    if (numel(shape) !== data.length) {
      throw new RangeError(
        `safetensors: tensor "${name}" has shape [${shape.join(",")}] (${
          numel(shape)
        } values) but ${data.length} values`,
      );
    }
    const end = offset + data.length * 4;
    // Key order dtype, shape, data_offsets matches the reference writer's JSON.
    header[name] = { dtype: "F32", shape: [...shape], data_offsets: [offset, end] };
    offset = end;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, padded, true);
  view.setUint32(4, Math.floor(padded / 4294967296), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  let at = 8 + padded;
  for (const name of names) {
    const { data } = tensors[name];
    if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    } else {
      for (let i = 0; i < data.length; i++) view.setFloat32(at + 4 * i, data[i], true);
    }
    at += data.byteLength;
  }
  return out;
}

/**
 * Parses and validates safetensors bytes: the header length, the JSON, each
 * entry's dtype (F32; F64, F16, BF16, I64, I32, I16, I8 and U8 are
 * converted to float32, integers only when exact), shape and offsets (in range, contiguous, no
 * overlap, covering the data exactly). Errors name `fileName`. Returned
 * arrays are copies, independent of `bytes`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * const bytes = encodeSafetensors(
 *   { "fc.weight": { shape: [10, 784], data: new Float32Array(7840) } },
 *   { step: "1000" },
 * );
 * const { tensors, metadata } = decodeSafetensors(bytes, "model.safetensors");
 * assert.deepEqual([tensors["fc.weight"]!.shape, metadata], [[10, 784], { step: "1000" }]);
 * ```
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  fileName = "<bytes>",
): { tensors: Record<string, StoredTensor>; metadata: Record<string, string> } {
  const fail = (why: string) => new Error(`safetensors file "${fileName}": ${why}`);
  if (bytes.length < 8) {
    throw fail(`too short for the 8-byte header length, only ${bytes.length} bytes`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  const headerLen = hi * 4294967296 + lo;
  // another kind of file (an ONNX model, say) gives a wild length: say what it is not
  if ((headerLen > MAX_HEADER || 8 + headerLen > bytes.length) && bytes[8] !== 0x7b) {
    throw fail(
      `not a safetensors file: it does not begin with a header length and a JSON header (length ${headerLen}, ${bytes.length} bytes in the file)`,
    );
  }
  if (headerLen > MAX_HEADER) {
    throw fail(`header length ${headerLen} is larger than the limit of ${MAX_HEADER} bytes`);
  }
  if (8 + headerLen > bytes.length) {
    throw fail(
      `bad header length ${headerLen}: the file has only ${
        bytes.length - 8
      } bytes after the length`,
    );
  }
  let header: unknown;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(
      bytes.subarray(8, 8 + headerLen),
    );
    header = JSON.parse(text);
  } catch (e) {
    // the parser quotes the text around the fault, which may hold any control character
    let why = "";
    for (const c of (e as Error).message) {
      const code = c.charCodeAt(0);
      why += code < 0x20 || code === 0x7f ? `\\u${code.toString(16).padStart(4, "0")}` : c;
    }
    throw fail(`the header is not valid UTF-8 JSON (${why})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw fail(`the header must be a JSON object`);
  }

  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: string; shape: number[]; begin: number; end: number }[] =
    [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        throw fail(`"__metadata__" must be an object of strings`);
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== "string") {
          throw fail(`metadata "${k}" must be a string, got ${JSON.stringify(v)}`);
        }
        metadata[k] = v;
      }
      continue;
    }
    if (typeof value !== "object" || value === null) {
      throw fail(`tensor "${name}": entry must be an object, got ${JSON.stringify(value)}`);
    }
    const { dtype, shape, data_offsets: offs } = value as Record<string, unknown>;
    if (typeof dtype !== "string" || !Object.hasOwn(DTYPE_BYTES, dtype)) {
      throw fail(
        `tensor "${name}": unsupported dtype ${JSON.stringify(dtype)}; supported: ${
          Object.keys(DTYPE_BYTES).join(", ")
        }`,
      );
    }
    const size = DTYPE_BYTES[dtype]!;
    if (!validShape(shape)) {
      throw fail(`tensor "${name}": invalid shape ${JSON.stringify(shape)}`);
    }
    if (
      !Array.isArray(offs) || offs.length !== 2 ||
      !offs.every((o) => Number.isSafeInteger(o) && o >= 0) || offs[0] > offs[1]
    ) {
      throw fail(
        `tensor "${name}": data_offsets must be [begin, end] with 0 <= begin <= end, got ${
          JSON.stringify(offs)
        }`,
      );
    }
    const [begin, end] = offs as number[];
    if (end - begin !== numel(shape) * size) {
      throw fail(
        `tensor "${name}": shape [${shape.join(",")}] needs ${
          numel(shape) * size
        } bytes of ${dtype} ` +
          `but data_offsets [${begin}, ${end}] span ${end - begin}`,
      );
    }
    entries.push({ name, dtype, shape, begin, end });
  }

  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  // The reference reader demands the tensors tile the data area exactly; a gap or
  // overlap means a corrupt or hand-edited file.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const e of sorted) {
    if (e.end > dataLen) {
      throw fail(
        `tensor "${e.name}": data_offsets [${e.begin}, ${e.end}] out of range, the data area has ${dataLen} bytes`,
      );
    }
    if (e.begin < expected) {
      throw fail(`tensor "${e.name}": data_offsets [${e.begin}, ${e.end}] overlap another tensor`);
    }
    if (e.begin > expected) {
      throw fail(
        `tensor "${e.name}": data_offsets [${e.begin}, ${e.end}] leave a gap, expected begin ${expected}`,
      );
    }
    expected = e.end;
  }
  if (expected !== dataLen) {
    throw fail(`the tensors cover ${expected} bytes but the data area has ${dataLen}`);
  }

  const tensors: Record<string, StoredTensor> = {};
  for (const e of entries) {
    const at = dataStart + e.begin;
    if (e.dtype !== "F32") {
      tensors[e.name] = { shape: e.shape, data: convert(e, view, at, fail) };
      continue;
    }
    const n = (e.end - e.begin) / 4;
    const data = new Float32Array(n);
    if (LITTLE_ENDIAN) {
      // Copy bytes, since `at` need not be 4-aligned within the underlying buffer.
      new Uint8Array(data.buffer).set(bytes.subarray(at, at + 4 * n));
    } else {
      for (let i = 0; i < n; i++) data[i] = view.getFloat32(at + 4 * i, true);
    }
    tensors[e.name] = { shape: e.shape, data };
  }
  return { tensors, metadata };
}

/** Bytes per value of the dtypes the reader takes; all but F32 are converted. */
const DTYPE_BYTES: Record<string, number> = {
  F32: 4,
  F64: 8,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
};

/**
 * The values of a non-F32 tensor as float32: F16 and BF16 exactly, F64
 * rounded to the nearest float32 (as PyTorch's `.float()`), integers only
 * where exactly representable (BatchNorm's I64 `num_batches_tracked`).
 */
function convert(
  e: { name: string; dtype: string; begin: number; end: number },
  view: DataView,
  at: number,
  fail: (why: string) => Error,
): Float32Array {
  const size = DTYPE_BYTES[e.dtype]!;
  const n = (e.end - e.begin) / size;
  const data = new Float32Array(n);
  const bits = new Uint32Array(1), asFloat = new Float32Array(bits.buffer);
  const bad = (i: number, v: number | bigint, why: string) =>
    fail(`tensor "${e.name}": ${e.dtype} value ${v} at index ${i} ${why}`);
  for (let i = 0; i < n; i++) {
    const o = at + i * size;
    let v: number;
    switch (e.dtype) {
      case "F64":
        v = view.getFloat64(o, true);
        if (Number.isFinite(v) && !Number.isFinite(Math.fround(v))) {
          throw bad(i, v, "is beyond the range of a 32-bit float");
        }
        break;
      case "F16":
        v = halfToFloat(view.getUint16(o, true));
        break;
      case "BF16":
        // a bfloat16 is the top half of a float32's bits
        bits[0] = view.getUint16(o, true) << 16;
        v = asFloat[0]!;
        break;
      case "I64": {
        const big = view.getBigInt64(o, true);
        v = Number(big);
        if (BigInt(v) !== big || Math.fround(v) !== v) {
          throw bad(i, big, "is not exactly representable as a 32-bit float");
        }
        break;
      }
      case "I32":
        v = view.getInt32(o, true);
        if (Math.fround(v) !== v) throw bad(i, v, "is not exactly representable as a 32-bit float");
        break;
      case "I16":
        v = view.getInt16(o, true);
        break;
      case "I8":
        v = view.getInt8(o);
        break;
      default: // U8
        v = view.getUint8(o);
    }
    data[i] = v;
  }
  return data;
}

/** An IEEE half-precision value from its 16 bits. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * Writes a safetensors file so that readers never see a partial one: the
 * bytes go to `${path}.tmp-<pid>`, are flushed to disk, and the temporary
 * file is renamed over `path`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeSafetensorsAtomic } from "./safetensors.ts";
 * const dir = await Deno.makeTempDir();
 * const params = { "fc.bias": { shape: [2], data: new Float32Array([0.5, -0.5]) } };
 * await writeSafetensorsAtomic(`${dir}/step-1000.safetensors`, params, { step: "1000" });
 * assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["step-1000.safetensors"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeSafetensorsAtomic(
  path: string,
  tensors: Record<string, { shape: number[]; data: Float32Array }>,
  metadata?: Record<string, string>,
): Promise<void> {
  const bytes = encodeSafetensors(tensors, metadata);
  // imported here so that a page importing mod.ts never loads the Deno file code
  const { writeBytesAtomic } = await import("./files.ts");
  try {
    await writeBytesAtomic(path, bytes);
  } catch (e) {
    throw new Error(
      `safetensors file "${path}": writing failed: ${(e as Error).message}`,
      { cause: e },
    );
  }
}

/**
 * Reads and validates a safetensors file; errors name the path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readSafetensors, writeSafetensorsAtomic } from "./safetensors.ts";
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await writeSafetensorsAtomic(path, { w: { shape: [1], data: new Float32Array([3]) } });
 * const { tensors, metadata } = await readSafetensors(path);
 * assert.deepEqual([tensors.w!.data, metadata], [new Float32Array([3]), {}]);
 * await Deno.remove(path);
 * ```
 */
export async function readSafetensors(
  path: string,
): Promise<{ tensors: Record<string, StoredTensor>; metadata: Record<string, string> }> {
  const { readBytes } = await import("./files.ts");
  let bytes: Uint8Array;
  try {
    bytes = await readBytes(path);
  } catch (e) {
    throw new Error(`safetensors file "${path}": cannot read it: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return decodeSafetensors(bytes, path);
}
