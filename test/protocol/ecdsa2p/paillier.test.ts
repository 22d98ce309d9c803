// Paillier: key generation (Blum primes, exact modulus size), encryption with precomputable randomness, CRT
// decryption, the homomorphism the partial signature relies on, and the refusals.
import assert from "node:assert/strict";
import { test } from "node:test";
import { bitLength } from "../../../protocol/ecdsa2p/arith.ts";
import { modPowBigInt } from "../../../protocol/ecdsa2p/modexp.ts";
import {
  decrypt,
  encrypt,
  encryptionNonce,
  generatePaillierKey,
  generatePaillierKeySync,
  KEYGEN_NONCES,
  type PaillierKey,
  paillierFactors,
  takeNonce,
  wipePaillierKey,
} from "../../../protocol/ecdsa2p/paillier.ts";
import { MOD_NTH_ROOT_ROUNDS, MOD_ROUNDS } from "../../../protocol/ecdsa2p/params.ts";
import { verifyModulus } from "../../../protocol/ecdsa2p/proofs/mod.ts";
import { code, rng } from "./helpers.ts";

let key: PaillierKey;

test("generatePaillierKey: 2048-bit modulus of two Blum primes, Π^mod and keygen nonces ready", async () => {
  key = await generatePaillierKey({ rng });
  const { p, q } = paillierFactors(key.secret);
  assert.equal(bitLength(key.n), 2048);
  assert.equal(p * q, key.n);
  assert.equal(p % 4n, 3n);
  assert.equal(q % 4n, 3n);
  assert.equal(key.id.length, 16);
  assert.ok(key.modulusProof, "a fresh key carries its modulus proof");
  assert.equal(key.nonces.length, KEYGEN_NONCES);
  await assert.rejects(generatePaillierKey({ rng, bits: 1024 }), code("PAILLIER_BITS"));
});

test("generatePaillierKeySync: the same key shape on the calling thread, pausing between every step", () => {
  let pauses = 0;
  const k = generatePaillierKeySync({ rng, between: () => void pauses++ });
  const { p, q } = paillierFactors(k.secret);
  assert.equal(bitLength(k.n), 2048);
  assert.equal(p * q, k.n);
  assert.notEqual(p, q);
  assert.equal(p % 4n, 3n);
  assert.equal(q % 4n, 3n);
  verifyModulus(k.n, k.modulusProof);
  for (const { r, rn } of k.nonces) {
    const rv = BigInt(`0x${Buffer.from(r).toString("hex")}`);
    assert.equal(BigInt(`0x${Buffer.from(rn).toString("hex")}`), modPowBigInt(rv, k.n, k.n * k.n));
  }
  // At least: two primes, every round of Π^mod (fourth roots and N-th roots), each nonce.
  assert.ok(pauses >= 2 + MOD_ROUNDS + MOD_NTH_ROOT_ROUNDS + KEYGEN_NONCES, `${pauses} pauses`);
  assert.throws(() => generatePaillierKeySync({ rng, bits: 1024 }), code("PAILLIER_BITS"));
});

test("decrypt(encrypt(m)) = m for edge and random plaintexts; precomputed nonces encrypt the same way", () => {
  const n = key.n;
  const rand = BigInt(`0x${Buffer.from(rng(256)).toString("hex")}`) % n;
  for (const m of [0n, 1n, 2n, n - 1n, n / 2n, rand]) {
    assert.equal(decrypt(key, encrypt(n, m, encryptionNonce(n, rng))), m);
  }
  const stored = takeNonce(key, rng);
  assert.equal(key.nonces.length, KEYGEN_NONCES - 1);
  assert.equal(decrypt(key, encrypt(n, 42n, stored)), 42n);
  // Fresh randomness: two encryptions of one plaintext differ.
  assert.notEqual(encrypt(n, 7n, encryptionNonce(n, rng)), encrypt(n, 7n, encryptionNonce(n, rng)));
});

test("homomorphism: Enc(a)·Enc(b)^k decrypts to a + k·b mod N", () => {
  const n = key.n;
  const n2 = n * n;
  const a = 123456789n;
  const b = n - 5n;
  const k = 2n ** 255n + 77n;
  const c = (encrypt(n, a, encryptionNonce(n, rng)) * encrypt(n, b, encryptionNonce(n, rng))) % n2;
  assert.equal(decrypt(key, c), (a + b) % n);
  const ck = modPowBigInt(encrypt(n, b, encryptionNonce(n, rng)), k, n2);
  assert.equal(decrypt(key, (encrypt(n, a, encryptionNonce(n, rng)) * ck) % n2), (a + k * b) % n);
});

test("refusals: plaintext or ciphertext out of range, non-unit ciphertext, nonce of another key, wiped key", async () => {
  const n = key.n;
  const { p } = paillierFactors(key.secret);
  assert.throws(() => encrypt(n, n, encryptionNonce(n, rng)), code("PAILLIER_PLAINTEXT_RANGE"));
  assert.throws(() => encrypt(n, -1n, encryptionNonce(n, rng)), code("PAILLIER_PLAINTEXT_RANGE"));
  assert.throws(() => encrypt(n, 1n, encryptionNonce(n + 2n, rng)), code("PAILLIER_NONCE_KEY"));
  assert.throws(() => decrypt(key, 0n), code("PAILLIER_CIPHERTEXT_RANGE"));
  assert.throws(() => decrypt(key, n * n), code("PAILLIER_CIPHERTEXT_RANGE"));
  assert.throws(() => decrypt(key, p * 12345n), code("PAILLIER_CIPHERTEXT_NOT_UNIT"));
  const other = await generatePaillierKey({ rng, modulusProof: false, nonces: 1 });
  const c = encrypt(other.n, 5n, encryptionNonce(other.n, rng));
  wipePaillierKey(other);
  assert.ok(
    other.secret.p.every((b) => b === 0),
    "wiping a Paillier key zeroes p",
  );
  assert.equal(other.nonces.length, 0);
  assert.throws(() => decrypt(other, c), code("SECRET_WIPED"));
});
