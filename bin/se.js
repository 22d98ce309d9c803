#!/usr/bin/env node
// The `se` command: the compiled host when it is up to date, the TypeScript sources through tsx otherwise
// (bin/launch.js), so a fresh `npm ci` starts fast and an edited source is what runs.
import { load } from "./launch.js";

await load("host/cli");
