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
    await Deno.writeTextFile(`${ck}.tmp-${dead}`, "partial");
    await Deno.writeTextFile(`${ck}.tmp-${Deno.pid}`, "being written");
    await Deno.writeTextFile(`${dir}/other.st.tmp-${dead}`, "someone else's");
    const removed = await removeStaleTemporaries(ck);
    const left = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    if (removed.length === 0) return; // no /proc: nothing can be known, nothing is removed
    assert.deepEqual(removed, [`${ck}.tmp-${dead}`]);
    assert.deepEqual(left, [`ck.st.tmp-${Deno.pid}`, `other.st.tmp-${dead}`]);
    // the checks before a run do the same
    await Deno.writeTextFile(`${ck}.tmp-${dead}`, "partial");
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
