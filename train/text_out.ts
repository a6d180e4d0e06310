/**
 * Text output for the command-line tools that survives its reader going
 * away: `deno task train | head` closes the pipe after ten lines, and the
 * next write fails with `BrokenPipe`. A tool stops quietly then, as
 * `git log | head` does, instead of dying with a stack trace.
 *
 * @module
 */

/** Something text can be written to: `Deno.stdout`, `Deno.stderr`, a file. */
export interface SyncWriter {
  /** Writes some of `p`, returning how many bytes were written. */
  writeSync(p: Uint8Array): number;
}

/**
 * Writes text to `to`, or nothing: it returns `false`, once the reader has
 * closed the pipe and from then on, instead of throwing. `onClosed` runs
 * once, at the first write that finds the pipe closed. Every byte is
 * written (`writeSync` may write part of a buffer). Other errors are thrown.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { textWriter } from "./text_out.ts";
 * let calls = 0, closed = 0;
 * const pipe = {
 *   writeSync(p: Uint8Array): number {
 *     if (++calls > 1) throw new Deno.errors.BrokenPipe("Broken pipe (os error 32)");
 *     return p.length;
 *   },
 * };
 * const write = textWriter(pipe, () => closed++);
 * assert.equal(write("first line\n"), true);
 * assert.equal(write("second line\n"), false); // the reader has gone
 * assert.equal(write("third line\n"), false); // not tried again
 * assert.deepEqual([calls, closed], [2, 1]);
 * ```
 */
export function textWriter(to: SyncWriter, onClosed?: () => void): (s: string) => boolean {
  const enc = new TextEncoder();
  let closed = false;
  return (s) => {
    if (closed) return false;
    let bytes = enc.encode(s);
    try {
      while (bytes.length) bytes = bytes.subarray(to.writeSync(bytes));
    } catch (e) {
      if (!(e instanceof Deno.errors.BrokenPipe)) throw e;
      closed = true;
      onClosed?.();
      return false;
    }
    return true;
  };
}

/**
 * A line printer for a tool's standard output that exits the process with
 * code 0 when the reader has gone (`| head`): nothing more is worth
 * computing for output no one reads.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stdoutLines } from "./text_out.ts";
 * const print = stdoutLines();
 * assert.equal(print("one line of a report"), undefined); // written with its newline
 * ```
 */
export function stdoutLines(): (line: string) => void {
  const write = textWriter(Deno.stdout, () => Deno.exit(0));
  return (line) => void write(line + "\n");
}
