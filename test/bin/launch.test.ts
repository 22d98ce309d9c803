// bin/launch.js runs dist/ only while the build is no older than every source tsconfig.build.json includes: an
// edited, added or removed .ts file (or an edited tsconfig) sends the commands back to tsx until the next build.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
// @ts-expect-error: plain JavaScript without declarations (bin/ is outside the TypeScript project)
import { compiledIsFresh, STAMP } from "../../bin/launch.js";

const fresh = compiledIsFresh as (root: string) => boolean;

test("the compiled output is used only when present and not older than any source", () => {
  const root = mkdtempSync(path.join(tmpdir(), "launch-"));
  try {
    const at = (rel: string, secondsAgo: number, text = "export {};\n") => {
      const p = path.join(root, rel);
      mkdirSync(path.dirname(p), { recursive: true });
      writeFileSync(p, text);
      const t = Date.now() / 1000 - secondsAgo;
      utimesSync(p, t, t);
      return p;
    };
    const age = (rel: string, secondsAgo: number) => {
      const t = Date.now() / 1000 - secondsAgo;
      utimesSync(path.join(root, rel), t, t);
    };
    at("tsconfig.json", 100, "{}");
    at("tsconfig.build.json", 100, JSON.stringify({ include: ["host", "proto/*.ts"] }));
    at("host/a.ts", 100);
    at("host/sub/b.ts", 100);
    at("proto/x.ts", 100);
    at("proto/gen/y.ts", 10); // not included: proto/*.ts is proto's own files only
    at("host/notes.md", 10); // not a source
    for (const d of ["host/sub", "host", "proto/gen", "proto"]) age(d, 100);
    assert.equal(fresh(root), false, "no build stamp: tsx");
    at(STAMP, 50, "{}");
    assert.equal(fresh(root), true, "built after every source");
    at("host/sub/b.ts", 20);
    assert.equal(fresh(root), false, "a source edited after the build");
    at(STAMP, 5, "{}");
    assert.equal(fresh(root), true, "built again");
    rmSync(path.join(root, "host/a.ts"));
    assert.equal(fresh(root), false, "a source removed after the build (its folder changed)");
    at(STAMP, 0, "{}");
    at("tsconfig.build.json", -5, JSON.stringify({ include: ["host", "proto/*.ts"] }));
    assert.equal(fresh(root), false, "the build configuration changed after the build");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
