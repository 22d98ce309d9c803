// The wallet's pool of per-coin Paillier keys (issue #21): `prepare(path)` when the wallet hands out a receive
// address or starts a deposit builds that coin's key in the background, in a worker thread at the lowest CPU
// priority (paillier-pool-worker.ts), so the wallet's main thread stays responsive; `take(path)` returns it when
// the keygen needs it (waiting if it is not ready yet, with a "waiting" event for the CLI to say so); `discard(path)`
// wipes it when the coin is sent or closed. Keys are derived (paillier-keys.ts), so a key is the same whichever
// thread builds it; an optional cache (the wallet file, walletPaillierCache) saves rebuilding it.
//
// Seeds cross to the worker as bytes in a buffer of their own, transferred (the main thread keeps no copy); keys come
// back with their secret buffers transferred. The pool holds a key until it is taken or discarded; a taken key is
// the caller's (wipePaillierKey when done).
import { EventEmitter } from "node:events";
import { Worker } from "node:worker_threads";
import { PaillierBlumProof } from "../proto/gen/ecdsa2p.ts";
import { KEYGEN_NONCES, type PaillierKey, wipePaillierKey } from "../protocol/ecdsa2p/paillier.ts";
import { PAILLIER_BITS } from "../protocol/ecdsa2p/params.ts";
import { secretBytes, wipe } from "../protocol/ecdsa2p/secret.ts";
import { ProtocolError } from "../protocol/errors.ts";

/** Main thread → worker: build the key of one seed. */
export interface PoolRequest {
  job: number;
  seed: Uint8Array;
  bits: number;
  nonces: number;
}

/** Worker → main thread. */
export type PoolWorkerMessage =
  | {
      type: "key";
      job: number;
      id: Uint8Array;
      n: bigint;
      secret: PaillierKey["secret"];
      nonces: PaillierKey["nonces"];
      /** Π^mod, protobuf-encoded (a structured clone would turn its Buffers into plain arrays). */
      modulusProof: Uint8Array;
    }
  | { type: "failed"; job: number; code: string; message: string }
  | { type: "ready"; tid: number; nice: number; statNice: number }
  | { type: "ready"; error: string };

/** Nice value of the worker thread: 19 is the lowest priority Linux has. */
export const PAILLIER_POOL_NICE = 19;

export interface PaillierKeyCache {
  load(path: string): Promise<PaillierKey | undefined>;
  save(path: string, key: PaillierKey): Promise<void>;
  remove(path: string): Promise<void>;
}

export interface PaillierPoolOptions {
  /** The seed of the key at `path` (paillierSeed(keys, path)); the pool wipes it once it is sent to the worker. */
  seedFor: (path: string) => Uint8Array;
  cache?: PaillierKeyCache;
  bits?: number;
  /** Encryption nonces built with each key (default KEYGEN_NONCES). */
  nonces?: number;
  nice?: number;
}

type Entry = {
  state: "loading" | "queued" | "building" | "ready";
  key?: PaillierKey;
  waiter?: { resolve: (k: PaillierKey) => void; reject: (e: Error) => void };
  job?: number;
};

export class PaillierPoolError extends ProtocolError {
  override name = "PaillierPoolError";
}

/**
 * Events: "waiting" (path) when take() has to wait for a key still being built; "ready" (path) when a key is
 * ready; "failed" (path, error) when a key could not be built or cached (a waiting take() rejects with it too;
 * not "error", which EventEmitter throws when nobody listens).
 */
export class PaillierKeyPool extends EventEmitter {
  private readonly entries = new Map<string, Entry>();
  /** Paths waiting for the worker, in order (a path a take() waits for goes first). */
  private readonly queue: string[] = [];
  private worker: Worker | undefined;
  private busy: string | undefined;
  private nextJob = 1;
  private closed = false;
  /** Cache writes under way (flush() waits for them). */
  private readonly saving = new Map<string, Promise<void>>();
  private idleWaiters: (() => void)[] = [];
  /** The worker's thread id and nice value once it runs (or why its priority could not be lowered). */
  workerInfo: { tid: number; nice: number; statNice: number } | { error: string } | undefined;

