// Paillier-Blum keys derived from a seed: the owner's per-coin Paillier key (DESIGN.md §3.1) is a function of the
// wallet seed and the coin's path (client/paillier-keys.ts), so a restored wallet rebuilds the very same N. Pure:
// HMAC-SHA512 and OpenSSL's primality test, no I/O, no clock, no hidden randomness in the primes.
//
// THIS IS A WALLET FORMAT. A change to anything below gives other primes for the same seed, and a restored wallet
// then no longer finds its keys: change it only with a new version label (and keep the old construction).
//
// Construction (version 1), for a modulus size `bits` (a multiple of 1024 in [2048, 4096]; h = bits/2 is then a
// multiple of 512) and a seed of at least 32 bytes:
//
//   K            = HMAC-SHA512(key = "statechain-wallet/v1/paillier-blum-primes", msg = be32(bits) ‖ seed)
//   block(L,a,i) = HMAC-SHA512(key = K, msg = L ‖ be32(a) ‖ be32(i))       L the ASCII label "p" or "q"
//   c(L,a)       = the big-endian integer block(L,a,0) ‖ … ‖ block(L,a,h/512 − 1)   (h bits)
//                  OR 2^(h−1) OR 2^(h−2) OR 3    (top two bits set, so c ≥ 3·2^(h−2); c ≡ 3 mod 4)
//   prime(L,a)   = the smallest prime in c(L,a), c(L,a) + 4, c(L,a) + 8, … below 2^h; if there is none (the
//                  search would reach 2^h: probability about 2^-(h−10)), prime(L,a+1) instead
//   p            = prime("p", 0) (or its a+1 fallback);  q = prime("q", 0), falling to a = 1, 2, … while q = p
//   N            = p·q
//
// p, q ≥ 3·2^(h−2) gives N ≥ 9·2^(2h−4) > 2^(bits−1): N has exactly `bits` bits. p ≡ q ≡ 3 (mod 4) makes N a
// Paillier-Blum modulus (Π^mod), and gcd(N, φ(N)) = 1 holds for two primes of one size (p | q − 1 would need
// q − 1 = p, but q − 1 is even). "The smallest prime" is what defines the output: the small-prime sieve below only
// skips candidates that have a factor under 2^16, and the Miller-Rabin test only decides (wrongly with
// probability at most 2^-128, see MR_ROUNDS) which candidates are prime, so neither is part of the format.
import { checkPrimeSync, createHmac } from "node:crypto";
import { bytesToBigInt } from "../encoding.ts";
import { check } from "../errors.ts";
import type { Rng } from "../rng.ts";
import { systemRng } from "../rng.ts";
import { SMALL_PRIMES } from "./arith.ts";
import { KEYGEN_NONCES, type PaillierKey, paillierKeyFromPrimes } from "./paillier.ts";
import { PAILLIER_BITS, PAILLIER_MAX_BITS, PAILLIER_MIN_BITS } from "./params.ts";
import { wipe } from "./secret.ts";

export const SEEDED_PAILLIER_LABEL = "statechain-wallet/v1/paillier-blum-primes";
export const SEEDED_PAILLIER_MIN_SEED_BYTES = 32;
export const SEEDED_PAILLIER_MAX_SEED_BYTES = 1024;

/**
 * Miller-Rabin rounds per candidate. 64 rounds bound the error by 4^-64 = 2^-128 for every odd composite
 * (Rabin's bound), so the figure does not lean on the candidates being uniformly random (ours come from an
 * incremental search, which is not). It also is what OpenSSL 3 does anyway for numbers of at most 2048 bits: it
 * raises any smaller count to 64 (bn_mr_min_checks; checks: 1 costs the same as 64 here, ~15 ms on a 1024-bit
 * prime), and above 2048 bits it takes 128. Only a prime pays all rounds: a composite fails the first one with
 * overwhelming probability. OpenSSL draws the bases at random, which cannot change the output except when a
 * composite passes, i.e. with probability at most 2^-128.
 */
export const MR_ROUNDS = 64;

/** Candidates sieved at a time (steps of 4, so 4·SIEVE_WINDOW integers; ~11 primes ≡ 3 mod 4 expected in it). */
const SIEVE_WINDOW = 4096;
const ODD_SMALL_PRIMES = SMALL_PRIMES.filter((p) => p > 2);
/** 4⁻¹ mod each odd small prime ((p+1)/2 is 2⁻¹; its square is 4⁻¹). */
const INV4 = ODD_SMALL_PRIMES.map((p) => {
  const half = (p + 1) / 2;
  return (half * half) % p;
});

const be32 = (x: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(x);
  return b;
};

function checkBits(bits: number): void {
  check(
    Number.isInteger(bits) && bits >= PAILLIER_MIN_BITS && bits <= PAILLIER_MAX_BITS && bits % 1024 === 0,
    "PAILLIER_BITS",
    `seeded Paillier modulus size ${bits} not allowed (a multiple of 1024 in [${PAILLIER_MIN_BITS}, ${PAILLIER_MAX_BITS}])`,
  );
}

