// Every assert.ok in test/ says what it expects. On Node 20 under tsx, a failing `assert.ok(x)` without a message
// builds one from the source around the call and can spin at full CPU for minutes doing it (it hung
// test/integration/host-rpc.test.ts for 5–8 minutes; with a message it failed in half a second). This parses each
// .ts file under test/ with the TypeScript compiler and names every such call that has no message argument.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import ts from "typescript";

const TEST_DIR = path.resolve(import.meta.dirname, "..");
const ROOT = path.resolve(TEST_DIR, "..");
const ASSERT_MODULES = new Set(["assert", "assert/strict", "node:assert", "node:assert/strict"]);

function tsFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const p = path.join(dir, name);
      if (statSync(p).isDirectory()) return tsFiles(p);
      return name.endsWith(".ts") ? [p] : [];
    });
}

/**
 * The local names the file gives node:assert: `modules` for the module itself (default or namespace import,
 * `import x = require(...)`), `oks` for its `ok` function, `stricts` for its `strict` export.
 */
function assertNames(sf: ts.SourceFile): { modules: Set<string>; oks: Set<string>; stricts: Set<string> } {
  const names = { modules: new Set<string>(), oks: new Set<string>(), stricts: new Set<string>() };
  for (const st of sf.statements) {
    if (ts.isImportDeclaration(st) && ts.isStringLiteral(st.moduleSpecifier)) {
      if (!ASSERT_MODULES.has(st.moduleSpecifier.text) || !st.importClause) continue;
      const clause = st.importClause;
      if (clause.name) names.modules.add(clause.name.text);
      const bindings = clause.namedBindings;
      if (bindings && ts.isNamespaceImport(bindings)) names.modules.add(bindings.name.text);
      if (bindings && ts.isNamedImports(bindings)) {
        for (const el of bindings.elements) {
          const imported = (el.propertyName ?? el.name).text;
          if (imported === "default") names.modules.add(el.name.text);
          if (imported === "ok") names.oks.add(el.name.text);
          if (imported === "strict") names.stricts.add(el.name.text);
        }
      }
    } else if (
      ts.isImportEqualsDeclaration(st) &&
      ts.isExternalModuleReference(st.moduleReference) &&
      ts.isStringLiteral(st.moduleReference.expression) &&
      ASSERT_MODULES.has(st.moduleReference.expression.text)
    ) {
      names.modules.add(st.name.text);
    }
  }
  return names;
}

/** file:line and the call's text, for each assert.ok-like call in `source` with fewer than two arguments. */
export function messagelessOks(file: string, source: string): string[] {
  const sf = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const { modules, oks, stricts } = assertNames(sf);
  // Callees that are `ok`: assert, assert.ok, assert.strict, assert.strict.ok, ok, strict, strict.ok.
  const isModule = (e: ts.Expression): boolean =>
    (ts.isIdentifier(e) && (modules.has(e.text) || stricts.has(e.text))) ||
    (ts.isPropertyAccessExpression(e) && e.name.text === "strict" && isModule(e.expression));
  const isOk = (e: ts.Expression): boolean =>
    isModule(e) ||
    (ts.isIdentifier(e) && oks.has(e.text)) ||
    (ts.isPropertyAccessExpression(e) && e.name.text === "ok" && isModule(e.expression));
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && isOk(node.expression)) {
      const spread = node.arguments.some((a) => ts.isSpreadElement(a));
      if (!spread && node.arguments.length < 2) {
        const line = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
        const text = node.getText(sf).replace(/\s+/g, " ");
        found.push(
          `${path.relative(ROOT, file)}:${line}: ${text.length > 100 ? `${text.slice(0, 97)}...` : text}`,
        );
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

test("the check recognises message-less assert.ok calls in every spelling, and passes those with a message", () => {
  const source = [
    'import assert from "node:assert/strict";',
    'import * as a2 from "node:assert";',
    'import { ok, strict as s } from "node:assert";',
    "assert.ok(x);",
    "assert(x);",
    "assert.strict.ok(x);",
    "assert.strict(x);",
    "a2.ok(",
    "  x,",
    ");",
    "ok(x);",
    "s.ok(x);",
    "s(x);",
    'assert.ok(x, "x is set");',
    'assert(x, "x is set");',
    'ok(x, "x is set");',
    "assert.equal(x, 1);",
    "other.ok(x);",
  ].join("\n");
  const lines = messagelessOks(path.join(TEST_DIR, "example.ts"), source).map((f) => f.split(":")[1]);
  assert.deepEqual(lines, ["4", "5", "6", "7", "8", "11", "12", "13"], "the message-less calls, by line");
});

test("every assert.ok in test/ has a message (on Node 20 a failing assert.ok without one can hang for minutes)", () => {
  const found = tsFiles(TEST_DIR).flatMap((f) => messagelessOks(f, readFileSync(f, "utf8")));
  assert.deepEqual(found, [], "assert.ok calls without a message (give each one saying what is expected):");
});
