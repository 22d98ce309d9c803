// The wallet's Paillier pool worker thread (paillier-pool.ts): builds per-coin keys from their seeds (prime search,
// Π^mod, encryption nonces; ~250 ms of CPU each) at the lowest CPU priority. A seed comes in as bytes (its buffer
// transferred, so the main thread keeps no copy) and is wiped once the primes are found; the key goes back with its
// secret buffers transferred (moved, not copied: the main thread's wipe erases the only copy).
import { readFileSync, readlinkSync } from "node:fs";
import { getPriority, setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import { PaillierBlumProof } from "../proto/gen/ecdsa2p.ts";
import { wipe } from "../protocol/ecdsa2p/secret.ts";
import { paillierKeyFromSeed } from "../protocol/ecdsa2p/seeded-paillier.ts";
import type { PoolRequest, PoolWorkerMessage } from "./paillier-pool.ts";

const port = parentPort!;
const post = (msg: PoolWorkerMessage, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

/**
 * os.setPriority(0, nice) is setpriority(PRIO_PROCESS, 0, nice). POSIX makes the nice value per process, but
 * Linux (NPTL) keeps it per thread and takes who = 0 as the calling thread: this lowers the worker's thread only,
 * not the wallet's main thread (test/client/paillier-pool.test.ts checks both threads' values in /proc). Elsewhere
 * it may lower the whole process, so it is done on Linux only.
 */
function lowerPriority(nice: number): PoolWorkerMessage {
  if (process.platform !== "linux")
    return { type: "ready", error: `thread priorities are per process on ${process.platform}` };
  try {
    setPriority(0, nice);
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    // Field 19 of stat is the nice value (after the command name in parentheses).
    const stat = readFileSync("/proc/thread-self/stat", "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { type: "ready", tid, nice: getPriority(0), statNice: Number(fields[16]) };
  } catch (err) {
    return { type: "ready", error: (err as Error).message };
  }
}

const opts = workerData as { nice: number };

port.on("message", (req: PoolRequest) => {
  try {
    const key = paillierKeyFromSeed(req.seed, { bits: req.bits, nonces: req.nonces });
    wipe(req.seed);
    const secret = [key.secret.p, key.secret.q, key.secret.qInvP, key.secret.pInvQ];
    const nonces = key.nonces.flatMap(({ r, rn }) => [r, rn]);
    post(
      {
        type: "key",
        job: req.job,
        id: key.id,
        n: key.n,
        secret: key.secret,
        nonces: key.nonces,
        modulusProof: PaillierBlumProof.encode(key.modulusProof!).finish(),
      },
      [...secret, ...nonces].map((b) => b.buffer as ArrayBuffer),
    );
  } catch (err) {
    wipe(req.seed);
    const e = err as Error & { code?: string };
    post({ type: "failed", job: req.job, code: e.code ?? "PAILLIER_POOL_WORKER", message: e.message });
  }
});
post(lowerPriority(opts.nice));
