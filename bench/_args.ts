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
 * printing the options for `--help`, 2 with a message for a bad flag.
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
): ReturnType<typeof parseArgs<{ options: O; strict: true; args: string[] }>>["values"] {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(`${name} options:`);
    for (const [flag, o] of Object.entries(options)) {
      const def = "default" in o && o.default !== undefined ? ` (default ${o.default})` : "";
      console.log(`  --${flag}${o.type === "string" ? " VALUE" : ""}${def}`);
    }
    Deno.exit(0);
  }
  try {
    return parseArgs({ args, options, strict: true }).values;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    console.error(`error: ${name}: ${msg.split("\n")[0]} (see --help)`);
    Deno.exit(2);
  }
}
