// Garbage per steady training step on one thread: runs LocalRunner steps of a
// model under V8's sampling heap profiler (node:inspector) and prints the
// bytes allocated per step with the allocation sites, largest first.
//
//   deno run -A bench/alloc_step.ts [--model lecture-cnn|mnist-net] [--batch 64] [--steps 200] [--warmup 300]
import { benchArgs } from "./_args.ts";
import { Session } from "node:inspector";
import { initParams } from "../graph/params.ts";
import { LocalRunner } from "../train/parallel/local.ts";
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
const count = 1024;
const images = new Float32Array(count * 784).map((_, i) => ((i * 7919) % 251) / 251);
const labels = new Uint8Array(count).map((_, i) => i % 10);
const params = initParams(spec.built, { seed: 3 }) as Map<string, Float32Array>;
const grads = new Map([...params].map(([k, v]) => [k, new Float32Array(v.length)]));
const runner = new LocalRunner(spec, {
  params,
  data: { images, labels, sampleSize: 784 },
  maxBatch: batch,
  tier: "wasm",
});
const batches = Array.from(
  { length: 8 },
  (_, b) => new Uint32Array(batch).map((_, i) => (b * batch + i * 7) % count),
);
const warm = Number(values.warmup);
for (let s = 0; s < warm; s++) await runner.step(batches[s % 8]!, s, grads);

interface ProfNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfNode[];
}
const session = new Session();
session.connect();
const post = <T>(method: string, params?: object) =>
  new Promise<T>((ok, fail) =>
    session.post(method, params ?? {}, (e: Error | null, r?: object) => (e ? fail(e) : ok(r as T)))
  );
await post("HeapProfiler.enable");
await post("HeapProfiler.startSampling", {
  samplingInterval: 64,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
});
for (let s = warm; s < warm + steps; s++) await runner.step(batches[s % 8]!, s, grads);
const { profile } = await post<{ profile: { head: ProfNode } }>("HeapProfiler.stopSampling");
session.disconnect();

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
walk(profile.head, "");
console.log(
  `${values.model} batch ${batch}: ${
    (total / steps).toFixed(0)
  } bytes/step sampled over ${steps} steps`,
);
for (const [site, b] of [...sites].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) {
  console.log(`${(b / steps).toFixed(0).padStart(8)}  ${site}`);
}
