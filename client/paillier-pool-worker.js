// Entry of the wallet's Paillier pool worker (client/paillier-pool-worker.ts): workers do not inherit the main
// thread's TypeScript loader, so this registers tsx first (the same trick as enclave/pool-worker.js).
const { register } = await import("tsx/esm/api");
register();
await import("./paillier-pool-worker.ts");
