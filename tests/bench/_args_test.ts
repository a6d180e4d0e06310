import assert from "node:assert/strict";
import { benchArgs } from "../../bench/_args.ts";

const script = new URL("../../bench/train_throughput.ts", import.meta.url).pathname;

async function run(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", "--allow-sys", script, ...args],
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
