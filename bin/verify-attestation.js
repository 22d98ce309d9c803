#!/usr/bin/env node
// The `verify-attestation` command: runs the TypeScript sources through tsx, so a fresh `npm ci` needs no build.
import { register } from "tsx/esm/api";

register();
const { runCli } = await import("../attestation/cli.ts");
try {
  process.exitCode = runCli(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`verify-attestation: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 2;
}
