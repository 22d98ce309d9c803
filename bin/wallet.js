#!/usr/bin/env node
// The `wallet` command: the compiled wallet when it is up to date, the TypeScript sources through tsx otherwise
// (bin/launch.js), so a fresh `npm ci` starts fast and an edited source is what runs.
import { load } from "./launch.js";

const { main } = await load("client/cli");
const code = await main(process.argv.slice(2));
// Interrupted (Ctrl-C): the command is still under way and stops here, in the state the line printed names.
if (code === 130) process.exit(130);
process.exitCode = code;
// Nothing should keep the process alive after the command; if a connection lingers, do not hang on it.
setTimeout(() => process.exit(code), 2000).unref();
