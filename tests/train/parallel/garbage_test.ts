// A steady training step makes no JavaScript garbage in the executor and the
// shard: V8's sampling heap profiler (node:inspector), sampling every 32
// bytes on average, attributes (almost: < 256 bytes a step) no allocation to a function of
// graph/executor.ts or train/parallel/shard.ts (nor to a builtin they call,
// e.g. a `subarray` per sample) over steady LocalRunner steps. Other sites
// (ops' kernel glue, the async step itself) are measured, not bounded:
// `deno run -A bench/alloc_step.ts`.
import assert from "node:assert/strict";
import { type Classifier, lectureCnn, mnistNet } from "../../../train/models.ts";
import { digitSteps, heapSample, type ProfNode } from "../../../bench/_heap.ts";

/** Bytes allocated per step by the functions of `files` (and builtins they call), by site. */
async function garbageOf(
  spec: Classifier,
  files: readonly string[],
  warm: number,
  steps: number,
): Promise<{ sites: Map<string, number>; total: number }> {
  const { runner, steps: run } = digitSteps(spec, 256, 64);
  await run(0, warm);
  const head = await heapSample(32, () => run(warm, steps));
  const sites = new Map<string, number>();
  let total = 0;
  const ours = (n: ProfNode) => files.some((f) => n.callFrame.url.endsWith(f));
  const name = (n: ProfNode) =>
    `${n.callFrame.functionName || "(anon)"} ${
      n.callFrame.url.replace(/.*\/(graph|train)\//, "$1/")
    }:${n.callFrame.lineNumber + 1}`;
  const walk = (n: ProfNode) => {
    total += n.selfSize;
    // the executor's run is left out: V8 inlines the ops' forward functions
    // into it, and their allocations are then its own
    if (ours(n) && n.callFrame.functionName !== "run") {
      // its own allocations, and those of the builtins it calls (no url)
      let bytes = n.selfSize;
      for (const c of n.children) if (c.callFrame.url === "") bytes += c.selfSize;
      if (bytes > 0) sites.set(name(n), (sites.get(name(n)) ?? 0) + bytes / steps);
    }
    for (const c of n.children) walk(c);
  };
  walk(head);
  await runner.close();
  return { sites, total: total / steps };
}

const FILES = ["graph/executor.ts", "train/parallel/shard.ts"] as const;

for (
  const [model, make, warm, steps] of [
    ["lecture CNN", () => lectureCnn(), 300, 100],
    ["mnist-net", () => mnistNet({ seed: 1 }), 60, 20],
  ] as const
) {
  Deno.test(`a steady ${model} step allocates nothing in the executor or the shard`, async () => {
    const { sites, total } = await garbageOf(make(), FILES, warm, steps);
    // under 256 bytes a step per function: a function's code that V8
    // recompiled in the steps profiled boxes a few numbers (seen: runMicro,
    // 82 bytes a step, once in 3 runs), a view per sample (6.6 KB a step) or
    // the old feeds, options and output arrays per run (~1.9 KB) do not pass
    const over = [...sites].filter(([, bytes]) => bytes >= 256);
    assert.deepEqual(
      over,
      [],
      `bytes per step by site (all sites, ops included: ${total.toFixed(0)} bytes per step)`,
    );
  });
}

Deno.test("the check sees garbage where there is some: LocalRunner.step's promise", async () => {
  // an async step allocates its promise each call: the same profile must see it
  const { sites } = await garbageOf(lectureCnn(), ["train/parallel/local.ts"], 20, 20);
  const bytes = [...sites.values()].reduce((a, b) => a + b, 0);
  assert.ok(bytes > 0, `no allocation seen in local.ts: ${JSON.stringify([...sites])}`);
});
