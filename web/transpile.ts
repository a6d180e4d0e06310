/**
 * What `deno task serve` does to a TypeScript module before a browser gets
 * it: strip the types (TypeScript's own `transpileModule`, one file at a
 * time, ES module syntax kept, comments dropped) and point `npm:` specifiers
 * at the server's `/npm/` route. No bundling: every module keeps its URL, so
 * `new Worker(new URL("./worker.ts", import.meta.url))` still finds its file.
 *
 * The same parse lists what a module loads, which is how
 * `tests/web/deno_free_test.ts` walks the import graph a page loads.
 *
 * @module
 */
// deno-lint-ignore no-import-prefix
import ts from "npm:typescript@5.9.3";

/** How a module refers to another one. */
export type RefKind = "static" | "dynamic" | "url";

/** One module reference found in JavaScript source. */
export interface ModuleRef {
  /**
   * `static`: `import … from` / `export … from` / `import "…"`; `dynamic`:
   * `import("…")` with a literal; `url`: `new URL("…", import.meta.url)`, how
   * a module names its Web Worker's script.
   */
  kind: RefKind;
  /** The specifier as written. */
  specifier: string;
  /** Offsets of the string literal (quotes included) in the source. */
  start: number;
  /** End offset, exclusive. */
  end: number;
}

/**
 * Strips TypeScript types from one module, keeping its ES module imports and
 * exports as they are, dropping comments, and rewriting `npm:` specifiers to
 * `/npm/…` (served from the npm cache). Type-only imports disappear.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toBrowserJs } from "./transpile.ts";
 * const js = toBrowserJs(
 *   'import * as C from "npm:comlink@4.4.2";\nimport type { T } from "./t.ts";\n' +
 *     "// a comment\nexport const wrap: T = C.wrap;",
 *   "x.ts",
 * );
 * assert.equal(js.trim(), 'import * as C from "/npm/comlink@4.4.2";\nexport const wrap = C.wrap;');
 * ```
 */
export function toBrowserJs(source: string, fileName: string): string {
  const out = ts.transpileModule(source, {
    fileName,
    reportDiagnostics: true,
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      removeComments: true,
      useDefineForClassFields: true,
      sourceMap: false,
    },
  });
  const errors = (out.diagnostics ?? []).filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length) {
    const d = errors[0]!;
    const at = d.file && d.start !== undefined
      ? d.file.getLineAndCharacterOfPosition(d.start).line + 1
      : "?";
    throw new Error(
      `transpiling "${fileName}" failed at line ${at}: ${
        ts.flattenDiagnosticMessageText(d.messageText, " ")
      }`,
    );
  }
  return rewriteSpecifiers(out.outputText, fileName, (s) => {
    return s.startsWith("npm:") ? `/npm/${s.slice(4)}` : s;
  });
}

/**
 * Every module reference in JavaScript (or TypeScript) source, in source order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { moduleRefs } from "./transpile.ts";
 * const refs = moduleRefs(
 *   'import "./a.ts"; export * from "./b.ts";\n' +
 *     'const w = new URL("./w.ts", import.meta.url); await import("./c.ts");',
 *   "m.js",
 * );
 * assert.deepEqual(refs.map((r) => `${r.kind} ${r.specifier}`), [
 *   "static ./a.ts",
 *   "static ./b.ts",
 *   "url ./w.ts",
 *   "dynamic ./c.ts",
 * ]);
 * ```
 */
export function moduleRefs(source: string, fileName: string): ModuleRef[] {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.ES2022, true);
  const refs: ModuleRef[] = [];
  const add = (kind: RefKind, lit: ts.StringLiteral) => {
    refs.push({ kind, specifier: lit.text, start: lit.getStart(file), end: lit.getEnd() });
  };
  const visit = (node: ts.Node): void => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)
    ) {
      add("static", node.moduleSpecifier);
    } else if (
      ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] && ts.isStringLiteral(node.arguments[0])
    ) {
      add("dynamic", node.arguments[0]);
    } else if (
      ts.isNewExpression(node) && ts.isIdentifier(node.expression) &&
      node.expression.text === "URL" && node.arguments?.length === 2 &&
      ts.isStringLiteral(node.arguments[0]!) && isImportMetaUrl(node.arguments[1]!)
    ) {
      add("url", node.arguments[0] as ts.StringLiteral);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return refs;
}

