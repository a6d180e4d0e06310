/**
 * A small WebAssembly binary encoder: just the instructions our kernels use.
 * Kernel sources call one method per instruction, so they read like the text
 * format, and the module is built without any outside toolchain.
 *
 * @module
 */

/** A value type: i32, f32, f64 or v128. */
export type ValType = 0x7f | 0x7d | 0x7c | 0x7b;
/** 32-bit integer. */
export const I32: ValType = 0x7f;
/** 32-bit float. */
export const F32: ValType = 0x7d;
/** 64-bit float. */
export const F64: ValType = 0x7c;
/** 128-bit vector. */
export const V128: ValType = 0x7b;

/** Appends the unsigned LEB128 encoding of `v` to `out`. */
export function uleb(out: number[], v: number): void {
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
}

/** Appends the signed LEB128 encoding of the 32-bit integer `v` to `out`. */
export function sleb(out: number[], v: number): void {
  v |= 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return;
  }
}

function name(out: number[], s: string): void {
  const bytes = new TextEncoder().encode(s);
  uleb(out, bytes.length);
  for (const b of bytes) out.push(b);
}

/** A local variable or parameter, by index. */
export type Local = number;

/**
 * Builds one function body. Locals are declared on demand.
 *
 * Each instruction method appends the instruction of the same name in the
 * text format (`i32Const(v)` is `i32.const v`, `f32x4Max()` is `f32x4.max`)
 * and returns the builder, so calls chain. The opcodes are those of the
 * table in the WebAssembly Core Specification's appendix "Index of
 * Instructions", SIMD ones behind the 0xfd prefix; control instructions
 * nest with `end()`.
 */
export class FuncBuilder {
  /** Bytes of the instruction sequence so far. */
  readonly code: number[] = [];
  /** Types of the declared locals after the parameters. */
  readonly locals: ValType[] = [];
  /** Name under which the module exports it, if any. */
  exportName: string | null = null;

  /** A function taking `params` and returning `results`. */
  constructor(readonly params: ValType[], readonly results: ValType[]) {}

  /** Parameter `i` as a local. */
  param(i: number): Local {
    return i;
  }

  /** Declares a new local of type `t`. */
  local(t: ValType): Local {
    this.locals.push(t);
    return this.params.length + this.locals.length - 1;
  }

  /** Appends raw bytes. */
  private op(...bytes: number[]): this {
    for (const b of bytes) this.code.push(b);
    return this;
  }

  /** Appends a SIMD-prefixed (0xfd) opcode. */
  private simd(sub: number): this {
    this.code.push(0xfd);
    uleb(this.code, sub);
    return this;
  }

  /**
   * Appends a memarg: log2 alignment and offset, and for a memory other than
   * 0 its index (multi-memory: bit 6 of the alignment field says it follows).
   */
  private mem(align: number, offset: number, memory = 0): this {
    if (memory === 0) uleb(this.code, align);
    else {
      uleb(this.code, align | 0x40);
      uleb(this.code, memory);
    }
    uleb(this.code, offset);
    return this;
  }

  // Control.
  block(): this {
    return this.op(0x02, 0x40);
  }
  loop(): this {
    return this.op(0x03, 0x40);
  }
  if(): this {
    return this.op(0x04, 0x40);
  }
  else(): this {
    return this.op(0x05);
  }
  end(): this {
    return this.op(0x0b);
  }
  br(depth: number): this {
    this.op(0x0c);
    uleb(this.code, depth);
    return this;
  }
  brIf(depth: number): this {
    this.op(0x0d);
    uleb(this.code, depth);
    return this;
  }
  return(): this {
    return this.op(0x0f);
  }
  call(fn: number): this {
    this.op(0x10);
    uleb(this.code, fn);
    return this;
  }
  select(): this {
    return this.op(0x1b);
  }
  drop(): this {
    return this.op(0x1a);
  }

  // Locals.
  get(l: Local): this {
    this.op(0x20);
    uleb(this.code, l);
    return this;
  }
  set(l: Local): this {
    this.op(0x21);
    uleb(this.code, l);
    return this;
  }
  tee(l: Local): this {
    this.op(0x22);
    uleb(this.code, l);
    return this;
  }

