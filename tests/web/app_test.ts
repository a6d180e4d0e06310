// The demo page in a real browser: Debian's Chromium, driven through
// puppeteer-core (which downloads nothing), against `deno task serve` started
// as a user would start it. The page is read only through what it shows and
// its documented data-* attributes (see web/index.html).
// deno-lint-ignore no-import-prefix
import puppeteer, { type Browser, type Page } from "npm:puppeteer-core@25.16.0";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { loadModel } from "../../mod.ts";

// What the callbacks run in the page see. The DOM library is not loaded for them: `deno check`
// checks every file in one program, where it would change the types other files see.
declare const document: any;
declare const DataTransfer: any;
declare const DragEvent: any;
type HTMLElement = { dataset: Record<string, string | undefined>; textContent: string | null };
type HTMLInputElement = { value: string };

const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";
const root = new URL("../../", import.meta.url);

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

const haveChromium = await isFile(CHROMIUM);
if (!haveChromium) {
  console.warn(
    `tests/web/app_test.ts: SKIPPED: no Chromium at ${CHROMIUM}. ` +
      "Install it with `apt-get install -y chromium` (.ci/run does) or set CHROMIUM_PATH.",
  );
}

interface Server {
  url: string;
  stop(): Promise<void>;
}

/** `deno task serve --port 0`, run as the task's own command line says, until it prints its URL. */
async function startServe(): Promise<Server> {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
  const [deno, ...args] = (config.tasks.serve as string).split(/\s+/);
  assert.equal(deno, "deno");
  const child = new Deno.Command(Deno.execPath(), {
    args: [...args, "--port", "0"],
    cwd: root,
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await lines.cancel().catch(() => {});
    await child.status;
  };
  const deadline = setTimeout(() => stop(), 60_000);
  try {
    while (true) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`deno task serve ended before printing its URL: ${seen}`);
      seen += value;
      const m = /denograd demo: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(seen);
      if (m) return { url: m[1]!, stop };
    }
  } catch (e) {
    await stop();
    throw e;
  } finally {
    clearTimeout(deadline);
  }
}