  constructor(private readonly opts: PaillierPoolOptions) {
    super();
  }

  /** "loading" (from the cache), "queued", "building", "ready", or undefined when the pool knows nothing of it. */
  status(path: string): Entry["state"] | undefined {
    return this.entries.get(path)?.state;
  }

  /** Starts building the key at `path` in the background (nothing when it is already under way or ready). */
  prepare(path: string): void {
    this.checkOpen();
    if (this.entries.has(path)) return;
    const entry: Entry = { state: "loading" };
    this.entries.set(path, entry);
    const cache = this.opts.cache;
    if (!cache) {
      this.enqueue(path, entry);
      return;
    }
    cache.load(path).then(
      (key) => {
        if (this.entries.get(path) !== entry) {
          if (key) wipePaillierKey(key);
          return;
        }
        if (key) this.settle(path, entry, key);
        else this.enqueue(path, entry);
        this.checkIdle();
      },
      (err: Error) => {
        // An unreadable row is rebuilt from the seed (it is only a cache); the error is reported all the same.
        this.emit("failed", path, err);
        if (this.entries.get(path) === entry) this.enqueue(path, entry);
        this.checkIdle();
      },
    );
  }

  /**
   * The key at `path`, built now if prepare() was not called. The pool forgets the key it hands out (the cache
   * keeps its row until discard). `onWaiting` (and the "waiting" event) when it is not ready yet.
   */
  async take(path: string, opts: { onWaiting?: () => void } = {}): Promise<PaillierKey> {
    this.checkOpen();
    this.prepare(path);
    const entry = this.entries.get(path)!;
    if (entry.state === "ready") {
      this.entries.delete(path);
      return entry.key!;
    }
    if (entry.waiter)
      throw new PaillierPoolError("PAILLIER_POOL_BUSY", `the Paillier key ${path} is already being taken`);
    const i = this.queue.indexOf(path);
    if (i > 0) {
      this.queue.splice(i, 1);
      this.queue.unshift(path);
    }
    opts.onWaiting?.();
    this.emit("waiting", path);
    this.worker?.ref();
    return new Promise((resolve, reject) => {
      entry.waiter = { resolve, reject };
    });
  }

  /** Wipes the key at `path` (ready, or as soon as the worker returns it) and deletes its cached row. */
  async discard(path: string): Promise<void> {
    const entry = this.entries.get(path);
    if (entry) {
      this.entries.delete(path);
      const q = this.queue.indexOf(path);
      if (q >= 0) this.queue.splice(q, 1);
      if (entry.key) wipePaillierKey(entry.key);
      entry.waiter?.reject(
        new PaillierPoolError("PAILLIER_KEY_DISCARDED", `the Paillier key ${path} was discarded`),
      );
    }
    await this.saving.get(path); // a write under way would bring the row back after the delete
    await this.opts.cache?.remove(path);
  }

