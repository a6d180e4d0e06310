import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { loadIdxDir, parseIdx, readIdxFile } from "../../../train/data/idx.ts";

/** Builds IDX bytes: magic 00 00 <type> <ndim>, big-endian dims, then `data`. */
function idx(dims: number[], data: ArrayLike<number>, type = 0x08): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out.set([0, 0, type, dims.length]);
  const view = new DataView(out.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

function ramp(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 37) % 256);
}

/** Writes a complete, valid MNIST-style directory; `overrides` replace files by name. */
async function writeDir(
  overrides: Record<string, Uint8Array | null> = {},
  opts: { gzip?: boolean } = {},
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "denograd_idx_" });
  const files: Record<string, Uint8Array | null> = {
    "train-images-idx3-ubyte": idx([5, 3, 2], ramp(30)),
    "train-labels-idx1-ubyte": idx([5], [0, 1, 2, 9, 4]),
    "t10k-images-idx3-ubyte": idx([2, 3, 2], ramp(12)),
    "t10k-labels-idx1-ubyte": idx([2], [7, 3]),
    ...overrides,
  };
  for (const [name, bytes] of Object.entries(files)) {
    if (bytes === null) continue;
    if (opts.gzip) await Deno.writeFile(`${dir}/${name}.gz`, gzipSync(bytes));
    else await Deno.writeFile(`${dir}/${name}`, bytes);
  }
  return dir;
}

async function rejectsWith(p: Promise<unknown>, ...parts: (string | RegExp)[]): Promise<void> {
  await assert.rejects(p, (e: Error) => {
    for (const part of parts) {
      if (typeof part === "string") assert.ok(e.message.includes(part), e.message);
      else assert.match(e.message, part);
    }
    return true;
  });
}

Deno.test("parseIdx reads dims and data as a view", () => {
  const bytes = idx([2, 3], [1, 2, 3, 4, 5, 6]);
  const a = parseIdx(bytes, "x");
  assert.deepEqual(a.dims, [2, 3]);
  assert.equal(a.type, "u8");
  assert.deepEqual([...a.data], [1, 2, 3, 4, 5, 6]);
  assert.equal(a.data.buffer, bytes.buffer);
});

Deno.test("parseIdx errors name the file and the problem", () => {
  const name = "train-images-idx3-ubyte";
  const full = idx([3, 2, 2], ramp(12));
  assert.throws(
    () => parseIdx(full.subarray(0, full.length - 5), name),
    {
      message:
        `IDX file "${name}": truncated, header says 3×2×2 = 12 bytes of data but 7 are present`,
    },
  );
  assert.throws(
    () => parseIdx(Uint8Array.from([...full, 1, 2]), name),
    /IDX file "train-images-idx3-ubyte": 2 unexpected trailing bytes, header says 3×2×2 = 12/,
  );
  assert.throws(
    () => parseIdx(Uint8Array.from([0x50, 0x4b, 3, 4, 0, 0]), name),
    /IDX file "train-images-idx3-ubyte": bad magic number 0x50 0x4b 0x03 0x04/,
  );
  assert.throws(
    () => parseIdx(idx([2], [0, 0, 0, 0, 0, 0, 0, 0], 0x0d), name),
    /"train-images-idx3-ubyte": unsupported data type 0x0d \(float32\); only 0x08/,
  );
  assert.throws(() => parseIdx(idx([2], [1, 2], 0x42), name), /unknown data type 0x42/);
  assert.throws(() => parseIdx(Uint8Array.from([0, 0, 8]), name), /too short.*only 3 bytes/);
  assert.throws(
    () => parseIdx(Uint8Array.from([0, 0, 8, 3, 0, 0, 0, 1]), name),
    /truncated header: 3 dimensions need 16 header bytes but the file has 8/,
  );
  assert.throws(() => parseIdx(Uint8Array.from([0, 0, 8, 0]), name), /declares 0 dimensions/);
});

Deno.test("parseIdx rejects a nonzero second magic byte (00 01 08 01), a valid file otherwise", () => {
  const labels = idx([2], [7, 3]);
  assert.deepEqual([...parseIdx(labels, "ok").data], [7, 3]);
  labels[1] = 0x01;
  assert.throws(
    () => parseIdx(labels, "t10k-labels-idx1-ubyte"),
    /"t10k-labels-idx1-ubyte": bad magic number 0x00 0x01 0x08 0x01, expected 0x00 0x00/,
  );
});

