import assert from "node:assert/strict";
import { checkRunPaths, type PathError, removeStaleTemporaries } from "../../train/outputs.ts";

Deno.test("stale checkpoint temporaries of dead processes are removed, live ones kept", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ck = `${dir}/ck.st`;
    // a process that has exited: its pid is free (or reused, then the file is kept)
    const child = new Deno.Command("true").spawn();
    const dead = child.pid;
    await child.status;
    const old = new Date(Date.now() - 3_600_000);
    const write = async (path: string, text: string, when?: Date) => {
      await Deno.writeTextFile(path, text);
      if (when) await Deno.utime(path, when, when);
    };
    // untouched for an hour: abandoned whether or not /proc can be read
    await write(`${ck}.tmp-${dead}`, "partial", old);
    await write(`${ck}.tmp-${Deno.pid}`, "being written", old);
    await write(`${dir}/other.st.tmp-${dead}`, "someone else's", old);
    // pid 1 runs and its file is fresh: kept either way
    await write(`${ck}.tmp-1`, "being written by a live process");
    const removed = await removeStaleTemporaries(ck);
    const left = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(removed, [`${ck}.tmp-${dead}`]);
    assert.deepEqual(left, ["ck.st.tmp-1", `ck.st.tmp-${Deno.pid}`, `other.st.tmp-${dead}`].sort());
    // the checks before a run do the same
    await write(`${ck}.tmp-${dead}`, "partial", old);
    assert.deepEqual(await checkRunPaths({ checkpoint: ck }), [`${ck}.tmp-${dead}`]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkRunPaths: resuming a checkpoint in place is allowed, a clash with an input is not", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ck = `${dir}/ck.st`;
    await Deno.writeTextFile(ck, "x");
    await checkRunPaths({ checkpoint: ck, resume: ck });
    await assert.rejects(
      checkRunPaths({ checkpoint: `${dir}/data`, inputs: [`${dir}/data`] }),
      (e: PathError) => e.usage && /same file/.test(e.message),
    );
    await assert.rejects(
      checkRunPaths({ checkpoint: `${dir}/new.st`, resume: ck, plot: ck }),
      (e: PathError) => e.usage && /--plot .* and --resume .* are the same file/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train() loses no file: an existing checkpoint, a checkpoint that is also the plot, a .png plot are refused before the first step", async () => {
  const { defineModel, nn, train, TrainError } = await import("../../mod.ts");
  const dir = await Deno.makeTempDir();
  try {
    const model = defineModel({ input: [4], seed: 1 }, (x) => nn.linear(x, 2));
    const saved = `${dir}/model.safetensors`;
    await model.save(saved);
    const before = await Deno.readFile(saved);
    const data = {
      train: { x: new Float32Array(16).fill(0.5), y: [0, 1, 0, 1] },
      test: { x: new Float32Array(8).fill(0.5), y: [0, 1] },
    };
    const base = { model, data, epochs: 1, batch: 2, workers: 1 } as const;
    const refused = async (opts: Record<string, unknown>, message: RegExp) => {
      const events: string[] = [];
      await assert.rejects(
        train({ ...base, ...opts, onEvent: (e) => events.push(e.event) }),
        (e: Error) => e instanceof TrainError && message.test(e.message),
      );
      assert.deepEqual(events, [], "refused before the run started");
    };
    // the model file just saved, given as the checkpoint by mistake
    await refused(
      { checkpoint: saved },
      /^train: checkpoint ".*model\.safetensors" already exists and this run does not start from it; pass overwrite: true to replace it, or resume: ".*model\.safetensors" to continue it$/,
    );
    assert.deepEqual(await Deno.readFile(saved), before);
    // the plot would replace the checkpoint at the end
    await refused(
      { checkpoint: `${dir}/ck.st`, plot: `${dir}/ck.st` },
      /^train: checkpoint ".*ck\.st" and plot ".*ck\.st" are the same file/,
    );
    await refused(
      { checkpoint: `${dir}/ck.st`, saveModel: `${dir}/ck.st` },
      /^train: checkpoint ".*ck\.st" and saveModel ".*ck\.st" are the same file/,
    );
    await refused({ plot: `${dir}/loss.png` }, /^train: plot writes an SVG, not \.png/);
    await refused(
      { plot: saved },
      /^train: plot ".*" already exists and is not an SVG; pass overwrite: true/,
    );
    assert.deepEqual(await Deno.readFile(saved), before);
    // asked for, the replacement happens
    const r = await train({ ...base, checkpoint: saved, overwrite: true });
    assert.equal(r.steps, 2);
    assert.notDeepEqual(await Deno.readFile(saved), before);
    // and resuming a checkpoint in place is no clash
    await train({ ...base, epochs: 2, checkpoint: saved, resume: saved });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
