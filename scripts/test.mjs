#!/usr/bin/env node
// `npm test`: static checks (types, lint, proto lint) then every test file under test/ with Node's runner.
// `npm test -- unit` skips integration and e2e folders; TEST_LONG=1 enables the long variants of e2e tests.
// Every test and hook has a timeout (TEST_TIMEOUT_MS, default 5 min, 20 with TEST_LONG) and every file twice that,
// so a hung test fails under its name and a file spinning in a synchronous loop fails under the file's name
// (scripts/test-guard.mjs).
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { fileTimeoutMs, testTimeoutMs } from "./test-guard.mjs";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const only = process.argv[2];
const bin = (name) => path.join(root, "node_modules/.bin", name);

function run(label, cmd, args, env = process.env) {
  const t0 = Date.now();
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit", env });
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  if (r.status !== 0) {
    process.stderr.write(`\n✗ ${label} failed (${secs} s)\n`);
    process.exit(r.status ?? 1);
  }
  process.stderr.write(`✓ ${label} (${secs} s)\n`);
}

function testFiles(dir) {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const p = path.join(dir, name);
      if (statSync(p).isDirectory()) return testFiles(p);
      return name.endsWith(".test.ts") ? [p] : [];
    });
}

if (process.env.SKIP_CHECKS !== "1") {
  run("typecheck (tsc --noEmit)", bin("tsc"), ["--noEmit"]);
  run("lint (biome)", bin("biome"), ["check", "."]);
  run("proto lint (buf)", bin("buf"), ["lint"]);
}
let files = testFiles(path.join(root, "test"));
if (only === "unit") files = files.filter((f) => !/[/\\](integration|e2e)[/\\]/.test(f));
else if (only) files = files.filter((f) => f.includes(only));
const testTimeout = testTimeoutMs();
run(
  `tests (${files.length} files; timeouts: ${testTimeout / 1000} s a test, ${fileTimeoutMs() / 1000} s a file)`,
  process.execPath,
  [
    "--expose-internals",
    "--import",
    "tsx",
    "--import",
    pathToFileURL(path.join(root, "scripts/test-guard.mjs")).href,
    "--test",
    "--test-reporter=spec",
    `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 2}`,
    `--test-timeout=${fileTimeoutMs()}`,
    ...files,
  ],
  { ...process.env, TEST_TIMEOUT_MS: String(testTimeout) },
);
