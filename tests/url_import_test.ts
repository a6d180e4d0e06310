/**
 * denograd imported from a URL: the repository is served over HTTP on
 * 127.0.0.1 and a separate `deno` process imports `mod.ts` from there,
 * computes two VJPs and trains the lecture CNN for a few steps on two
 * workers. The same script run against the local files must print the very
 * same line, bit for bit.
 *
 * This is where Deno's rules for remote code bite: a remote import needs
 * `--allow-import`, an import map does not apply to remote modules (so every
 * `npm:` specifier in the library must be complete), the worker module is
 * remote too because it is found through `import.meta.url`, and the wasm
 * kernels must arrive inside a TS module.
 *
 * @module
 */
import assert from "node:assert/strict";

const REPO = new URL("../", import.meta.url);

/** Per-child time limit; a warm run takes a few seconds, a cold npm cache a few more. */
const CHILD_TIMEOUT_MS = 45_000;

const CONTENT_TYPES: Record<string, string> = {
  ".ts": "application/typescript; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".wasm": "application/wasm",
};

/** What the child prints, one JSON line. */
const CHILD_SCRIPT = String.raw`
import * as dg from "__MOD_URL__";

// FNV-1a over the bytes: equal hashes mean equal bits, not just close values
function fnv(a) {
  const b = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i], 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}
function summary(a) {
  let s = 0;
  for (const v of a) s += v;
  return { n: a.length, sum: s, head: Array.from(a.subarray(0, 4)), fnv: fnv(a) };
}
// a fixed stream of values in [0, 1), the same in every run
let state = 12345;
function next() {
  state = (Math.imul(state, 1103515245) + 12345) >>> 0;
  return (state >>> 8) / 16777216;
}
function dataset(name, count) {
  const images = new Float32Array(new SharedArrayBuffer(count * 784 * 4));
  const labels = new Uint8Array(new SharedArrayBuffer(count));
  for (let i = 0; i < images.length; i++) images[i] = next();
  for (let i = 0; i < count; i++) labels[i] = i % 10;
  return { name, count, sampleShape: [1, 28, 28], images, labels, numClasses: 10 };
}

const square = dg.vjp((x) => dg.mean(dg.mul(x, x)), dg.tensor([1, 2, 3]));
const xs = dg.tensor(Array.from({ length: 2 * 2 * 6 * 6 }, next), [2, 2, 6, 6]);
const ws = dg.tensor(Array.from({ length: 3 * 2 * 3 * 3 }, () => next() - 0.5), [3, 2, 3, 3]);
const conv = dg.vjp((x, w) => dg.sum(dg.relu(dg.conv2d(x, w, undefined, { padding: 1 }))), xs, ws);
const [dx, dw] = conv.backward([1]);

let workers = 0;
const result = await dg.train({
  model: "lecture-cnn",
  split: { train: dataset("train", 96), test: dataset("test", 32) },
  channels: 4,
  epochs: 1,
  batch: 32,
  workers: 2,
  maxSteps: 3,
  seed: 7,
  onEvent(e) {
    if (e.event === "start") workers = e.workers;
  },
});
const params = {};
for (const [k, v] of result.params) params[k] = summary(v);
console.log(JSON.stringify({
  wasm: dg.wasmAvailable(),
  tier: dg.getKernelTier(),
  square: { out: Array.from(square.out.data), grad: Array.from(square.backward([1])[0].data) },
  conv: { out: Array.from(conv.out.data), dx: summary(dx.data), dw: summary(dw.data) },
  train: { workers, steps: result.steps, loss: result.train_loss, accuracy: result.test_accuracy },
  params,
}));
`;

interface Served {
  port: number;
  /** Paths the server was asked for and its answers' statuses, in order. */
  requests: [string, number][];
  server: Deno.HttpServer<Deno.NetAddr>;
}

/** Serves the repository root, read-only, on a free port of 127.0.0.1. */
function serveRepo(): Served {
  const requests: [string, number][] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      const path = decodeURIComponent(new URL(req.url).pathname);
      const res = await answer(req, path);
      requests.push([path, res.status]);
      return res;
    },
  );
  return { port: server.addr.port, requests, server };
}

/** A repository file with its content type, 404 when there is none. */
async function answer(req: Request, path: string): Promise<Response> {
  const file = new URL(`.${path}`, REPO);
  // `new URL` already folds "..", but a served tree must never leave the repo
  if (!file.href.startsWith(REPO.href) || req.method !== "GET") {
    return new Response("Forbidden\n", { status: 403 });
  }
  try {
    const body = await Deno.readFile(file);
    const ext = /\.[^./]+$/.exec(path)?.[0] ?? "";
    const type = CONTENT_TYPES[ext] ?? "application/octet-stream";
    return new Response(body, { headers: { "content-type": type } });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.IsADirectory) {
      return new Response(`Not found: ${path}\n`, { status: 404 });
    }
    throw e;
  }
}

