// Paillier encryption with g = 1 + N: Enc(m; r) = (1 + m·N)·r^N mod N². Primes come from OpenSSL
// (crypto.generatePrime, Blum primes p ≡ q ≡ 3 mod 4, so that N is a Paillier-Blum modulus); decryption uses CRT
// modulo p² and q²; the randomness r^N can be computed ahead of time (encryptionNonce).
import { generatePrime, generatePrimeSync } from "node:crypto";
import type { PaillierBlumProof } from "../../proto/gen/ecdsa2p.ts";
import { bigIntToBytes, bytesToBigInt } from "../encoding.ts";
import { check } from "../errors.ts";
import type { Rng } from "../rng.ts";
import { systemRng } from "../rng.ts";
import {
  bitLength,
  crt,
  modInverse,
  randomNonZeroBelow,
  smallFactor,
  TRIAL_DIVISION_LIMIT,
} from "./arith.ts";
import { readNat } from "./codec.ts";
import { FixedExponent, modPow } from "./modexp.ts";
import { PAILLIER_BITS, PAILLIER_MAX_BITS, PAILLIER_MIN_BITS } from "./params.ts";
import { proveModulus } from "./proofs/mod.ts";
import { reveal, wipe } from "./secret.ts";

export interface PaillierSecretKey {
  p: Uint8Array;
  q: Uint8Array;
  /** q⁻¹ mod p and p⁻¹ mod q, for CRT. */
  qInvP: Uint8Array;
  pInvQ: Uint8Array;
}

export interface PaillierKey {
  /** 16 random bytes naming the key; a precomputed Π^mod is bound to them. */
  readonly id: Uint8Array;
  readonly n: bigint;
  readonly secret: PaillierSecretKey;
  /** Π^mod for N, computed with the key (a pool can keep it ready); absent until needed. */
  modulusProof: PaillierBlumProof | undefined;
  /** Encryption randomness (r, r^N mod N²) computed ahead, as bytes (secret: with it c_key reveals s). */
  readonly nonces: { r: Uint8Array; rn: Uint8Array }[];
  /** Set when a keygen takes the key: a Paillier key encrypts exactly one share. */
  used: boolean;
}

/** The factors as transient BigInts (p, q, p², q², the CRT coefficients). */
export interface PaillierFactors {
  p: bigint;
  q: bigint;
  qInvP: bigint;
  pInvQ: bigint;
}

export function paillierFactors(sk: PaillierSecretKey): PaillierFactors {
  return {
    p: reveal(sk.p, "Paillier key"),
    q: reveal(sk.q, "Paillier key"),
    qInvP: reveal(sk.qInvP, "Paillier key"),
    pInvQ: reveal(sk.pInvQ, "Paillier key"),
  };
}

const BLUM = { bigint: true, add: 4n, rem: 3n } as const;

const blumPrime = (bits: number): Promise<bigint> =>
  new Promise((resolve, reject) =>
    generatePrime(bits, BLUM, (err, p) => (err ? reject(err) : resolve(p as bigint))),
  );

const blumPrimeSync = (bits: number): bigint => generatePrimeSync(bits, BLUM) as bigint;

type KeyGenOptions = { rng?: Rng; bits?: number; modulusProof?: boolean; nonces?: number };
type SyncKeyGenOptions = KeyGenOptions & {
  /** Called between steps (each prime, each round of Π^mod, each nonce): where a background generator waits. */
  between?: () => void;
};

function keyBits(opts: KeyGenOptions): number {
  const bits = opts.bits ?? PAILLIER_BITS;
  check(
    bits >= PAILLIER_MIN_BITS && bits % 2 === 0,
    "PAILLIER_BITS",
    `Paillier modulus size ${bits} not allowed`,
  );
  return bits;
}

/**
 * Which of two primes to replace so that their product has exactly `bits` bits, or undefined when it has.
 * OpenSSL sets only the top bit of each prime: about 39% of pairs give a (bits−1)-bit product. Replacing the
 * smaller prime keeps a 2048-bit N at 32 words (OpenSSL's fastest code).
 */
function primeToReplace(pq: [bigint, bigint], bits: number): 0 | 1 | undefined {
  if (pq[0] !== pq[1] && bitLength(pq[0] * pq[1]) === bits) return undefined;
  return pq[0] < pq[1] ? 0 : 1;
}

