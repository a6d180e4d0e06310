import assert from "node:assert/strict";
import { exportModel, parseExportArgs } from "../../../train/onnx/export_cli.ts";
import { lectureCnnModel } from "../../../train/models.ts";
import { defineModel, loadModel } from "../../../train/model.ts";
import { nn } from "../../../train/layers.ts";
import { halve } from "../../_halve_op.ts";
import { maxAbsDiff, pattern } from "./_ort.ts";
import { withTempDir } from "../../_temp_dir.ts";

const cli = new URL("../../../train/onnx/export_cli.ts", import.meta.url).pathname;

Deno.test("export flags: --out defaults to the model file with .onnx; bad flags name themselves", () => {
  assert.deepEqual(parseExportArgs(["--model-file", "runs/cnn.safetensors"]), {
    modelFile: "runs/cnn.safetensors",
    out: "runs/cnn.onnx",
    overwrite: false,
  });
  assert.deepEqual(parseExportArgs(["--model-file", "a", "--out", "b.onnx", "--overwrite"]), {
    modelFile: "a",
    out: "b.onnx",
    overwrite: true,
  });
  assert.equal(parseExportArgs(["--help"]), null);
  assert.throws(() => parseExportArgs([]), /--model-file FILE is required/);
  assert.throws(() => parseExportArgs(["--model-file", "m.onnx"]), /is the model file itself/);
  assert.throws(() => parseExportArgs(["--model-file", "a", "--bogus"]), /bogus/);
  assert.throws(
    () => parseExportArgs(["--model-file", "a", "--output", "b.onnx"]),
    { message: "unknown flag --output; did you mean --out?" },
  );
  // loadModel reads a file by its extension: ONNX bytes under another name would not load back
  assert.throws(
    () => parseExportArgs(["--model-file", "a.safetensors", "--out", "b.safetensors"]),
    {
      message:
        '--out "b.safetensors" must end in .onnx (loadModel reads other names as safetensors)',
    },
  );
});

Deno.test("a saved model exported to ONNX loads back with the same predictions", async () => {
  await withTempDir(async (dir) => {
    const model = lectureCnnModel({ channels: 4, seed: 3 });
    await model.save(`${dir}/cnn.safetensors`);
    const args = parseExportArgs(["--model-file", `${dir}/cnn.safetensors`])!;
    const n = await exportModel(args);
    assert.equal((await Deno.stat(`${dir}/cnn.onnx`)).size, n);
    const back = await loadModel(`${dir}/cnn.onnx`);
    const x = pattern(3 * 784);
    assert.ok(maxAbsDiff(back.predict(x).data, model.predict(x).data) <= 1e-6);
    await assert.rejects(
      exportModel(args),
      /^Error: exportModel: out ".*cnn\.onnx" already exists; pass overwrite: true \(--overwrite\)/,
    );
    assert.equal(await exportModel({ ...args, overwrite: true }), n);
  });
});

Deno.test("deno task export writes the file and fails with one line and exit 1 on a bad model file", async () => {
  await withTempDir(async (dir) => {
    await lectureCnnModel({ channels: 2 }).save(`${dir}/m.safetensors`);
    const run = (args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-read", "--allow-write", cli, ...args],
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
    const ok = await run(["--model-file", `${dir}/m.safetensors`, "--out", `${dir}/m.onnx`]);
    const dec = new TextDecoder();
    assert.equal(ok.code, 0, dec.decode(ok.stderr));
    assert.match(dec.decode(ok.stdout), /^wrote .*m\.onnx \(\d+ bytes\)\n$/);
    await Deno.writeTextFile(`${dir}/junk.safetensors`, "not a model");
    const bad = await run(["--model-file", `${dir}/junk.safetensors`]);
    assert.equal(bad.code, 1);
    const err = dec.decode(bad.stderr).trim();
    // "error: " as deno task train and predict say it, then the function and the file
    assert.match(err, /^error: exportModel: .*junk\.safetensors/);
    assert.ok(!err.includes("\n"), err);
    const usage = await run([]);
    assert.equal(usage.code, 2);
    const line = dec.decode(usage.stderr).trim();
    assert.equal(line, "error: --model-file FILE is required (see --help)");
    // a missing output directory is named before the model is read
    const nodir = await run([
      "--model-file",
      `${dir}/missing.safetensors`,
      "--out",
      `${dir}/no/m.onnx`,
    ]);
    assert.equal(nodir.code, 1);
    assert.match(
      dec.decode(nodir.stderr),
      /^error: exportModel: out ".*no\/m\.onnx": the directory ".*no" does not exist\n$/,
    );
  });
});

Deno.test("deno task export of a model with a custom op says it has no ONNX form, not to import it", async () => {
  await withTempDir(async (dir) => {
    const model = defineModel({ input: [4] }, (x) => nn.linear(halve(x), 2));
    await model.save(`${dir}/custom.safetensors`);
    const r = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        cli,
        "--model-file",
        `${dir}/custom.safetensors`,
      ],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(r.code, 1);
    const err = new TextDecoder().decode(r.stderr);
    assert.match(
      err,
      /^error: exportModel: ".*custom\.safetensors" uses op "test_halve", which is not built into denograd \(a custom op, registerOp\): ONNX has no form for it, so the model cannot be exported; only models of built-in ops can \(.*linear.*\)\n$/,
    );
    assert.doesNotMatch(err, /import the module/);
  });
});

Deno.test("exportModel checks out as the flags do: a .onnx name that is not the model file", async () => {
  await withTempDir(async (dir) => {
    const modelFile = `${dir}/m.safetensors`;
    await lectureCnnModel({ channels: 2 }).save(modelFile);
    // ONNX bytes under a .safetensors name would not load back
    await assert.rejects(
      exportModel({ modelFile, out: `${dir}/m2.safetensors`, overwrite: true }),
      {
        message:
          `exportModel: out "${dir}/m2.safetensors" must end in .onnx (loadModel reads other names as safetensors)`,
      },
    );
    await assert.rejects(
      exportModel({ modelFile: `${dir}/m.onnx`, out: `${dir}/m.onnx`, overwrite: true }),
      /exportModel: out ".*m\.onnx" is the model file itself/,
    );
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["m.safetensors"]);
  });
});
