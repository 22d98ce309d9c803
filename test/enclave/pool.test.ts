// The enclave's Paillier key pool: keys made by its worker thread are complete and valid (secrets moved across,
// Π^mod and nonces intact), the worker runs at the lowest priority and, unless the pool runs low, keeps quiet
// while requests are answered; stopping wipes what was not handed out.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { PaillierPool, POOL_NICE } from "../../enclave/pool.ts";
import { serve } from "../../enclave/rpc.ts";
import { bitLength } from "../../protocol/ecdsa2p/arith.ts";
import { modPowBigInt } from "../../protocol/ecdsa2p/modexp.ts";
import { type PaillierKey, paillierFactors } from "../../protocol/ecdsa2p/paillier.ts";
import { verifyModulus } from "../../protocol/ecdsa2p/proofs/mod.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import { waitUntil } from "../helpers/se-process.ts";

const big = (b: Uint8Array) => BigInt(`0x${Buffer.from(b).toString("hex")}`);

function checkKey(key: PaillierKey): void {
  const { p, q, qInvP, pInvQ } = paillierFactors(key.secret);
  assert.equal(bitLength(key.n), 2048);
  assert.equal(p * q, key.n);
  assert.equal(p % 4n, 3n);
  assert.equal(q % 4n, 3n);
  assert.equal((q * qInvP) % p, 1n);
  assert.equal((p * pInvQ) % q, 1n);
  assert.equal(key.used, false);
  assert.equal(key.id.length, 16);
  // The proof came through its protobuf encoding intact (Buffers again, and it verifies).
  assert.ok(
    Buffer.isBuffer(key.modulusProof?.w),
    "the modulus proof's w came through the protobuf encoding as a Buffer",
  );
  verifyModulus(key.n, key.modulusProof);
  assert.equal(key.nonces.length, 2);
  for (const { r, rn } of key.nonces) assert.equal(big(rn), modPowBigInt(big(r), key.n, key.n * key.n));
}

test("the pool fills from its worker thread with valid keys, at the lowest CPU priority", async () => {
  const errors: Error[] = [];
  const pool = new PaillierPool(2, (e) => errors.push(e), {
    quietMs: 0,
    onWarning: (m) => errors.push(new Error(m)),
  });
  try {
    pool.start();
    await waitUntil(() => pool.size === 2, 60_000, "two pool keys");
    const a = pool.take()!;
    const b = pool.take()!;
    checkKey(a);
    checkKey(b);
    assert.notEqual(a.n, b.n);
    assert.equal(pool.take(), undefined, "empty until the worker sends more");
    assert.deepEqual(errors, []);
    const info = pool.workerInfo;
    assert.ok(info && "tid" in info, JSON.stringify(info));
    // Field 19 of /proc/<tid>/stat is the nice value (field 2, the name, may hold spaces: split after it).
    const stat = readFileSync(`/proc/self/task/${info.tid}/stat`, "utf8");
    assert.equal(Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]), POOL_NICE);
    // It refills after takes.
    await waitUntil(() => pool.size === 2, 60_000, "two pool keys");
  } finally {
    pool.stop();
  }
  assert.equal(pool.size, 0, "stop() drops (and wipes) the keys not handed out");
});

test("at least half full, the pool refills only after requests and a quiet period; below half, at once", async () => {
  const pool = new PaillierPool(2, (e) => assert.fail(e), { quietMs: 300 });
  try {
    pool.start(); // empty: filled without waiting
    await waitUntil(() => pool.size === 2, 60_000, "two pool keys");
    pool.begin();
    checkKey(pool.take()!); // one of two left: half full, so the replacement waits
    await new Promise((r) => setTimeout(r, 1500)); // a key takes ~0.3 s
    assert.equal(pool.size, 1, "no key made while a request is in progress");
    pool.end();
    const ended = Date.now();
    await waitUntil(() => pool.size === 2, 60_000, "the replacement key");
    assert.ok(Date.now() - ended >= 300, "the worker waited for the quiet period");
    pool.begin();
    pool.take();
    pool.take(); // empty: refilled even though a request is in progress
    await waitUntil(() => pool.size >= 1, 60_000, "a key made during a request");
    pool.end();
  } finally {
    pool.stop();
  }
});

test("the enclave's server tells the pool when each request starts and when it is answered, refused ones too", async () => {
  const seen: string[] = [];
  const impl = serve(
    {
      ok: async () => {
        seen.push("handler");
        return {};
      },
      bad: async () => {
        throw new ProtocolError("NOPE", "refused", "invalid");
      },
    },
    () => {},
    { begin: () => seen.push("begin"), end: () => seen.push("end") },
  );
  type Unary = (call: { request: unknown }, cb: (err: unknown) => void) => void;
  for (const name of ["ok", "bad"])
    await new Promise<void>((resolve) => (impl[name] as unknown as Unary)({ request: {} }, () => resolve()));
  assert.deepEqual(seen, ["begin", "handler", "end", "begin", "end"]);
});
