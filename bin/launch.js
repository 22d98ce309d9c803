// What bin/*.js run: the compiled JavaScript in dist/ (`npm run build`, run by `npm ci` and `npm install` through
// the `prepare` script) when it is there and no older than every TypeScript source it is built from; otherwise
// the sources themselves through tsx. Compiled, a command starts without loading a transpiler; a developer who
// edits a .ts file runs the edit (through tsx) until the next build, never stale JavaScript.
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** Written by scripts/build.mjs after tsc succeeded: its mtime is the build's. */
export const STAMP = "dist/.build-stamp";

/** The newest mtime (ms) of a .ts file or of a directory (an added, removed or renamed file) under `abs`. */
function newest(abs, recursive) {
  let st;
  try {
    st = statSync(abs);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return abs.endsWith(".ts") ? st.mtimeMs : 0;
  let max = st.mtimeMs;
  for (const e of readdirSync(abs, { withFileTypes: true })) {
    const p = path.join(abs, e.name);
    if (e.isDirectory()) {
      if (recursive) max = Math.max(max, newest(p, true));
    } else if (e.name.endsWith(".ts")) max = Math.max(max, statSync(p).mtimeMs);
  }
  return max;
}

/**
 * Whether dist/ under `root` holds a build at least as new as every source tsconfig.build.json includes (and
 * the tsconfig files themselves).
 */
export function compiledIsFresh(root = ROOT) {
  let built;
  try {
    built = statSync(path.join(root, STAMP)).mtimeMs;
  } catch {
    return false;
  }
  let include;
  try {
    include = JSON.parse(readFileSync(path.join(root, "tsconfig.build.json"), "utf8")).include;
  } catch {
    return false;
  }
  const mtime = (rel) => {
    try {
      return statSync(path.join(root, rel)).mtimeMs;
    } catch {
      return Number.POSITIVE_INFINITY;
    }
  };
  let sources = Math.max(mtime("tsconfig.json"), mtime("tsconfig.build.json"));
  for (const entry of include) {
    // "proto/*.ts": the folder's own .ts files; any other entry: a folder, recursively.
    const flat = entry.endsWith("/*.ts");
    sources = Math.max(
      sources,
      newest(path.join(root, flat ? entry.slice(0, -"/*.ts".length) : entry), !flat),
    );
  }
  return sources <= built;
}

/** Imports `<module>.ts` (a path relative to the project root, without extension), compiled when fresh. */
export async function load(module) {
  if (process.env.STATECHAIN_LAUNCH !== "tsx" && compiledIsFresh()) {
    // Stack traces name the .ts lines (tsc writes source maps beside the JavaScript).
    process.setSourceMapsEnabled?.(true);
    return import(pathToFileURL(path.join(ROOT, "dist", `${module}.js`)).href);
  }
  const { register } = await import("tsx/esm/api");
  register();
  return import(pathToFileURL(path.join(ROOT, `${module}.ts`)).href);
}
