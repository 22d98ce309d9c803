#!/usr/bin/env node
// Entry point of the enclave process (spawned by the host in simulator mode, run by the image on Nitro).
import { register } from "tsx/esm/api";

register();
await import("../enclave/main.ts");
