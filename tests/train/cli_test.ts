import assert from "node:assert/strict";
import { humanReporter, parseFlags } from "../../train/cli.ts";

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-sys",
      new URL("../../train/cli.ts", import.meta.url).pathname,
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  });
  const out = await cmd.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("an unknown flag or a bad value is one line naming it, exit code 2", async () => {
  for (
    const [args, msg] of [
      [["--frobnicate"], /^error: unknown flag --frobnicate \(see --help\)$/m],
      [["--epoch", "2"], /^error: unknown flag --epoch; did you mean --epochs\? \(see --help\)$/m],
      [["--save", "m.safetensors"], /unknown flag --save; did you mean --save-model\?/],
      [["--epochs"], /^error: --epochs needs a value \(see --help\)$/m],
      [["--epochs", "zero"], /--epochs must be a whole number from 0 to 1000000, got "zero"/],
      [["--model", "resnet"], /--model must be one of lecture-cnn, mnist-net, poly, got "resnet"/],
      [["--lr=-1"], /--lr must be a decimal number above 0/],
      [["--lr", "-1"], /--lr must be a decimal number above 0 .*got "-1"/],
      [["--data", "cifar"], /--data must be mnist, synthetic or idx:DIR/],
      [["--optimizer", "lbfgs"], /--optimizer must be one of/],
    ] as const
  ) {
    const r = await cli(...args);
    assert.equal(r.code, 2, `${args.join(" ")}: exit code ${r.code}`);
    assert.match(r.stderr, msg);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /^error: .*\(see --help\)$/m);
  }
});

Deno.test("--help prints the usage and exits with 0", async () => {
  const r = await cli("--help");
  assert.equal(r.code, 0);
  assert.match(r.stdout, /--checkpoint PATH/);
});

Deno.test("--model poly --json ends with a done object carrying the coefficients", async () => {
  const r = await cli("--model", "poly", "--json", "--epochs", "1500");
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  const done = lines.at(-1);
  assert.equal(done.event, "done");
  assert.equal(done.coefficients.length, 3);
  assert.deepEqual(done.true_coefficients, [0.5, -2, 3]);
  done.coefficients.forEach((c: number, i: number) =>
    assert.ok(Math.abs(c - done.true_coefficients[i]) < 1e-2)
  );
});

Deno.test("flags parse into train() options", () => {
  const { options, json } = parseFlags([
    "--model",
    "mnist-net",
    "--batch",
    "16",
    "--workers",
    String(Math.min(2, navigator.hardwareConcurrency)),
    "--json",
    "--data",
    "idx:/tmp/x",
  ]);
  assert.deepEqual(options, {
    model: "mnist-net",
    batch: 16,
    workers: Math.min(2, navigator.hardwareConcurrency),
    data: "idx:/tmp/x",
  });
  assert.equal(json, true);
});

Deno.test("--no-fuse turns the fusion pass off; it is on unless asked", () => {
  assert.equal(parseFlags(["--no-fuse"]).options.fuse, false);
  assert.equal(parseFlags([]).options.fuse, undefined);
});

Deno.test("--no-winograd keeps 3×3 convolutions on im2col + GEMM; Winograd is on unless asked", () => {
  assert.equal(parseFlags(["--no-winograd"]).options.winograd, false);
  assert.equal(parseFlags([]).options.winograd, undefined);
});

Deno.test("Ctrl-C writes the checkpoint, exits with 130, and the run resumes from it", async () => {
  const dir = await Deno.makeTempDir();
  const ckpt = `${dir}/run.safetensors`;
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-sys",
        new URL("../../train/cli.ts", import.meta.url).pathname,
        "--channels",
        "4",
        "--workers",
        "1",
        "--json",
        "--checkpoint",
        ckpt,
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const lines: string[] = [];
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    // interrupt once training is under way
    while (!lines.some((l) => l.includes('"event":"step"'))) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      const parts = buf.split("\n");
      buf = parts.pop()!;
      lines.push(...parts);
    }
    child.kill("SIGINT");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
    }
    lines.push(...buf.split("\n").filter(Boolean));
    const status = await child.status;
    await child.stderr.cancel();
    assert.equal(status.code, 130, lines.join("\n"));
    const events = lines.map((l) => JSON.parse(l));
    const stop = events.find((e) => e.event === "interrupted");
    assert.ok(stop, "an interrupted event");
    assert.equal(stop.checkpoint, ckpt);
    const saved = events.find((e) => e.event === "checkpoint" && e.reason === "interrupted");
    assert.equal(saved.step, stop.step);
    // channels 4: 4·9 + 4 + 10·676 + 10 = 6810 float32 parameters at least
    assert.ok((await Deno.stat(ckpt)).size > 6810 * 4);
    // the checkpoint knows where it stopped
    const { readSafetensors } = await import("../../train/safetensors.ts");
    const { metadata } = await readSafetensors(ckpt);
    assert.equal(Number(metadata.step), stop.step);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--weight-decay, --nesterov, --schedule and --clip-grad-norm reach train() or name the bad value", () => {
  const { options } = parseFlags([
    "--optimizer",
    "momentum",
    "--weight-decay",
    "5e-4",
    "--nesterov",
    "--schedule",
    "warmup:100:0,cosine",
    "--clip-grad-norm",
    "1.5",
  ]);
  assert.equal(options.weightDecay, 5e-4);
  assert.equal(options.nesterov, true);
  assert.equal(options.schedule, "warmup:100:0,cosine");
  assert.equal(options.clipGradNorm, 1.5);
  for (
    const [args, msg] of [
      [["--weight-decay", "-1"], /--weight-decay. argument is ambiguous|--weight-decay must be/],
      [["--weight-decay", "x"], /--weight-decay must be a decimal number from 0 to 1e6, got "x"/],
      [["--clip-grad-norm", "0"], /--clip-grad-norm must be a decimal number above 0/],
      [["--nesterov", "--optimizer", "adam"], /--nesterov needs --optimizer momentum, not adam/],
      [["--schedule", "linear:5"], /--schedule "linear:5": unknown schedule "linear"/],
    ] as const
  ) {
    assert.throws(() => parseFlags([...args]), msg, args.join(" "));
  }
});

