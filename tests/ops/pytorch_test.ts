// The new ops against PyTorch itself (Debian's python3-torch), forward and
// gradient, in float64. Skipped when /usr/bin/python3 cannot import torch.
import "../../ops/mod.ts";
import assert from "node:assert/strict";
import type { Node } from "../../graph/graph.ts";
import type { Tensor } from "../../graph/tensor.ts";
import { vjp } from "../../graph/vjp.ts";
import { avgPool2d } from "../../ops/avg_pool2d.ts";
import { batchNorm } from "../../ops/batch_norm.ts";
import { bceWithLogits } from "../../ops/bce_with_logits.ts";
import { crossEntropy } from "../../ops/cross_entropy.ts";
import { exp } from "../../ops/exp.ts";
import { gelu } from "../../ops/gelu.ts";
import { globalAvgPool2d } from "../../ops/global_avg_pool2d.ts";
import { layerNorm } from "../../ops/layer_norm.ts";
import { leakyRelu } from "../../ops/leaky_relu.ts";
import { log } from "../../ops/log.ts";
import { maxPool2d } from "../../ops/max_pool2d.ts";
import { sigmoid } from "../../ops/sigmoid.ts";
import { tanh } from "../../ops/tanh.ts";
import { randTensor, rng } from "../_grad_check.ts";

function hasTorch(): boolean {
  try {
    const r = new Deno.Command("/usr/bin/python3", {
      args: ["-c", "import torch"],
      stdout: "null",
      stderr: "null",
    }).outputSync();
    return r.success;
  } catch {
    return false;
  }
}

// Each case: a Python expression over tensors a0, a1, … (those listed in
// `grads` require gradients), and the same op here.
interface Case {
  name: string;
  torch: string;
  ours: (...xs: Node[]) => Node;
  inputs: Tensor<Float64Array>[];
  grads: number[];
}

const PY = `
import json, sys, torch
import torch.nn.functional as F
torch.set_default_dtype(torch.float64)
out = []
for c in json.load(sys.stdin):
    a = [torch.tensor(v, dtype=torch.float64).reshape(s) for v, s in c["inputs"]]
    for i in c["grads"]: a[i].requires_grad_(True)
    env = {"F": F, "torch": torch}
    env.update({f"a{i}": t for i, t in enumerate(a)})
    y = eval(c["torch"], env)
    u = torch.tensor(c["u"], dtype=torch.float64).reshape(y.shape)
    g = torch.autograd.grad((y * u).sum(), [a[i] for i in c["grads"]])
    out.append({"y": y.detach().flatten().tolist(), "g": [x.flatten().tolist() for x in g]})
print(json.dumps(out))
`;

function labels(n: number, c: number, seed: number): Tensor<Float64Array> {
  const r = rng(seed);
  return { shape: [n], data: Float64Array.from({ length: n }, () => Math.floor(r() * c)) };
}

