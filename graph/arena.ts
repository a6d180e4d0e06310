/**
 * Where an executor's float32 arena comes from. The core knows no kernel
 * module: a kernel tier that wants to run in place on the arena (the
 * elementwise WebAssembly module) registers an allocator here when it is
 * imported, and an executor may also be handed one directly.
 *
 * @module
 */

/**
 * Returns a buffer of at least `bytes` bytes, or null to let the caller use a
 * plain `ArrayBuffer`. `scratchBytes` (a plan's `scratchLength` in bytes) is
 * what the kernels may use beside the executor's buffers: an allocator that
 * serves kernels in place adds that much past `bytes` (rounded up to 64) and
 * tells its kernels where it starts; any other may ignore it. It may return
 * a `SharedArrayBuffer` (an arena other threads can work on, e.g. the wasm
 * tier's `sharedWasmArenaBuffer`).
 */
export type ArenaAllocator = (bytes: number, scratchBytes?: number) => ArrayBufferLike | null;

let fallback: ArenaAllocator | undefined;

/**
 * Sets the allocator executors use when they are given none (the wasm tier
 * sets its own on import); `undefined` restores plain `ArrayBuffer`s.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { arenaAllocator, setArenaAllocator } from "./arena.ts";
 * const before = arenaAllocator();
 * setArenaAllocator((bytes) => new ArrayBuffer(bytes));
 * assert.ok(arenaAllocator() !== undefined);
 * setArenaAllocator(before);
 * ```
 */
export function setArenaAllocator(allocate: ArenaAllocator | undefined): void {
  fallback = allocate;
}

/**
 * The allocator set by {@linkcode setArenaAllocator}, if any.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { arenaAllocator, setArenaAllocator } from "./arena.ts";
 * const before = arenaAllocator();
 * const mine = (bytes: number) => new ArrayBuffer(bytes);
 * setArenaAllocator(mine);
 * assert.equal(arenaAllocator(), mine);
 * setArenaAllocator(before);
 * ```
 */
export function arenaAllocator(): ArenaAllocator | undefined {
  return fallback;
}
