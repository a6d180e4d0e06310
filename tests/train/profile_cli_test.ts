import assert from "node:assert/strict";
import { Profiler, SPAN, TraceRecorder } from "../../train/parallel/trace.ts";

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

/** The profile CLI's exit code and output lines for the trace of `p`, through a temporary file. */
async function profileOf(p: Profiler): Promise<{ code: number; out: string; lines: string[] }> {
  const file = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(file, JSON.stringify(p.toChromeTrace()));
    const { code, out } = await cli(file);
    return { code, out, lines: out.trim().split("\n") };
  } finally {
    await Deno.remove(file);
  }
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
  const { code, lines } = await profileOf(p);
  assert.equal(code, 0);
  assert.match(lines[0]!, /2 steps, 1 thread/);
  assert.match(lines[2]!, /^conv2d conv1\s+fwd\s+3\.000\s+75\.0%$/);
  assert.match(lines[3]!, /^relu_backward r\s+bwd\s+1\.000\s+25\.0%$/);
  const missing = await cli("/nonexistent/trace.json");
  assert.equal(missing.code, 1);
  // one line, "error: <message>", as the README says of every command
  assert.match(missing.err, /^error: cannot read trace "\/nonexistent\/trace\.json": [^\n]*\n$/);
  const usage = await cli();
  assert.equal(usage.code, 2);
  assert.match(usage.err, /^error: FILE is required; usage: deno task profile FILE/);
  const top = await cli("p.json", "--top", "x");
  assert.equal(top.code, 2);
  assert.equal(top.err, 'error: --top must be a whole number 1 or more, got "x"\n');
});

Deno.test("deno task profile FILE names the per-thread-count traces bench:train --profile FILE wrote instead", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/p-w1.json`, "{}");
    await Deno.writeTextFile(`${dir}/p-w2.json`, "{}");
    const r = await cli(`${dir}/p.json`);
    assert.equal(r.code, 1);
    assert.match(
      r.err,
      /^error: cannot read trace ".*\/p\.json": .*; bench:train --profile writes one trace per thread count \(--workers 1,2\) and A\/B side: ".*\/p-w1\.json", ".*\/p-w2\.json"\n$/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task profile prints each thread's micro-batches (count, p10/p50/p90 µs) and the step imbalance", async () => {
  const names = { nodes: ["input x"], backward: [false] };
  const p = new Profiler(3, names, false);
  const worker = new TraceRecorder(p.threads[2]!); // worker 1
  // 10 steps of 10 ms: the main thread runs micro-batches of 1.0 … 1.9 ms, the
  // worker one of 2 ms; steps 0-7 also have a reduction of 0.5 ms on the worker
  // (busy 2.5 against 1.x: the worker is the busiest); steps 8 and 9 the worker
  // sits out (solo steps, left out)
  let want = 0;
  for (let s = 0; s < 10; s++) {
    const t = 10 * s;
    const main = 1 + s / 10;
    p.main.span(SPAN.MICRO, 0, t, t + main);
    if (s < 8) {
      worker.span(SPAN.MICRO, 1, t, t + 2);
      worker.span(SPAN.REDUCE, 1, t + 2, t + 2.5);
      // a wait is no work
      worker.span(SPAN.WAIT, 0, t + 2.5, t + 4);
      want += (main + 2.5) / 2 / 2.5 / 8;
    }
    p.main.span(SPAN.STEP, s, t, t + 5);
  }
  const { code, out, lines } = await profileOf(p);
  assert.equal(code, 0);
  const at = lines.findIndex((l) => l.startsWith("micro-batches"));
  assert.ok(at > 0, out);
  assert.match(lines[at]!, /count\s+p10 µs\s+p50 µs\s+p90 µs$/);
  // nearest rank of 1,000 … 1,900 µs: p10 the 1st, p50 the 5th, p90 the 9th
  assert.match(lines[at + 1]!, /^main thread\s+10\s+1,000\s+1,400\s+1,800$/);
  assert.match(lines[at + 2]!, /^worker 1\s+8\s+2,000\s+2,000\s+2,000$/);
  const imb = lines[at + 3]!;
  assert.match(imb, /^step imbalance: (\d\.\d{3}) over 8 steps = mean over steps of /);
  assert.equal(imb.match(/^step imbalance: (\d\.\d{3})/)![1], want.toFixed(3));
  assert.match(imb, /; 2 steps on one thread alone left out$/);
  // steps of 5 ms, the worker busy 2.5 ms of each
  assert.match(
    lines[at + 4]!,
    /^step length: 5\.000 ms on average, the busiest thread busy 2\.500 ms of it \(0\.500\); /,
  );
});