Deno.test("readIdxFile reads plain files and gzip by extension or by magic", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denograd_idx_" });
  try {
    const bytes = idx([4], [9, 8, 7, 6]);
    await Deno.writeFile(`${dir}/plain`, bytes);
    await Deno.writeFile(`${dir}/zipped.gz`, gzipSync(bytes));
    await Deno.writeFile(`${dir}/zipped-no-ext`, gzipSync(bytes));
    for (const f of ["plain", "zipped.gz", "zipped-no-ext"]) {
      const a = await readIdxFile(`${dir}/${f}`);
      assert.deepEqual(a.dims, [4]);
      assert.deepEqual([...a.data], [9, 8, 7, 6]);
    }
    await Deno.writeFile(`${dir}/broken.gz`, gzipSync(bytes).subarray(0, 12));
    await rejectsWith(readIdxFile(`${dir}/broken.gz`), `"${dir}/broken.gz"`, "gzip");
    await rejectsWith(readIdxFile(`${dir}/nope`), `"${dir}/nope"`, "file not found");
    // The .gz name alone asks for decompression, so plain bytes under that name are an error.
    await Deno.writeFile(`${dir}/misnamed.gz`, bytes);
    await rejectsWith(readIdxFile(`${dir}/misnamed.gz`), `"${dir}/misnamed.gz"`, "gzip");
    // A gzipped file whose content is truncated reports the truncation, not a gzip problem.
    await Deno.writeFile(`${dir}/short.gz`, gzipSync(bytes.subarray(0, bytes.length - 1)));
    await rejectsWith(readIdxFile(`${dir}/short.gz`), "short.gz", "truncated", "3 are present");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

for (const gzip of [false, true]) {
  Deno.test(`loadIdxDir loads a ${gzip ? "gzipped" : "plain"} directory, pixels /255`, async () => {
    const dir = await writeDir({}, { gzip });
    try {
      const { train, test } = await loadIdxDir(dir + "/");
      assert.equal(train.count, 5);
      assert.equal(test.count, 2);
      assert.deepEqual(train.sampleShape, [1, 3, 2]);
      assert.equal(train.numClasses, 10);
      assert.deepEqual([...train.labels], [0, 1, 2, 9, 4]);
      assert.deepEqual([...test.labels], [7, 3]);
      const expected = ramp(30);
      for (let i = 0; i < 30; i++) assert.equal(train.images[i], Math.fround(expected[i] / 255));
      assert.ok(train.images.buffer instanceof SharedArrayBuffer);
      assert.ok(train.labels.buffer instanceof SharedArrayBuffer);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("loadIdxDir names the missing file", async () => {
  const dir = await writeDir({ "t10k-labels-idx1-ubyte": null });
  try {
    await rejectsWith(
      loadIdxDir(dir),
      `missing file "t10k-labels-idx1-ubyte"`,
      `"${dir}/t10k-labels-idx1-ubyte.gz"`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadIdxDir rejects a count mismatch between images and labels", async () => {
  const dir = await writeDir({ "train-labels-idx1-ubyte": idx([4], [0, 1, 2, 3]) });
  try {
    await rejectsWith(
      loadIdxDir(dir),
      `"${dir}/train-labels-idx1-ubyte": has 4 labels but "${dir}/train-images-idx3-ubyte" has 5 images`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadIdxDir rejects a label outside 0..9", async () => {
  const dir = await writeDir({ "t10k-labels-idx1-ubyte": idx([2], [7, 12]) });
  try {
    await rejectsWith(
      loadIdxDir(dir),
      `"${dir}/t10k-labels-idx1-ubyte": label 1 is 12, outside the classes 0..9`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadIdxDir rejects images that are not 3-D and truncated files", async () => {
  const flat = await writeDir({ "train-images-idx3-ubyte": idx([5, 6], ramp(30)) });
  const cut = await writeDir({
    "t10k-images-idx3-ubyte": idx([2, 3, 2], ramp(12)).subarray(0, 20),
  });
  const wrongMagic = await writeDir({
    "train-labels-idx1-ubyte": Uint8Array.from([1, 0, 8, 1, 0, 0, 0, 5, 0, 1, 2, 3, 4]),
  });
  try {
    await rejectsWith(
      loadIdxDir(flat),
      `"${flat}/train-images-idx3-ubyte": the magic number 0x00 0x00 0x08 0x02 declares 2 dimensions, but this file needs 3 (0x00 0x00 0x08 0x03: images, count×rows×columns)`,
    );
    await rejectsWith(
      loadIdxDir(cut),
      `IDX file "${cut}/t10k-images-idx3-ubyte": truncated, header says 2×3×2 = 12 bytes of data but 4 are present`,
    );
    await rejectsWith(
      loadIdxDir(wrongMagic),
      `"${wrongMagic}/train-labels-idx1-ubyte": bad magic number 0x01 0x00 0x08 0x01`,
    );
  } finally {
    for (const d of [flat, cut, wrongMagic]) await Deno.remove(d, { recursive: true });
  }
});

Deno.test("loadIdxDir names a magic number with the wrong dimension count before reading sizes from it", async () => {
  // 200 labels behind the magic 0x00000803: its "dimensions" were the labels themselves,
  // "truncated, header says 200×134416645×33555718 = 902089406825222000 bytes"
  const labels = idx([200], Uint8Array.from({ length: 200 }, (_, i) => i % 10));
  labels[3] = 3;
  const dir = await writeDir({ "train-labels-idx1-ubyte": labels });
  try {
    await rejectsWith(
      loadIdxDir(dir),
      `IDX file "${dir}/train-labels-idx1-ubyte": the magic number 0x00 0x00 0x08 0x03 declares 3 dimensions, but this file needs 1 (0x00 0x00 0x08 0x01: labels)`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadIdxDir rejects test images of another size than the training images", async () => {
  const dir = await writeDir({ "t10k-images-idx3-ubyte": idx([2, 2, 3], ramp(12)) });
  try {
    await rejectsWith(loadIdxDir(dir), "t10k-images-idx3-ubyte", "are 2×3", "are 3×2");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadIdxDir: zero training or test images is an error naming the file", async () => {
  for (const [file, labels] of [["train", "train"], ["t10k", "t10k"]]) {
    const dir = await writeDir({
      [`${file}-images-idx3-ubyte`]: idx([0, 3, 2], []),
      [`${labels}-labels-idx1-ubyte`]: idx([0], []),
    });
    try {
      await rejectsWith(loadIdxDir(dir), `${file}-images-idx3-ubyte": holds no images`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});
