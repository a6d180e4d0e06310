import assert from "node:assert/strict";
import { isFile, readBytes, writeBytesAtomic } from "../../train/files.ts";

Deno.test("writeBytesAtomic replaces a file whole and leaves no temporary file behind", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/model.safetensors`;
    await writeBytesAtomic(path, new Uint8Array([1, 2, 3]));
    await writeBytesAtomic(path, new Uint8Array([4]));
    assert.deepEqual([...await readBytes(path)], [4]);
    // a directory in the way: the rename fails, the temporary file goes
    await Deno.mkdir(`${dir}/taken`);
    await Deno.writeTextFile(`${dir}/taken/x`, "x");
    // named plainly, not by the rename's "Directory not empty (os error 39)"
    await assert.rejects(writeBytesAtomic(`${dir}/taken`, new Uint8Array([5])), {
      message: "it is a directory, not a file",
    });
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["model.safetensors", "taken"]);
    assert.equal(await isFile(`${dir}/taken`), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readBytes names a missing file plainly and passes other errors on", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(readBytes(`${dir}/none`), { message: "file not found" });
    await assert.rejects(readBytes(dir), (e: Error) => e.message !== "file not found");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkWritable without read permission: refused without write permission, resolved with it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = new URL("../../train/files.ts", import.meta.url).href;
    const script = `import { checkWritable } from ${JSON.stringify(files)};
try { await checkWritable(${JSON.stringify(`${dir}/out.st`)}); console.log("resolved"); }
catch (e) { console.log(e.message); }`;
    const run = async (flags: string[]) => {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-prompt", ...flags, "-"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(script));
      await w.close();
      const out = await child.output();
      return new TextDecoder().decode(out.stdout).trim();
    };
    // a script run without --allow-write lost a whole run at its final save
    assert.equal(
      await run([]),
      `"${dir}/out.st": no permission to write there (run with --allow-write)`,
    );
    assert.equal(await run([`--allow-write=${dir}`]), "resolved");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