/** Everything that went wrong in any page: console errors, uncaught errors, failed loads. */
function watch(page: Page, problems: string[]): void {
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()} (${m.location().url ?? ""})`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${(e as Error).message ?? e}`));
  page.on("requestfailed", (r) => {
    problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
}

async function state(page: Page): Promise<Record<string, string>> {
  return await page.evaluate(() => ({ ...document.body.dataset }) as Record<string, string>);
}

async function waitState(page: Page, states: string[], timeout = 90_000): Promise<void> {
  await page.waitForFunction(
    (s: string[]) => s.includes(document.body.dataset.state ?? ""),
    { timeout, polling: 100 },
    states,
  );
  const st = await state(page);
  if (st.state === "error") {
    throw new Error(`the page shows an error: ${await page.$eval("#error", (e) => e.textContent)}`);
  }
}

async function setField(page: Page, id: string, value: string): Promise<void> {
  await page.$eval(`#${id}`, (el, v) => ((el as HTMLInputElement).value = v), value);
}

/** Draws a stroke through `points` (in the pad's 280×280 pixels) with the mouse. */
async function stroke(page: Page, points: [number, number][]): Promise<void> {
  const box = await (await page.$("#pad"))!.boundingBox();
  assert.ok(box, "the drawing pad is not visible");
  const at = (
    [x, y]: [number, number],
  ) => [box.x + x * box.width / 280, box.y + y * box.height / 280];
  const [x0, y0] = at(points[0]!);
  await page.mouse.move(x0!, y0!);
  await page.mouse.down();
  for (const p of points.slice(1)) {
    const [x, y] = at(p);
    await page.mouse.move(x!, y!, { steps: 2 });
  }
  await page.mouse.up();
}

const ONE: [number, number][] = Array.from({ length: 11 }, (_, i) => [140 + 2 * i, 45 + 19 * i]);
const ZERO: [number, number][] = Array.from({ length: 41 }, (_, i) => {
  const a = (i / 40) * 2 * Math.PI;
  return [140 + 62 * Math.sin(a), 140 - 92 * Math.cos(a)];
});

async function drawAndRead(page: Page, points: [number, number][]): Promise<[string, number]> {
  await page.click("#clear");
  await stroke(page, points);
  await page.waitForFunction(() => document.getElementById("prediction")!.dataset.class !== "", {
    timeout: 10_000,
  });
  return await page.$eval("#prediction", (e) => {
    const d = (e as HTMLElement).dataset;
    return [d.class!, Number(d.probability)] as [string, number];
  });
}

Deno.test({
  name: "the demo page trains on 2 Web Workers, classifies drawn digits, saves and loads models",
  ignore: !haveChromium,
  // puppeteer's pipes and timers end a little after browser.close() resolves
  sanitizeOps: false,
  sanitizeResources: false,
}, async (t) => {
  const server = await startServe();
  const profile = await Deno.makeTempDir({ prefix: "denograd-chromium-" });
  const downloads = await Deno.makeTempDir({ prefix: "denograd-downloads-" });
  const problems: string[] = [];
  let browser: Browser | undefined;
  try {
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      userDataDir: profile,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
    const page = await browser.newPage();
    watch(page, problems);
    await page.setViewport({ width: 1280, height: 900 });

    await t.step(
      "it loads cross-origin isolated, with 2 threads and the wasm kernels",
      async () => {
        await page.goto(server.url);
        await waitState(page, ["ready", "error"]);
        const st = await state(page);
        assert.equal(st.isolated, "true");
        assert.equal(st.threads, "2");
        assert.equal(st.kernels, "wasm");
        assert.equal(st.model, "none");
        assert.match(await page.$eval("#env", (e) => e.textContent!), /2 Web Workers/);
      },
    );

    await t.step("a drawing before training asks for a model", async () => {
      await stroke(page, ONE);
      const text = await page.$eval("#prediction", (e) => e.textContent!);
      assert.match(text, /No model yet/);
      assert.equal(await page.$eval("#prediction", (e) => (e as HTMLElement).dataset.class), "");
    });

    await t.step(
      "one epoch (250 steps) reaches a test accuracy above 0.85; Stop stops",
      async () => {
        await setField(page, "epochs", "3");
        await setField(page, "train-count", "8000");
        await page.click("#start");
        await waitState(page, ["training", "error"], 10_000);
        // the digit drawn before is classified with the parameters as they are during training
        await page.waitForFunction(
          () =>
            document.getElementById("prediction")!.dataset.class !== "" &&
            document.body.dataset.state === "training",
          { timeout: 60_000, polling: 50 },
        );
        await page.waitForFunction(() => document.body.dataset.epoch === "1", {
          timeout: 120_000,
          polling: 50,
        });
        await page.click("#stop");
        await waitState(page, ["stopped", "trained", "error"]);
        const st = await state(page);
        assert.equal(st.state, "stopped");
        const steps = Number(st.step);
        assert.ok(steps >= 250 && steps < 750, `stopped after ${steps} steps`);
        const accuracy = Number(
          await page.$eval("#accuracy", (e) => (e as HTMLElement).dataset.value),
        );
        assert.ok(accuracy > 0.85, `test accuracy ${accuracy}`);
        const speed = Number((await page.$eval("#speed", (e) => e.textContent!)).replace(/,/g, ""));
        assert.ok(speed > 0, `samples/s "${speed}"`);
        assert.equal(await page.$$eval("#epochs-list li", (li) => li.length), 1);
        assert.equal(st.model, "trained");
      },
    );

    await t.step("drawn digits are classified: a 1 and a 0", async () => {
      const [one, p1] = await drawAndRead(page, ONE);
      assert.equal(one, "1", `a stroke down reads as ${one} (p ${p1})`);
      const [zero, p0] = await drawAndRead(page, ZERO);
      assert.equal(zero, "0", `an oval reads as ${zero} (p ${p0})`);
      assert.equal(await page.$$eval("#bars > div", (d) => d.length), 10);
    });

    let saved = "";
    await t.step("Save downloads a model file that loadModel reads in Deno", async () => {
      const cdp = await page.createCDPSession();
      await cdp.send("Browser.setDownloadBehavior", {
        behavior: "allow",
        downloadPath: downloads,
      });
      await page.click("#save");
      saved = `${downloads}/lecture-cnn.safetensors`;
      const until = Date.now() + 20_000;
      while (!(await isFile(saved)) && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const model = await loadModel(saved);
      assert.deepEqual(model.input, [1, 28, 28]);
      assert.deepEqual(model.outputShape, [10]);
    });

    await t.step("a dropped model file is used for predictions after a reload", async () => {
      await page.reload();
      await waitState(page, ["ready", "error"]);
      assert.equal((await state(page)).model, "none");
      const b64 = Buffer.from(await Deno.readFile(saved)).toString("base64");
      await page.evaluate((data: string) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "trained.safetensors"));
        const drop = document.getElementById("drop")!;
        drop.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true }));
      }, b64);
      await page.waitForFunction(() => document.body.dataset.model === "loaded", {
        timeout: 10_000,
      });
      assert.match(
        await page.$eval("#model-status", (e) => e.textContent!),
        /trained\.safetensors/,
      );
      const [one] = await drawAndRead(page, ONE);
      assert.equal(one, "1");
      // a file that is not a model is refused on the page, which goes on working
      await page.evaluate(() => {
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(9)], "junk.safetensors"));
        const drop = document.getElementById("drop")!;
        drop.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true }));
      });
      await page.waitForFunction(
        () => /junk\.safetensors/.test(document.getElementById("model-status")!.textContent!),
        { timeout: 10_000 },
      );
      assert.equal((await state(page)).model, "loaded");
    });

    await t.step("without cross-origin isolation it says so and trains on 1 thread", async () => {
      const plain = await browser!.newPage();
      watch(plain, problems);
      await plain.goto(`${server.url}?isolated=0`);
      await waitState(plain, ["ready", "error"]);
      const st = await state(plain);
      assert.equal(st.isolated, "false");
      assert.equal(st.threads, "1");
      assert.match(await plain.$eval("#env", (e) => e.textContent!), /not cross-origin isolated/);
      await setField(plain, "epochs", "1");
      await setField(plain, "train-count", "320");
      await plain.click("#start");
      await waitState(plain, ["trained", "stopped", "error"]);
      assert.equal((await state(plain)).step, "10");
      const accuracy = await plain.$eval("#accuracy", (e) => (e as HTMLElement).dataset.value);
      assert.ok(Number(accuracy) > 0.1, `accuracy "${accuracy}"`);
      await plain.close();
    });

    assert.deepEqual(problems, []);
  } finally {
    await browser?.close().catch(() => {});
    await server.stop();
    await Deno.remove(profile, { recursive: true }).catch(() => {});
    await Deno.remove(downloads, { recursive: true }).catch(() => {});
  }
});
