// Seeded Paillier-Blum keys (protocol/ecdsa2p/seeded-paillier.ts): the construction written in its header,
// reimplemented here naively (no sieve) and compared; a fixed vector so that any change of the wallet format fails;
// the key's shape, Π^mod, and the refusals.
import assert from "node:assert/strict";
import { checkPrimeSync, createHash, createHmac } from "node:crypto";
import { test } from "node:test";
import { bitLength } from "../../../protocol/ecdsa2p/arith.ts";
import { decrypt, encrypt, paillierFactors, takeNonce } from "../../../protocol/ecdsa2p/paillier.ts";
import { verifyModulus } from "../../../protocol/ecdsa2p/proofs/mod.ts";
import {
  paillierKeyFromSeed,
  SEEDED_PAILLIER_LABEL,
  seededBlumPrimes,
} from "../../../protocol/ecdsa2p/seeded-paillier.ts";
import { bigIntToBytes } from "../../../protocol/encoding.ts";
import { code, rng } from "./helpers.ts";

const seedOf = (byte: number, len = 32) => Uint8Array.from({ length: len }, (_, i) => (i + byte) & 0xff);
const VECTOR_SEED = seedOf(0); // 00 01 02 … 1f

/** The construction of seeded-paillier.ts's header, for 2048 bits, step by step without any shortcut. */
function reference(seed: Uint8Array): { p: bigint; q: bigint } {
  const be32 = (x: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(x);
    return b;
  };
  const K = createHmac("sha512", SEEDED_PAILLIER_LABEL).update(be32(2048)).update(seed).digest();
  const c = (label: string, a: number) => {
    const bytes = Buffer.concat(
      [0, 1].map((i) => createHmac("sha512", K).update(label).update(be32(a)).update(be32(i)).digest()),
    );
    return BigInt(`0x${bytes.toString("hex")}`) | (1n << 1023n) | (1n << 1022n) | 3n;
  };
  const prime = (label: string, skip?: bigint) => {
    for (let a = 0; ; a++)
      for (let x = c(label, a); x < 1n << 1024n; x += 4n) if (checkPrimeSync(x) && x !== skip) return x;
  };
  const p = prime("p");
  return { p, q: prime("q", p) };
}

test("seededBlumPrimes follows the written construction (a naive reimplementation finds the same primes)", () => {
  for (const seed of [VECTOR_SEED, seedOf(100, 64)]) {
    const ours = seededBlumPrimes(seed);
    const ref = reference(seed);
    assert.equal(ours.p, ref.p);
    assert.equal(ours.q, ref.q);
  }
});

test("fixed vector: seed 00 01 … 1f gives this N (a change of the derivation loses restored wallets' keys)", () => {
  const { p, q } = seededBlumPrimes(VECTOR_SEED);
  const n = bigIntToBytes(p * q, 256);
  assert.equal(Buffer.from(n.subarray(0, 16)).toString("hex"), "c61af372315eaed96dba9de88755b1f2");
  assert.equal(
    createHash("sha256").update(n).digest("hex"),
    "eb7d93f54a0feb3d3007240d450e11ecd7c8964c3c4d64425dc1de7df913e991",
  );
  assert.equal(Buffer.from(bigIntToBytes(p, 128).subarray(0, 8)).toString("hex"), "caefc2b92ed7be8c");
  assert.equal(Buffer.from(bigIntToBytes(q, 128).subarray(0, 8)).toString("hex"), "f9e7cab8671a85d0");
});

test("paillierKeyFromSeed: same seed, same N (fresh id); 2048 bits, Blum primes, Π^mod verifies, keys work", () => {
  const a = paillierKeyFromSeed(VECTOR_SEED, { rng });
  const b = paillierKeyFromSeed(Uint8Array.from(VECTOR_SEED), { rng, modulusProof: false, nonces: 0 });
  assert.equal(a.n, b.n);
  assert.notDeepEqual(a.id, b.id, "the id is random, not part of the format");
  assert.equal(bitLength(a.n), 2048);
  const { p, q } = paillierFactors(a.secret);
  assert.equal(p * q, a.n);
  assert.notEqual(p, q);
  assert.equal(p % 4n, 3n);
  assert.equal(q % 4n, 3n);
  assert.ok(checkPrimeSync(p) && checkPrimeSync(q), "p and q are prime");
  assert.equal(a.nonces.length, 2);
  verifyModulus(a.n, a.modulusProof);
  assert.equal(b.modulusProof, undefined);
  const m = 123456789n;
  assert.equal(decrypt(a, encrypt(a.n, m, takeNonce(a, rng))), m);
});

test("different seeds give different N, and no prime is shared between them", () => {
  const keys = [1, 2, 3].map((i) => seededBlumPrimes(seedOf(i)));
  const primes = keys.flatMap(({ p, q }) => [p, q]);
  assert.equal(new Set(primes).size, primes.length);
  assert.equal(new Set(keys.map(({ p, q }) => p * q)).size, keys.length);
  // A one-bit change of the seed, and its length (a 33-byte seed is another seed), both change everything.
  const flipped = Uint8Array.from(VECTOR_SEED);
  flipped[31]! ^= 1;
  const base = seededBlumPrimes(VECTOR_SEED);
  for (const s of [flipped, seedOf(0, 33)]) {
    const other = seededBlumPrimes(s);
    assert.notEqual(other.p, base.p);
    assert.notEqual(other.q, base.q);
  }
});

test("the modulus size is part of the derivation: 3072 bits gives a 3072-bit N of other primes", () => {
  const { p, q } = seededBlumPrimes(VECTOR_SEED, { bits: 3072 });
  assert.equal(bitLength(p * q), 3072);
  assert.equal(p % 4n, 3n);
  assert.equal(q % 4n, 3n);
});

test("refusals: short, overlong, wiped or non-byte seeds; sizes that are not multiples of 1024 in range", () => {
  assert.throws(() => seededBlumPrimes(new Uint8Array(31).fill(1)), code("PAILLIER_SEED_LENGTH"));
  assert.throws(() => seededBlumPrimes(new Uint8Array(1025).fill(1)), code("PAILLIER_SEED_LENGTH"));
  assert.throws(() => paillierKeyFromSeed(new Uint8Array(64)), code("PAILLIER_SEED_WIPED"));
  assert.throws(() => seededBlumPrimes("x".repeat(40) as unknown as Uint8Array), code("PAILLIER_SEED"));
  for (const bits of [1024, 2560, 5120])
    assert.throws(() => seededBlumPrimes(VECTOR_SEED, { bits }), code("PAILLIER_BITS"));
});
