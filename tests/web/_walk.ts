// The import graph a web page loads, walked as the server transpiles it.
import { denoReferences, moduleRefs, toBrowserJs } from "../../web/transpile.ts";

const root = new URL("../../", import.meta.url);

/** What a walk of the import graph found. */
export interface Walk {
  /** Repository paths of the modules loaded, in visiting order. */
  modules: string[];
  /** `path:line` of every Deno reference. */
  deno: string[];
  /** Specifiers loaded by dynamic import, as `from -> specifier`. */
  dynamic: string[];
  /** Static specifiers a browser cannot load from the server (`node:`, `jsr:`, …). */
  foreign: string[];
  /** npm packages loaded statically, as the server's `/npm/…` paths. */
  npm: string[];
}

/**
 * Walks from `entries` (repository paths) through static imports and Web
 * Worker scripts (`new URL("…", import.meta.url)`); dynamic imports are listed, not followed.
 */
export async function walk(entries: string[]): Promise<Walk> {
  const seen = new Set<string>();
  const out: Walk = { modules: [], deno: [], dynamic: [], foreign: [], npm: [] };
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
      if (ref.kind === "dynamic") {
        out.dynamic.push(`${path} -> ${ref.specifier}`);
        continue;
      }
      if (ref.specifier.startsWith("/npm/")) {
        if (!out.npm.includes(ref.specifier)) out.npm.push(ref.specifier);
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
