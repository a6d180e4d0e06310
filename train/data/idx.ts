/**
 * Reads IDX files, the format of MNIST and Fashion-MNIST, plain or gzipped.
 *
 * An IDX file is a 4-byte magic (two zero bytes, a type code, the number of
 * dimensions), one big-endian uint32 per dimension, then the values in
 * row-major order. Only type 0x08 (unsigned byte) is read: it is what the
 * image and label files of both data sets use.
 *
 * @example
 * ```ts ignore
 * import assert from "node:assert/strict";
 * import { loadIdxDir } from "@denograd/denograd";
 * // needs the four Fashion-MNIST files in ./data/fashion-mnist
 * const { train, test } = await loadIdxDir("./data/fashion-mnist");
 * assert.deepEqual([train.count, test.count], [60000, 10000]);
 * ```
 *
 * @module
 */

import { allocDataset, type Dataset, type Split } from "./dataset.ts";

/**
 * The contents of an IDX file of unsigned bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { IdxArray } from "./idx.ts";
 * const labels: IdxArray = { dims: [3], type: "u8", data: new Uint8Array([7, 2, 1]) };
 * assert.equal(labels.data.length, labels.dims[0]);
 * ```
 */
export interface IdxArray {
  /** The dimensions from the header, e.g. `[60000, 28, 28]`. */
  dims: number[];
  /** The element type; only unsigned bytes are supported. */
  type: "u8";
  /** `prod(dims)` values, row-major. */
  data: Uint8Array;
}

const TYPE_NAMES: Record<number, string> = {
  0x08: "unsigned byte",
  0x09: "signed byte",
  0x0b: "int16",
  0x0c: "int32",
  0x0d: "float32",
  0x0e: "float64",
};

function hex(b: number): string {
  return "0x" + b.toString(16).padStart(2, "0");
}

/**
 * Parses the bytes of an (already decompressed) IDX file, checking the magic,
 * the type code, the dimensions and that the data length matches the header
 * exactly. Errors name `fileName` and what was wrong. With `ndim`, the
 * dimension count the file must declare (3 for MNIST images, 1 for labels),
 * a magic number that declares another is refused before its dimensions
 * are read. The result's `data` is a view into `bytes`, not a copy.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseIdx } from "./idx.ts";
 * const bytes = new Uint8Array([0, 0, 8, 1, 0, 0, 0, 2, 5, 9]);
 * assert.deepEqual(parseIdx(bytes, "labels"), { dims: [2], type: "u8", data: new Uint8Array([5, 9]) });
 * assert.throws(
 *   () => parseIdx(bytes, "images", 3),
 *   /magic number 0x00 0x00 0x08 0x01 declares 1 dimension, but this file needs 3 \(0x00 0x00 0x08 0x03: images/,
 * );
 * ```
 */
