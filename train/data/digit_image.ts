/**
 * A picture of a digit turned into an MNIST sample: grayscale, white on
 * black, the digit's bounding box scaled to fit 20×20 (aspect kept) and
 * placed in 28×28 with its centre of mass in the middle, as LeCun et al.
 * framed the MNIST digits.
 *
 * @module
 */

/** A grayscale image: `width × height` values in [0, 1], row-major. */
export interface GrayImage {
  /** Columns. */
  width: number;
  /** Rows. */
  height: number;
  /** Brightness of each pixel in [0, 1] (0 black, 1 white). */
  data: Float32Array;
}

/**
 * Decodes a PNG (any bit depth, gray, RGB, palette, with or without alpha)
 * into brightness in [0, 1]; transparent pixels count as white paper.
 * Errors name `file`.
 *
 * @example
 * ```ts
 * import { decodePngGray } from "@denograd/denograd";
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * // deno-lint-ignore no-import-prefix
 * import { encode } from "npm:fast-png@8.0.0";
 * const png = encode({ width: 2, height: 1, data: new Uint8Array([0, 255]), channels: 1 });
 * const img = await decodePngGray(png, "two.png");
 * assertEquals([img.width, img.height, ...img.data], [2, 1, 0, 1]);
 * ```
 */
export async function decodePngGray(bytes: Uint8Array, file = "<bytes>"): Promise<GrayImage> {
  // loaded on first use: only PNG users pay for the decoder
  // deno-lint-ignore no-import-prefix
  const { decode } = await import("npm:fast-png@8.0.0");
  let png;
  try {
    png = decode(bytes);
  } catch (e) {
    throw new Error(`"${file}" is not a readable PNG image (${(e as Error).message})`);
  }
  const { width, height } = png;
  if (!(width > 0 && height > 0)) throw new Error(`"${file}" is an empty image`);
  const max = 2 ** png.depth - 1;
  const n = width * height;
  const out = new Float32Array(n);
  const src = png.data;
  if (png.palette) {
    for (let i = 0; i < n; i++) {
      const c = png.palette[src[i]!] ?? [0, 0, 0];
      const lum = (0.299 * c[0]! + 0.587 * c[1]! + 0.114 * c[2]!) / 255;
      const a = c.length > 3 ? c[3]! / 255 : 1;
      out[i] = lum * a + (1 - a);
    }
    return { width, height, data: out };
  }
  const ch = png.channels;
  for (let i = 0; i < n; i++) {
    const p = i * ch;
    let lum: number, a = 1;
    if (ch <= 2) {
      lum = src[p]! / max;
      if (ch === 2) a = src[p + 1]! / max;
    } else {
      lum = (0.299 * src[p]! + 0.587 * src[p + 1]! + 0.114 * src[p + 2]!) / max;
      if (ch === 4) a = src[p + 3]! / max;
    }
    out[i] = lum * a + (1 - a);
  }
  return { width, height, data: out };
}

/**
 * Frames a digit the way MNIST's are: white on black (a light background is
 * inverted, the background level subtracted), cropped to the ink's bounding
 * box, scaled by area averaging so the longer side is 20 pixels, and placed
 * in a 28×28 image with its centre of mass at the centre. Returns the 784
 * pixels in [0, 1]; throws on a blank image.
 *
 * @example
 * ```ts
 * import { frameDigit } from "@denograd/denograd";
 * import { strict as assert } from "node:assert";
 * // a black vertical bar on white paper, 10 × 40 pixels
 * const data = new Float32Array(40 * 40).fill(1);
 * for (let y = 0; y < 40; y++) for (let x = 15; x < 25; x++) data[y * 40 + x] = 0;
 * const px = frameDigit({ width: 40, height: 40, data });
 * assert.equal(px.length, 784);
 * assert.equal(px[14 * 28 + 14], 1); // ink in the middle
 * assert.equal(px[14 * 28 + 4], 0); // background at the side
 * assert.equal(px[2 * 28 + 14], 0); // a 4-pixel margin above
 * ```
 */
export function frameDigit(img: GrayImage): Float32Array {
  const { width: w, height: h } = img;
  // polarity and background from the border: MNIST is white ink on black
  let border = 0, count = 0;
  for (let x = 0; x < w; x++) {
    border += img.data[x]! + img.data[(h - 1) * w + x]!;
    count += 2;
  }
  for (let y = 0; y < h; y++) {
    border += img.data[y * w]! + img.data[y * w + w - 1]!;
    count += 2;
  }
  border /= count;
  const invert = border > 0.5;
  const bg = invert ? 1 - border : border;
  const ink = new Float32Array(w * h);
  for (let i = 0; i < ink.length; i++) {
    const v = invert ? 1 - img.data[i]! : img.data[i]!;
    ink[i] = bg < 1 ? Math.min(1, Math.max(0, (v - bg) / (1 - bg))) : 0;
  }
  // bounding box of the ink (faint noise ignored)
  let x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (ink[y * w + x]! > 0.1) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  if (x1 < 0) throw new Error("the image is blank: no digit found");
  const bw = x1 - x0 + 1, bh = y1 - y0 + 1;
  const scale = 20 / Math.max(bw, bh);
  const tw = Math.max(1, Math.round(bw * scale)), th = Math.max(1, Math.round(bh * scale));
  // area averaging: each target pixel is the mean of the source area it covers
  const small = new Float32Array(tw * th);
  const sx = bw / tw, sy = bh / th;
  for (let ty = 0; ty < th; ty++) {
    const fy0 = y0 + ty * sy, fy1 = fy0 + sy;
    for (let tx = 0; tx < tw; tx++) {
      const fx0 = x0 + tx * sx, fx1 = fx0 + sx;
      let sum = 0;
      for (let y = Math.floor(fy0); y < Math.ceil(fy1); y++) {
        const cy = Math.min(fy1, y + 1) - Math.max(fy0, y);
        for (let x = Math.floor(fx0); x < Math.ceil(fx1); x++) {
          const cx = Math.min(fx1, x + 1) - Math.max(fx0, x);
          sum += cx * cy * ink[y * w + x]!;
        }
      }
      small[ty * tw + tx] = sum / (sx * sy);
    }
  }
  // centre of mass to the middle of 28 × 28
  let mass = 0, mx = 0, my = 0;
  for (let y = 0; y < th; y++) {
    for (let x = 0; x < tw; x++) {
      const v = small[y * tw + x]!;
      mass += v;
      mx += v * (x + 0.5);
      my += v * (y + 0.5);
    }
  }
  // MNIST's centre of mass is at pixel index 14 (14.5 counting pixel centres at +0.5)
  const ox = Math.round(14.5 - mx / mass), oy = Math.round(14.5 - my / mass);
  const out = new Float32Array(784);
  for (let y = 0; y < th; y++) {
    const ty = y + oy;
    if (ty < 0 || ty >= 28) continue;
    for (let x = 0; x < tw; x++) {
      const tx = x + ox;
      if (tx >= 0 && tx < 28) out[ty * 28 + tx] = small[y * tw + x]!;
    }
  }
  return out;
}