function checkSeed(seed: unknown): asserts seed is Uint8Array {
  check(seed instanceof Uint8Array, "PAILLIER_SEED", "Paillier key seed must be bytes");
  check(
    seed.length >= SEEDED_PAILLIER_MIN_SEED_BYTES,
    "PAILLIER_SEED_LENGTH",
    `Paillier key seed must be at least ${SEEDED_PAILLIER_MIN_SEED_BYTES} bytes, got ${seed.length}`,
  );
  check(
    seed.length <= SEEDED_PAILLIER_MAX_SEED_BYTES,
    "PAILLIER_SEED_LENGTH",
    `Paillier key seed must be at most ${SEEDED_PAILLIER_MAX_SEED_BYTES} bytes, got ${seed.length}`,
  );
  let any = 0;
  for (const b of seed) any |= b;
  check(any !== 0, "PAILLIER_SEED_WIPED", "Paillier key seed is all zero (wiped?)", "precondition");
}

/** c(L, a) of the construction above, as a BigInt (transient: JavaScript cannot clear it). */
function candidate(k: Buffer, label: "p" | "q", attempt: number, half: number): bigint {
  let c = 0n;
  for (let i = 0; i < half / 512; i++) {
    const block = createHmac("sha512", k)
      .update(label, "ascii")
      .update(be32(attempt))
      .update(be32(i))
      .digest();
    c = (c << 512n) | bytesToBigInt(block);
    block.fill(0);
  }
  return c | (1n << BigInt(half - 1)) | (1n << BigInt(half - 2)) | 3n;
}

/** The smallest prime ≡ 3 (mod 4) in start, start + 4, … below 2^half, or undefined. */
function searchUp(start: bigint, half: number, between: () => void): bigint | undefined {
  const limit = 1n << BigInt(half);
  const composite = new Uint8Array(SIEVE_WINDOW);
  for (let base = start; base < limit; base += BigInt(4 * SIEVE_WINDOW)) {
    between();
    composite.fill(0);
    for (let j = 0; j < ODD_SMALL_PRIMES.length; j++) {
      const p = ODD_SMALL_PRIMES[j]!;
      // base + 4k ≡ 0 (mod p) ⇔ k ≡ −base·4⁻¹ (mod p)
      const r = Number(base % BigInt(p));
      for (let k = (((p - r) % p) * INV4[j]!) % p; k < SIEVE_WINDOW; k += p) composite[k] = 1;
    }
    for (let k = 0; k < SIEVE_WINDOW; k++) {
      if (composite[k]) continue;
      const c = base + BigInt(4 * k);
      if (c >= limit) return undefined;
      if (checkPrimeSync(c, { checks: MR_ROUNDS })) return c;
    }
  }
  return undefined;
}

function prime(k: Buffer, label: "p" | "q", half: number, skip: bigint | undefined, between: () => void) {
  for (let attempt = 0; ; attempt++) {
    const p = searchUp(candidate(k, label, attempt, half), half, between);
    if (p !== undefined && p !== skip) return p;
  }
}

/**
 * The primes (p, q) of the construction above for `seed`. BigInts (transient); paillierKeyFromSeed turns them
 * into a key whose factors live in wipeable bytes.
 */
export function seededBlumPrimes(
  seed: Uint8Array,
  opts: { bits?: number; between?: () => void } = {},
): { p: bigint; q: bigint } {
  const bits = opts.bits ?? PAILLIER_BITS;
  checkBits(bits);
  checkSeed(seed);
  const between = opts.between ?? (() => {});
  const k = createHmac("sha512", SEEDED_PAILLIER_LABEL).update(be32(bits)).update(seed).digest();
  try {
    const p = prime(k, "p", bits / 2, undefined, between);
    const q = prime(k, "q", bits / 2, p, between);
    return { p, q };
  } finally {
    wipe(k);
  }
}

export interface SeededKeyOptions {
  /** Modulus size (default PAILLIER_BITS = 2048). Part of the derivation: another size gives other primes. */
  bits?: number;
  /**
   * Randomness of the key id, Π^mod (its w) and the encryption nonces (default systemRng). None of them is part
   * of the wallet format: a rebuilt key has the same N, p, q and a fresh id with a fresh, equally valid Π^mod.
   */
  rng?: Rng;
  /** Compute Π^mod with the key (default true). */
  modulusProof?: boolean;
  /** Encryption nonces computed ahead (default KEYGEN_NONCES). */
  nonces?: number;
  /** Called between steps (each sieve window of the prime search, each Π^mod round, each nonce). */
  between?: () => void;
}

/**
 * The Paillier key for `seed` (see the construction at the top of this file). Its id is random (16 bytes from
 * `rng`), like every key id: it only binds a Π^mod to the key, and N names the key already.
 */
export function paillierKeyFromSeed(seed: Uint8Array, opts: SeededKeyOptions = {}): PaillierKey {
  const { p, q } = seededBlumPrimes(seed, { bits: opts.bits, between: opts.between });
  return paillierKeyFromPrimes(p, q, {
    rng: opts.rng ?? systemRng,
    modulusProof: opts.modulusProof ?? true,
    nonces: opts.nonces ?? KEYGEN_NONCES,
    between: opts.between,
  });
}
