#!/usr/bin/env node
// `npm run build` (and `prepare`, which `npm ci` and `npm install` run): compiles the sources to dist/ with
// tsconfig.build.json, then stamps the build (dist/.build-stamp) for bin/launch.js, which runs dist/ only while
// the stamp is no older than every source. The stamp goes first, so a failed build leaves none.
// `--if-available`: without TypeScript installed (npm ci --omit=dev) there is nothing to build: the commands
// then run the sources through tsx, a runtime dependency.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const stamp = path.join(root, "dist", ".build-stamp");
const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc");
rmSync(stamp, { force: true });
if (!existsSync(tsc)) {
  const msg = "build: TypeScript is not installed; bin/*.js will run the sources through tsx";
  process.stderr.write(`${msg}\n`);
  process.exit(process.argv.includes("--if-available") ? 0 : 1);
}
const t0 = Date.now();
const r = spawnSync(process.execPath, [tsc, "-p", path.join(root, "tsconfig.build.json")], {
  cwd: root,
  stdio: "inherit",
});
if (r.status !== 0) {
  process.stderr.write(
    "build: tsc failed; bin/*.js will run the sources through tsx until a build succeeds\n",
  );
  process.exit(r.status ?? 1);
}
mkdirSync(path.dirname(stamp), { recursive: true });
writeFileSync(stamp, `${JSON.stringify({ builtAt: new Date().toISOString() })}\n`);
process.stderr.write(`build: dist/ compiled in ${Date.now() - t0} ms\n`);
