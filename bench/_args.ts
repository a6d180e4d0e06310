/**
 * The flags of a bench script, read with `node:util` `parseArgs`: `--help`
 * lists them, and an unknown or malformed flag gives a one-line error
 * naming it (exit 2) instead of a stack trace.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * `Deno.args` parsed against `options` for the script `name`; exits 0 after
 * printing the options for `--help` (with each flag's line of `help`, when
 * given), 2 with a message for a bad flag.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { benchArgs } from "./_args.ts";
 * const v = benchArgs("example", { rounds: { type: "string", default: "3" } }, []);
 * assert.equal(v.rounds, "3");
 * ```
 */
export function benchArgs<O extends Options>(
  name: string,
  options: O,
  args: string[] = Deno.args,
  help: Partial<Record<keyof O, string>> = {},
): ReturnType<typeof parseArgs<{ options: O; strict: true; args: string[] }>>["values"] {
  if (args.includes("--help") || args.includes("-h")) console.log(helpText(name, options, help));
  if (args.includes("--help") || args.includes("-h")) Deno.exit(0);
  try {
    return parseArgs({ args, options, strict: true }).values;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    console.error(`error: ${name}: ${msg.split("\n")[0]} (see --help)`);
    Deno.exit(2);
  }
}

/**
 * The `--help` text of a bench script: each flag with `VALUE` for a string,
 * its default, and its line of `help` below it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { helpText } from "./_args.ts";
 * const text = helpText("x", { reps: { type: "string", default: "3" } }, { reps: "repetitions" });
 * assert.equal(text, "x options:\n  --reps VALUE (default 3)\n      repetitions");
 * ```
 */
export function helpText<O extends Options>(
  name: string,
  options: O,
  help: Partial<Record<keyof O, string>> = {},
): string {
  const lines = [`${name} options:`];
  for (const [flag, o] of Object.entries(options)) {
    const def = "default" in o && o.default !== undefined ? ` (default ${o.default})` : "";
    lines.push(`  --${flag}${o.type === "string" ? " VALUE" : ""}${def}`);
    const h = help[flag as keyof O];
    if (h) lines.push(`      ${h}`);
  }
  return lines.join("\n");
}

/**
 * The positional whole numbers of a bench script (`winograd_bench.ts 64 10`):
 * `--help` prints `usage` and exits 0; a value that is not a whole number
 * of at least 1 (a flag, say) gives a one-line error naming it, exit 2;
 * `defaults` fill the ones not given.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { wholeArgs } from "./_args.ts";
 * assert.deepEqual(wholeArgs("usage: x.ts [N] [reps]", ["N", "reps"], [32, 20], ["64"]), [64, 20]);
 * ```
 */
export function wholeArgs(
  usage: string,
  names: string[],
  defaults: number[],
  args: string[] = Deno.args,
): number[] {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(usage);
    Deno.exit(0);
  }
  if (args.length > names.length) {
    console.error(`error: unexpected argument "${args[names.length]}"; ${usage}`);
    Deno.exit(2);
  }
  return names.map((name, i) => {
    const v = args[i];
    if (v === undefined) return defaults[i]!;
    if (!/^[0-9]+$/.test(v) || Number(v) < 1) {
      console.error(`error: ${name} must be a whole number of at least 1, got "${v}"; ${usage}`);
      Deno.exit(2);
    }
    return Number(v);
  });
}
