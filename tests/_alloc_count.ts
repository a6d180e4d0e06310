// Counts typed arrays made while a function runs, to test that steady-state
// steps allocate none: every typed-array constructor is swapped for a counting
// proxy (so `new Float32Array(n)` and `Float32Array.from` count), and the
// prototype methods that return a fresh array (slice, map, filter, subarray)
// are wrapped, since they build through the intrinsic and bypass the globals.
// Views (subarray, or a constructor given an existing buffer) are tallied
// apart from arrays that own new memory: a view is a small object, not data.

const CTORS = [
  "Float32Array",
  "Float64Array",
  "Int8Array",
  "Uint8Array",
  "Uint8ClampedArray",
  "Int16Array",
  "Uint16Array",
  "Int32Array",
  "Uint32Array",
  "BigInt64Array",
  "BigUint64Array",
] as const;
const METHODS = ["slice", "map", "filter", "subarray"] as const;

/** What {@linkcode countTypedArrays} saw, by kind. */
export interface AllocCount {
  /** Typed arrays with memory of their own (constructed from a length or values, slice, map, filter). */
  owning: number;
  /** Views of memory that already existed (subarray, a constructor given a buffer). */
  views: number;
  byKind: Record<string, number>;
}

/** Runs `fn` (sync or async) and counts the typed arrays created meanwhile. */
export async function countTypedArrays(fn: () => unknown): Promise<AllocCount> {
  const g = globalThis as unknown as Record<string, unknown>;
  const count: AllocCount = { owning: 0, views: 0, byKind: {} };
  const tally = (kind: string, view: boolean) => {
    if (view) count.views++;
    else count.owning++;
    count.byKind[kind] = (count.byKind[kind] ?? 0) + 1;
  };
  const savedCtors = CTORS.map((name) => [name, g[name]] as const);
  const proto = Object.getPrototypeOf(Float32Array.prototype) as Record<string, unknown>;
  const savedMethods = METHODS.map((m) => [m, proto[m]] as const);
  for (const [name, ctor] of savedCtors) {
    g[name] = new Proxy(ctor as new (...a: unknown[]) => object, {
      construct(target, args, newTarget) {
        const view = args[0] instanceof ArrayBuffer || args[0] instanceof SharedArrayBuffer;
        tally(view ? `view ${name}` : `new ${name}`, view);
        return Reflect.construct(target, args, newTarget === g[name] ? target : newTarget);
      },
    });
  }
  for (const [m, orig] of savedMethods) {
    proto[m] = function (this: unknown, ...args: unknown[]) {
      tally(m, m === "subarray");
      return (orig as (...a: unknown[]) => unknown).apply(this, args);
    };
  }
  try {
    await fn();
  } finally {
    for (const [name, ctor] of savedCtors) g[name] = ctor;
    for (const [m, orig] of savedMethods) proto[m] = orig;
  }
  return count;
}
