// The CLI refuses what it cannot do before training starts, in one line:
// numbers that are not plain decimal or out of range, flags a model ignores,
// outputs that collide or would clobber a checkpoint, paths that cannot be
// written; with --json the error is also a final JSON line.
import assert from "node:assert/strict";
import { hardwareThreads, parseFlags, UsageError } from "../../train/cli.ts";
import { cli, writeDigits } from "./_cli.ts";
import { withTempDir } from "../_temp_dir.ts";

function usage(args: string[], ...parts: string[]): void {
  assert.throws(() => parseFlags(args), (e: Error) => {
    assert.ok(e instanceof UsageError, `${args.join(" ")}: ${e.name}`);
    for (const p of parts) assert.ok(e.message.includes(p), `"${e.message}" lacks "${p}"`);
    return true;
  });
}

Deno.test("numbers are plain decimal, range-checked where the flag is parsed", () => {
  usage(["--epochs", "0x2"], "--epochs", '"0x2"');
  usage(["--epochs", "1e0"], "--epochs", '"1e0"');
  usage(["--epochs", " 2"], "--epochs");
  usage(["--epochs", "1000001"], "from 0 to"); // 0 evaluates without training
  usage(["--seed", "99999999999999999999"], "--seed", "4294967295");
  usage(["--batch", "1.5"], "--batch");
  usage(["--channels", "Infinity"], "--channels");
  usage(["--lr", "Infinity"], "--lr");
  usage(["--lr", "0x10"], "--lr");
  usage(["--lr", "0"], "--lr");
  assert.equal(parseFlags(["--lr", "1e-3"]).options.lr, 1e-3);
  assert.equal(parseFlags(["--lr", ".5"]).options.lr, 0.5);
  assert.equal(parseFlags(["--seed", "4294967295"]).options.seed, 4294967295);
  // negative, fractional and 33-bit seeds: the error names the flag and the value
  usage(["--seed", "-1"], "--seed", '"-1"', "from 0 to 4294967295");
  usage(["--seed=-1"], "--seed", '"-1"');
  usage(["--seed", "-0"], "--seed", '"-0"');
  usage(["--seed", "1.5"], "--seed", '"1.5"');
  usage(["--seed", "4294967296"], "--seed", '"4294967296"');
  usage(["--lr", "-0.5"], "--lr", '"-0.5"');
  usage(["--epochs", "-Infinity"], "--epochs", '"-Infinity"');
  // output names that would lie about the file's format
  usage(["--plot", "loss.png"], "--plot writes an SVG", '"loss.png"');
  usage(["--save-model", "m.ONNX"], "--save-model writes safetensors", '"m.ONNX"');
  assert.equal(parseFlags(["--plot", "loss.svg"]).options.plot, "loss.svg");
  // a flag after a valueless one is still a flag
  assert.equal(parseFlags(["--nesterov", "--seed", "3"]).options.seed, 3);
  assert.throws(() => parseFlags(["--json", "-1"]), UsageError);
  assert.equal(parseFlags(["--epochs", "007"]).options.epochs, 7);
});

Deno.test("--workers above the hardware threads is refused, naming the count", () => {
  const hw = hardwareThreads();
  usage(["--workers", String(hw + 1)], `${hw} hardware thread`);
  usage(["--workers", "1000"], "navigator.hardwareConcurrency");
  assert.equal(parseFlags(["--workers", String(hw)]).options.workers, hw);
});

Deno.test("--model poly refuses the flags it would ignore; classifiers refuse --data synthetic", () => {
  for (const f of ["--checkpoint", "--resume", "--workers", "--kernels", "--channels"]) {
    const v = f === "--kernels" ? "ts" : f === "--workers" || f === "--channels" ? "1" : "x.st";
    usage(["--model", "poly", f, v], "--model poly does not support", f);
  }
  usage(["--model", "poly", "--data", "mnist"], "synthetic");
  usage(["--data", "synthetic"], "--data synthetic is for --model poly");
  // mnist-net's layers are fixed: its channels would be ignored
  usage(["--model", "mnist-net", "--channels", "4"], "--channels", "mnist-net");
  // poly has no convolution, fusion or profile: each flag is named with why
  usage(["--model", "poly", "--profile", "p.json"], "--profile (it records no profile)");
  usage(["--model", "poly", "--no-fuse"], "--no-fuse (");
  usage(["--model", "poly", "--no-winograd", "--channels", "2"], "--channels (", "--no-winograd (");
});

