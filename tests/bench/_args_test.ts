import assert from "node:assert/strict";
import { benchArgs } from "../../bench/_args.ts";

const script = new URL("../../bench/train_throughput.ts", import.meta.url).pathname;

async function run(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    // --allow-run: --baseline processes starts copies of the script
    args: ["run", "--allow-read", "--allow-env", "--allow-sys", "--allow-run", script, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("benchArgs reads known flags with their defaults", () => {
  const v = benchArgs("t", { a: { type: "string", default: "1" }, b: { type: "string" } }, [
    "--b",
    "x",
  ]);
  assert.equal(v.a, "1");
  assert.equal(v.b, "x");
});

Deno.test("a bench script names an unknown flag in one line and exits 2", async () => {
  const r = await run("--bogus");
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim(), "error: bench:train: Unknown option '--bogus' (see --help)");
});

Deno.test("a bench script lists its flags for --help and exits 0", async () => {
  const r = await run("--help");
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^bench:train options:\n/);
  assert.match(r.stdout, / {2}--batch VALUE \(default 64\)\n/);
});

Deno.test("bench:train --ab names a bad side in one line and exits 2", async () => {
  for (
    const [ab, msg] of [
      ["micro=32", /--ab must be two configurations/],
      ["micro=32 | bogus=1", /--ab: "bogus=1" is not key=value with key one of micro, micro-tail/],
      ["micro=32 | micro=0", /--micro must be a whole number ≥ 1, got "0"/],
    ] as const
  ) {
    const r = await run("--ab", ab);
    assert.equal(r.code, 2, ab);
    assert.match(r.stderr.trim(), msg);
    assert.equal(r.stderr.trim().split("\n").length, 1);
  }
});

Deno.test("bench:train --ab alternates two configurations and prints B over A per rep", async () => {
  const r = await run(
    ...["--workers", "1", "--steps", "2", "--warmup", "1", "--reps", "2", "--channels", "4"],
    ...["--ab", "micro=32 | micro=16,micro-tail=8"],
  );
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  const [a, b, ratio] = lines;
  assert.equal(a.ab, "A");
  assert.equal(a.micro_batch, 32);
  assert.equal(b.ab, "B");
  assert.equal(b.micro_batch, 16);
  assert.equal(b.micro_tail, 8);
  assert.equal(ratio.ab, "B/A");
  assert.equal(ratio["1"].rates.length, 2);
  assert.match(ratio["1"].b_ahead, /^[0-2]\/2$/);
  assert.equal(ratio["1"].quartiles.length, 2);
  for (const [i, x] of ratio["1"].rates.entries()) {
    assert.ok(Math.abs(x - b.reps[i] / a.reps[i]) < 0.011, `rep ${i}: ${x}`);
  }
});

Deno.test("bench:train --chunk makes the sides take turns within a rep; micro=auto is the default rule", async () => {
  const r = await run(
    ...["--workers", "1", "--steps", "3", "--warmup", "1", "--reps", "2", "--channels", "4"],
    ...["--ab", "micro=auto | micro=16", "--chunk", "1"],
  );
  assert.equal(r.code, 0, r.stderr);
  const [a, b, ratio] = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  // the lecture CNN is a small model: the rule's 32
  assert.equal(a.micro_batch, 32);
  assert.equal(a.micro_rule, "auto");
  assert.equal(b.micro_batch, 16);
  assert.equal(b.micro_rule, undefined);
  assert.equal(ratio["1"].rates.length, 2);
  const bad = await run("--ab", "micro=32 | micro=16", "--chunk", "0");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr.trim(), /--chunk must be a whole number ≥ 1, got "0"/);
});

Deno.test("bench:train --baseline processes in chunks, with --ab, pinned: per rep, each process's rate, the synchronous bound and the pool's share of both", async () => {
  const r = await run(
    ...["--workers", "1,2", "--baseline", "processes", "--chunk", "2", "--pin", "true"],
    ...["--steps", "5", "--warmup", "1", "--reps", "2", "--channels", "4"],
    ...["--ab", "micro=32 | micro=16,micro-tail=8"],
  );
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  const pools = lines.filter((l) => l.workers === 2);
  assert.deepEqual(pools.map((l) => l.ab), ["A", "B"]);
  for (const l of lines.filter((l) => l.workers === 1)) {
    assert.equal(l.processes_sum, undefined);
    assert.equal(l.sync_bound_per_rep, undefined);
  }
  for (const two of pools) {
    assert.equal(two.pinned, true);
    assert.equal(two.processes_sum.length, 2);
    assert.equal(two.processes_per_rep.length, 2);
    for (const [i, x] of two.of_processes_per_rep.entries()) {
      const own = two.processes_per_rep[i];
      assert.equal(own.length, 2);
      assert.ok(own.every((p: number) => p > 0));
      // the sum was taken before rounding: within a sample per second of each
      assert.ok(Math.abs(own[0] + own[1] - two.processes_sum[i]) <= 2, JSON.stringify(two));
      assert.ok(Math.abs(x - two.reps[i] / two.processes_sum[i]) < 0.011, `rep ${i}: ${x}`);
      // batch 64 cut 32, 32 (A) or 32, 16, 8, 8 (B): A's bound is the slower process twice
      const bound = two.sync_bound_per_rep[i];
      assert.ok(bound > 0 && bound <= 1, `rep ${i}: bound ${bound}`);
      if (two.ab === "A") {
        const want = (2 * Math.min(...own)) / (own[0] + own[1]);
        assert.ok(Math.abs(bound - want) < 0.002, `rep ${i}: ${bound} vs ${want}`);
      }
      const of = two.reps[i] / (bound * two.processes_sum[i]);
      assert.ok(Math.abs(two.of_bound_per_rep[i] - of) < 0.011, `rep ${i}: ${of}`);
    }
  }
});

Deno.test("bench:train --pin names a bad value, and wants --baseline", async () => {
  const bad = await run("--pin", "yes");
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim(), `error: --pin must be true or false, got "yes"`);
  const alone = await run("--pin", "true");
  assert.equal(alone.code, 2);
  assert.match(alone.stderr.trim(), /--pin pins the --baseline processes: give both/);
});
