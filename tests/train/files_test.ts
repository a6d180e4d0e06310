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
    await assert.rejects(writeBytesAtomic(`${dir}/taken`, new Uint8Array([5])));
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
