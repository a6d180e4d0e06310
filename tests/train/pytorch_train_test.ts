// A small conv net with batch norm and GELU trained three steps by train()
// and by PyTorch (python3-torch) from the same initial tensors: SGD with
// Nesterov momentum, weight decay, a warm-up schedule and gradient clipping.
// Every parameter and running statistic must agree, and so must the outputs
// in evaluation mode (running statistics). Skipped without torch.
import assert from "node:assert/strict";
import { gelu } from "../../ops/gelu.ts";
import { nn } from "../../train/layers.ts";
import { defineModel } from "../../train/model.ts";
import { train } from "../../train/train.ts";
import { rng } from "../_grad_check.ts";

function hasTorch(): boolean {
  try {
    return new Deno.Command("/usr/bin/python3", {
      args: ["-c", "import torch"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

const PY = `
import json, sys, torch
import torch.nn as nn
import torch.nn.functional as F
torch.set_default_dtype(torch.float64)
inp = json.load(sys.stdin)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3)
        self.bn1 = nn.BatchNorm2d(3)
        self.fc1 = nn.Linear(3 * 4 * 4, 3)
    def forward(self, x):
        return self.fc1(torch.flatten(F.gelu(self.bn1(self.conv1(x))), 1))
net = Net()
sd = {k: torch.tensor(v["data"]).reshape(v["shape"]) for k, v in inp["params"].items()}
sd["bn1.num_batches_tracked"] = sd["bn1.num_batches_tracked"].long()
net.load_state_dict(sd)
x = torch.tensor(inp["x"]).reshape(-1, 1, 6, 6)
y = torch.tensor(inp["y"]).long()
opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2)
sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.5, total_iters=2)
net.train()
for _ in range(inp["steps"]):
    opt.zero_grad()
    F.cross_entropy(net(x), y).backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
    opt.step()
    sched.step()
out = {k: v.double().flatten().tolist() for k, v in net.state_dict().items()}
net.eval()
out["eval"] = net(x).detach().flatten().tolist()
print(json.dumps(out))
`;

Deno.test({
  name:
    "train() matches PyTorch on a conv net with batch norm and GELU: parameters and running statistics",
  ignore: !hasTorch(),
  fn: async () => {
    const model = defineModel({ input: [1, 6, 6], seed: 4 }, (x) => {
      const h = gelu(nn.batchNorm2d(nn.conv2d(x, 3, 3)));
      return nn.linear(nn.flatten(h), 3);
    });
    const r = rng(5);
    const n = 10;
    const x = Float32Array.from({ length: n * 36 }, () => r() * 2 - 1);
    const y = Array.from({ length: n }, (_, i) => i % 3);
    const shapes = new Map(model.paramShapes());
    const params = Object.fromEntries(
      [...model.params].map(([k, v]) => [k, { shape: shapes.get(k), data: [...v] }]),
    );
    const steps = 3;
    const child = new Deno.Command("/usr/bin/python3", {
      args: ["-c", PY],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(JSON.stringify({ params, x: [...x], y, steps })));
    await w.close();
    const out = await child.output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const torch: Record<string, number[]> = JSON.parse(new TextDecoder().decode(out.stdout));
    // the whole set as one batch per epoch: the order does not matter
    await train({
      model,
      data: { train: { x, y }, test: { x, y } },
      epochs: steps,
      batch: n,
      workers: 1,
      lr: 0.1,
      optimizer: "momentum",
      nesterov: true,
      weightDecay: 1e-2,
      schedule: "warmup:2:0.5",
      clipGradNorm: 0.5,
    });
    // evaluation mode: both normalise with their running statistics
    const evalOut = model.predict(x).data;
    torch.eval!.forEach((t, i) =>
      assert.ok(
        Math.abs(evalOut[i]! - t) <= 1e-4,
        `eval output ${i}: ours ${evalOut[i]}, PyTorch ${t}`,
      )
    );
    delete torch.eval;
    assert.deepEqual(Object.keys(torch).sort(), [...model.params.keys()].sort());
    for (const [k, v] of model.params) {
      const t = torch[k]!;
      const moved = t.some((a, i) => Math.abs(a - params[k]!.data[i]!) > 1e-4);
      assert.ok(moved || k.startsWith("bn1.weight") || k === "bn1.bias", `${k} did not change`);
      v.forEach((a, i) =>
        assert.ok(
          Math.abs(a - t[i]!) <= 2e-5 * (1 + Math.abs(t[i]!)),
          `${k}[${i}]: ours ${a}, PyTorch ${t[i]}`,
        )
      );
    }
  },
});
