// The modules a web page loads must not touch the Deno global: walk the
// import graph from the demo page's script, as the server transpiles it,
// through static imports and Web Worker scripts (`new URL("…", import.meta.url)`),
// and look for `Deno` in each. Dynamic imports are not followed: a library
// function that needs the file system loads train/files.ts that way, only
// when it is called.
import assert from "node:assert/strict";
import { walk } from "./_walk.ts";

Deno.test("the modules the demo page loads reference no Deno global", async () => {
  const w = await walk(["web/app.js"]);
  // the walk reached the library and the worker script the pool starts
  for (const m of ["mod.ts", "graph/executor.ts", "ops/conv2d.ts", "train/parallel/worker.ts"]) {
    assert.ok(w.modules.includes(m), `the walk did not reach ${m}: ${w.modules.join(", ")}`);
  }
  assert.deepEqual(w.deno, []);
  assert.deepEqual(w.foreign, []);
  assert.ok(!w.modules.includes("train/files.ts"), "train/files.ts is loaded statically");
});

Deno.test("the Deno-free walk finds Deno references where they are", async () => {
  const w = await walk(["train/cli.ts"]);
  assert.ok(w.deno.some((d) => d.startsWith("train/cli.ts:")), w.deno.join(", "));
  assert.ok(w.foreign.includes("train/cli.ts -> node:util"), w.foreign.join(", "));
  const files = await walk(["train/files.ts"]);
  assert.ok(files.deno.length >= 4, files.deno.join(", "));
});

Deno.test("the file loaders reach train/files.ts only by dynamic import", async () => {
  const w = await walk(["mod.ts"]);
  assert.ok(w.dynamic.includes("train/data/idx.ts -> ../files.ts"), w.dynamic.join(", "));
  assert.ok(w.dynamic.includes("train/safetensors.ts -> ./files.ts"), w.dynamic.join(", "));
});
