// Two-party ECDSA: modular exponentiation before/after (BigInt vs OpenSSL), Paillier against paillier-bigint,
// keygen (fresh, and with a precomputed Paillier key pool) and signing through both parties, beside a plain
// single-party ECDSA signature (the floor). Medians of >= 20 runs.
import { generatePrimeSync, randomBytes } from "node:crypto";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { PrivateKey, PublicKey } from "paillier-bigint";
import { modInverse } from "../protocol/ecdsa2p/arith.ts";
import {
  generateRingPedersen,
  type PartyOneKey,
  type PartyTwoKey,
  p1KeyGenCommit,
  p1KeyGenFinish,
  p1SignFinish,
  p1SignStart,
  p2EncryptionNonce,
  p2KeyGenFinish,
  p2KeyGenShare,
  p2SignCommit,
  p2SignPartial,
  RingPedersenCache,
  type RingPedersenKey,
} from "../protocol/ecdsa2p/index.ts";
import {
  FixedBase,
  modPowBigInt,
  modPowOpenSslConstTime,
  modPowOpenSslPublic,
} from "../protocol/ecdsa2p/modexp.ts";
import {
  decrypt,
  type EncryptionNonce,
  encrypt,
  encryptionNonce,
  generatePaillierKey,
  nonceEngine,
  type PaillierKey,
  paillierFactors,
} from "../protocol/ecdsa2p/paillier.ts";
import { KEY_ID_BYTES, proveModulus, verifyModulus } from "../protocol/ecdsa2p/proofs/mod.ts";
import { systemRng as rng } from "../protocol/rng.ts";
import { bench, report, time } from "./harness.ts";

const RUNS = 20;
const rnd = (bits: number): bigint => BigInt(`0x${randomBytes(Math.ceil(bits / 8)).toString("hex")}`);
const sid = () => rng(16);

async function modexp(): Promise<void> {
  for (const bits of [1024, 2048, 4096]) {
    const p = generatePrimeSync(bits / 2, { bigint: true });
    const q = generatePrimeSync(bits / 2, { bigint: true });
    const m = p * q;
    const base = rnd(bits) % m;
    const exp = rnd(bits) % m;
    const before = await time(() => modPowBigInt(base, exp, m), { runs: RUNS, warmup: 1 });
    const extra = {
      modulus_bits: bits,
      exponent_bits: bits,
      peer: "bigint-sliding-window",
      peer_median: before.median,
    };
    const ratio = (ms: number) => Math.round((ms / before.median) * 1000) / 1000;
    const ct = await time(() => modPowOpenSslConstTime(base, exp, m), { runs: RUNS });
    report({
      bench: `ecdsa2p.modexp.${bits}.openssl-consttime`,
      unit: "ms",
      ...ct,
      samples: undefined,
      ...extra,
      ratio: ratio(ct.median),
    });
    if (bits <= 3072) {
      const pub = await time(() => modPowOpenSslPublic(base, exp, m), { runs: RUNS });
      report({
        bench: `ecdsa2p.modexp.${bits}.openssl-public`,
        unit: "ms",
        ...pub,
        samples: undefined,
        ...extra,
        ratio: ratio(pub.median),
      });
    }
    const fixed = new FixedBase(base, m);
    const fb = await time(() => fixed.pow(exp), { runs: RUNS });
    report({
      bench: `ecdsa2p.modexp.${bits}.openssl-fixed-base`,
      unit: "ms",
      ...fb,
      samples: undefined,
      ...extra,
      ratio: ratio(fb.median),
    });
    // Per-call overhead: the same paths with a 16-bit exponent.
    const small = 0xbeefn;
    const o1 = await time(() => modPowOpenSslConstTime(base, small, m), { runs: RUNS });
    report({
      bench: `ecdsa2p.modexp.${bits}.overhead.openssl-consttime`,
      unit: "ms",
      ...o1,
      samples: undefined,
      exponent_bits: 16,
    });
    if (bits <= 3072) {
      const o2 = await time(() => modPowOpenSslPublic(base, small, m), { runs: RUNS });
      report({
        bench: `ecdsa2p.modexp.${bits}.overhead.openssl-public`,
        unit: "ms",
        ...o2,
        samples: undefined,
        exponent_bits: 16,
      });
    }
    const create = await time(() => new FixedBase(base, m), { runs: RUNS });
    report({
      bench: `ecdsa2p.modexp.${bits}.overhead.fixed-base-create`,
      unit: "ms",
      ...create,
      samples: undefined,
    });
  }
}

async function paillier(key: PaillierKey): Promise<void> {
  const { p, q } = paillierFactors(key.secret);
  const n = key.n;
  const phi = (p - 1n) * (q - 1n);
  const theirPub = new PublicKey(n, n + 1n);
  const theirPriv = new PrivateKey(phi, modInverse(phi, n), theirPub, p, q);
  const m = rnd(1024);
  await bench("ecdsa2p.paillier.encrypt", () => encrypt(n, m, encryptionNonce(n, rng)), {
    runs: RUNS,
    peer: { name: "paillier-bigint", fn: () => theirPub.encrypt(m) },
  });
  // Repeated encryptions under one key share an OpenSSL object for r ↦ r^N mod N² (nonceEngine).
  const engine = nonceEngine(n);
  await bench("ecdsa2p.paillier.encrypt.engine", () => encrypt(n, m, encryptionNonce(n, rng, engine)), {
    runs: RUNS,
    peer: { name: "paillier-bigint", fn: () => theirPub.encrypt(m) },
  });
  const c = encrypt(n, m, encryptionNonce(n, rng));
  await bench("ecdsa2p.paillier.decrypt", () => decrypt(key, c), {
    runs: RUNS,
    peer: { name: "paillier-bigint", fn: () => theirPriv.decrypt(c) },
  });
  // Π^mod: the largest share of a pooled Paillier key's generation (the primes come from OpenSSL's threads).
  const keyId = rng(KEY_ID_BYTES);
  const modProof = proveModulus(keyId, n, p, q, rng);
  await bench("ecdsa2p.proof.mod.prove", () => proveModulus(keyId, n, p, q, rng), { runs: RUNS });
  await bench("ecdsa2p.proof.mod.verify", () => verifyModulus(n, modProof), { runs: RUNS });
}

