// Coverage from a table, as JAX drives its gradient tests: walk the op
// registry and fail for any op whose VJP no finite-difference test checks.
// The op test files are loaded with Deno.test swapped for a collector, and
// their tests run with checkVjp in recording mode (it traces each checked
// function and notes the ops on its gradient path, computing nothing), so
// this costs a fraction of the op tests themselves.
import assert from "node:assert/strict";
import "../../ops/mod.ts";
import { registeredOps } from "../../graph/op.ts";
import { recordVjpCoverage } from "../_grad_check.ts";

// Ops that need no finite-difference VJP test, and why.
const EXEMPT: Record<string, string> = {
  fill: "a constant: no inputs, nothing to differentiate",
};

// Ops without a VJP rule, and why none is needed.
const NO_VJP: Record<string, string> = {
  log_softmax_backward: "emitted only by logSoftmax's VJP; second derivatives are not supported",
  cross_entropy_backward:
    "emitted only by crossEntropy's VJP; second derivatives are not supported",
  bce_with_logits_backward:
    "emitted only by bceWithLogits's VJP; second derivatives are not supported",
  conv2d_relu_pool: "made by the fusion pass after grad; tested against the ops it replaces",
  conv2d_relu_pool_backward:
    "made by the fusion pass after grad; tested against the ops it replaces",
  bias_relu: "made by the fusion pass after grad; tested against the ops it replaces",
  relu_pool_bias_grad: "made by the fusion pass after grad; tested against the sum it replaces",
  bias_relu_pool: "made by the fusion pass after grad; tested against the ops it replaces",
  bias_relu_pool_backward: "made by the fusion pass after grad; tested against the ops it replaces",
  packed_first:
    "made by the fusion pass after grad to read conv2d_relu_pool's and bias_relu_pool's packed output",
  take: "made by the fusion pass after grad to split conv2d_relu_pool_backward's packed output",
};

type TestFn = (t: Deno.TestContext) => void | Promise<void>;
interface Collected {
  name: string;
  fn: TestFn;
  ignore: boolean;
}

// The test definitions of a module, without registering them with Deno.
async function collectTests(url: URL): Promise<Collected[]> {
  const found: Collected[] = [];
  const real = Deno.test;
  const collect = (a: unknown, b?: unknown, c?: unknown) => {
    let def: Partial<Deno.TestDefinition> = {};
    if (typeof a === "string") {
      def = typeof b === "function" ? { name: a, fn: b as TestFn } : {
        ...(b as object),
        name: a,
        fn: c as TestFn,
      };
    } else if (typeof a === "function") def = { name: a.name, fn: a as TestFn };
    else def = a as Deno.TestDefinition;
    found.push({ name: def.name!, fn: def.fn as TestFn, ignore: def.ignore === true });
  };
  const fake = Object.assign(collect, { ignore: () => {}, only: collect });
  (Deno as { test: unknown }).test = fake;
  try {
    await import(url.href);
  } finally {
    (Deno as { test: unknown }).test = real;
  }
  return found;
}

// A context whose steps run at once, for tests that use t.step.
function context(name: string): Deno.TestContext {
  const t = {
    name,
    origin: "",
    step: async (a: unknown, b?: unknown) => {
      const fn = (typeof a === "function" ? a : typeof b === "function" ? b : (a as {
        fn: TestFn;
      }).fn) as TestFn;
      await fn(context(name));
      return true;
    },
  };
  return t as unknown as Deno.TestContext;
}

/** Op names whose VJP some test under tests/ops checks with checkVjp. */
async function coveredOps(): Promise<Set<string>> {
  const dir = new URL("./", import.meta.url);
  const files: URL[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !e.name.endsWith("_test.ts") || e.name === "registry_test.ts") continue;
    const url = new URL(e.name, dir);
    // only files that reach checkVjp, directly or through the shared unary checks
    if (/checkVjp|_unary_check/.test(await Deno.readTextFile(url))) files.push(url);
  }
  const covered = new Set<string>();
  recordVjpCoverage(covered);
  try {
    for (const url of files.sort((a, b) => a.href.localeCompare(b.href))) {
      for (const t of await collectTests(url)) {
        if (t.ignore) continue;
        try {
          await t.fn(context(t.name));
        } catch {
          // checkVjp returns no real figures while recording, so assertions on them
          // may fail; what matters is which checks the test reached
        }
      }
    }
  } finally {
    recordVjpCoverage(null);
  }
  return covered;
}

Deno.test("every registered op with a VJP rule has a finite-difference VJP test", async () => {
  const covered = await coveredOps();
  const missing = registeredOps()
    .filter((op) => op.vjp && !covered.has(op.name) && !(op.name in EXEMPT))
    .map((op) => op.name);
  assert.deepEqual(
    missing,
    [],
    `ops without a checkVjp test in tests/ops: ${missing.join(", ")} ` +
      "(add one, e.g. checkVjp((x) => myOp(x), [randTensor([2, 3], 1)]), or list the op in EXEMPT with the reason)",
  );
});

Deno.test("ops without a VJP rule are the ones listed with a reason", () => {
  // a new op that cannot be differentiated should be a decision, not an oversight
  const noVjp = registeredOps().filter((op) => !op.vjp).map((op) => op.name).sort();
  assert.deepEqual(noVjp, Object.keys(NO_VJP).sort());
});

Deno.test("recording mode notes only the ops on a differentiated path", async () => {
  const { checkVjp, randTensor } = await import("../_grad_check.ts");
  const { relu } = await import("../../ops/relu.ts");
  const { mul } = await import("../../ops/mul.ts");
  const { exp } = await import("../../ops/exp.ts");
  const seen = new Set<string>();
  recordVjpCoverage(seen);
  try {
    // exp is applied to a constant primal only: its VJP is never exercised
    checkVjp((x, t) => mul(relu(x), exp(t)), [randTensor([3], 1), randTensor([3], 2)], {
      constant: [1],
    });
  } finally {
    recordVjpCoverage(null);
  }
  assert.deepEqual([...seen].sort(), ["mul", "relu"]);
});
