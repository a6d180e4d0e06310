// Everything the README shows must run as written: each ```ts block is run
// from the repository root (so `./mod.ts` resolves) and must exit cleanly.
import assert from "node:assert/strict";

const root = new URL("../", import.meta.url);
const readme = await Deno.readTextFile(new URL("README.md", root));
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

Deno.test("the README shows TypeScript examples", () => {
  assert.ok(blocks.length >= 4, `found ${blocks.length} blocks`);
});

for (const [i, code] of blocks.entries()) {
  const first = code.split("\n").find((l) => l.startsWith("import"))?.slice(0, 60) ?? "";
  Deno.test(`README example ${i + 1} runs (${first})`, async () => {
    const child = new Deno.Command(Deno.execPath(), {
      // --allow-ffi: the ONNX example loads ONNX Runtime's native addon; --allow-write: models are saved
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-sys",
        "--allow-ffi",
        "-",
      ],
      cwd: root.pathname,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(code));
    await w.close();
    const out = await child.output();
    const dec = new TextDecoder();
    assert.equal(out.code, 0, dec.decode(out.stderr));
    const printed = dec.decode(out.stdout);
    // an example asserts what it claims, or prints what this test checks below
    assert.ok(code.includes("assert.") || printed.trim().length > 0, "the example checks nothing");
    if (code.includes("defineModel")) {
      // "Your own model": the CNN it defines must really learn the digits
      const m = /test accuracy ([0-9.]+)%/.exec(printed);
      assert.ok(m && Number(m[1]) >= 93, `accuracy line missing or low: ${printed}`);
      const predicted = /predicted (\[.*\])/.exec(printed)?.[1];
      const truth = /true +(\[.*\])/.exec(printed)?.[1];
      const wrong = JSON.parse(predicted!).filter((c: number, i: number) =>
        c !== JSON.parse(truth!)[i]
      );
      assert.ok(wrong.length <= 2, `the loaded model predicts ${predicted}, truth ${truth}`);
    }
  });
}

Deno.test("the README's op table names every op function of ops/mod.ts", async () => {
  const ops = await import("../ops/mod.ts");
  const start = readme.indexOf("## Ops and their PyTorch counterparts");
  assert.ok(start >= 0, "the README has an ops section");
  const section = readme.slice(start, readme.indexOf("\n## ", start + 1));
  // helpers that compute shapes rather than build nodes
  const notOps = new Set(["reshapeShape"]);
  const missing = Object.entries(ops)
    .filter(([name, v]) => typeof v === "function" && !notOps.has(name))
    .map(([name]) => name)
    .filter((name) => !section.includes(`\`${name}\``) && !section.includes(`\`${name}(`));
  assert.deepEqual(missing, [], `ops missing from the README table: ${missing.join(", ")}`);
});

Deno.test("the README's command-line table lists every flag of deno task train --help", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", "--allow-sys", "train/cli.ts", "--help"],
    cwd: root.pathname,
    stdout: "piped",
  }).output();
  const help = new TextDecoder().decode(out.stdout);
  const flags = [...help.matchAll(/^ {2}(?:-h, )?(--[a-z-]+)/gm)].map((m) => m[1]!);
  assert.ok(flags.length >= 20, `found ${flags.length} flags in --help`);
  const table = readme.slice(readme.indexOf("## The command line"));
  const rows = new Set([...table.matchAll(/^\| `(--[a-z-]+)/gm)].map((m) => m[1]!));
  const missing = flags.filter((f) => f !== "--help" && !rows.has(f));
  assert.deepEqual(missing, [], `flags missing from the README table: ${missing.join(", ")}`);
});
