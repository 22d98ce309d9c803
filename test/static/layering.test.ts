// The layout's one-way dependencies (DESIGN.md §2), checked on every import of every source file: `protocol` is
// pure, the enclave imports neither host, client, chain nor SQLite, and the owner's code (client/) and the
// operator's (host/) import nothing of each other; what both use lives in common/ (issue #22).
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";

const ROOT = path.resolve(import.meta.dirname, "../..");

/** Project folders each folder may import from (besides itself). */
const ALLOWED: Record<string, string[]> = {
  proto: ["protocol"],
  protocol: ["proto"],
  attestation: ["protocol", "proto"],
  enclave: ["protocol", "attestation", "proto"],
  common: [],
  chain: ["protocol", "proto", "common"],
  client: ["protocol", "attestation", "proto", "chain", "common"],
  host: ["protocol", "attestation", "proto", "chain", "common"],
};
/** Packages the enclave must not load (its trusted computing base stays small: DESIGN.md §2). */
const ENCLAVE_FORBIDDEN = ["sqlite3", "bcoin", "bitcoinjs-lib", "node:http", "node:https"];

function sources(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts") && !e.name.endsWith(".d.ts"))
    .map((e) => path.relative(ROOT, path.join(e.parentPath, e.name)));
}

function imports(file: string): string[] {
  const text = readFileSync(path.join(ROOT, file), "utf8");
  return [
    ...text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+"([^"]+)"/g),
    ...text.matchAll(/import\("([^"]+)"\)/g),
  ].map((m) => m[1]!);
}

test("every source folder imports only the project folders the layout allows", () => {
  const problems: string[] = [];
  for (const [folder, allowed] of Object.entries(ALLOWED))
    for (const file of sources(folder))
      for (const spec of imports(file)) {
        if (!spec.startsWith(".")) {
          if (folder === "enclave" && ENCLAVE_FORBIDDEN.includes(spec)) problems.push(`${file} → ${spec}`);
          continue;
        }
        const target = path.relative(ROOT, path.resolve(ROOT, path.dirname(file), spec)).split(path.sep)[0]!;
        if (target !== folder && !allowed.includes(target)) problems.push(`${file} → ${spec}`);
      }
  assert.deepEqual(problems, []);
});

test("the check sees a forbidden import (client → host) when there is one", () => {
  const target = path.relative(ROOT, path.resolve(ROOT, "client", "../host/db.ts")).split(path.sep)[0];
  assert.equal(target, "host");
  assert.ok(!ALLOWED.client!.includes("host"), "client/ may not import host/");
  assert.ok(
    imports("client/store.ts").some((s) => s.endsWith("common/sqlite.ts")),
    "the store's SQLite is common's",
  );
});