const fromPrimeOptions = (opts: SyncKeyGenOptions) => ({
  rng: opts.rng ?? systemRng,
  modulusProof: opts.modulusProof ?? true,
  nonces: opts.nonces ?? KEYGEN_NONCES,
  between: opts.between,
});

/**
 * A fresh Paillier key with an exactly `bits`-bit modulus (two `bits/2`-bit Blum primes, generated in parallel on
 * libuv's thread pool). By default Π^mod and the two encryption nonces a keygen needs are computed too, so that
 * a pool holds keys ready to send.
 */
export async function generatePaillierKey(opts: KeyGenOptions = {}): Promise<PaillierKey> {
  const bits = keyBits(opts);
  const pq: [bigint, bigint] = await Promise.all([blumPrime(bits / 2), blumPrime(bits / 2)]);
  for (let i = primeToReplace(pq, bits); i !== undefined; i = primeToReplace(pq, bits))
    pq[i] = await blumPrime(bits / 2);
  return paillierKeyFromPrimes(pq[0], pq[1], fromPrimeOptions(opts));
}

/** generatePaillierKey on the calling thread alone (the enclave's key pool runs it in a worker thread). */
export function generatePaillierKeySync(opts: SyncKeyGenOptions = {}): PaillierKey {
  const bits = keyBits(opts);
  const between = opts.between ?? (() => {});
  const prime = () => {
    between();
    return blumPrimeSync(bits / 2);
  };
  const pq: [bigint, bigint] = [prime(), prime()];
  for (let i = primeToReplace(pq, bits); i !== undefined; i = primeToReplace(pq, bits)) pq[i] = prime();
  return paillierKeyFromPrimes(pq[0], pq[1], fromPrimeOptions(opts));
}

/** Encryptions a keygen makes: c_key, and the commitment A of Π^log*. */
export const KEYGEN_NONCES = 2;

/** A key from given primes (generatePaillierKey's last step; tests use it to build malformed keys). */
export function paillierKeyFromPrimes(
  p: bigint,
  q: bigint,
  opts: { rng: Rng; modulusProof?: boolean; nonces?: number; between?: (() => void) | undefined },
): PaillierKey {
  const n = p * q;
  const len = (bitLength(p) + 7) >> 3;
  const lenQ = (bitLength(q) + 7) >> 3;
  const key: PaillierKey = {
    id: opts.rng(16),
    n,
    secret: {
      p: bigIntToBytes(p, len),
      q: bigIntToBytes(q, lenQ),
      qInvP: bigIntToBytes(modInverse(q, p), len),
      pInvQ: bigIntToBytes(modInverse(p, q), lenQ),
    },
    modulusProof: undefined,
    nonces: [],
    used: false,
  };
  if (opts.modulusProof) key.modulusProof = proveModulus(key.id, n, p, q, opts.rng, opts.between);
  const n2len = (bitLength(n * n) + 7) >> 3;
  const count = opts.nonces ?? 0;
  if (count > 0) {
    // With the factors at hand, r^N mod N² is computed modulo p² and q² (exponents reduced by φ(p²) = p(p−1),
    // φ(q²)), each a quarter of the work, then recombined.
    const p2 = p * p;
    const q2 = q * q;
    const ep = new FixedExponent(n % (p * (p - 1n)), p2);
    const eq = new FixedExponent(n % (q * (q - 1n)), q2);
    const q2InvP2 = modInverse(q2, p2);
    try {
      for (let i = 0; i < count; i++) {
        opts.between?.();
        const r = randomNonZeroBelow(opts.rng, n);
        const rn = crt(ep.pow(r % p2), p2, eq.pow(r % q2), q2, q2InvP2);
        key.nonces.push({ r: bigIntToBytes(r, n2len), rn: bigIntToBytes(rn, n2len) });
      }
    } finally {
      // Their exponents N mod φ(p²), N mod φ(q²) give away p and q.
      ep.wipe();
      eq.wipe();
    }
  }
  return key;
}

