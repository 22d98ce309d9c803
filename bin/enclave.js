#!/usr/bin/env node
// Entry point of the enclave process (spawned by the host in simulator mode, run by the image on Nitro).
// Before anything allocates: V8 zeroes the memory it frees, and the enclave may force a collection after an
// erasure, so transient copies of a secret (BigInt digits, strings) do not survive in freed heap memory.
import v8 from "node:v8";
import vm from "node:vm";

v8.setFlagsFromString("--clear-free-memory");
v8.setFlagsFromString("--expose-gc");
globalThis.gc ??= vm.runInNewContext("gc");

const { register } = await import("tsx/esm/api");
register();
await import("../enclave/main.ts");
