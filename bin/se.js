#!/usr/bin/env node
// The `se` command: runs the TypeScript sources through tsx, so a fresh `npm ci` needs no build step.
import { register } from "tsx/esm/api";

register();
await import("../host/cli.ts");
