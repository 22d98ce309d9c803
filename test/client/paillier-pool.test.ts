// The wallet's Paillier key pool (client/paillier-pool.ts): keys built in a low-priority worker thread equal the
// ones derived on the main thread, take() waits (and says so) or returns at once, a queued take jumps the queue,
// discard wipes, close wipes and rejects, and the wallet-file cache is used when it holds the key.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { getPriority } from "node:os";
import { performance } from "node:perf_hooks";
import { test } from "node:test";
import { KeyTree } from "../../client/keys.ts";
import {
  paillierKeyPath,
  paillierSeed,
  savePaillierKey,
  walletPaillierCache,
} from "../../client/paillier-keys.ts";
import { type PaillierKeyCache, PaillierKeyPool } from "../../client/paillier-pool.ts";
import { MIN_SCRYPT_N } from "../../client/secret-box.ts";
import { WalletStore } from "../../client/store.ts";
import { type PaillierKey, paillierFactors } from "../../protocol/ecdsa2p/paillier.ts";
import { verifyModulus } from "../../protocol/ecdsa2p/proofs/mod.ts";
import { seededBlumPrimes } from "../../protocol/ecdsa2p/seeded-paillier.ts";
import { PASSPHRASE, tmpWalletFile } from "./wallet-helpers.ts";

const WALLET_SEED = Uint8Array.from({ length: 64 }, (_, i) => 0x5c ^ (i * 7));
const keys = new KeyTree(WALLET_SEED, "regtest");
const path = (slot: number, keygen = 0) => paillierKeyPath("regtest", 0, slot, keygen);
const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;
const allZero = (b: Uint8Array) => b.every((x) => x === 0);

/** A cache that keeps the keys it is given (so a test can look at what the pool holds) and logs its calls. */
function recordingCache() {
  const saved = new Map<string, PaillierKey>();
  const calls: string[] = [];
  const cache: PaillierKeyCache = {
    load: async (p) => {
      calls.push(`load ${p}`);
      return undefined;
    },
    save: async (p, k) => {
      calls.push(`save ${p}`);
      saved.set(p, k);
    },
    remove: async (p) => void calls.push(`remove ${p}`),
  };
  return { cache, saved, calls };
}

const nextEvent = (pool: PaillierKeyPool, name: string) =>
  new Promise<unknown[]>((resolve) => pool.once(name, (...args) => resolve(args)));

test("a key built in the worker equals the one derived on the main thread; take waits and says so", async () => {
  const seeds: number[] = [];
  const pool = new PaillierKeyPool({
    seedFor: (p) => {
      const s = paillierSeed(keys, p);
      seeds.push(s.length);
      return s;
    },
  });
  try {
    let waited = 0;
    const waiting = nextEvent(pool, "waiting");
    const key = await pool.take(path(0), { onWaiting: () => void waited++ });
    assert.deepEqual(await waiting, [path(0)]);
    assert.equal(waited, 1);
    const main = seededBlumPrimes(paillierSeed(keys, path(0)));
    const { p, q } = paillierFactors(key.secret);
    assert.equal(p, main.p);
    assert.equal(q, main.q);
    assert.equal(key.n, main.p * main.q);
    verifyModulus(key.n, key.modulusProof);
    assert.equal(key.nonces.length, 2);
    assert.equal(key.used, false);
    assert.deepEqual(seeds, [64]);
    assert.equal(pool.status(path(0)), undefined, "a taken key is no longer the pool's");
  } finally {
    await pool.close();
  }
});

