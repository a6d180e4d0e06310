/**
 * Checks of the files a training run will write, done before it starts: an
 * error after an hour of training because a directory is missing, or a
 * checkpoint replaced by an SVG, is what this prevents.
 *
 * @module
 */
import { checkWritable } from "./files.ts";

/** Where a run reads and writes, as given on the command line. */
export interface RunPaths {
  /** `--checkpoint`: written each epoch, at the end and on interruption. */
  checkpoint?: string;
  /** `--plot`: an SVG written at the end. */
  plot?: string;
  /** `--resume`: read at the start. */
  resume?: string;
  /** `--save-model`: the trained model, written at the end. */
  saveModel?: string;
  /** `--profile`: a Chrome trace written at the end. */
  profile?: string;
  /** `--init`: initial parameters, read at the start. */
  init?: string;
  /** Files the data is read from (e.g. the four IDX files). */
  inputs?: string[];
  /** `--overwrite`: an existing checkpoint this run does not resume from may be replaced. */
  overwrite?: boolean;
  /**
   * How messages name the paths: `"flags"` (default) as the command line
   * does (`--checkpoint`, "add --overwrite"), `"options"` as `train()` takes
   * them (`checkpoint`, "pass overwrite: true").
   */
  names?: "flags" | "options";
}

const FLAG_OF = {
  checkpoint: "--checkpoint",
  plot: "--plot",
  saveModel: "--save-model",
  profile: "--profile",
  resume: "--resume",
  init: "--init",
} as const;

/**
 * A path problem the user can fix; `usage` marks a contradiction among the flags (exit 2).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkRunPaths, PathError } from "./outputs.ts";
 * await assert.rejects(checkRunPaths({ resume: "/nonexistent/ck.st" }), (e: Error) => {
 *   assert.ok(e instanceof PathError && e.name === "PathError");
 *   assert.equal(e.usage, false); // the file system, not the flags: exit 1
 *   assert.equal(e.message, '--resume "/nonexistent/ck.st": file not found');
 *   return true;
 * });
 * ```
 */
export class PathError extends Error {
  /** Always `"PathError"`. */
  override name = "PathError";
  /** Whether the flags contradict each other (a usage error) rather than the file system. */
  readonly usage: boolean;
  /** A path problem; `usage` when the flags themselves clash. */
  constructor(message: string, usage = false) {
    super(message);
    this.usage = usage;
  }
}

function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** The absolute path `path` names (symbolic links resolved), existing or not. */
async function identity(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch {
    try {
      return `${await Deno.realPath(dirname(path))}/${basename(path)}`;
    } catch {
      return path;
    }
  }
}

// A checkpoint write takes seconds at most, so a temporary untouched for this
// long was left by a process that died between writing and renaming.
const STALE_MS = 60_000;

/**
 * Whether `file`, a temporary written by process `pid`, was abandoned: that
 * process is gone (asked of /proc where Deno may read it, which takes
 * --allow-all), or else the file has not been written to for a minute.
 */
async function abandoned(file: string, pid: number): Promise<boolean> {
  if (pid === Deno.pid) return false;
  try {
    if (await statOrNull("/proc/self")) return (await statOrNull(`/proc/${pid}`)) === null;
  } catch {
    // Deno allows /proc only with --allow-all: judge by the file's age instead
  }
  const mtime = (await statOrNull(file))?.mtime;
  return mtime ? Date.now() - mtime.getTime() > STALE_MS : false;
}

/**
 * Removes `${path}.tmp-PID` files that a checkpoint write of a process that
 * no longer runs left behind (it was killed between writing and renaming):
 * those of a process that is gone, or untouched for a minute. Returns the
 * paths removed.
 *
 * @example
 * ```ts
 * import { removeStaleTemporaries } from "./outputs.ts";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * // no process has pid 2^22 + 1 (Linux pids stay below 2^22); the file is an hour old
 * await Deno.writeTextFile(`${dir}/ck.st.tmp-4194305`, "partial");
 * const hourAgo = new Date(Date.now() - 3_600_000);
 * await Deno.utime(`${dir}/ck.st.tmp-4194305`, hourAgo, hourAgo);
 * const removed = await removeStaleTemporaries(`${dir}/ck.st`);
 * assert.deepEqual(removed, [`${dir}/ck.st.tmp-4194305`]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function removeStaleTemporaries(path: string): Promise<string[]> {
  const dir = dirname(path);
  const prefix = `${basename(path)}.tmp-`;
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch {
    return removed;
  }
  for (const e of entries) {
    if (!e.isFile || !e.name.startsWith(prefix)) continue;
    const pid = e.name.slice(prefix.length);
    const stale = `${dir}/${e.name}`;
    if (!/^[0-9]+$/.test(pid) || !(await abandoned(stale, Number(pid)))) continue;
    try {
      await Deno.remove(stale);
      removed.push(stale);
    } catch {
      // gone already, or not ours to remove: the next write uses another name anyway
    }
  }
  return removed;
}

/** Checks that `path` can be written as the output `flag` (see `checkWritable` in files.ts). */
async function checkOutput(flag: string, path: string): Promise<void> {
  try {
    await checkWritable(path);
  } catch (e) {
    throw new PathError(`${flag} ${(e as Error).message}`);
  }
}