Deno.test("flags the chosen optimizer or kernels would ignore are usage errors naming the flag", async () => {
  // poly trains with sgd and mnist-net with adadelta unless --optimizer says otherwise
  usage(["--model", "poly", "--nesterov"], "--nesterov needs --optimizer momentum", "sgd", "poly");
  usage(["--model", "mnist-net", "--nesterov"], "--nesterov", "adadelta", "mnist-net");
  usage(["--optimizer", "adam", "--nesterov"], "--nesterov", "not adam");
  usage(["--model", "mnist-net", "--weight-decay", "0.1"], "--weight-decay", "adadelta");
  usage(["--optimizer", "adadelta", "--weight-decay", "0"], "--weight-decay", "adadelta");
  usage(["--kernels", "ts", "--no-winograd"], "--no-winograd", "--kernels ts");
  usage(["--init", "a.st", "--resume", "b.st"], "--init and --resume");
  usage(["--overwrite"], "--overwrite", "neither is given");
  usage(["--save-model", "m.safetensors", "--overwrite"], "--overwrite");
  // where they apply they pass
  const ok = (args: string[]) => parseFlags(args).options;
  assert.equal(ok(["--model", "poly", "--optimizer", "momentum", "--nesterov"]).nesterov, true);
  assert.equal(
    ok(["--model", "mnist-net", "--optimizer", "adam", "--weight-decay", "0.1"]).weightDecay,
    0.1,
  );
  assert.equal(ok(["--nesterov"]).nesterov, true); // the lecture CNN's momentum
  assert.equal(ok(["--kernels", "wasm", "--no-winograd"]).winograd, false);
  assert.equal(parseFlags(["--plot", "l.svg", "--overwrite"]).overwrite, true);
  // on the command line: exit 2 and one line, before any data is read
  const r = await cli(["--model", "poly", "--nesterov"]);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(
    r.stderr,
    "error: --nesterov needs --optimizer momentum, not sgd (the default of --model poly) (see --help)\n",
  );
});

Deno.test("outputs that collide are refused with exit 2 and the checkpoint survives", async () => {
  await withTempDir(async (dir) => {
    const ck = `${dir}/ck.st`;
    await Deno.writeTextFile(ck, "precious");
    for (
      const args of [
        ["--checkpoint", ck, "--plot", ck, "--overwrite"],
        ["--plot", ck, "--resume", ck],
        ["--checkpoint", `${dir}/../${dir.split("/").pop()}/x.st`, "--plot", `${dir}/x.st`],
      ]
    ) {
      const r = await cli(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /^error: .* are the same file/);
      assert.equal(await Deno.readTextFile(ck), "precious");
    }
  });
});

Deno.test("an existing checkpoint this run does not start from is kept unless --overwrite", async () => {
  await withTempDir(async (dir) => {
    const ck = `${dir}/precious.st`;
    await Deno.writeTextFile(ck, "50 epochs of work");
    const r = await cli(["--checkpoint", ck, "--json"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /already exists and this run does not start from it; add --overwrite/);
    assert.equal(await Deno.readTextFile(ck), "50 epochs of work");
    // nothing was trained: the only JSON line is the error
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.event), ["error"]);
    assert.equal(lines[0].exit_code, 1);
    // a plot path holding something other than an SVG is kept too
    const p = await cli(["--plot", ck]);
    assert.equal(p.code, 1);
    assert.match(p.stderr, /not an SVG; add --overwrite/);
  });
});

Deno.test("output paths are checked before training: a missing directory fails at once", async () => {
  await withTempDir(async (dir) => {
    for (const flag of ["--checkpoint", "--plot", "--save-model", "--profile"]) {
      const r = await cli([flag, `${dir}/nope/out`, "--json"]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(`^error: ${flag} ".*nope/out": the directory ".*nope" does not exist\n$`),
      );
      assert.doesNotMatch(r.stdout, /"start"/);
    }
    const d = await cli(["--checkpoint", dir]);
    assert.equal(d.code, 1);
    assert.match(d.stderr, /it is a directory/);
    const m = await cli(["--resume", `${dir}/missing.st`]);
    assert.equal(m.code, 1);
    assert.match(m.stderr, /^error: --resume ".*missing.st": file not found\n$/);
  });
});

Deno.test("file errors are one line without a stack; DENOGRAD_DEBUG=1 adds the stack", async () => {
  await withTempDir(async (dir) => {
    await writeDigits(dir, 4, 4);
    await Deno.writeFile(`${dir}/t10k-labels-idx1-ubyte`, new Uint8Array([0, 0, 8, 1, 0, 0]));
    const r = await cli(["--data", `idx:${dir}`, "--json"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: IDX file ".*t10k-labels-idx1-ubyte": truncated header/);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    const last = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    assert.equal(last.event, "error");
    assert.match(last.message, /truncated header/);
    const d = await cli(["--data", `idx:${dir}`], { DENOGRAD_DEBUG: "1" });
    assert.equal(d.code, 1);
    assert.match(d.stderr, /\n\s+at /);
    await writeDigits(dir, 4, 4);
    const bad = `${dir}/bad.st`;
    await Deno.writeTextFile(bad, "junk");
    const s = await cli(["--resume", bad, "--data", `idx:${dir}`]);
    assert.equal(s.code, 1);
    assert.match(s.stderr, /^error: .*safetensors file ".*bad.st": too short/);
    assert.equal(s.stderr.trim().split("\n").length, 1, s.stderr);
  });
});
