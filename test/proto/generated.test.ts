// The generated TypeScript under proto/gen must be exactly what `npm run gen` produces from proto/*.proto.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";

const root = path.resolve(import.meta.dirname, "../..");

function files(dir: string, rel = ""): string[] {
  return readdirSync(path.join(dir, rel))
    .sort()
    .flatMap((n) => {
      const r = path.join(rel, n);
      return statSync(path.join(dir, r)).isDirectory() ? files(dir, r) : [r];
    });
}

test("proto/gen is up to date with proto/*.proto (run `npm run gen` after editing a .proto)", () => {
  const out = mkdtempSync(path.join(tmpdir(), "gen-"));
  try {
    execFileSync(path.join(root, "node_modules/.bin/buf"), ["generate", "-o", out], {
      cwd: root,
      stdio: "pipe",
    });
    const fresh = path.join(out, "proto/gen");
    const committed = path.join(root, "proto/gen");
    assert.deepEqual(files(committed), files(fresh), "generated file list differs");
    for (const f of files(fresh)) {
      assert.equal(
        readFileSync(path.join(committed, f), "utf8"),
        readFileSync(path.join(fresh, f), "utf8"),
        `${f} is stale`,
      );
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test("buf lint passes", () => {
  execFileSync(path.join(root, "node_modules/.bin/buf"), ["lint"], { cwd: root, stdio: "pipe" });
});
