// Garbage per steady training step on one thread: runs LocalRunner steps of a
// model under V8's sampling heap profiler (node:inspector) and prints the
// bytes allocated per step with the allocation sites, largest first.
//
//   deno run -A bench/alloc_step.ts [--model lecture-cnn|mnist-net] [--batch 64] [--steps 200] [--warmup 300]
import { benchArgs } from "./_args.ts";
import { digitSteps, heapSample, type ProfNode } from "./_heap.ts";
import { lectureCnn, mnistNet } from "../train/models.ts";

const values = benchArgs(
  "bench/alloc_step.ts",
  {
    model: { type: "string", default: "lecture-cnn" },
    batch: { type: "string", default: "64" },
    steps: { type: "string", default: "200" },
    top: { type: "string", default: "25" },
    warmup: { type: "string", default: "300" },
  },
  Deno.args,
  {
    model: "lecture-cnn or mnist-net",
    batch: "samples per step",
    steps: "steps profiled",
    top: "allocation sites printed, largest first",
    warmup: "steps run before the profile (code V8 has not optimised yet boxes numbers)",
  },
);
const batch = Number(values.batch), steps = Number(values.steps);
const spec = values.model === "mnist-net" ? mnistNet() : lectureCnn();
const { runner, steps: run } = digitSteps(spec, 1024, batch);
const warm = Number(values.warmup);
await run(0, warm);
const head = await heapSample(64, () => run(warm, steps));
await runner.close();

const sites = new Map<string, number>();
let total = 0;
const walk = (n: ProfNode, path: string) => {
  const f = n.callFrame;
  const here = `${f.functionName || "(anon)"} ${f.url.replace(/.*\/gc\//, "")}:${f.lineNumber + 1}`;
  if (n.selfSize > 0) {
    total += n.selfSize;
    sites.set(`${here}  <- ${path}`, (sites.get(`${here}  <- ${path}`) ?? 0) + n.selfSize);
  }
  for (const c of n.children) walk(c, here.split(" ")[0]!);
};
walk(head, "");
console.log(
  `${values.model} batch ${batch}: ${
    (total / steps).toFixed(0)
  } bytes/step sampled over ${steps} steps`,
);
for (const [site, b] of [...sites].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) {
  console.log(`${(b / steps).toFixed(0).padStart(8)}  ${site}`);
}
