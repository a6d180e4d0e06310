// The layers point one way: graph/ (the core) imports nothing above it,
// ops/ imports only the core, and nothing below train/ imports train/.
import assert from "node:assert/strict";

const root = new URL("../", import.meta.url);

async function* sources(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(new URL(dir, root))) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) yield* sources(path);
    else if (e.name.endsWith(".ts")) yield path;
  }
}

/** Repository-relative paths that a module imports by relative specifier. */
function relativeImports(path: string, text: string): string[] {
  const out: string[] = [];
  const re = /(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g;
  for (const m of text.matchAll(re)) {
    const url = new URL(m[1]!, new URL(path, root));
    out.push(url.pathname.slice(root.pathname.length));
  }
  return out;
}

const rules: [string, string[]][] = [
  ["graph", ["ops/", "train/", "web/"]],
  ["ops", ["train/", "web/"]],
];

for (const [dir, banned] of rules) {
  Deno.test(`${dir}/ imports nothing from ${banned.join(", ")}`, async () => {
    const bad: string[] = [];
    for await (const path of sources(dir)) {
      const text = await Deno.readTextFile(new URL(path, root));
      for (const target of relativeImports(path, text)) {
        if (banned.some((b) => target.startsWith(b))) bad.push(`${path} -> ${target}`);
      }
    }
    assert.deepEqual(bad, []);
  });
}

Deno.test("the layering check sees a banned import", () => {
  assert.deepEqual(relativeImports("graph/x.ts", 'import { a } from "../ops/a.ts";'), ["ops/a.ts"]);
});
