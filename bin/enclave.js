#!/usr/bin/env node
// Entry point of the enclave process (spawned by the host in simulator mode, run by the image on Nitro).
// Before anything allocates: V8 zeroes the memory it frees, and the enclave may force a collection after an
// erasure, so transient copies of a secret (BigInt digits, strings) do not survive in freed heap memory.
import v8 from "node:v8";
import vm from "node:vm";

v8.setFlagsFromString("--clear-free-memory");
v8.setFlagsFromString("--expose-gc");
globalThis.gc ??= vm.runInNewContext("gc");

// The compiled enclave when dist/ is fresh (bin/launch.js), as the other commands: no transpiler in the process,
// so its heap, and every full collection the erasure scrub runs over it, is a fraction of the size.
const { load } = await import("./launch.js");
await load("enclave/main");