/** A precomputed nonce of the key (then erased from it), or a fresh one. */
export function takeNonce(key: PaillierKey, rng: Rng): EncryptionNonce {
  const stored = key.nonces.pop();
  if (!stored) return encryptionNonce(key.n, rng);
  const nonce = { n: key.n, r: bytesToBigInt(stored.r), rn: bytesToBigInt(stored.rn) };
  wipe(stored.r, stored.rn);
  return nonce;
}

export function wipePaillierKey(key: PaillierKey): void {
  wipe(key.secret.p, key.secret.q, key.secret.qInvP, key.secret.pInvQ);
  for (const { r, rn } of key.nonces.splice(0)) wipe(r, rn);
}

/** Randomness for one encryption under N: r ∈ Z*_N and r^N mod N² (the expensive part, computable ahead). */
export interface EncryptionNonce {
  n: bigint;
  r: bigint;
  rn: bigint;
}

/** `engine` (a FixedExponent for N, N²) makes r^N about twice as fast when several nonces are needed. */
export function encryptionNonce(n: bigint, rng: Rng, engine?: FixedExponent): EncryptionNonce {
  const r = randomNonZeroBelow(rng, n);
  if (engine) {
    check(
      engine.exponent === n && engine.modulus === n * n,
      "PAILLIER_NONCE_KEY",
      "nonce engine is for another key",
    );
    return { n, r, rn: engine.pow(r) };
  }
  return { n, r, rn: modPow(r, n, n * n) };
}

/** The engine for r ↦ r^N mod N² under one key (its creation costs about one such exponentiation). */
export const nonceEngine = (n: bigint): FixedExponent => new FixedExponent(n, n * n);

/** Enc(m) = (1 + m·N)·r^N mod N², m in [0, N). */
export function encrypt(n: bigint, m: bigint, nonce: EncryptionNonce): bigint {
  check(nonce.n === n, "PAILLIER_NONCE_KEY", "encryption nonce was made for another Paillier key");
  check(m >= 0n && m < n, "PAILLIER_PLAINTEXT_RANGE", "Paillier plaintext out of range [0, N)");
  const n2 = n * n;
  return (((1n + m * n) % n2) * nonce.rn) % n2;
}

/**
 * Dec(c) by CRT: m_p = L_p(c^(p−1) mod p²)·(−q)⁻¹ mod p (L_p(u) = (u−1)/p), likewise mod q, then Garner. The
 * exponentiations are OpenSSL's constant-time ones. c must be a unit of Z_N² (checked).
 */
export function decrypt(key: PaillierKey, c: bigint): bigint {
  const { p, q, qInvP, pInvQ } = paillierFactors(key.secret);
  check(c > 0n && c < key.n * key.n, "PAILLIER_CIPHERTEXT_RANGE", "ciphertext out of range [1, N²)");
  check(c % p !== 0n && c % q !== 0n, "PAILLIER_CIPHERTEXT_NOT_UNIT", "ciphertext is not a unit modulo N²");
  const half = (pr: bigint, otherInv: bigint): bigint => {
    const pr2 = pr * pr;
    const u = modPow(c % pr2, pr - 1n, pr2);
    return (((u - 1n) / pr) * (pr - otherInv)) % pr; // (−other)⁻¹ = pr − other⁻¹ (mod pr)
  };
  return crt(half(p, qInvP), p, half(q, pInvQ), q, qInvP);
}

/**
 * The size, parity and trial-division checks on a Paillier modulus someone else made (the owner's, checked by the
 * enclave), before any proof about it: cheap, so they come before Π^mod's exponentiations.
 */
export function checkPaillierModulus(bytes: Uint8Array | undefined): bigint {
  const n = readNat(bytes, PAILLIER_MAX_BITS, "Paillier modulus N");
  const bits = bitLength(n);
  check(
    bits >= PAILLIER_MIN_BITS,
    "PAILLIER_MODULUS_TOO_SMALL",
    `Paillier modulus N has ${bits} bits, fewer than ${PAILLIER_MIN_BITS}`,
  );
  check((n & 1n) === 1n, "PAILLIER_MODULUS_EVEN", "Paillier modulus N is even");
  const f = smallFactor(n);
  check(
    f === 0,
    "PAILLIER_MODULUS_SMALL_FACTOR",
    () =>
      `Paillier modulus N is divisible by ${f} (no prime factor below ${TRIAL_DIVISION_LIMIT} is allowed)`,
  );
  return n;
}
