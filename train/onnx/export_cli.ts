/**
 * `deno task export --model-file FILE [--out PATH] [--overwrite]`: writes a
 * saved model (a `--save-model` safetensors file, or an ONNX file) as ONNX
 * for ONNX Runtime and other tools.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { checkWritable, writeBytesAtomic } from "../files.ts";
import { flagError } from "../flag_errors.ts";
import { loadModel } from "../model.ts";
import { stdoutLines } from "../text_out.ts";
import { EXPORTABLE_OPS, toOnnx } from "./to_onnx.ts";

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
  const bad = outProblem(modelFile, out);
  if (bad) throw new Error(`--out ${bad}`);
  return { modelFile, out, overwrite: values.overwrite ?? false };
}

// what is wrong with writing the ONNX file `out`, for the caller to prefix with its name for it
function outProblem(modelFile: string, out: string): string | undefined {
  if (out === modelFile) return `"${out}" is the model file itself`;
  // loadModel reads other names as safetensors
  if (!/\.onnx$/i.test(out)) {
    return `"${out}" must end in .onnx (loadModel reads other names as safetensors)`;
  }
}

/**
 * Reads the model, converts it and writes the ONNX file (whole or not at
 * all); returns the bytes written. `out` is checked before the model is read:
 * a name that does not end in .onnx, an existing file without `overwrite`, a
 * missing directory. Errors begin `exportModel:` and name the file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { exportModel } from "./export_cli.ts";
 * import { loadModel, mnistNetModel } from "../../mod.ts";
 * const dir = await Deno.makeTempDir();
 * const net = mnistNetModel({ seed: 1 });
 * await net.save(`${dir}/net.safetensors`);
 * const args = { modelFile: `${dir}/net.safetensors`, out: `${dir}/net.onnx`, overwrite: false };
 * const bytes = await exportModel(args);
 * assert.equal((await Deno.stat(`${dir}/net.onnx`)).size, bytes);
 * // the ONNX file predicts what the model does
 * const x = new Float32Array(784).fill(0.5);
 * const back = await loadModel(`${dir}/net.onnx`);
 * assert.deepEqual([...back.predict(x).data].map((v) => v.toFixed(4)), [...net.predict(x).data].map((v) => v.toFixed(4)));
 * await assert.rejects(exportModel(args), /^Error: exportModel: out ".*net\.onnx" already exists/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function exportModel(a: ExportArgs): Promise<number> {
  const fail = (why: string) => new Error(`exportModel: ${why}`);
  const bad = outProblem(a.modelFile, a.out);
  if (bad) throw fail(`out ${bad}`);
  if (!a.overwrite && await Deno.lstat(a.out).then(() => true, () => false)) {
    throw fail(`out "${a.out}" already exists; pass overwrite: true (--overwrite) to replace it`);
  }
  // a missing directory failed only after the model was read and converted
  try {
    await checkWritable(a.out);
  } catch (e) {
    throw fail(`out ${(e as Error).message}`);
  }
  let bytes: Uint8Array;
  try {
    bytes = toOnnx(await loadModel(a.modelFile));
  } catch (e) {
    // loadModel's and toOnnx's messages name the file or the op; loadModel's advice for an op
    // it does not know (import its module) cannot help here: no custom op has an ONNX form
    const msg = (e as Error).message;
    const op = /uses op "([^"]+)", which is not registered/.exec(msg)?.[1];
    if (op) {
      throw fail(
        `"${a.modelFile}" uses op "${op}", which is not built into denograd (a custom op, registerOp): ONNX has no form for it, so the model cannot be exported; only models of built-in ops can (${
          EXPORTABLE_OPS.join(", ")
        })`,
      );
    }
    throw fail(msg);
  }
  try {
    await writeBytesAtomic(a.out, bytes);
  } catch (e) {
    throw fail(`cannot write out "${a.out}": ${(e as Error).message}`);
  }
  return bytes.length;
}

if (import.meta.main) {
  let a: ExportArgs | null;
  try {
    a = parseExportArgs(Deno.args);
  } catch (e) {
    // one line, as deno task train and predict say it
    console.error(`error: ${(e as Error).message.split("\n")[0]} (see --help)`);
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
    console.error(`error: ${(e as Error).message.split("\n")[0]}`);
    Deno.exit(1);
  }
}
