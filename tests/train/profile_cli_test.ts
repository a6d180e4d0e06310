import assert from "node:assert/strict";
import { Profiler, SPAN } from "../../train/parallel/trace.ts";

const CLI = new URL("../../train/profile_cli.ts", import.meta.url).pathname;

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", CLI, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: r.code, out: d.decode(r.stdout), err: d.decode(r.stderr) };
}

Deno.test("deno task profile prints ms per step and shares per op, biggest first", async () => {
  const names = {
    nodes: ["input x", "conv2d conv1", "relu_backward r"],
    backward: [false, false, true],
  };
  const p = new Profiler(1, names, false);
  for (let s = 0; s < 2; s++) {
    const t = 100 * s;
    p.main.span(SPAN.OP, 1, t, t + 3);
    p.main.span(SPAN.OP, 2, t + 3, t + 4);
    p.main.span(SPAN.STEP, s, t, t + 4);
  }
  const file = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(file, JSON.stringify(p.toChromeTrace()));
    const { code, out } = await cli(file);
    assert.equal(code, 0);
    const lines = out.trim().split("\n");
    assert.match(lines[0]!, /2 steps, 1 thread/);
    assert.match(lines[2]!, /^conv2d conv1\s+fwd\s+3\.000\s+75\.0%$/);
    assert.match(lines[3]!, /^relu_backward r\s+bwd\s+1\.000\s+25\.0%$/);
  } finally {
    await Deno.remove(file);
  }
  const missing = await cli("/nonexistent/trace.json");
  assert.equal(missing.code, 1);
  assert.match(missing.err, /cannot read trace "\/nonexistent\/trace\.json"/);
});