const x4 = randTensor([3, 2, 5, 4], 1, -2, 2);
const cases: Case[] = [
  {
    name: "exp",
    torch: "torch.exp(a0)",
    ours: (a) => exp(a),
    inputs: [randTensor([7], 2)],
    grads: [0],
  },
  {
    name: "log",
    torch: "torch.log(a0)",
    ours: (a) => log(a),
    inputs: [randTensor([7], 3, 0.1, 3)],
    grads: [0],
  },
  {
    name: "sigmoid",
    torch: "torch.sigmoid(a0)",
    ours: (a) => sigmoid(a),
    inputs: [randTensor([9], 4, -8, 8)],
    grads: [0],
  },
  {
    name: "tanh",
    torch: "torch.tanh(a0)",
    ours: (a) => tanh(a),
    inputs: [randTensor([9], 5, -4, 4)],
    grads: [0],
  },
  {
    name: "leakyRelu",
    torch: "F.leaky_relu(a0, 0.2)",
    ours: (a) => leakyRelu(a, { slope: 0.2 }),
    inputs: [randTensor([9], 6, -4, 4)],
    grads: [0],
  },
  {
    name: "gelu",
    torch: "F.gelu(a0)",
    ours: (a) => gelu(a),
    inputs: [randTensor([11], 7, -6, 6)],
    grads: [0],
  },
  {
    name: "avgPool2d",
    torch: "F.avg_pool2d(a0, 3, 2, 1)",
    ours: (a) => avgPool2d(a, { size: 3, stride: 2, padding: 1 }),
    inputs: [x4],
    grads: [0],
  },
  {
    name: "globalAvgPool2d",
    torch: "F.adaptive_avg_pool2d(a0, 1)",
    ours: (a) => globalAvgPool2d(a),
    inputs: [x4],
    grads: [0],
  },
  {
    name: "maxPool2d with padding",
    torch: "F.max_pool2d(a0, 3, 2, 1)",
    ours: (a) => maxPool2d(a, { size: 3, stride: 2, padding: 1 }),
    inputs: [x4],
    grads: [0],
  },
  {
    name: "batchNorm",
    torch: "F.batch_norm(a0, None, None, a1, a2, training=True, eps=1e-5)",
    ours: (a, w, b) => batchNorm(a, w, b),
    inputs: [x4, randTensor([2], 8), randTensor([2], 9)],
    grads: [0, 1, 2],
  },
  {
    name: "layerNorm",
    torch: "F.layer_norm(a0, (5, 4), a1, a2)",
    ours: (a, w, b) => layerNorm(a, w, b, { axes: [-2, -1] }),
    inputs: [x4, randTensor([5, 4], 10), randTensor([5, 4], 11)],
    grads: [0, 1, 2],
  },
  {
    name: "crossEntropy",
    torch: "F.cross_entropy(a0, a1.long())",
    ours: (a, t) => crossEntropy(a, t),
    inputs: [randTensor([6, 4], 12, -3, 3), labels(6, 4, 13)],
    grads: [0],
  },
  {
    name: "bceWithLogits",
    torch: "F.binary_cross_entropy_with_logits(a0, a1)",
    ours: (a, t) => bceWithLogits(a, t),
    inputs: [randTensor([4, 3], 14, -5, 5), randTensor([4, 3], 15, 0, 1)],
    grads: [0, 1],
  },
];

Deno.test({
  name: "the new ops match PyTorch in float64: forward and gradients",
  ignore: !hasTorch(),
  fn: async () => {
    const ours = cases.map((c) => {
      const r = vjp(c.ours, ...c.inputs);
      const u = randTensor(r.out.shape, 99).data;
      return { y: r.out.data, g: r.backward(u), u };
    });
    const payload = cases.map((c, i) => ({
      torch: c.torch,
      grads: c.grads,
      inputs: c.inputs.map((t) => [[...t.data], t.shape]),
      u: [...ours[i]!.u],
    }));
    const child = new Deno.Command("/usr/bin/python3", {
      args: ["-c", PY],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(JSON.stringify(payload)));
    await w.close();
    const res = await child.output();
    assert.ok(res.success, new TextDecoder().decode(res.stderr));
    const theirs: { y: number[]; g: number[][] }[] = JSON.parse(
      new TextDecoder().decode(res.stdout),
    );
    cases.forEach((c, i) => {
      const close = (a: ArrayLike<number>, b: number[], what: string) => {
        assert.equal(a.length, b.length, `${c.name} ${what}: length`);
        for (let k = 0; k < b.length; k++) {
          assert.ok(
            Math.abs(a[k]! - b[k]!) <= 1e-12 * (1 + Math.abs(b[k]!)),
            `${c.name} ${what}[${k}]: ours ${a[k]}, PyTorch ${b[k]}`,
          );
        }
      };
      close(ours[i]!.y, theirs[i]!.y, "forward");
      c.grads.forEach((gi, k) =>
        close(ours[i]!.g[gi]!.data, theirs[i]!.g[k]!, `grad of input ${gi}`)
      );
    });
  },
});
