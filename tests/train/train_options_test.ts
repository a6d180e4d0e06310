// What a user gets for a mistyped option of train() or defineModel: an error
// naming the option and the value, before any data loads or any step runs.
import assert from "node:assert/strict";
import { defineModel, nn, train, TrainError } from "../../mod.ts";

const rejects = (opts: Record<string, unknown>, message: RegExp) =>
  assert.rejects(
    train({ model: "poly", epochs: 1, ...opts } as Parameters<typeof train>[0]),
    (e: Error) => e instanceof TrainError && message.test(e.message),
  );

Deno.test("train() refuses an option it does not know, naming the near one", async () => {
  // options from a variable or JSON, where TypeScript does not look: `epoch` ran the default
  await rejects({ epoch: 3 }, /^train: unknown option "epoch"; did you mean epochs\?$/);
  await rejects({ learningRate: 0.1 }, /^train: unknown option "learningRate"$/);
  await rejects({ save_model: "m.safetensors" }, /did you mean saveModel\?$/);
  await rejects({ worker: 2 }, /did you mean workers\?$/);
  // every documented option is known (undefined counts as not given)
  const r = await train({ model: "poly", epochs: 3, seed: 2, lr: 0.1, schedule: undefined });
  assert.equal(r.steps, 3);
});

Deno.test("train() refuses a negative or fractional maxSteps", async () => {
  await rejects({ maxSteps: -1 }, /^train: maxSteps must be a whole number 0 or more, got -1$/);
  await rejects({ maxSteps: 2.5 }, /^train: maxSteps must be a whole number 0 or more, got 2\.5$/);
});

Deno.test("defineModel refuses a seed train() would refuse", () => {
  const make = (seed: unknown) =>
    defineModel({ input: [4], seed: seed as number }, (x) => nn.linear(x, 2));
  assert.throws(
    () => make(-1),
    /^Error: defineModel: seed must be a whole number from 0 to 4294967295, got -1$/,
  );
  assert.throws(() => make(0.5), /got 0\.5$/);
  assert.throws(() => make("3"), /got "3" \(string\)$/);
  assert.throws(() => make(2 ** 32), /got 4294967296$/);
  assert.deepEqual(make(2 ** 32 - 1).paramShapes(), [["fc1.weight", [2, 4]], ["fc1.bias", [2]]]);
});
