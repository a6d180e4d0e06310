// Mutated IDX files, plain and gzipped (truncated, bytes flipped, dimensions
// that lie): every read either returns exactly what the bytes say or throws
// one plain Error naming the file, quickly; never another exception type,
// never a hang.
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import fc from "npm:fast-check@3.23.2";
import { parseIdx, readIdxFile } from "../../../train/data/idx.ts";

const NAME = "train-images-idx3-ubyte";
const BOUND_MS = 2000;

function idx(dims: number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out.set([0, 0, 8, dims.length]);
  const view = new DataView(out.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

const valid = idx([3, 4, 5], Uint8Array.from({ length: 60 }, (_, i) => (i * 41) % 256));

/** Checks a successful parse against an independent reading of the bytes. */
function checkAgainstBytes(bytes: Uint8Array, got: ReturnType<typeof parseIdx>): void {
  assert.equal(bytes[0], 0);
  assert.equal(bytes[1], 0);
  assert.equal(bytes[2], 8);
  const ndim = bytes[3]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims = Array.from({ length: ndim }, (_, i) => view.getUint32(4 + 4 * i, false));
  assert.deepEqual(got.dims, dims);
  assert.equal(got.data.length, dims.reduce((a, b) => a * b, 1));
  assert.deepEqual([...got.data], [...bytes.subarray(4 + 4 * ndim)]);
}

function namedError(e: unknown, name: string): void {
  assert.equal(
    Object.getPrototypeOf(e),
    Error.prototype,
    `${(e as Error).name}: ${(e as Error).message}`,
  );
  assert.ok((e as Error).message.startsWith(`IDX file "${name}": `), (e as Error).message);
}

function parseOrNamedError(bytes: Uint8Array): void {
  const t0 = performance.now();
  let got;
  try {
    got = parseIdx(bytes, NAME);
  } catch (e) {
    namedError(e, NAME);
    return;
  } finally {
    assert.ok(performance.now() - t0 < BOUND_MS, "the parse took too long");
  }
  checkAgainstBytes(bytes, got);
}

function mutation(length: number) {
  return fc.oneof(
    fc.nat({ max: length }).map((n) => (b: Uint8Array) => b.slice(0, n)),
    fc.array(fc.tuple(fc.nat({ max: length - 1 }), fc.integer({ min: 1, max: 255 })), {
      minLength: 1,
      maxLength: 4,
    }).map((flips) => (b: Uint8Array) => {
      const c = b.slice();
      for (const [i, x] of flips) c[i]! ^= x;
      return c;
    }),
    // dimensions that lie, ndim included
    fc.tuple(fc.nat({ max: 255 }), fc.array(fc.nat({ max: 0xffffffff }), { maxLength: 4 })).map(
      ([ndim, dims]) => (b: Uint8Array) => {
        const c = b.slice();
        c[3] = ndim;
        const view = new DataView(c.buffer);
        dims.forEach((d, i) => {
          if (4 + 4 * i + 4 <= c.length) view.setUint32(4 + 4 * i, d, false);
        });
        return c;
      },
    ),
    fc.integer({ min: -8, max: 8 }).map((d) => (b: Uint8Array) => {
      if (d < 0) return b.slice(0, b.length + d);
      const c = new Uint8Array(b.length + d);
      c.set(b);
      return c;
    }),
  );
}

Deno.test("fuzz: mutated IDX bytes parse right or fail naming the file", () => {
  parseOrNamedError(valid);
  fc.assert(fc.property(mutation(valid.length), (m) => parseOrNamedError(m(valid))), {
    numRuns: 1000,
  });
});

Deno.test("fuzz: mutated gzipped IDX files read right or fail naming the path", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const gz = gzipSync(valid);
    const path = `${dir}/${NAME}.gz`;
    await fc.assert(
      fc.asyncProperty(mutation(gz.length), async (m) => {
        const bytes = m(gz);
        await Deno.writeFile(path, bytes);
        const t0 = performance.now();
        let got;
        try {
          got = await readIdxFile(path);
        } catch (e) {
          namedError(e, path);
          return;
        } finally {
          assert.ok(performance.now() - t0 < BOUND_MS, "the read took too long");
        }
        // a read that succeeded holds what the (still valid) gzip stream decodes to
        const { gunzipSync } = await import("node:zlib");
        checkAgainstBytes(new Uint8Array(gunzipSync(bytes)), got);
      }),
      { numRuns: 300 },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