Deno.test("--init FILE --epochs 0 evaluates the given parameters; --save-model writes them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { lectureCnnModel } = await import("../../train/models.ts");
    const { loadModel } = await import("../../train/model.ts");
    const { encodeSafetensors } = await import("../../train/safetensors.ts");
    const m = lectureCnnModel({ channels: 2, seed: 9 });
    const tensors = Object.fromEntries(
      m.paramShapes().map(([k, shape]) => [k, { shape, data: m.params.get(k)! }]),
    );
    // a PyTorch-style file: real shapes, no metadata
    await Deno.writeFile(`${dir}/init.safetensors`, encodeSafetensors(tensors));
    const r = await cli(
      "--channels",
      "2",
      "--epochs",
      "0",
      "--workers",
      "1",
      "--init",
      `${dir}/init.safetensors`,
      "--save-model",
      `${dir}/out.safetensors`,
      "--json",
    );
    assert.equal(r.code, 0, r.stderr);
    const done = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    assert.equal(done.steps, 0);
    const saved = await loadModel(`${dir}/out.safetensors`);
    for (const [k, v] of m.params) assert.deepEqual(saved.params.get(k), v, k);
    const bad = await cli(
      "--channels",
      "3",
      "--epochs",
      "0",
      "--workers",
      "1",
      "--init",
      `${dir}/init.safetensors`,
    );
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      /"conv1\.weight" has shape \[2,1,3,3\] but the model needs \[3,1,3,3\]/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("after a resume the summary line says how many steps this run took", () => {
  const lines: string[] = [];
  const report = humanReporter((s) => void lines.push(s), false);
  const start = {
    event: "start",
    model: "lecture-cnn",
    data: "mnist",
    train_samples: 8000,
    test_samples: 2000,
    params: 1,
    workers: 1,
    steps_per_epoch: 250,
    epochs: 2,
    batch: 32,
    optimizer: "momentum",
    lr: 0.05,
  } as const;
  const done = {
    event: "done",
    model: "lecture-cnn",
    epochs: 2,
    steps: 500,
    seconds: 1.5,
    samples_per_sec: 5333,
    test_accuracy: 0.96,
    test_loss: 0.1,
    tested_at_step: 500,
    train_loss: 0.1,
    interrupted: false,
  } as const;
  report({ ...start, resumed_from_step: 250 });
  // the settings the run uses, given or defaults, are on the first line
  assert.match(lines[0]!, /resumed at step 250; 2 epoch\(s\) of batch 32, momentum at lr 0\.05\n$/);
  report(done);
  assert.match(
    lines.at(-1)!,
    /^500 steps \(250 after the resume\) in 1\.5 s, 5333 training samples\/s\n$/,
  );
  lines.length = 0;
  report({ ...start, resumed_from_step: 0 });
  report(done);
  assert.match(lines.at(-1)!, /^500 steps in 1\.5 s/);
  assert.equal(lines.at(-2), "test accuracy 96.00%, test loss 0.1000\n");
  // after a Ctrl-C in epoch 3 the figures are epoch 2's: said so
  lines.length = 0;
  report({ ...done, steps: 697, interrupted: true, confusion: [[1, 0], [0, 1]] });
  assert.equal(
    lines[0],
    "test accuracy 96.00%, test loss 0.1000 (measured at step 500, the last evaluation, not at step 697)\n",
  );
  assert.match(lines[1]!, /^confusion matrix at step 500 \(rows/);
});
