// The Paillier pool's worker thread: generates keys (primes, Π^mod, encryption nonces; ~200 ms of CPU each) at
// the lowest CPU priority, in the enclave's quiet time unless the pool runs low (see pool.ts). The main thread
// asks for a number of keys; each goes back with its secret buffers transferred (moved, not copied, so the main
// thread's wipe erases the only copy), and the worker's heap is collected before the next one, so its transient
// BigInt copies of the factors are zeroed (--clear-free-memory) rather than left behind.
import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import { PaillierBlumProof } from "../proto/gen/ecdsa2p.ts";
import { generatePaillierKeySync } from "../protocol/ecdsa2p/index.ts";
import { type PoolWorkerMessage, poolActivity } from "./pool.ts";

const port = parentPort!;
const post = (msg: PoolWorkerMessage, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

/** Linux applies setpriority to one thread when given its id; /proc/thread-self names this thread. */
function lowerPriority(nice: number): { tid: number; nice: number } | { error: string } {
  try {
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    setPriority(tid, nice);
    return { tid, nice };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

const opts = workerData as { nice: number; quietMs: number; activity: SharedArrayBuffer };
const activity = poolActivity(opts.activity);

/** Returns once the pool runs low, or no request is in progress and the last one ended at least quietMs ago. */
function waitForQuiet(): void {
  for (;;) {
    const calls = Atomics.load(activity.calls, 0);
    const quietFor = Date.now() - Number(Atomics.load(activity.lastEnd, 0));
    if (Atomics.load(activity.low, 0) === 1 || (calls === 0 && quietFor >= opts.quietMs)) return;
    Atomics.wait(activity.calls, 0, calls, calls > 0 ? opts.quietMs : opts.quietMs - quietFor);
  }
}

const gc = (globalThis as { gc?: () => void }).gc;
let wanted = 0;
let running = false;

async function run(): Promise<void> {
  running = true;
  while (wanted > 0) {
    wanted--;
    const key = generatePaillierKeySync({ between: waitForQuiet });
    const secret = [key.secret.p, key.secret.q, key.secret.qInvP, key.secret.pInvQ];
    const nonces = key.nonces.flatMap(({ r, rn }) => [r, rn]);
    post(
      {
        type: "key",
        id: key.id,
        n: key.n,
        secret: key.secret,
        nonces: key.nonces,
        modulusProof: PaillierBlumProof.encode(key.modulusProof!).finish(),
      },
      [...secret, ...nonces].map((b) => b.buffer as ArrayBuffer),
    );
    gc?.();
    gc?.(); // the second collection completes the first one's sweeping (see the enclave's scrubFreedMemory)
    await new Promise((resolve) => setImmediate(resolve)); // take requests that came in meanwhile
  }
  running = false;
}

port.on("message", (count: number) => {
  wanted += count;
  if (!running) void run();
});
post({ type: "ready", ...lowerPriority(opts.nice) });