  // Memory.
  f32Load(offset = 0, memory = 0): this {
    return this.op(0x2a).mem(2, offset, memory);
  }
  i32Store(offset = 0, memory = 0): this {
    return this.op(0x36).mem(2, offset, memory);
  }
  f32Store(offset = 0, memory = 0): this {
    return this.op(0x38).mem(2, offset, memory);
  }
  v128Load(offset = 0, memory = 0): this {
    return this.simd(0x00).mem(4, offset, memory);
  }
  /** Appends `v128.load64_zero`: two float32s into lanes 0 and 1, zeros above. */
  v128Load64Zero(offset = 0, memory = 0): this {
    return this.simd(0x5d).mem(3, offset, memory);
  }
  /** Appends `v128.store64_lane`: stores the low or high 8 bytes (`lane` 0 or 1). */
  v128Store64Lane(lane: number, offset = 0, memory = 0): this {
    return this.simd(0x5b).mem(3, offset, memory).op(lane);
  }
  v128Load32Splat(offset = 0): this {
    return this.simd(0x09).mem(2, offset);
  }
  v128Store(offset = 0, memory = 0): this {
    return this.simd(0x0b).mem(4, offset, memory);
  }
  /** memory.copy(dest, src, length) within memory 0 (overlapping ranges as memmove). */
  memoryCopy(): this {
    this.code.push(0xfc);
    uleb(this.code, 10);
    return this.op(0x00, 0x00);
  }
  /** memory.fill(dest, value, length) over memory 0. */
  memoryFill(): this {
    this.code.push(0xfc);
    uleb(this.code, 11);
    return this.op(0x00);
  }

  // i32.
  i32Const(v: number): this {
    this.op(0x41);
    sleb(this.code, v);
    return this;
  }
  i32Eqz(): this {
    return this.op(0x45);
  }
  i32Eq(): this {
    return this.op(0x46);
  }
  i32Ne(): this {
    return this.op(0x47);
  }
  i32LtS(): this {
    return this.op(0x48);
  }
  i32GtS(): this {
    return this.op(0x4a);
  }
  i32LeS(): this {
    return this.op(0x4c);
  }
  i32GeS(): this {
    return this.op(0x4e);
  }
  i32Add(): this {
    return this.op(0x6a);
  }
  i32Sub(): this {
    return this.op(0x6b);
  }
  i32Mul(): this {
    return this.op(0x6c);
  }
  i32DivS(): this {
    return this.op(0x6d);
  }
  i32DivU(): this {
    return this.op(0x6e);
  }
  i32And(): this {
    return this.op(0x71);
  }
  i32Or(): this {
    return this.op(0x72);
  }
  i32ShrU(): this {
    return this.op(0x76);
  }
  i32Shl(): this {
    return this.op(0x74);
  }

  // f32.
  f32Const(v: number): this {
    this.op(0x43);
    const b = new Uint8Array(new Float32Array([v]).buffer);
    for (const x of b) this.code.push(x);
    return this;
  }
  f32Add(): this {
    return this.op(0x92);
  }
  f32Mul(): this {
    return this.op(0x94);
  }
  /** Appends `f32.max` (NaN if either is NaN; -0 below +0). */
  f32Max(): this {
    return this.op(0x97);
  }
  f32Gt(): this {
    return this.op(0x5e);
  }
  /** Appends `f32.demote_f64`: round to nearest float32. */
  f32DemoteF64(): this {
    return this.op(0xb6);
  }

  // f64.
  f64Add(): this {
    return this.op(0xa0);
  }
  f64Sub(): this {
    return this.op(0xa1);
  }
  f64Mul(): this {
    return this.op(0xa2);
  }
  f64Div(): this {
    return this.op(0xa3);
  }
  f64Sqrt(): this {
    return this.op(0x9f);
  }
  /** Appends `f64.promote_f32` (exact). */
  f64PromoteF32(): this {
    return this.op(0xbb);
  }

