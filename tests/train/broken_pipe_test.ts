// Every command-line tool whose standard output is closed by its reader
// (`deno task train | head`) stops quietly with exit code 0: no "Broken
// pipe" error, no stack trace. The reader here closes the pipe before the
// tool writes anything, so the tool's first write finds it closed.
import assert from "node:assert/strict";
import { defineModel, nn } from "../../mod.ts";
import { Profiler, SPAN } from "../../train/parallel/trace.ts";
import { writeDigits } from "./_cli.ts";
import { withTempDir } from "../_temp_dir.ts";

const FLAGS = ["--allow-read", "--allow-write", "--allow-env", "--allow-sys"];

async function closedStdout(
  script: string,
  args: string[],
): Promise<{ code: number; err: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...FLAGS, new URL(script, import.meta.url).pathname, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  await child.stdout.cancel(); // the reader goes away, as `head` does
  const err = await new Response(child.stderr).text();
  const { code } = await child.status;
  return { code, err };
}

function quiet(what: string, r: { code: number; err: string }): void {
  assert.doesNotMatch(r.err, /Broken pipe|BrokenPipe|^\s+at /m, `${what}: stderr ${r.err}`);
  assert.equal(r.code, 0, `${what}: exit code ${r.code}, stderr ${r.err}`);
}

Deno.test("deno task train stops quietly, exit 0, when its output is closed (human and --json)", async () => {
  await withTempDir(async (dir) => {
    await writeDigits(dir, 640, 64);
    const run = ["--data", `idx:${dir}`, "--epochs", "3", "--workers", "1", "--channels", "4"];
    for (const extra of [[], ["--json"]]) {
      const t0 = performance.now();
      quiet(
        `train ${extra.join(" ")}`,
        await closedStdout("../../train/cli.ts", [...run, ...extra]),
      );
      // stopped at a step boundary, not after three epochs (60 steps) plus evaluations
      assert.ok(performance.now() - t0 < 60_000);
    }
  });
});

Deno.test("deno task predict, export, profile and dot_cli stop quietly when their output is closed", async () => {
  await withTempDir(async (dir) => {
    await writeDigits(dir, 16, 64);
    const model = defineModel({ input: [1, 28, 28] }, (x) => nn.linear(nn.flatten(x), 10));
    const file = `${dir}/m.safetensors`;
    await model.save(file);
    quiet(
      "predict --data",
      await closedStdout("../../train/predict_cli.ts", [
        "--model-file",
        file,
        "--data",
        `idx:${dir}`,
      ]),
    );
    quiet(
      "export",
      await closedStdout("../../train/onnx/export_cli.ts", ["--model-file", file]),
    );
    const p = new Profiler(1, { nodes: ["conv2d c"], backward: [false] }, false);
    p.main.span(SPAN.OP, 0, 0, 3);
    p.main.span(SPAN.STEP, 0, 0, 4);
    await Deno.writeTextFile(`${dir}/p.json`, JSON.stringify(p.toChromeTrace()));
    quiet("profile", await closedStdout("../../train/profile_cli.ts", [`${dir}/p.json`]));
    quiet("dot_cli", await closedStdout("../../train/dot_cli.ts", ["--channels", "2"]));
  });
});
