// The project's root directory, found from a module's URL: the sources run from <root>/<folder>/, the compiled
// JavaScript from <root>/dist/<folder>/ (bin/*.js pick one), so paths relative to a module differ between the two.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The nearest directory above the module at `moduleUrl` that holds a package.json. */
export function packageRoot(moduleUrl: string): string {
  let dir = path.dirname(fileURLToPath(moduleUrl));
  while (!existsSync(path.join(dir, "package.json"))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(moduleUrl)}`);
    dir = up;
  }
  return dir;
}

/** The project's version (package.json). */
export function packageVersion(moduleUrl: string): string {
  return JSON.parse(readFileSync(path.join(packageRoot(moduleUrl), "package.json"), "utf8")).version;
}