  // v128.
  v128Zero(): this {
    this.simd(0x0c);
    for (let i = 0; i < 16; i++) this.code.push(0);
    return this;
  }
  f32x4ExtractLane(lane: number): this {
    return this.simd(0x1f).op(lane);
  }
  i32x4Splat(): this {
    return this.simd(0x11);
  }
  f32x4Splat(): this {
    return this.simd(0x13);
  }
  f32x4Add(): this {
    return this.simd(0xe4);
  }
  f64x2Splat(): this {
    return this.simd(0x14);
  }
  f64x2Add(): this {
    return this.simd(0xf0);
  }
  f64x2Sub(): this {
    return this.simd(0xf1);
  }
  f64x2Mul(): this {
    return this.simd(0xf2);
  }
  f64x2Div(): this {
    return this.simd(0xf3);
  }
  f64x2Sqrt(): this {
    return this.simd(0xef);
  }
  /** Appends `f64x2.promote_low_f32x4`: lanes 0 and 1 as float64 (exact). */
  f64x2PromoteLowF32x4(): this {
    return this.simd(0x5f);
  }
  /** Appends `f32x4.demote_f64x2_zero`: the two lanes rounded to float32 in lanes 0 and 1, zeros above. */
  f32x4DemoteF64x2Zero(): this {
    return this.simd(0x5e);
  }
  f32x4Mul(): this {
    return this.simd(0xe6);
  }
  /** Appends `f32x4.max` (lane-wise `f32.max`). */
  f32x4Max(): this {
    return this.simd(0xe9);
  }
  /** Appends `f32x4.eq`: all ones where the lanes are equal. */
  f32x4Eq(): this {
    return this.simd(0x41);
  }
  /** Appends `f32x4.ne`: all ones where the lanes differ (and where either is NaN). */
  f32x4Ne(): this {
    return this.simd(0x42);
  }
  f32x4Gt(): this {
    return this.simd(0x44);
  }
  v128And(): this {
    return this.simd(0x4e);
  }
  /** Appends `v128.andnot`: a & ~b. */
  v128Andnot(): this {
    return this.simd(0x4f);
  }
  v128Or(): this {
    return this.simd(0x50);
  }
  /** Appends `v128.any_true`: 1 if any bit is set. */
  v128AnyTrue(): this {
    return this.simd(0x53);
  }
  /**
   * Appends `i8x16.shuffle` picking four f32 lanes: lane 0–3 of the first
   * operand or 4–7 of the second.
   */
  f32x4Shuffle(lanes: readonly [number, number, number, number]): this {
    this.simd(0x0d);
    for (const l of lanes) for (let b = 0; b < 4; b++) this.code.push(l * 4 + b);
    return this;
  }
  /** relaxed-simd f32x4.relaxed_madd: a*b + c, fused or not. */
  f32x4RelaxedMadd(): this {
    return this.simd(0x105);
  }
}

/** Appends `for (i = 0; i < limit; i++) body()` to `f`; `body` emits the loop's work. */
export function forCount(f: FuncBuilder, i: Local, limit: Local, body: () => void): void {
  f.i32Const(0).set(i);
  f.block();
  f.loop();
  f.get(i).get(limit).i32GeS().brIf(1);
  body();
  f.get(i).i32Const(1).i32Add().set(i);
  f.br(0);
  f.end();
  f.end();
}

/**
 * A module with one memory and some functions. The memory is its own
 * (exported as "mem"), or with `importMemory` taken from the import
 * `env.mem`, so that JavaScript can hand it a memory it owns.
 */
export interface ModuleSpec {
  /** Initial memory size in 64 KiB pages (the minimum, for an imported memory). */
  memoryPages: number;
  /** Import the memory as `env.mem` instead of defining and exporting one. */
  importMemory?: boolean;
  /**
   * With `importMemory`: declare the imported memory shared, with a maximum
   * of `maxPages` (default {@linkcode SHARED_MAX_PAGES}), so that it takes a
   * shared `WebAssembly.Memory` (whose maximum must not exceed it) and only
   * such a memory.
   */
  shared?: boolean;
  /** With `importMemory`: the imported memory's maximum in pages (required by a shared one). */
  maxPages?: number;
  /**
   * Import these memories (multi-memory), in index order, as `env.<name>`,
   * instead of one: each with its minimum in pages, and a shared one with
   * its maximum (which a shared memory must declare).
   */
  memoryImports?: MemoryImport[];
  /** Functions in index order (the index is what `call` takes). */
  funcs: FuncBuilder[];
}