interface ChildResult {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
  /** Killed by the time limit. */
  timedOut: boolean;
}

/** Runs `deno run <flags> script`, killing it if it outlives the time limit. */
async function runDeno(
  flags: string[],
  script: string,
  opts: { cwd: string; env: Record<string, string>; timeoutMs?: number },
): Promise<ChildResult> {
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, script],
    cwd: opts.cwd,
    env: opts.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let exited = false;
  let timedOut = false;
  const timer = setTimeout(() => {
    if (exited) return;
    timedOut = true;
    child.kill("SIGKILL");
  }, opts.timeoutMs ?? CHILD_TIMEOUT_MS);
  try {
    const out = await child.output();
    exited = true;
    return {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
      seconds: (performance.now() - t0) / 1000,
      timedOut,
    };
  } finally {
    clearTimeout(timer);
    if (!exited) {
      // output() threw: make sure nothing keeps running after the test
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
    }
  }
}

/** The JSON line a run printed, or an error that shows everything the child said. */
function resultOf(what: string, r: ChildResult): Record<string, unknown> {
  const line = r.stdout.trim().split("\n").at(-1) ?? "";
  // the "Download http://…" progress lines would bury the error
  const stderr = r.stderr.split("\n").filter((l) => !l.startsWith("Download ")).join("\n");
  const how = r.timedOut ? `was killed at its time limit` : `exited with ${r.code}`;
  const show = `${what} ${how} after ${r.seconds.toFixed(1)} s\n` +
    `--- stdout ---\n${r.stdout}\n--- stderr (without download lines) ---\n${stderr}`;
  assert.equal(r.code, 0, show);
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`${what} did not print a JSON line\n${show}`);
  }
}

/** The deno dir whose npm cache the children share, so npm packages are not downloaded again. */
function hostNpmCache(): string | null {
  const out = new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  if (!out.success) return null;
  const cache = JSON.parse(new TextDecoder().decode(out.stdout)).npmCache as string | undefined;
  try {
    return cache && Deno.statSync(cache).isDirectory ? cache : null;
  } catch {
    return null;
  }
}

