#!/usr/bin/env node
// The `wallet` command: runs the TypeScript sources through tsx, so a fresh `npm ci` needs no build step.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../client/cli.ts");
const code = await main(process.argv.slice(2));
process.exitCode = code;
// Nothing should keep the process alive after the command; if a connection lingers, do not hang on it.
setTimeout(() => process.exit(code), 2000).unref();