export function parseIdx(bytes: Uint8Array, fileName: string, ndim?: number): IdxArray {
  const fail = (why: string) => new Error(`IDX file "${fileName}": ${why}`);
  if (bytes.length < 4) {
    throw fail(`too short for the 4-byte magic number, only ${bytes.length} bytes`);
  }
  const magic = [...bytes.subarray(0, 4)].map(hex).join(" ");
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw fail(
      `bad magic number ${magic}, expected 0x00 0x00 <type> <dimensions>; not an IDX file`,
    );
  }
  const type = bytes[2];
  if (type !== 0x08) {
    const known = TYPE_NAMES[type];
    throw fail(
      known
        ? `unsupported data type ${hex(type)} (${known}); only 0x08 (unsigned byte) is supported`
        : `unknown data type ${hex(type)} in magic number ${magic}`,
    );
  }
  const declared = bytes[3];
  if (declared === 0) throw fail(`the magic number ${magic} declares 0 dimensions`);
  // a labels file given for images read 0x00000803's dimensions from the labels as a size
  if (ndim !== undefined && declared !== ndim) {
    throw fail(
      `the magic number ${magic} declares ${declared} dimension${
        declared === 1 ? "" : "s"
      }, but this file needs ${ndim} (${[0, 0, 8, ndim].map(hex).join(" ")}${
        ndim === 1 ? ": labels" : ndim === 3 ? ": images, count×rows×columns" : ""
      })`,
    );
  }
  const headerBytes = 4 + 4 * declared;
  if (bytes.length < headerBytes) {
    throw fail(
      `truncated header: ${declared} dimensions need ${headerBytes} header bytes but the file has ${bytes.length}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let size = 1;
  for (let i = 0; i < declared; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    size *= d;
  }
  const present = bytes.length - headerBytes;
  const expected = `${dims.join("×")} = ${size} bytes of data`;
  if (present < size) throw fail(`truncated, header says ${expected} but ${present} are present`);
  if (present > size) {
    throw fail(
      `${
        present - size
      } unexpected trailing bytes, header says ${expected} but ${present} are present`,
    );
  }
  return { dims, type: "u8", data: bytes.subarray(headerBytes) };
}

function isGzip(path: string, bytes: Uint8Array): boolean {
  return path.endsWith(".gz") || (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b);
}

async function gunzip(bytes: Uint8Array, path: string): Promise<Uint8Array> {
  try {
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream()
      .pipeThrough(new DecompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (e) {
    throw new Error(
      `IDX file "${path}": gzip decompression failed (${(e as Error).message})`,
      { cause: e },
    );
  }
}

/**
 * Reads and parses an IDX file, gunzipping it when the path ends in `.gz`
 * or the bytes start with the gzip magic 1f 8b.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readIdxFile } from "./idx.ts";
 * // a 2×2 image of bytes: magic 0 0 8 2 (u8, two dimensions), dims 2 and 2, then the pixels
 * const path = await Deno.makeTempFile({ suffix: "-idx3-ubyte" });
 * await Deno.writeFile(path, new Uint8Array([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 255, 128, 7]));
 * const image = await readIdxFile(path);
 * assert.deepEqual([image.dims, [...image.data]], [[2, 2], [0, 255, 128, 7]]);
 * await Deno.remove(path);
 * ```
 */
export async function readIdxFile(path: string): Promise<IdxArray> {
  // imported here so that a page importing mod.ts never loads the Deno file code
  const { readBytes } = await import("../files.ts");
  let bytes: Uint8Array;
  try {
    bytes = await readBytes(path);
  } catch (e) {
    throw new Error(`IDX file "${path}": cannot read it: ${(e as Error).message}`, { cause: e });
  }
  if (isGzip(path, bytes)) bytes = await gunzip(bytes, path);
  return parseIdx(bytes, path);
}

/** The four files of an MNIST-style split, by role. */
export type IdxFileRole = "trainImages" | "trainLabels" | "testImages" | "testLabels";

/**
 * The MNIST file name of each role, as {@linkcode loadIdxDir} looks for them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IDX_FILE_NAMES } from "@denograd/denograd";
 * assert.equal(IDX_FILE_NAMES.testLabels, "t10k-labels-idx1-ubyte");
 * ```
 */
export const IDX_FILE_NAMES: Readonly<Record<IdxFileRole, string>> = {
  trainImages: "train-images-idx3-ubyte",
  trainLabels: "train-labels-idx1-ubyte",
  testImages: "t10k-images-idx3-ubyte",
  testLabels: "t10k-labels-idx1-ubyte",
};
const FILES = IDX_FILE_NAMES;
const ROLES = Object.keys(FILES) as IdxFileRole[];

/** The path of `name` or `name.gz` in `dir`, whichever exists (the plain one first). */
async function locate(dir: string, name: string): Promise<string> {
  const { isFile } = await import("../files.ts");
  const candidates = [`${dir}/${name}`, `${dir}/${name}.gz`];
  for (const path of candidates) {
    if (await isFile(path)) return path;
  }
  throw new Error(
    `IDX directory "${dir}": missing file "${name}" (looked for ${
      candidates.map((c) => `"${c}"`).join(" and ")
    })`,
  );
}

/** Turns an image file and a label file into a dataset, checking they agree. */
function toDataset(
  name: string,
  images: IdxArray,
  imagesPath: string,
  labels: IdxArray,
  labelsPath: string,
): Dataset {
  if (images.dims.length !== 3) {
    throw new Error(
      `IDX file "${imagesPath}": images must be 3-D (count×rows×columns), got dimensions ${
        images.dims.join("×")
      }`,
    );
  }
  if (labels.dims.length !== 1) {
    throw new Error(
      `IDX file "${labelsPath}": labels must be 1-D (count), got dimensions ${
        labels.dims.join("×")
      }`,
    );
  }
  const [count, rows, cols] = images.dims;
  if (rows === 0 || cols === 0) {
    throw new Error(`IDX file "${imagesPath}": images have an empty side, ${rows}×${cols}`);
  }
  if (count === 0) {
    throw new Error(
      `IDX file "${imagesPath}": holds no images (dimensions ${images.dims.join("×")}); ${
        name.endsWith(" test") ? "testing" : "training"
      } needs at least one`,
    );
  }
  if (labels.dims[0] !== count) {
    throw new Error(
      `IDX file "${labelsPath}": has ${
        labels.dims[0]
      } labels but "${imagesPath}" has ${count} images`,
    );
  }
  for (let i = 0; i < count; i++) {
    if (labels.data[i] > 9) {
      throw new Error(
        `IDX file "${labelsPath}": label ${i} is ${labels.data[i]}, outside the classes 0..9`,
      );
    }
  }
  const ds = allocDataset({ name, count, sampleShape: [1, rows, cols], numClasses: 10 });
  const src = images.data;
  for (let i = 0; i < src.length; i++) ds.images[i] = src[i] / 255;
  ds.labels.set(labels.data);
  return ds;
}

/**
 * Loads an MNIST-style directory holding `train-images-idx3-ubyte`,
 * `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
 * `t10k-labels-idx1-ubyte`, each plain or with `.gz`. Pixels are scaled to
 * [0, 1] by /255; labels must be 0..9. Errors name the offending file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadIdxDir } from "@denograd/denograd";
 * // the four files, here of one 1×2 image labelled 3 (MNIST's hold 28×28 images)
 * const dir = await Deno.makeTempDir();
 * const images = new Uint8Array([0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 51, 255]);
 * const labels = new Uint8Array([0, 0, 8, 1, 0, 0, 0, 1, 3]);
 * for (const set of ["train", "t10k"]) {
 *   await Deno.writeFile(`${dir}/${set}-images-idx3-ubyte`, images);
 *   await Deno.writeFile(`${dir}/${set}-labels-idx1-ubyte`, labels);
 * }
 * const { train, test } = await loadIdxDir(dir);
 * assert.deepEqual([...train.images], [0.2, 1].map(Math.fround)); // pixels / 255
 * assert.deepEqual([test.count, test.labels[0]], [1, 3]);
 * await Deno.remove(`${dir}/t10k-labels-idx1-ubyte`);
 * await assert.rejects(loadIdxDir(dir), /t10k-labels-idx1-ubyte/); // errors name the file
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadIdxDir(dir: string): Promise<Split> {
  const trimmed = dir.length > 1 ? dir.replace(/\/+$/, "") : dir;
  const { readBytes } = await import("../files.ts");
  const paths = {} as Record<IdxFileRole, string>;
  for (const role of ROLES) paths[role] = await locate(trimmed, FILES[role]);
  const bytes = {} as Record<IdxFileRole, Uint8Array>;
  for (const role of ROLES) {
    try {
      bytes[role] = await readBytes(paths[role]);
    } catch (e) {
      throw new Error(`IDX file "${paths[role]}": cannot read it: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }
  return await splitFromIdx(bytes, { name: trimmed, paths });
}

/**
 * Turns the bytes of the four MNIST-style IDX files (each plain or gzipped)
 * into a split, with the checks of {@linkcode loadIdxDir}: pixels scaled to
 * [0, 1] by /255, labels 0..9, counts and image sizes that agree. Errors name
 * the file by `paths` (default: its MNIST file name). This is the in-memory
 * path a web page uses after fetching the files.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitFromIdx } from "@denograd/denograd";
 * // IDX: magic 0 0 8 (u8) and the number of dimensions, each dimension as a big-endian u32
 * const images = new Uint8Array([0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 255]);
 * const labels = new Uint8Array([0, 0, 8, 1, 0, 0, 0, 1, 7]);
 * const split = await splitFromIdx({
 *   trainImages: images,
 *   trainLabels: labels,
 *   testImages: images,
 *   testLabels: labels,
 * });
 * assert.deepEqual([...split.train.images], [0, 1]);
 * assert.deepEqual(split.test.sampleShape, [1, 1, 2]);
 * assert.equal(split.test.labels[0], 7);
 * ```
 */
export async function splitFromIdx(
  files: Readonly<Record<IdxFileRole, Uint8Array>>,
  opts: { name?: string; paths?: Readonly<Record<IdxFileRole, string>> } = {},
): Promise<Split> {
  const name = opts.name ?? "idx";
  const paths = opts.paths ?? FILES;
  const parsed = {} as Record<IdxFileRole, IdxArray>;
  for (const role of ROLES) {
    let bytes = files[role];
    if (isGzip(paths[role], bytes)) bytes = await gunzip(bytes, paths[role]);
    parsed[role] = parseIdx(bytes, paths[role], role.endsWith("Labels") ? 1 : 3);
  }
  const train = toDataset(
    `${name} train`,
    parsed.trainImages,
    paths.trainImages,
    parsed.trainLabels,
    paths.trainLabels,
  );
  const test = toDataset(
    `${name} test`,
    parsed.testImages,
    paths.testImages,
    parsed.testLabels,
    paths.testLabels,
  );
  const [a, b] = [train.sampleShape, test.sampleShape];
  if (a[1] !== b[1] || a[2] !== b[2]) {
    throw new Error(
      `IDX file "${paths.testImages}": images are ${b[1]}×${
        b[2]
      } but the training images in "${paths.trainImages}" are ${a[1]}×${a[2]}`,
    );
  }
  return { train, test };
}
