#!/usr/bin/env node
// The `verify-attestation` command: the compiled verifier when it is up to date, the TypeScript sources through
// tsx otherwise (bin/launch.js).
import { load } from "./launch.js";

const { runCli } = await load("attestation/cli");
try {
  process.exitCode = runCli(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`verify-attestation: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 2;
}
