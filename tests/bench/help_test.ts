// The README says every bench script lists its flags with --help: each script
// run with `deno run` answers --help on stdout with exit 0, before any work
// (the ones run by `deno bench` take no flags).
import assert from "node:assert/strict";

const dir = new URL("../../bench/", import.meta.url);

async function scripts(): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.name.endsWith(".ts") || e.name.startsWith("_")) continue;
    const text = await Deno.readTextFile(new URL(e.name, dir));
    if (!text.includes("Deno.bench(")) out.push(e.name);
  }
  return out.sort();
}

Deno.test("every bench script run by deno run answers --help with its usage and exit 0", async () => {
  const names = await scripts();
  assert.ok(names.includes("winograd_bench.ts") && names.includes("compare.ts"), names.join());
  for (const name of names) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL(name, dir).pathname, "--help"],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).output();
    const dec = new TextDecoder();
    const stderr = dec.decode(out.stderr);
    assert.equal(out.code, 0, `${name}: exit ${out.code}, stderr ${stderr}`);
    assert.match(dec.decode(out.stdout), /usage|options/i, name);
    assert.doesNotMatch(stderr, /^\s+at /m, name);
  }
});

Deno.test("a positional bench script names a bad value in one line and exits 2", async () => {
  for (const args of [["x"], ["--n", "3"], ["64", "0"], ["1", "2", "3"]]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("winograd_bench.ts", dir).pathname, ...args],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr).trim();
    assert.equal(out.code, 2, `${args.join(" ")}: ${stderr}`);
    assert.equal(stderr.split("\n").length, 1, stderr);
    assert.match(stderr, /^error: .*usage: deno run -A bench\/winograd_bench\.ts/);
  }
});

Deno.test("bench:train --help says what each flag does, not only its name", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("train_throughput.ts", dir).pathname, "--help"],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "null",
  }).output();
  const lines = new TextDecoder().decode(out.stdout).trimEnd().split("\n");
  const flags = lines.map((l, i) => [l, i] as const).filter(([l]) => l.startsWith("  --"));
  assert.ok(flags.length >= 20, lines.join("\n"));
  for (const [l, i] of flags) {
    assert.match(lines[i + 1] ?? "", /^ {6}\S.{8,}/, `no explanation under "${l.trim()}"`);
  }
});
