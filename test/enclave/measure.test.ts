import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { extend, measure } from "../../enclave/measure.ts";

function fakeProject(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "pcr-"));
  for (const d of ["enclave", "protocol", "attestation", "proto", "bin"]) mkdirSync(path.join(dir, d));
  writeFileSync(path.join(dir, "enclave/main.ts"), "export const x = 1;\n");
  writeFileSync(path.join(dir, "protocol/a.ts"), "export const a = 1;\n");
  writeFileSync(path.join(dir, "bin/enclave.js"), "// entry\n");
  writeFileSync(path.join(dir, "package-lock.json"), "{}\n");
  return dir;
}

test("PCR extension is SHA-384(PCR || digest)", () => {
  const zero = Buffer.alloc(48);
  const d = Buffer.alloc(48, 1);
  assert.equal(extend(zero, d).length, 48);
  assert.notDeepEqual(extend(zero, d), extend(d, zero));
});

test("measurements are stable and change with a line of enclave code", () => {
  const a = fakeProject();
  const b = path.join(tmpdir(), `pcr-copy-${process.pid}`);
  cpSync(a, b, { recursive: true });
  const m1 = measure(a);
  assert.deepEqual(measure(b), m1, "same code, same PCRs");
  writeFileSync(path.join(b, "enclave/main.ts"), "export const x = 2;\n");
  const m2 = measure(b);
  assert.notDeepEqual(m2.pcr0, m1.pcr0);
  assert.notDeepEqual(m2.pcr2, m1.pcr2);
  assert.deepEqual(m2.pcr1, m1.pcr1, "the runtime did not change");
});

test("files outside the enclave's code do not change its measurements", () => {
  const a = fakeProject();
  const m1 = measure(a);
  mkdirSync(path.join(a, "host"));
  writeFileSync(path.join(a, "host/x.ts"), "export {};\n");
  assert.deepEqual(measure(a), m1);
});

test("the compiled enclave code and the launcher it runs through are measured too", () => {
  const a = fakeProject();
  const m1 = measure(a);
  mkdirSync(path.join(a, "dist/enclave"), { recursive: true });
  writeFileSync(path.join(a, "dist/enclave/main.js"), "export const x = 1;\n");
  const m2 = measure(a);
  assert.notDeepEqual(m2.pcr2, m1.pcr2, "a compiled enclave file changes PCR2");
  writeFileSync(path.join(a, "dist/enclave/main.js"), "export const x = 3;\n");
  assert.notDeepEqual(measure(a).pcr2, m2.pcr2, "an edit of the compiled code changes PCR2");
  writeFileSync(path.join(a, "bin/launch.js"), "// launcher\n");
  assert.notDeepEqual(measure(a).pcr2, measure(fakeProject()).pcr2, "the launcher is measured");
  mkdirSync(path.join(a, "dist/host"), { recursive: true });
  const m3 = measure(a);
  writeFileSync(path.join(a, "dist/host/main.js"), "export {};\n");
  assert.deepEqual(measure(a), m3, "the compiled host is not the enclave's code");
});
