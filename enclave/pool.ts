// Paillier keys generated ahead of need (primes, Π^mod and encryption nonces), so a deposit or key update
// does not wait for prime generation. A worker thread makes them (pool-worker.ts) at the lowest CPU priority and,
// while the pool is at least half full, only in the enclave's quiet time: between its steps (a prime, a round of
// Π^mod) it waits while a request is in progress or was answered less than POOL_QUIET_MS ago. The refill used
// to run Π^mod on the event loop and its primes on two threads right after a key update took a key, and slowed
// the end of that transfer by ~50 ms; even a niced thread slows the other core here (~25 ms per transfer). Below
// half, the next keygens would soon generate keys inline (~130 ms more each), so the worker no longer waits.
// Keys never leave the enclave and each is used for exactly one share.
import { Worker } from "node:worker_threads";
import { PaillierBlumProof } from "../proto/gen/ecdsa2p.ts";
import { type PaillierKey, wipePaillierKey } from "../protocol/ecdsa2p/index.ts";

/** What the worker sends: a key (its secret buffers transferred with it), or that it runs and at which priority. */
export type PoolWorkerMessage =
  | {
      type: "key";
      id: Uint8Array;
      n: bigint;
      secret: PaillierKey["secret"];
      nonces: PaillierKey["nonces"];
      /** Π^mod, protobuf-encoded (a structured clone would turn its Buffers into plain arrays). */
      modulusProof: Uint8Array;
    }
  | { type: "ready"; tid: number; nice: number }
  | { type: "ready"; error: string };

/** Nice value of the worker thread: 19 is the lowest priority Linux has. */
export const POOL_NICE = 19;

/**
 * How long after the last answer the worker waits before a step: longer than the gaps between the enclave calls
 * of one transfer (the wallets' and the host's work between them, a scrub after an answer), so a refill runs
 * after the transfer that took the key rather than during it.
 */
export const POOL_QUIET_MS = 100;

/**
 * Shared with the worker: requests in progress, whether the pool runs low (1: the worker does not wait), and
 * Date.now() when the last request ended. The worker sleeps on `calls`, so a change of either is notified there.
 */
export interface PoolActivity {
  calls: Int32Array;
  low: Int32Array;
  lastEnd: BigInt64Array;
}

export const poolActivity = (buf: SharedArrayBuffer): PoolActivity => ({
  calls: new Int32Array(buf, 0, 1),
  low: new Int32Array(buf, 4, 1),
  lastEnd: new BigInt64Array(buf, 8, 1),
});

export class PaillierPool {
  private readonly ready: PaillierKey[] = [];
  /** Keys asked of the worker and not yet received. */
  private requested = 0;
  private worker: Worker | undefined;
  private stopped = false;
  private readonly shared = new SharedArrayBuffer(16);
  private readonly activity = poolActivity(this.shared);
  /** The worker's thread id and nice value once it runs (or why its priority could not be lowered). */
  workerInfo: { tid: number; nice: number } | { error: string } | undefined;

  constructor(
    private readonly target: number,
    private readonly onError: (err: Error) => void,
    private readonly opts: {
      nice?: number;
      quietMs?: number;
      /** Where its priority cannot be lowered (no /proc/thread-self: not Linux); the worker runs anyway. */
      onWarning?: (message: string) => void;
    } = {},
  ) {}

  get size(): number {
    return this.ready.length;
  }

  start(): void {
    this.refill();
  }

  /** The enclave started answering a request: the worker pauses at its next step. */
  begin(): void {
    Atomics.add(this.activity.calls, 0, 1);
  }

  /** The enclave answered a request: the worker resumes POOL_QUIET_MS after the last one ends. */
  end(): void {
    Atomics.store(this.activity.lastEnd, 0, BigInt(Date.now()));
    Atomics.sub(this.activity.calls, 0, 1);
  }

  /** A ready key, or undefined when the pool is empty (the caller then generates one inline). */
  take(): PaillierKey | undefined {
    const key = this.ready.shift();
    this.refill();
    return key;
  }

  private refill(): void {
    const low = this.ready.length < Math.ceil(this.target / 2) ? 1 : 0;
    if (Atomics.exchange(this.activity.low, 0, low) !== low) Atomics.notify(this.activity.calls, 0);
    const missing = this.target - this.ready.length - this.requested;
    if (this.stopped || missing <= 0) return;
    this.worker ??= this.spawn();
    this.requested += missing;
    this.worker.postMessage(missing);
  }

  private spawn(): Worker {
    const worker = new Worker(new URL("./pool-worker.js", import.meta.url), {
      workerData: {
        nice: this.opts.nice ?? POOL_NICE,
        quietMs: this.opts.quietMs ?? POOL_QUIET_MS,
        activity: this.shared,
      },
    });
    worker.unref();
    worker.on("message", (msg: PoolWorkerMessage) => {
      if (msg.type === "ready") {
        this.workerInfo = "error" in msg ? { error: msg.error } : { tid: msg.tid, nice: msg.nice };
        if ("error" in msg) this.opts.onWarning?.(`pool worker runs at normal priority: ${msg.error}`);
        return;
      }
      this.requested--;
      const key: PaillierKey = {
        id: msg.id,
        n: msg.n,
        secret: msg.secret,
        nonces: msg.nonces,
        modulusProof: PaillierBlumProof.decode(msg.modulusProof),
        used: false,
      };
      if (this.stopped) wipePaillierKey(key);
      else {
        this.ready.push(key);
        this.refill();
      }
    });
    // A failed worker is replaced at the next take(); until then keygens generate their keys inline.
    worker.on("error", (err) => this.onError(err));
    worker.on("exit", () => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.requested = 0;
    });
    return worker;
  }

  /** Stops the worker and wipes the keys not handed out. */
  stop(): void {
    this.stopped = true;
    void this.worker?.terminate();
    this.worker = undefined;
    for (const key of this.ready.splice(0)) wipePaillierKey(key);
  }
}