/**
 * The maximum in pages a shared imported memory declares by default: the
 * most a 32-bit memory can have (4 GiB), so that a shared memory of any size
 * matches (an import matches a memory whose maximum is at most its own).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeModule, SHARED_MAX_PAGES } from "./_asm.ts";
 * assert.equal(SHARED_MAX_PAGES * 65536, 2 ** 32);
 * const m = new WebAssembly.Module(encodeModule({ memoryPages: 1, importMemory: true, shared: true, funcs: [] }));
 * const mem = new WebAssembly.Memory({ initial: 3, maximum: 3, shared: true });
 * assert.ok(new WebAssembly.Instance(m, { env: { mem } }));
 * // an unshared memory does not match a shared import
 * assert.throws(() => new WebAssembly.Instance(m, { env: { mem: new WebAssembly.Memory({ initial: 1 }) } }));
 * ```
 */
export const SHARED_MAX_PAGES = 65536;

/** One imported memory of {@linkcode ModuleSpec.memoryImports}. */
export interface MemoryImport {
  /** The import's field name under `env`. */
  name: string;
  /** Minimum size in 64 KiB pages. */
  pages: number;
  /** Shared (then with a maximum of `maxPages`). */
  shared?: boolean;
  /** Maximum size in pages: required for a shared memory. */
  maxPages?: number;
}

function section(out: number[], id: number, body: number[]): void {
  out.push(id);
  uleb(out, body.length);
  for (const b of body) out.push(b);
}

/** Encodes a module: types, functions, memory, exports, code. */
export function encodeModule(spec: ModuleSpec): Uint8Array<ArrayBuffer> {
  const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  // One type per function keeps the encoder simple; the modules are tiny.
  const types: number[] = [];
  uleb(types, spec.funcs.length);
  for (const f of spec.funcs) {
    types.push(0x60);
    uleb(types, f.params.length);
    types.push(...f.params);
    uleb(types, f.results.length);
    types.push(...f.results);
  }
  section(out, 1, types);

  const imports = spec.memoryImports;
  if (imports) {
    const imp: number[] = [];
    uleb(imp, imports.length);
    for (const m of imports) {
      name(imp, "env");
      name(imp, m.name);
      imp.push(0x02, m.shared ? 0x03 : m.maxPages === undefined ? 0x00 : 0x01);
      uleb(imp, m.pages);
      if (m.shared || m.maxPages !== undefined) uleb(imp, m.maxPages ?? m.pages);
    }
    section(out, 2, imp);
  } else if (spec.importMemory) {
    const imp: number[] = [1];
    name(imp, "env");
    name(imp, "mem");
    const max = spec.shared ? spec.maxPages ?? SHARED_MAX_PAGES : spec.maxPages;
    // limits flags: 0 minimum only, 1 with a maximum, 3 shared with a maximum
    imp.push(0x02, spec.shared ? 0x03 : max === undefined ? 0x00 : 0x01);
    uleb(imp, spec.memoryPages);
    if (max !== undefined) uleb(imp, max);
    section(out, 2, imp);
  }

  const funcs: number[] = [];
  uleb(funcs, spec.funcs.length);
  spec.funcs.forEach((_, i) => uleb(funcs, i));
  section(out, 3, funcs);

  const ownMemory = !spec.importMemory && !imports;
  if (ownMemory) {
    const mem: number[] = [1, 0x00];
    uleb(mem, spec.memoryPages);
    section(out, 5, mem);
  }

  const exported = spec.funcs.map((f, i) => [f, i] as const).filter(([f]) => f.exportName);
  const exps: number[] = [];
  uleb(exps, exported.length + (ownMemory ? 1 : 0));
  if (ownMemory) {
    name(exps, "mem");
    exps.push(0x02, 0x00);
  }
  for (const [f, i] of exported) {
    name(exps, f.exportName!);
    exps.push(0x00);
    uleb(exps, i);
  }
  section(out, 7, exps);

  const code: number[] = [];
  uleb(code, spec.funcs.length);
  for (const f of spec.funcs) {
    const body: number[] = [];
    // Run-length group the local declarations by type.
    const groups: [number, ValType][] = [];
    for (const t of f.locals) {
      const last = groups[groups.length - 1];
      if (last && last[1] === t) last[0]++;
      else groups.push([1, t]);
    }
    uleb(body, groups.length);
    for (const [count, t] of groups) {
      uleb(body, count);
      body.push(t);
    }
    for (const b of f.code) body.push(b);
    body.push(0x0b);
    uleb(code, body.length);
    for (const b of body) code.push(b);
  }
  section(out, 10, code);
  return new Uint8Array(out);
}
