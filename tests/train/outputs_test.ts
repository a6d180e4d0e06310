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
