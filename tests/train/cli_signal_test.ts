// Ctrl-C (SIGINT) and SIGTERM sent to a real child `train/cli.ts` at a random
// step: the run stops before the epoch ends, exits 130 / 143, writes the
// checkpoint when asked, and resuming from it ends bit for bit where an
// uninterrupted run ends.
import assert from "node:assert/strict";
import { readSafetensors } from "../../train/safetensors.ts";
import { cli, CliChild, tensorsOf, writeDigits } from "./_cli.ts";

// one directory of noise digits per training-set size, removed by the last test
const dataDirs = new Map<number, string>();
async function data(train: number): Promise<string> {
  let dir = dataDirs.get(train);
  if (!dir) {
    dir = await Deno.makeTempDir({ prefix: "denograd_sig_" });
    await writeDigits(dir, train, 64);
    dataDirs.set(train, dir);
  }
  return dir;
}

// a random step, printed in failure messages so a failing draw can be replayed
const seed = Number(Deno.env.get("SIGNAL_TEST_SEED") ?? Date.now() % 100000);
let state = seed;
function random(): number {
  state = (state * 1103515245 + 12345) % 2147483648;
  return state / 2147483648;
}

interface Mode {
  name: string;
  flags: string[];
  train: number; // training samples
  steps: number; // steps in the one epoch
  signal: "SIGINT" | "SIGTERM";
}

const MODES: Mode[] = [
  {
    name: "lecture-cnn, 1 thread",
    flags: ["--channels", "4", "--batch", "4", "--workers", "1"],
    train: 2048,
    steps: 512,
    signal: "SIGINT",
  },
  {
    name: "lecture-cnn, 2 threads",
    flags: ["--channels", "4", "--batch", "4", "--workers", "2"],
    train: 2048,
    steps: 512,
    signal: "SIGTERM",
  },
  {
    name: "mnist-net, 1 thread",
    flags: ["--model", "mnist-net", "--batch", "16", "--workers", "1"],
    train: 256,
    steps: 16,
    signal: "SIGINT",
  },
  {
    name: "mnist-net, 2 threads",
    flags: ["--model", "mnist-net", "--batch", "16", "--workers", "2"],
    train: 256,
    steps: 16,
    signal: "SIGINT",
  },
];

/** Starts a run, signals it once a random step in the first half of the epoch is passed. */
async function interrupt(mode: Mode, extra: string[]): Promise<{
  code: number;
  stderr: string;
  events: Record<string, any>[];
  signalledAfter: number;
}> {
  const dir = await data(mode.train);
  const child = new CliChild([...mode.flags, "--data", `idx:${dir}`, "--epochs", "1", ...extra]);
  // --json prints every 10th step; wait for one, then a random 0–20 ms more
  const k = 10 * (1 + Math.floor(random() * (mode.steps / 20)));
  const seen = await child.until((e) => e.event === "step" && e.global_step >= k);
  assert.ok(seen, `seed ${seed}: the run ended before step ${k}`);
  await new Promise((r) => setTimeout(r, random() * 20));
  child.kill(mode.signal);
  const { code, stderr } = await child.finish();
  return { code, stderr, events: child.events, signalledAfter: k };
}

for (const mode of MODES) {
  Deno.test(`${mode.signal} at a random step (${mode.name}, --checkpoint): exit ${mode.signal === "SIGINT" ? 130 : 143}, checkpoint written, exact resume`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const ck = `${dir}/ck.st`, ref = `${dir}/ref.st`;
      const r = await interrupt(mode, ["--checkpoint", ck]);
      const msg = `seed ${seed}, signalled after step ${r.signalledAfter}: ${r.stderr}`;
      assert.equal(r.code, mode.signal === "SIGINT" ? 130 : 143, msg);
      const stop = r.events.find((e) => e.event === "interrupted");
      assert.ok(stop, msg);
      // stopped during the epoch, not at its end (the old loop only noticed at the end)
      assert.ok(
        stop.step >= r.signalledAfter && stop.step < mode.steps,
        `${msg}: stopped at ${stop.step}`,
      );
      assert.equal(stop.checkpoint, ck);
      const { metadata } = await readSafetensors(ck);
      assert.equal(Number(metadata.step), stop.step, msg);
      assert.equal(r.events.at(-1)!.event, "done");
      assert.equal(r.events.at(-1)!.interrupted, true);

      const flags = [...mode.flags, "--data", `idx:${await data(mode.train)}`, "--epochs", "1"];
      const resumed = await cli([...flags, "--resume", ck, "--checkpoint", ck]);
      assert.equal(resumed.code, 0, resumed.stderr);
      const whole = await cli([...flags, "--checkpoint", ref]);
      assert.equal(whole.code, 0, whole.stderr);
      const [a, b] = [await tensorsOf(ck), await tensorsOf(ref)];
      assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
      for (const [name, v] of b) assert.deepEqual(a.get(name), v, `${msg}: tensor ${name} differs`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

for (
  const mode of [MODES[0]!, { ...MODES[1]!, signal: "SIGINT" as const }, {
    ...MODES[2]!,
    signal: "SIGTERM" as const,
  }]
) {
  Deno.test(`${mode.signal} at a random step (${mode.name}, no checkpoint) stops within the epoch`, async () => {
    const r = await interrupt(mode, []);
    const msg = `seed ${seed}, signalled after step ${r.signalledAfter}: ${r.stderr}`;
    assert.equal(r.code, mode.signal === "SIGINT" ? 130 : 143, msg);
    const stop = r.events.find((e) => e.event === "interrupted");
    assert.ok(stop && stop.step < mode.steps, msg);
    assert.equal(stop.checkpoint, null);
  });
}

Deno.test("SIGINT stops --model poly within its run, exit 130", async () => {
  const child = new CliChild(["--model", "poly", "--epochs", "1000000"]);
  const k = 100 * (1 + Math.floor(random() * 5));
  assert.ok(await child.until((e) => e.event === "poly" && e.epoch > k));
  child.kill("SIGINT");
  const { code, stderr } = await child.finish();
  assert.equal(code, 130, stderr);
  const done = child.events.at(-1)!;
  assert.equal(done.event, "done");
  assert.equal(done.interrupted, true);
  assert.ok(done.steps < 1000000);
});

Deno.test("a second SIGINT exits at once with 130 and leaves a readable checkpoint or none", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ck = `${dir}/ck.st`;
    // mnist-net: its step and its 1.2M-parameter checkpoint leave time for a second signal
    const child = new CliChild([
      ...MODES[2]!.flags,
      "--data",
      `idx:${await data(MODES[2]!.train)}`,
      "--epochs",
      "1000",
      "--checkpoint",
      ck,
    ], { stderr: true });
    assert.ok(await child.until((e) => e.event === "step" && e.global_step >= 10));
    child.kill("SIGINT");
    // the first signal is acknowledged on stderr; then the second one
    assert.ok(await child.untilStderr(/SIGINT: stopping after this step/));
    child.kill("SIGINT");
    const { code, stderr } = await child.finish();
    assert.equal(code, 130, stderr);
    assert.match(stderr, /SIGINT again: exiting at once/);
    // it did not wait for the end of the run
    assert.equal(child.events.some((e) => e.event === "done"), false);
    const written = await Deno.stat(ck).then(() => true, () => false);
    if (written) await readSafetensors(ck);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "signal tests: remove the data directory",
  fn: async () => {
    for (const dir of dataDirs.values()) await Deno.remove(dir, { recursive: true });
  },
});