/**
 * Checks every path of a run before it starts: outputs that are the same
 * file as each other or as an input (a usage error); output directories
 * that are missing; outputs that are directories or not writable; a resume
 * file that is missing; an existing checkpoint this run does not resume from
 * (refused unless `overwrite`); an existing plot path that holds something
 * other than an SVG. Also removes stale temporaries of the checkpoint.
 * Returns the stale temporaries removed.
 *
 * @example
 * ```ts
 * import { checkRunPaths, PathError } from "./outputs.ts";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * await assert.rejects(
 *   checkRunPaths({ checkpoint: `${dir}/ck.st`, plot: `${dir}/ck.st` }),
 *   (e: PathError) => e.usage && /same file/.test(e.message),
 * );
 * await checkRunPaths({ checkpoint: `${dir}/ck.st`, plot: `${dir}/loss.svg` });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function checkRunPaths(paths: RunPaths): Promise<string[]> {
  const options = paths.names === "options";
  const name = (k: keyof typeof FLAG_OF): string => options ? k : FLAG_OF[k];
  const named: [string, string][] = [];
  for (const k of ["checkpoint", "plot", "saveModel", "profile", "resume", "init"] as const) {
    const p = paths[k];
    if (p !== undefined) named.push([name(k), p]);
  }
  for (const p of paths.inputs ?? []) named.push(["the input", p]);
  const outputs = (["checkpoint", "plot", "saveModel", "profile"] as const).map(name);
  const ids = await Promise.all(named.map(([, p]) => identity(p)));
  for (let i = 0; i < named.length; i++) {
    for (let j = i + 1; j < named.length; j++) {
      if (ids[i] !== ids[j]) continue;
      const [a, pa] = named[i]!, [b, pb] = named[j]!;
      // continuing a checkpoint in place is what --resume X --checkpoint X means
      if (a === name("checkpoint") && b === name("resume")) continue;
      // only a clash with an output destroys anything
      if (!outputs.includes(a)) continue;
      throw new PathError(
        `${a} "${pa}" and ${b} "${pb}" are the same file; the run would overwrite one with the other`,
        true,
      );
    }
  }
  for (const [flag, p] of [[name("resume"), paths.resume], [name("init"), paths.init]] as const) {
    if (p === undefined) continue;
    const r = await statOrNull(p);
    if (!r) throw new PathError(`${flag} "${p}": file not found`);
    if (!r.isFile) throw new PathError(`${flag} "${p}": not a file`);
  }
  const removed: string[] = [];
  if (paths.checkpoint !== undefined) {
    const ck = paths.checkpoint;
    await checkOutput(name("checkpoint"), ck);
    const resumesIt = paths.resume !== undefined &&
      (await identity(paths.resume)) === (await identity(ck));
    if (!resumesIt && !paths.overwrite && (await statOrNull(ck))) {
      const how = options
        ? `pass overwrite: true to replace it, or resume: ${JSON.stringify(ck)} to continue it`
        : `add --overwrite to replace it, or --resume "${ck}" to continue it`;
      throw new PathError(
        `${name("checkpoint")} "${ck}" already exists and this run does not start from it; ${how}`,
      );
    }
    removed.push(...await removeStaleTemporaries(ck));
  }
  if (paths.saveModel !== undefined) {
    await checkOutput(name("saveModel"), paths.saveModel);
  }
  if (paths.profile !== undefined) await checkOutput(name("profile"), paths.profile);
  if (paths.plot !== undefined) {
    const plot = paths.plot;
    await checkOutput(name("plot"), plot);
    if (!paths.overwrite && (await statOrNull(plot))?.isFile) {
      const head = new Uint8Array(256);
      const f = await Deno.open(plot);
      const n = (await f.read(head)) ?? 0;
      f.close();
      const text = new TextDecoder().decode(head.subarray(0, n)).trimStart();
      if (n > 0 && !text.startsWith("<svg") && !text.startsWith("<?xml")) {
        throw new PathError(
          `${name("plot")} "${plot}" already exists and is not an SVG; ${
            options ? "pass overwrite: true" : "add --overwrite"
          } to replace it`,
        );
      }
    }
  }
  return removed;
}
