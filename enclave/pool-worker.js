// Entry of the Paillier pool's worker thread (enclave/pool-worker.ts): workers do not inherit the main thread's
// TypeScript loader, so this registers it, and exposes gc() here too (the flag is set by bin/enclave.js).
import vm from "node:vm";

globalThis.gc ??= (() => {
  try {
    return vm.runInNewContext("gc");
  } catch {
    return undefined;
  }
})();
const { register } = await import("tsx/esm/api");
register();
await import("./pool-worker.ts");