function isImportMetaUrl(node: ts.Node): boolean {
  return ts.isPropertyAccessExpression(node) && node.name.text === "url" &&
    ts.isMetaProperty(node.expression) && node.expression.name.text === "meta";
}

/**
 * Replaces each module specifier by `map(specifier)`, keeping the quotes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rewriteSpecifiers } from "./transpile.ts";
 * const js = rewriteSpecifiers('import { a } from "x";', "m.js", (s) => `/lib/${s}.js`);
 * assert.equal(js, 'import { a } from "/lib/x.js";');
 * ```
 */
export function rewriteSpecifiers(
  source: string,
  fileName: string,
  map: (specifier: string) => string,
): string {
  let out = source;
  const refs = moduleRefs(source, fileName);
  for (let i = refs.length - 1; i >= 0; i--) {
    const r = refs[i]!;
    const to = map(r.specifier);
    if (to !== r.specifier) out = out.slice(0, r.start) + JSON.stringify(to) + out.slice(r.end);
  }
  return out;
}

/**
 * Where source code refers to the `Deno` global, as 1-based line numbers:
 * the identifier `Deno` read as a variable (`Deno.readFile`, `typeof Deno`)
 * or as a property of `globalThis`, `self` or `window`. Property names,
 * strings and comments that merely say "Deno" are not references, and
 * neither is feature detection on the global object, which a browser
 * evaluates to `undefined` (`globalThis.Deno?.loadavg()`,
 * `const deno = globalThis.Deno; if (deno) …`); `globalThis.Deno.pid` is one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { denoReferences } from "./transpile.ts";
 * const src = 'const a = "Deno";\nconst o = { Deno: 1 };\nDeno.exit(1);\nglobalThis.Deno.pid;\n' +
 *   "const load = globalThis.Deno?.loadavg()[0] ?? 0;\nconst deno = (globalThis).Deno;";
 * assert.deepEqual(denoReferences(src, "m.js"), [3, 4]);
 * ```
 */
export function denoReferences(source: string, fileName: string): number[] {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.ES2022, true);
  const lines: number[] = [];
  const at = (n: ts.Node) => file.getLineAndCharacterOfPosition(n.getStart(file)).line + 1;
  const visit = (node: ts.Node): void => {
    if (ts.isIdentifier(node) && node.text === "Deno") {
      const p = node.parent;
      const isName = (ts.isPropertyAccessExpression(p) && p.name === node) ||
        ((ts.isPropertyAssignment(p) || ts.isMethodDeclaration(p) ||
          ts.isPropertyDeclaration(p) || ts.isPropertySignature(p)) && p.name === node);
      let object: ts.Expression | undefined = ts.isPropertyAccessExpression(p) && p.name === node
        ? p.expression
        : undefined;
      while (object && ts.isParenthesizedExpression(object)) object = object.expression;
      const isGlobalProperty = !!object && ts.isIdentifier(object) &&
        ["globalThis", "self", "window"].includes(object.text);
      if (isGlobalProperty) {
        // feature detection reads globalThis.Deno, which is undefined in a browser; using it
        // without a check (globalThis.Deno.x, globalThis.Deno()) is a reference
        const up = p.parent;
        const used = ((ts.isPropertyAccessExpression(up) || ts.isElementAccessExpression(up)) &&
          up.expression === p && !up.questionDotToken) ||
          (ts.isCallExpression(up) && up.expression === p && !up.questionDotToken);
        if (used) lines.push(at(node));
      } else if (!isName) lines.push(at(node));
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return lines;
}