test("the worker thread runs at nice 19 and the wallet's main thread keeps its priority (Linux)", {
  skip: process.platform !== "linux",
}, async () => {
  const niceOf = (stat: string) => Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
  const before = getPriority(0);
  const mainStatBefore = niceOf(readFileSync("/proc/thread-self/stat", "utf8"));
  const pool = new PaillierKeyPool({ seedFor: (p) => paillierSeed(keys, p) });
  try {
    await pool.take(path(1));
    const info = pool.workerInfo as { tid: number; nice: number; statNice: number };
    assert.equal(info.nice, 19);
    assert.equal(info.statNice, 19);
    assert.notEqual(info.tid, process.pid);
    // Read from the outside too: the worker thread's own stat file, while it still runs.
    assert.equal(niceOf(readFileSync(`/proc/self/task/${info.tid}/stat`, "utf8")), 19);
    assert.equal(getPriority(0), before, "setPriority(0, …) in the worker left the main thread alone");
    assert.equal(niceOf(readFileSync("/proc/thread-self/stat", "utf8")), mainStatBefore);
    assert.equal(niceOf(readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8")), mainStatBefore);
  } finally {
    await pool.close();
  }
});

test("prepare builds ahead: take then returns at once; the cache is asked first and given the key", async () => {
  const { cache, saved, calls } = recordingCache();
  const pool = new PaillierKeyPool({ seedFor: (p) => paillierSeed(keys, p), cache });
  try {
    const ready = nextEvent(pool, "ready");
    pool.prepare(path(2));
    pool.prepare(path(2)); // a second prepare of the same path does nothing
    assert.deepEqual(await ready, [path(2)]);
    assert.equal(pool.status(path(2)), "ready");
    let waited = 0;
    const key = await pool.take(path(2), { onWaiting: () => void waited++ });
    assert.equal(waited, 0);
    assert.equal(saved.get(path(2)), key);
    assert.deepEqual(calls, [`load ${path(2)}`, `save ${path(2)}`]);
  } finally {
    await pool.close();
  }
});

test("a take for a queued path goes before the paths prepared earlier", async () => {
  const pool = new PaillierKeyPool({ seedFor: (p) => paillierSeed(keys, p) });
  const order: string[] = [];
  pool.on("ready", (p: string) => order.push(p));
  try {
    pool.prepare(path(3));
    pool.prepare(path(4));
    pool.prepare(path(5));
    await pool.take(path(5));
    assert.deepEqual(order, [path(3), path(5)], "3 was already being built; 5 went before 4");
    assert.equal(pool.status(path(4)), "building");
  } finally {
    await pool.close();
  }
});

test("discard wipes a ready key (secret bytes zero, nonces gone) and deletes its cached row", async () => {
  const { cache, saved, calls } = recordingCache();
  const pool = new PaillierKeyPool({ seedFor: (p) => paillierSeed(keys, p), cache });
  try {
    const ready = nextEvent(pool, "ready");
    pool.prepare(path(6));
    await ready;
    const held = saved.get(path(6))!;
    assert.ok(!allZero(held.secret.p), "a key held by the caller is not wiped");
    await pool.discard(path(6));
    for (const b of [held.secret.p, held.secret.q, held.secret.qInvP, held.secret.pInvQ])
      assert.ok(allZero(b), "a discarded key's secret bytes are zero");
    assert.equal(held.nonces.length, 0);
    assert.equal(pool.status(path(6)), undefined);
    assert.equal(calls.at(-1), `remove ${path(6)}`);
  } finally {
    await pool.close();
  }
});

test("discard while the key is being built: the waiting take rejects, the key is dropped (never cached)", async () => {
  const { cache, calls } = recordingCache();
  const pool = new PaillierKeyPool({ seedFor: (p) => paillierSeed(keys, p), cache });
  try {
    const taking = pool.take(path(7));
    const rejected = assert.rejects(taking, code("PAILLIER_KEY_DISCARDED"));
    while (pool.status(path(7)) !== "building") await new Promise((r) => setTimeout(r, 1));
    await pool.discard(path(7));
    await rejected;
    const next = nextEvent(pool, "ready");
    pool.prepare(path(8)); // the worker goes on with the next path after dropping the discarded key
    assert.deepEqual(await next, [path(8)]);
    assert.equal(pool.status(path(7)), undefined);
    assert.ok(!calls.includes(`save ${path(7)}`), "the discarded key was not handed to the cache");
    assert.ok(calls.includes(`remove ${path(7)}`), "discard removes the key from the cache");
  } finally {
    await pool.close();
  }
});

test("close wipes what is held and rejects what waits; a closed pool refuses work", async () => {
  const { cache, saved } = recordingCache();
  const pool = new PaillierKeyPool({ seedFor: (p) => paillierSeed(keys, p), cache });
  const ready = nextEvent(pool, "ready");
  pool.prepare(path(9));
  await ready;
  const waiting = pool.take(path(10));
  const rejected = assert.rejects(waiting, code("PAILLIER_POOL_CLOSED"));
  await pool.close();
  await rejected;
  assert.ok(allZero(saved.get(path(9))!.secret.p), "closing wipes the keys it still holds");
  assert.throws(() => pool.prepare(path(11)), code("PAILLIER_POOL_CLOSED"));
});

test("a seed that cannot be derived fails that path only; the wallet-file cache serves a stored key", async () => {
  const file = tmpWalletFile();
  const store = await WalletStore.create(file, PASSPHRASE, { scryptN: MIN_SCRYPT_N });
  const bad = new PaillierKeyPool({ seedFor: () => new Uint8Array(8).fill(1) });
  try {
    await assert.rejects(bad.take(path(12)), code("PAILLIER_SEED_LENGTH"));
  } finally {
    await bad.close();
  }
  // Build once through a pool backed by the wallet file, then a second pool gets it from the file.
  const first = new PaillierKeyPool({
    seedFor: (p) => paillierSeed(keys, p),
    cache: walletPaillierCache(store),
  });
  const key = await first.take(path(13));
  await first.close();
  await savePaillierKey(store, path(13), key); // the pool's own save may still be in flight; this one is awaited
  const second = new PaillierKeyPool({
    seedFor: () => assert.fail("a cached key is not rebuilt"),
    cache: walletPaillierCache(store),
  });
  try {
    const loaded = await second.take(path(13));
    assert.equal(loaded.n, key.n);
    assert.deepEqual(loaded.id, key.id);
    assert.equal(second.workerInfo, undefined, "no worker was started");
    await second.discard(path(13));
    const again = new PaillierKeyPool({
      seedFor: (p) => paillierSeed(keys, p),
      cache: walletPaillierCache(store),
    });
    const rebuilt = await again.take(path(13));
    assert.equal(rebuilt.n, key.n, "after discard the row is gone and the key is rebuilt from the seed");
    assert.notDeepEqual(rebuilt.id, key.id);
    await again.close();
  } finally {
    await second.close();
    await store.close();
  }
});

test("the main thread stays responsive while the worker builds (timer gaps far below the build's time)", async () => {
  const pool = new PaillierKeyPool({ seedFor: (p) => paillierSeed(keys, p) });
  let last = performance.now();
  let maxGap = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 5);
  try {
    const t0 = performance.now();
    await pool.take(path(20));
    const took = performance.now() - t0;
    // Built on the main thread, the key would hold the event loop for the whole ~200 ms of CPU it costs.
    assert.ok(
      maxGap < took / 2,
      `longest timer gap ${maxGap.toFixed(1)} ms during a ${took.toFixed(0)} ms build`,
    );
  } finally {
    clearInterval(timer);
    await pool.close();
  }
});

test("flush waits until the prepared keys are in the cache; a key a take waits for is not cached", async () => {
  const { cache, saved, calls } = recordingCache();
  const pool = new PaillierKeyPool({ seedFor: (p) => paillierSeed(keys, p), cache });
  try {
    await pool.flush(); // nothing to wait for
    pool.prepare(path(20));
    pool.prepare(path(21));
    await pool.flush();
    assert.ok(
      saved.has(path(20)) && saved.has(path(21)),
      "both prepared keys were written before flush resolved",
    );
    const taken = await pool.take(path(22));
    await pool.flush();
    assert.ok(taken.n > 0n, "the key was made");
    assert.ok(
      !calls.includes(`save ${path(22)}`),
      "a key made for a waiting take goes to it, not to the cache",
    );
  } finally {
    await pool.close();
  }
});
