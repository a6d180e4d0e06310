/**
 * How the generated `*_bytes.ts` files spell a module's binary: base64 in a
 * TypeScript expression of 88-character lines (one helper for every kernel
 * source, so `build.ts --check` compares like with like).
 *
 * @module
 */

/**
 * The TypeScript expression, `["…", "…"].join("")`, that evaluates to the
 * base64 of `bytes`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { base64Literal } from "./_render.ts";
 * const text = base64Literal(new Uint8Array([0, 97, 115, 109]));
 * assert.equal(text, '[\n  "AGFzbQ==",\n].join("")');
 * assert.equal(eval(text), "AGFzbQ==");
 * ```
 */
export function base64Literal(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  const b64 = btoa(s);
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 88) lines.push(`  "${b64.slice(i, i + 88)}",`);
  return `[\n${lines.join("\n")}\n].join("")`;
}

/**
 * The doc comment of a generated module constant: `summary`, and an example
 * that decodes the base64 and validates the module.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { constDoc } from "./_render.ts";
 * assert.match(constDoc("A module.", "A_WASM", "a_bytes.ts"), /import \{ A_WASM \} from "\.\/a_bytes\.ts"/);
 * ```
 */
export function constDoc(summary: string, name: string, file: string): string {
  return `/**
 * ${summary}
 *
 * @example
 * \`\`\`ts
 * import assert from "node:assert/strict";
 * import { ${name} } from "./${file}";
 * const bytes = Uint8Array.from(atob(${name}), (c) => c.charCodeAt(0));
 * assert.ok(WebAssembly.validate(bytes));
 * \`\`\`
 */`;
}