  /**
   * Resolves once nothing is loading, queued, being built or being written to the cache: a short-lived process
   * (one CLI command) calls it before it exits, so that the keys it prepared are in the wallet file for later.
   */
  flush(): Promise<void> {
    if (this.idle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private idle(): boolean {
    if (this.closed) return true;
    if (this.busy !== undefined || this.queue.length > 0 || this.saving.size > 0) return false;
    for (const e of this.entries.values()) if (e.state === "loading") return false;
    return true;
  }

  private checkIdle(): void {
    if (!this.idle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Stops the worker and wipes every key not handed out. */
  async close(): Promise<void> {
    this.closed = true;
    for (const path of [...this.entries.keys()]) {
      const entry = this.entries.get(path)!;
      if (entry.key) wipePaillierKey(entry.key);
      entry.waiter?.reject(new PaillierPoolError("PAILLIER_POOL_CLOSED", "the Paillier key pool was closed"));
    }
    this.entries.clear();
    this.queue.length = 0;
    this.checkIdle();
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }

  private checkOpen(): void {
    if (this.closed)
      throw new PaillierPoolError("PAILLIER_POOL_CLOSED", "the Paillier key pool is closed", "precondition");
  }

  private enqueue(path: string, entry: Entry): void {
    entry.state = "queued";
    if (entry.waiter) this.queue.unshift(path);
    else this.queue.push(path);
    this.pump();
  }

  private settle(path: string, entry: Entry, key: PaillierKey): void {
    entry.state = "ready";
    entry.key = key;
    this.emit("ready", path);
    if (entry.waiter) {
      this.entries.delete(path);
      entry.waiter.resolve(key);
    }
  }

  private pump(): void {
    if (this.closed || this.busy !== undefined) return;
    const path = this.queue.shift();
    if (path === undefined) {
      this.worker?.unref();
      this.checkIdle();
      return;
    }
    const entry = this.entries.get(path)!;
    let seed: Uint8Array;
    try {
      const derived = this.opts.seedFor(path);
      seed = secretBytes(derived.length);
      seed.set(derived);
      wipe(derived);
    } catch (err) {
      this.fail(path, entry, err as Error);
      this.pump();
      return;
    }
    this.worker ??= this.spawn();
    this.worker.ref();
    entry.state = "building";
    entry.job = this.nextJob++;
    this.busy = path;
    const req: PoolRequest = {
      job: entry.job,
      seed,
      bits: this.opts.bits ?? PAILLIER_BITS,
      nonces: this.opts.nonces ?? KEYGEN_NONCES,
    };
    this.worker.postMessage(req, [seed.buffer as ArrayBuffer]); // moved: seed is detached (empty) here now
  }

  private fail(path: string, entry: Entry, err: Error): void {
    if (this.entries.get(path) === entry) this.entries.delete(path);
    this.emit("failed", path, err);
    entry.waiter?.reject(err);
  }

  /** The entry a worker answer belongs to (undefined when it was discarded meanwhile). */
  private finished(job: number): { path: string; entry: Entry } | undefined {
    const path = this.busy;
    this.busy = undefined;
    const entry = path === undefined ? undefined : this.entries.get(path);
    return entry && entry.job === job ? { path: path!, entry } : undefined;
  }

  private spawn(): Worker {
    const worker = new Worker(new URL("./paillier-pool-worker.js", import.meta.url), {
      workerData: { nice: this.opts.nice ?? PAILLIER_POOL_NICE },
    });
    worker.on("message", (msg: PoolWorkerMessage) => {
      if (msg.type === "ready") {
        this.workerInfo =
          "error" in msg ? { error: msg.error } : { tid: msg.tid, nice: msg.nice, statNice: msg.statNice };
        return;
      }
      const done = this.finished(msg.job);
      if (msg.type === "failed") {
        if (done) this.fail(done.path, done.entry, new PaillierPoolError(msg.code, msg.message, "internal"));
      } else {
        const key: PaillierKey = {
          id: msg.id,
          n: msg.n,
          secret: msg.secret,
          nonces: msg.nonces,
          modulusProof: PaillierBlumProof.decode(msg.modulusProof),
          used: false,
        };
        if (!done || this.closed) wipePaillierKey(key);
        else {
          // A key a take() is waiting for is used at once: only a key kept for later goes to the cache.
          const keep = !done.entry.waiter;
          this.settle(done.path, done.entry, key);
          if (keep && this.opts.cache) {
            const path = done.path;
            const saved: Promise<void> = this.opts.cache
              .save(path, key)
              .catch((err: Error) => void this.emit("failed", path, err))
              .finally(() => {
                if (this.saving.get(path) === saved) this.saving.delete(path);
                this.checkIdle();
              });
            this.saving.set(path, saved);
          }
        }
      }
      this.pump();
    });
    worker.on("error", (err) => {
      const path = this.busy;
      this.busy = undefined;
      const entry = path === undefined ? undefined : this.entries.get(path);
      if (path !== undefined && entry) this.fail(path, entry, err);
    });
    worker.on("exit", () => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.pump(); // a new worker for what is still queued
    });
    return worker;
  }
}
