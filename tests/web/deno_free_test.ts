// The modules a web page loads must not touch the Deno global: walk the
// import graph from the demo page's script, as the server transpiles it,
// through static imports and Web Worker scripts (`new URL("…", import.meta.url)`),
// and look for `Deno` in each. Dynamic imports are not followed: a library
// function that needs the file system loads train/files.ts that way, only
// when it is called.
import assert from "node:assert/strict";
import { denoReferences, moduleRefs, toBrowserJs } from "../../web/transpile.ts";

const root = new URL("../../", import.meta.url);

interface Walk {
  /** Repository paths of the modules loaded, in visiting order. */
  modules: string[];
  /** `path:line` of every Deno reference. */
  deno: string[];
  /** Specifiers loaded by dynamic import, as `from -> specifier`. */
  dynamic: string[];
  /** Static specifiers a browser cannot load from the server (`node:`, `jsr:`, …). */
  foreign: string[];
}

async function walk(entries: string[]): Promise<Walk> {
  const seen = new Set<string>();
  const out: Walk = { modules: [], deno: [], dynamic: [], foreign: [] };
  const queue = [...entries];
  while (queue.length) {
    const path = queue.shift()!;
    if (seen.has(path)) continue;
    seen.add(path);
    out.modules.push(path);
    const source = await Deno.readTextFile(new URL(path, root));
    const js = path.endsWith(".ts") ? toBrowserJs(source, path) : source;
    for (const line of denoReferences(js, path)) out.deno.push(`${path}:${line}`);
    for (const ref of moduleRefs(js, path)) {
      if (ref.specifier.startsWith("/npm/")) continue; // third-party packages
      if (ref.kind === "dynamic") {
        out.dynamic.push(`${path} -> ${ref.specifier}`);
        continue;
      }
      // a page resolves "/x" against the server root, which is the repository root
      const url = ref.specifier.startsWith("/")
        ? new URL(ref.specifier.slice(1), root)
        : new URL(ref.specifier, new URL(path, root));
      if (url.protocol !== "file:") {
        out.foreign.push(`${path} -> ${ref.specifier}`);
        continue;
      }
      queue.push(url.pathname.slice(root.pathname.length));
    }
  }
  return out;
}

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
