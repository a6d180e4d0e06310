import assert from "node:assert/strict";
import { buildKernels, renderBytesModules } from "../../../../ops/kernels/wasm/build.ts";
import { GEMM_WASM_RELAXED_SIMD, GEMM_WASM_SIMD } from "../../../../ops/kernels/wasm/gemm_bytes.ts";
import { ELEMENTWISE_WASM } from "../../../../ops/kernels/wasm/elementwise_bytes.ts";
import { sleb, uleb } from "../../../../ops/kernels/wasm/_asm.ts";
import { gemmRef } from "../../../../ops/kernels/gemm_ref.ts";

function decode(b64: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
}

Deno.test("embedded wasm bytes are up to date with their kernel sources", () => {
  const built = buildKernels();
  const stale = "stale: run `deno task build:wasm` and commit ops/kernels/wasm/*_bytes.ts";
  assert.deepEqual(decode(GEMM_WASM_RELAXED_SIMD), built.relaxedSimd, stale);
  assert.deepEqual(decode(GEMM_WASM_SIMD), built.simd, stale);
  assert.deepEqual(decode(ELEMENTWISE_WASM), built.elementwise, stale);
  const files = renderBytesModules(built);
  assert.deepEqual(Object.keys(files).sort(), ["elementwise_bytes.ts", "gemm_bytes.ts"]);
  for (const [name, text] of Object.entries(files)) {
    const url = new URL(`../../../../ops/kernels/wasm/${name}`, import.meta.url);
    assert.equal(Deno.readTextFileSync(url), text, `${name} ${stale}`);
  }
});

Deno.test("LEB128 encoders match known encodings", () => {
  const u = (v: number) => {
    const out: number[] = [];
    uleb(out, v);
    return out;
  };
  const s = (v: number) => {
    const out: number[] = [];
    sleb(out, v);
    return out;
  };
  assert.deepEqual(u(0), [0]);
  assert.deepEqual(u(127), [0x7f]);
  assert.deepEqual(u(128), [0x80, 0x01]);
  assert.deepEqual(u(624485), [0xe5, 0x8e, 0x26]);
  assert.deepEqual(s(-1), [0x7f]);
  assert.deepEqual(s(63), [0x3f]);
  assert.deepEqual(s(64), [0xc0, 0x00]);
  assert.deepEqual(s(-123456), [0xc0, 0xbb, 0x78]);
});

// Both modules, not just the one this runtime picks, must compute the product.
for (const [name, b64] of [["relaxed-simd", GEMM_WASM_RELAXED_SIMD], ["simd", GEMM_WASM_SIMD]]) {
  const bytes = decode(b64);
  Deno.test({
    name: `embedded ${name} gemm module matches gemmRef`,
    ignore: !WebAssembly.validate(bytes),
    fn() {
      // the module imports its memory (env.mem)
      const mem = new WebAssembly.Memory({ initial: 1 });
      const ex = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem } })
        .exports as {
          gemm(...args: number[]): void;
          gemm_nt(...args: number[]): void;
          workspace_bytes(): number;
        };
      const ws = 1024;
      // flags: bit 0 transA, bit 1 transB, bit 2 accumulate; bit 3 runs gemm_nt (A·Bᵀ).
      const cases = [[5, 9, 3, 0], [37, 70, 300, 3], [64, 17, 33, 6], [9, 7, 13, 10], [
        33,
        5,
        70,
        14,
      ]];
      for (const [m, n, k, flags] of cases) {
        const a = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i));
        const b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i));
        const c = Float32Array.from({ length: m * n }, (_, i) => (i % 7) - 3);
        const ap = ws + ex.workspace_bytes(), bp = ap + a.length * 4, cp = bp + b.length * 4;
        const end = cp + c.length * 4;
        if (mem.buffer.byteLength < end) {
          mem.grow(Math.ceil((end - mem.buffer.byteLength) / 65536));
        }
        const heap = new Float32Array(mem.buffer);
        heap.set(a, ap / 4);
        heap.set(b, bp / 4);
        heap.set(c, cp / 4);
        if (flags & 8) ex.gemm_nt(ap, bp, cp, m, n, k, (flags >> 2) & 1);
        else ex.gemm(ap, bp, cp, m, n, k, flags, ws);
        const want = Float64Array.from(c);
        const d = { m, n, k, transA: (flags & 1) !== 0, transB: (flags & 2) !== 0 };
        gemmRef(Float64Array.from(a), Float64Array.from(b), want, {
          ...d,
          accumulate: (flags & 4) !== 0,
        });
        for (let i = 0; i < m * n; i++) {
          assert.ok(Math.abs(heap[cp / 4 + i] - want[i]) < 1e-4, `${name} ${m}×${n}×${k} @${i}`);
        }
      }
    },
  });
}