/** One deposit keygen through both parties; returns the time each side spent. */
async function keygen(opts: { paillier?: PaillierKey; cache: RingPedersenCache; rp: RingPedersenKey }) {
  const t0 = performance.now();
  const sessionId = sid();
  const one = p1KeyGenCommit({ sessionId, rng, paillier: opts.paillier });
  const t1 = performance.now();
  const two = p2KeyGenShare({ sessionId, commit: one.msg, ringPedersen: opts.rp, rng });
  const t2 = performance.now();
  const { key, msg } = await p1KeyGenFinish(one.state, two.msg, { rng, ringPedersenCache: opts.cache });
  const t3 = performance.now();
  const owner = p2KeyGenFinish(two.state, msg);
  const t4 = performance.now();
  return { p1: key, p2: owner, se: t1 - t0 + (t3 - t2), owner: t2 - t1 + (t4 - t3) };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.ceil(s.length / 2) - 1]! * 1000) / 1000;
};

async function keygens(rp: RingPedersenKey): Promise<{ p1: PartyOneKey; p2: PartyTwoKey }> {
  const warm = new RingPedersenCache();
  let last = await keygen({ cache: warm, rp }); // verifies Π^prm once: the owner reuses its parameters
  const split = { se: [] as number[], owner: [] as number[] };
  const fresh = await time(
    async () => {
      last = await keygen({ cache: warm, rp });
      split.se.push(last.se);
      split.owner.push(last.owner);
    },
    { runs: RUNS, warmup: 1 },
  );
  report({
    bench: "ecdsa2p.keygen.fresh",
    unit: "ms",
    median: fresh.median,
    p95: fresh.p95,
    runs: fresh.runs,
    target_ms: 400,
    note: "Paillier key + all proofs, both sides; owner's ring-Pedersen verified before (per wallet)",
    se_ms: median(split.se),
    owner_ms: median(split.owner),
  });
  const cold = await time(() => keygen({ cache: new RingPedersenCache(), rp }), { runs: RUNS, warmup: 0 });
  report({
    bench: "ecdsa2p.keygen.fresh-new-wallet",
    unit: "ms",
    median: cold.median,
    p95: cold.p95,
    runs: cold.runs,
    note: "as keygen.fresh, plus the SE's first check of the owner's ring-Pedersen proof (Π^prm)",
  });
  const pool: PaillierKey[] = [];
  for (let i = 0; i < RUNS + 2; i++) pool.push(await generatePaillierKey({ rng }));
  const poolSplit = { se: [] as number[], owner: [] as number[] };
  const pooled = await time(
    async () => {
      last = await keygen({ cache: warm, rp, paillier: pool.pop()! });
      poolSplit.se.push(last.se);
      poolSplit.owner.push(last.owner);
    },
    { runs: RUNS, warmup: 2 },
  );
  report({
    bench: "ecdsa2p.keygen.pool",
    unit: "ms",
    median: pooled.median,
    p95: pooled.p95,
    runs: pooled.runs,
    target_ms: 80,
    note: "Paillier key, its Π^mod and encryption nonces from the pool; all other proofs, both sides",
    se_ms: median(poolSplit.se.slice(2)),
    owner_ms: median(poolSplit.owner.slice(2)),
  });
  return last;
}

function signOnce(p1: PartyOneKey, p2: PartyTwoKey, digest: Uint8Array, nonce?: EncryptionNonce) {
  const sessionId = sid();
  const c = p2SignCommit(p2, { sessionId, digest, rng });
  const s = p1SignStart(p1, { sessionId, digest, ownerCommit: c.msg, rng });
  const partial = p2SignPartial(p2, c.state, s.msg, { rng, encryptionNonce: nonce });
  return p1SignFinish(p1, s.session, partial);
}

async function signing(p1: PartyOneKey, p2: PartyTwoKey): Promise<void> {
  const sk = secp256k1.utils.randomSecretKey();
  const digest = rng(32);
  const floor = { name: "noble-secp256k1-sign", fn: () => secp256k1.sign(digest, sk, { prehash: false }) };
  await bench("ecdsa2p.sign", () => signOnce(p1, p2, rng(32)), { runs: RUNS, peer: floor });
  const nonces = Array.from({ length: RUNS + 2 }, () => p2EncryptionNonce(p2, rng));
  await bench("ecdsa2p.sign.precomputed-nonce", () => signOnce(p1, p2, rng(32), nonces.pop()), {
    runs: RUNS,
    peer: floor,
  });
}

export async function run(): Promise<void> {
  await modexp();
  const rp = await generateRingPedersen(rng);
  const { p1, p2 } = await keygens(rp);
  await paillier(await generatePaillierKey({ rng, modulusProof: false, nonces: 0 }));
  await signing(p1, p2);
}
