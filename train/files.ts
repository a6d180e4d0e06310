/**
 * File access for the loaders, checkpoints and plots: the only library
 * module that calls `Deno.*` file APIs. Its callers import it on demand
 * (`await import("./files.ts")`) inside the functions that take a path, so a
 * web page that imports `mod.ts` never loads it; `tests/web/deno_free_test.ts`
 * checks that.
 *
 * @module
 */

/**
 * Reads a whole file. A missing file rejects with the message `file not found`,
 * any other failure with the system's message; callers prefix the path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readBytes } from "./files.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeFile(path, new Uint8Array([1, 2]));
 * assert.deepEqual([...await readBytes(path)], [1, 2]);
 * await assert.rejects(readBytes(`${path}.missing`), /^Error: file not found$/);
 * await Deno.remove(path);
 * ```
 */
export async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error("file not found", { cause: e });
    throw e;
  }
}

/**
 * Whether `path` names a regular file: `false` when nothing is there, other
 * failures (no permission, say) reject.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isFile } from "./files.ts";
 * const dir = await Deno.makeTempDir();
 * assert.equal(await isFile(dir), false);
 * assert.equal(await isFile(`${dir}/nothing`), false);
 * await Deno.writeTextFile(`${dir}/a`, "a");
 * assert.equal(await isFile(`${dir}/a`), true);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Writes bytes so that readers never see a partial file: they go to
 * `${path}.tmp-<pid>`, are flushed to disk, and the temporary file is renamed
 * over `path`. On failure the temporary file is removed and the error rethrown.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeBytesAtomic } from "./files.ts";
 * const dir = await Deno.makeTempDir();
 * await writeBytesAtomic(`${dir}/x.bin`, new Uint8Array([7]));
 * assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["x.bin"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeBytesAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
    try {
      let written = 0;
      while (written < bytes.length) written += await file.write(bytes.subarray(written));
      // Flush before the rename, or a crash could leave the new name pointing at missing data.
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    // the rename's own words were "Directory not empty (os error 39): rename '..tmp-1' -> '.'"
    if ((await Deno.stat(path).catch(() => null))?.isDirectory) {
      throw new Error("it is a directory, not a file");
    }
    throw e;
  }
}

/**
 * Writes a text file (UTF-8), replacing it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeText } from "./files.ts";
 * const path = await Deno.makeTempFile({ suffix: ".svg" });
 * await writeText(path, "<svg/>");
 * assert.equal(await Deno.readTextFile(path), "<svg/>");
 * await Deno.remove(path);
 * ```
 */
export async function writeText(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(path, text);
}

/**
 * Checks that `path` can be written as an output before a run starts (an
 * error after an hour of training loses the hour): its directory exists, it
 * is not a directory, and a file there can be opened for writing (an existing
 * one is opened, else a probe file beside it is created and removed). Rejects
 * with `"PATH": <why>`, for the caller to prefix with the option's name.
 * Without read permission there it cannot look: it resolves when writing is
 * allowed (`--allow-write` alone: the write itself may still work) and
 * rejects when it is not.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkWritable } from "./files.ts";
 * const dir = await Deno.makeTempDir();
 * await checkWritable(`${dir}/out.svg`);
 * assert.deepEqual([...Deno.readDirSync(dir)], []); // the probe is gone
 * await assert.rejects(
 *   checkWritable(`${dir}/nope/out.svg`),
 *   { message: `"${dir}/nope/out.svg": the directory "${dir}/nope" does not exist` },
 * );
 * await assert.rejects(checkWritable(dir), /it is a directory, not a file/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function checkWritable(path: string): Promise<void> {
  const i = path.lastIndexOf("/");
  const dir = i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
  const stat = async (p: string) => {
    try {
      return await Deno.stat(p);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
  };
  let d: Deno.FileInfo | null;
  try {
    d = await stat(dir);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotCapable)) throw e;
    // no read permission to look; without write permission either, the write
    // at the end would fail after the whole run: say so now
    const write = await Deno.permissions.query({ name: "write", path: dir });
    if (write.state !== "granted") {
      throw new Error(`"${path}": no permission to write there (run with --allow-write)`);
    }
    return;
  }
  if (!d) throw new Error(`"${path}": the directory "${dir}" does not exist`);
  if (!d.isDirectory) throw new Error(`"${path}": "${dir}" is not a directory`);
  const f = await stat(path);
  if (f?.isDirectory) throw new Error(`"${path}": it is a directory, not a file`);
  try {
    if (f) (await Deno.open(path, { write: true })).close();
    else {
      const probe = `${path}.probe-${crypto.randomUUID()}`;
      (await Deno.open(probe, { write: true, createNew: true })).close();
      await Deno.remove(probe);
    }
  } catch (e) {
    throw new Error(`"${path}": cannot write there (${(e as Error).message})`);
  }
}
