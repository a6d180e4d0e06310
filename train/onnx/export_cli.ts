/**
 * `deno task export --model-file FILE [--out PATH] [--overwrite]`: writes a
 * saved model (a `--save-model` safetensors file, or an ONNX file) as ONNX
 * for ONNX Runtime and other tools.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { flagError } from "../flag_errors.ts";
import { loadModel } from "../model.ts";
import { stdoutLines } from "../text_out.ts";
import { toOnnx } from "./to_onnx.ts";

const USAGE = `Usage: deno task export --model-file FILE [--out PATH] [--overwrite]

Writes a model as ONNX (opset 17, or 20 with gelu; batch axis "N"; the
parameters as initializers under their names; dropout removed, batch norm
with its running statistics).

  --model-file FILE  a model saved by train --save-model (or an .onnx file)
  --out PATH         where to write, a name ending in .onnx (default: FILE with
                     the extension .onnx)
  --overwrite        replace PATH if it exists
  -h, --help         this text
`;

/** What the flags ask for. */
export interface ExportArgs {
  /** The model file to read. */
  modelFile: string;
  /** The ONNX file to write. */
  out: string;
  /** Replace `out` if it exists. */
  overwrite: boolean;
}

/**
 * Parses the export flags (`out` defaults to the model file with the
 * extension `.onnx`); throws a one-line error naming a bad or missing flag,
 * or returns null for `--help`.
 *
 * @example
 * ```ts
 * import { parseExportArgs } from "./export_cli.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(parseExportArgs(["--model-file", "cnn.safetensors"]), {
 *   modelFile: "cnn.safetensors",
 *   out: "cnn.onnx",
 *   overwrite: false,
 * });
 * assert.throws(() => parseExportArgs(["--model-file", "a", "--outt", "b.onnx"]), /did you mean --out\?/);
 * ```
 */
export function parseExportArgs(args: string[]): ExportArgs | null {
  const options = {
    "model-file": { type: "string" },
    out: { type: "string" },
    overwrite: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  } as const;
  let parsed;
  try {
    parsed = parseArgs({ args, strict: true, allowPositionals: true, options });
  } catch (e) {
    throw new Error(flagError(e, Object.keys(options)));
  }
  const { values, positionals } = parsed;
  if (values.help) return null;
  if (positionals.length) throw new Error(`unexpected argument "${positionals[0]}"`);
  const modelFile = values["model-file"];
  if (!modelFile) throw new Error("--model-file FILE is required");
  const out = values.out ?? modelFile.replace(/\.[^./]*$/, "") + ".onnx";
  if (out === modelFile) throw new Error(`--out "${out}" is the model file itself`);
  if (!/\.onnx$/i.test(out)) {
    throw new Error(
      `--out "${out}" must end in .onnx (loadModel reads other names as safetensors)`,
    );
  }
  return { modelFile, out, overwrite: values.overwrite ?? false };
}

/** Reads the model, converts it and writes the ONNX file; returns the bytes written. */
export async function exportModel(a: ExportArgs): Promise<number> {
  if (!a.overwrite) {
    try {
      await Deno.lstat(a.out);
      throw new Error(`--out "${a.out}" exists (pass --overwrite to replace it)`);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  const model = await loadModel(a.modelFile);
  const bytes = toOnnx(model);
  // write beside the target and rename, so an interrupted export leaves no half file
  const tmp = `${a.out}.tmp-${Deno.pid}`;
  try {
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, a.out);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`Cannot write "${a.out}": ${(e as Error).message}`);
  }
  return bytes.length;
}

if (import.meta.main) {
  let a: ExportArgs | null;
  try {
    a = parseExportArgs(Deno.args);
  } catch (e) {
    // one line, as deno task train and predict say it
    console.error(`export: ${(e as Error).message.split("\n")[0]} (see --help)`);
    Deno.exit(2);
  }
  if (!a) {
    stdoutLines()(USAGE);
    Deno.exit(0);
  }
  try {
    const n = await exportModel(a);
    stdoutLines()(`wrote ${a.out} (${n} bytes)`);
  } catch (e) {
    console.error(`export: ${(e as Error).message.split("\n")[0]}`);
    Deno.exit(1);
  }
}
