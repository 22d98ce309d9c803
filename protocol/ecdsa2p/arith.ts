// Integer helpers for the Paillier and ring-Pedersen arithmetic. BigInt values are transient copies; long-lived
// secrets are kept as bytes (see secret.ts).
import { bytesToBigInt } from "../encoding.ts";
import { fail } from "../errors.ts";
import type { Rng } from "../rng.ts";

export function bitLength(x: bigint): number {
  if (x < 0n) x = -x;
  if (x === 0n) return 0;
  const hex = x.toString(16);
  return (hex.length - 1) * 4 + Number.parseInt(hex[0]!, 16).toString(2).length;
}

export const byteLength = (x: bigint): number => (bitLength(x) + 7) >> 3;

/** Non-negative remainder. */
export const mod = (a: bigint, m: bigint): bigint => {
  const r = a % m;
  return r < 0n ? r + m : r;
};

export function gcd(a: bigint, b: bigint): bigint {
  a = a < 0n ? -a : a;
  b = b < 0n ? -b : b;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

/** a⁻¹ mod m; throws when a is not invertible (a caller bug or a hostile modulus, never a secret-dependent case). */
export function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1] = [mod(a, m), m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n) return fail("NOT_INVERTIBLE", "value is not invertible modulo the given modulus");
  return mod(s0, m);
}

/**
 * The Jacobi symbol (a/n) for odd n > 0 (binary algorithm: (2/n) = −1 iff n ≡ ±3 mod 8, and quadratic
 * reciprocity flips the sign iff both are 3 mod 4). 0 when gcd(a, n) ≠ 1. Variable-time: for public values.
 */
export function jacobi(a: bigint, n: bigint): -1 | 0 | 1 {
  if (n <= 0n || (n & 1n) === 0n)
    return fail("INVALID_MODULUS", "the Jacobi symbol needs an odd positive modulus");
  a = mod(a, n);
  let t: -1 | 1 = 1;
  while (a !== 0n) {
    while ((a & 1n) === 0n) {
      a >>= 1n;
      const r = n & 7n;
      if (r === 3n || r === 5n) t = t === 1 ? -1 : 1;
    }
    [a, n] = [n, a];
    if ((a & 3n) === 3n && (n & 3n) === 3n) t = t === 1 ? -1 : 1;
    a %= n;
  }
  return n === 1n ? t : 0;
}

/** Floor of the square root (Newton's method). */
export function isqrt(n: bigint): bigint {
  if (n < 0n) return fail("NEGATIVE_INTEGER", "square root of a negative integer");
  if (n < 2n) return n;
  let x = 1n << BigInt((bitLength(n) >> 1) + 1);
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

/** Uniform in [0, bound), with 128 extra random bits so the modular reduction bias is below 2⁻¹²⁸. */
export function randomBelow(rng: Rng, bound: bigint): bigint {
  if (bound <= 0n) return fail("INVALID_BOUND", "random bound must be positive");
  return bytesToBigInt(rng(byteLength(bound) + 16)) % bound;
}

/** Uniform in [1, n). (A non-unit of a modulus with only large prime factors turns up with negligible probability.) */
export function randomNonZeroBelow(rng: Rng, n: bigint): bigint {
  for (;;) {
    const r = randomBelow(rng, n);
    if (r !== 0n) return r;
  }
}

/** The x with x ≡ a (mod p), x ≡ b (mod q), given qInvP = q⁻¹ mod p (Garner's formula). */
export const crt = (a: bigint, p: bigint, b: bigint, q: bigint, qInvP: bigint): bigint =>
  b + q * mod((a - b) * qInvP, p);

// Primes below 2^16, for trial division of moduli (a sieve, computed once at module load: a constant table).
export const TRIAL_DIVISION_LIMIT = 1 << 16;

function sieve(limit: number): number[] {
  const composite = new Uint8Array(limit);
  const out: number[] = [];
  for (let i = 2; i < limit; i++) {
    if (composite[i]) continue;
    out.push(i);
    for (let j = i * i; j < limit; j += i) composite[j] = 1;
  }
  return out;
}

export const SMALL_PRIMES: readonly number[] = sieve(TRIAL_DIVISION_LIMIT);

// Products of consecutive small primes that stay below 2^53, so each residue fits a JS number.
const PRIME_GROUPS: readonly { product: bigint; primes: number[] }[] = (() => {
  const groups: { product: bigint; primes: number[] }[] = [];
  let primes: number[] = [];
  let product = 1;
  for (const p of SMALL_PRIMES) {
    if (product * p >= 2 ** 53) {
      groups.push({ product: BigInt(product), primes });
      primes = [];
      product = 1;
    }
    primes.push(p);
    product *= p;
  }
  if (primes.length > 0) groups.push({ product: BigInt(product), primes });
  return groups;
})();

/** The smallest prime below 2^16 that divides n (n > 2^16), or 0 when there is none. */
export function smallFactor(n: bigint): number {
  for (const g of PRIME_GROUPS) {
    const r = Number(n % g.product);
    for (const p of g.primes) if (r % p === 0) return p;
  }
  return 0;
}