Deno.test({
  name: "denograd imported over HTTP computes and trains exactly as from local files",
  // spawning deno and serving need these; without them the test cannot mean anything
  ignore: Deno.permissions.querySync({ name: "run", command: Deno.execPath() }).state !==
      "granted" ||
    Deno.permissions.querySync({ name: "net", host: "127.0.0.1" }).state !== "granted",
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "denograd_url_" });
    const { port, requests, server } = serveRepo();
    try {
      const host = `127.0.0.1:${port}`;
      // Deno accepts a remote module by its content type, not its extension
      const mod = await fetch(`http://${host}/mod.ts`);
      assert.match(mod.headers.get("content-type") ?? "", /^application\/typescript/);
      assert.match(await mod.text(), /export \{/);
      const none = await fetch(`http://${host}/no_such_module.ts`);
      await none.body?.cancel();
      assert.equal(none.status, 404);
      requests.length = 0;

      // A fresh DENO_DIR: nothing of an earlier run (or of the repo's own
      // cache) can stand in for a module that failed to load over HTTP.
      // Only the npm cache is shared, as a link, to avoid a download.
      const denoDir = `${tmp}/deno_dir`;
      await Deno.mkdir(denoDir);
      const npm = hostNpmCache();
      if (npm) await Deno.symlink(npm, `${denoDir}/npm`);
      const env = { DENO_DIR: denoDir, NO_COLOR: "1" };
      // No config, no lock file: the two runs resolve modules the same way,
      // and neither reads or rewrites the repository's deno.json/deno.lock.
      const common = ["--no-config", "--no-lock"];
      // The least each run needs, found by taking flags away one at a time:
      // over HTTP only the import permission (the workers inherit it and
      // load worker.ts with it); from files, read access for worker.ts,
      // since a Worker's module needs read permission and static imports do not.
      const overHttpFlags = [...common, `--allow-import=${host}`];
      const fromFilesFlags = [...common, `--allow-read=${decodeURIComponent(REPO.pathname)}`];

      // plain JavaScript: nothing in the script needs a type, so nothing is checked
      const remote = `${tmp}/remote.js`;
      const local = `${tmp}/local.js`;
      await Deno.writeTextFile(
        remote,
        CHILD_SCRIPT.replace("__MOD_URL__", `http://${host}/mod.ts`),
      );
      await Deno.writeTextFile(local, CHILD_SCRIPT.replace("__MOD_URL__", `${REPO.href}mod.ts`));

      const over = await runDeno(overHttpFlags, remote, { cwd: tmp, env });
      const overHttp = resultOf("the run importing over HTTP", over);
      const missing = requests.filter(([, status]) => status !== 200);
      assert.deepEqual(missing, [], "the server answered some requests with an error");
      // The run had no read permission, so its workers could only start from
      // a remote worker.ts: WorkerPool finds it through import.meta.url.
      const paths = requests.map(([path]) => path);
      assert.ok(paths.includes("/train/parallel/worker.ts"), `requests: ${paths.join(" ")}`);
      const fetched = requests.length;

      const files = await runDeno(fromFilesFlags, local, { cwd: tmp, env });
      const fromFiles = resultOf("the run importing local files", files);
      assert.equal(requests.length, fetched, "the local run must not touch the server");

      // same kernels, same values, same trained bits (the hashes cover every parameter)
      assert.deepEqual(overHttp, fromFiles);
      assert.deepEqual(
        [
          (overHttp.train as { workers: number }).workers,
          (overHttp.train as { steps: number }).steps,
        ],
        [2, 3],
      );
      console.log(
        `over HTTP ${over.seconds.toFixed(1)} s (${fetched} requests), ` +
          `local ${files.seconds.toFixed(1)} s, wasm ${overHttp.wasm}, tier ${overHttp.tier}`,
      );
    } finally {
      await server.shutdown();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

/** Your own model over HTTP: a custom op that the workers must import from its URL. */
const MODEL_SCRIPT = String.raw`
import * as dg from "__MOD_URL__";
import { halve } from "__OP_URL__";

const model = dg.defineModel({ input: [1, 28, 28] }, (x) => {
  x = dg.nn.maxPool2d(dg.nn.relu(dg.nn.conv2d(x, 4, 3)), 2);
  return dg.nn.linear(halve(dg.nn.flatten(x)), 10);
});
let workers = 0;
const r = await dg.train({
  model,
  data: "mnist",
  epochs: 1,
  workers: 2,
  trainLimit: 2000,
  testLimit: 500,
  opModules: ["__OP_URL__"],
  onEvent(e) {
    if (e.event === "start") workers = e.workers;
  },
});
await model.save("__FILE__");
const again = await dg.loadModel("__FILE__");
const { test } = await dg.loadMnistNpm({ seed: 1 });
const x = test.images.subarray(0, 300 * 784);
const a = model.predict(x).data, b = again.predict(x).data;
console.log(JSON.stringify({
  workers,
  accuracy: r.test_accuracy,
  same: a.length === 3000 && a.every((v, i) => v === b[i]),
  ops: again.graph.nodes.map((n) => n.op).filter((op) => op === "test_halve").length,
}));
`;

Deno.test({
  name:
    "your own model over HTTP: a custom op reaches the workers, save and load give the same outputs",
  ignore: Deno.permissions.querySync({ name: "run", command: Deno.execPath() }).state !==
      "granted" ||
    Deno.permissions.querySync({ name: "net", host: "127.0.0.1" }).state !== "granted",
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "denograd_url_model_" });
    const { port, requests, server } = serveRepo();
    try {
      const host = `127.0.0.1:${port}`;
      const denoDir = `${tmp}/deno_dir`;
      await Deno.mkdir(denoDir);
      const npm = hostNpmCache();
      if (npm) await Deno.symlink(npm, `${denoDir}/npm`);
      const script = `${tmp}/model.js`;
      await Deno.writeTextFile(
        script,
        MODEL_SCRIPT.replaceAll("__MOD_URL__", `http://${host}/mod.ts`)
          .replaceAll("__OP_URL__", `http://${host}/tests/_halve_op.ts`)
          .replaceAll("__FILE__", `${tmp}/model.safetensors`),
      );
      // no read permission on the repository: the workers load worker.ts and the op over HTTP
      const flags = [
        "--no-config",
        "--no-lock",
        `--allow-import=${host}`,
        `--allow-write=${tmp}`,
        `--allow-read=${tmp}`,
      ];
      const run = await runDeno(flags, script, {
        cwd: tmp,
        env: { DENO_DIR: denoDir, NO_COLOR: "1" },
        // it trains for a while: 2,000 digits, one epoch
        timeoutMs: 150_000,
      });
      const r = resultOf("the model run over HTTP", run);
      assert.equal(r.workers, 2);
      assert.ok((r.accuracy as number) > 0.7, `accuracy ${r.accuracy}`);
      assert.equal(r.same, true);
      assert.equal(r.ops, 1);
      const opRequests = requests.filter(([p]) => p === "/tests/_halve_op.ts");
      // the main thread's import is cached; the Web Worker fetches the op module itself
      assert.ok(opRequests.length >= 1, `requests: ${requests.map(([p]) => p).join(" ")}`);
      assert.deepEqual(requests.filter(([, status]) => status !== 200), []);
    } finally {
      await server.shutdown();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
