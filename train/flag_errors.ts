/**
 * One line for a command-line parsing error of `node:util`'s `parseArgs`,
 * shared by the `train`, `predict` and `export` commands. Its own messages
 * end in advice about positional arguments after `--` with unbalanced
 * quotes; a mistyped flag is better answered with the flag it resembles.
 *
 * @module
 */

// edits (insert, delete, substitute) from a to b
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        prev[j]! + 1,
        row[j - 1]! + 1,
        prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    prev = row;
  }
  return prev[b.length]!;
}

/**
 * The known flag `flag` was most likely meant as: the nearest within two
 * edits, else the only one it begins or is begun by (`--save` for
 * `--save-model`, `--output` for `--out`);
 * `undefined` when none is close.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { closestFlag } from "./flag_errors.ts";
 * const known = ["epochs", "batch", "save-model", "out"];
 * assert.equal(closestFlag("--epoch", known), "--epochs");
 * assert.equal(closestFlag("--save", known), "--save-model");
 * assert.equal(closestFlag("--output", known), "--out");
 * assert.equal(closestFlag("--frobnicate", known), undefined);
 * ```
 */
export function closestFlag(flag: string, known: readonly string[]): string | undefined {
  const name = flag.replace(/^--?/, "").replace(/=.*$/, "");
  let best: string | undefined, bestD = 3;
  for (const k of known) {
    const d = distance(name, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  if (best === undefined) {
    const starts = known.filter((k) =>
      Math.min(name.length, k.length) >= 3 && (k.startsWith(name) || name.startsWith(k))
    );
    if (starts.length === 1) best = starts[0];
  }
  return best === undefined ? undefined : `--${best}`;
}

/**
 * The message for a `parseArgs` error `e` given the `known` flag names
 * (without dashes): `unknown flag --epoch; did you mean --epochs?`,
 * `--epochs needs a value`; any other message's first line as it is.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseArgs } from "node:util";
 * import { flagError } from "./flag_errors.ts";
 * const options = { epochs: { type: "string" as const } };
 * const fail = (args: string[]) => {
 *   try {
 *     parseArgs({ args, options, strict: true });
 *   } catch (e) {
 *     return flagError(e, Object.keys(options));
 *   }
 * };
 * assert.equal(fail(["--epoch", "2"]), "unknown flag --epoch; did you mean --epochs?");
 * assert.equal(fail(["--epochs"]), "--epochs needs a value");
 * ```
 */
export function flagError(e: unknown, known: readonly string[]): string {
  const message = e instanceof Error ? e.message : String(e);
  const unknown = /^Unknown option '([^']+)'/.exec(message);
  if (unknown) {
    const flag = unknown[1]!;
    const near = closestFlag(flag, known);
    return `unknown flag ${flag}${near ? `; did you mean ${near}?` : ""}`;
  }
  const missing = /^Option '(?:-\w, )?(--[\w-]+) <value>' argument missing/.exec(message);
  if (missing) return `${missing[1]} needs a value`;
  return message.split("\n")[0]!;
}
