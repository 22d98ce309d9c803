// Modular exponentiation on the fastest correct path Node offers (figures in bench/ecdsa2p.bench.ts).
//
// 1. OpenSSL's BN_mod_exp_mont_consttime through a Diffie-Hellman object: createDiffieHellman(m, base),
//    setPrivateKey(e), generateKeys() = base^e mod m. OpenSSL marks the private key BN_FLG_CONSTTIME, so this is
//    constant-time in the exponent (only its length in 64-bit words shows). Node runs DH_check, a Miller-Rabin
//    test, on the modulus of every new object, which costs as much as the exponentiation itself; passing 3·m
//    makes the test's trial division stop at once, and the result is reduced mod m. The price: when m fills its
//    top 64-bit word (p, N, N², N^ all do), 3·m needs one more word, which leaves OpenSSL's word-aligned fast
//    code: about 2x slower. Hence 3. wherever a base or an exponent repeats. OpenSSL refuses even moduli and
//    moduli under 512 or over 10 000 bits; Node refuses base 0 or 1.
// 2. OpenSSL's BN_mod_exp_mont through an RSA public key without padding: variable-time, so for public
//    exponents only. Needs an odd modulus of 512 to 3072 bits (above that OpenSSL caps e at 64 bits) and
//    1 <= e < m; larger exponents take path 1 (splitting them would square twice as often: no faster).
// 3. FixedBase: one DH object with the exact modulus, reused for many exponents of the same base. Its DH_check
//    is paid once (one Miller-Rabin round for a composite modulus without small factors; never use it with a
//    prime modulus, whose full primality test takes dozens of rounds).
//    FixedExponent likewise for many bases and one exponent (r ↦ r^N mod N²), through computeSecret.
// 4. FixedExponentModPrime: many bases, one exponent, a prime modulus (Π^mod's roots mod p and q). A DH object
//    would run the full primality test (~60 exponentiations) and 3·p loses the word-aligned code; a DH private
//    key imported as PKCS#8 is not checked, so each base is one key agreement at the exact modulus' speed.
// 5. BigInt left-to-right sliding window, for what OpenSSL refuses (tiny or even moduli). Variable-time; the
//    protocols never give it secret exponents, since their moduli are all odd and at least 1024 bits.
// 6. One exponentiation at the exact modulus size without any check: a PKCS#8 DH private key with prime m,
//    generator base and private key exp, whose public key OpenSSL computes on import (constant-time), read back
//    from its SPKI. The import costs about 0.6 ms of decoder overhead, so modPow takes it instead of 1. only
//    where 1.'s extra word costs more: long exponents modulo moduli that fill their top word (r^N and z^N
//    modulo N², 256-bit exponents and up modulo N²).
import {
  constants,
  createDiffieHellman,
  createPrivateKey,
  createPublicKey,
  type DiffieHellman,
  diffieHellman,
  type KeyObject,
  publicEncrypt,
} from "node:crypto";
import { fail } from "../errors.ts";
import { bitLength, byteLength, mod, modInverse } from "./arith.ts";

const DH_MIN_BITS = 512;
const DH_MAX_BITS = 10_000;
const RSA_MIN_BITS = 512;
const RSA_MAX_BITS = 3072;

function toBuffer(x: bigint, len?: number): Buffer {
  let hex = x.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  if (len !== undefined) hex = hex.padStart(len * 2, "0");
  return Buffer.from(hex, "hex");
}

/** Hands OpenSSL an exponent (often a secret: a share, a nonce, a Paillier λ) and zeroes the JavaScript copy
 * at once; OpenSSL keeps its own in a constant-time BIGNUM that it clears when replaced or freed. */
function setSecretExponent(dh: DiffieHellman, exp: bigint): void {
  const bytes = toBuffer(exp);
  try {
    dh.setPrivateKey(bytes);
  } finally {
    bytes.fill(0);
  }
}

const fromBuffer = (b: Buffer): bigint => (b.length === 0 ? 0n : BigInt(`0x${b.toString("hex")}`));

/** Reduces the trivial cases; returns the answer, or the normalised [base, exp] (base in [2, m), exp >= 1). */
function normalise(base: bigint, exp: bigint, m: bigint): bigint | [bigint, bigint] {
  if (m <= 0n) return fail("INVALID_MODULUS", "modulus must be positive");
  if (m === 1n) return 0n;
  if (exp < 0n) {
    base = modInverse(base, m);
    exp = -exp;
  }
  base = mod(base, m);
  if (exp === 0n) return 1n;
  if (base < 2n) return base;
  return [base, exp];
}

const dhEligible = (m: bigint): boolean => {
  const bits = bitLength(3n * m);
  return (m & 1n) === 1n && bits >= DH_MIN_BITS && bits <= DH_MAX_BITS;
};

const rsaEligible = (m: bigint): boolean => {
  const bits = bitLength(m);
  return (m & 1n) === 1n && bits >= RSA_MIN_BITS && bits <= RSA_MAX_BITS;
};

/** OpenSSL constant-time path (1.); base in [2, m), exp >= 1, m eligible. */
export function modPowOpenSslConstTime(base: bigint, exp: bigint, m: bigint): bigint {
  const dh = createDiffieHellman(toBuffer(3n * m), toBuffer(base));
  setSecretExponent(dh, exp);
  return fromBuffer(dh.generateKeys()) % m;
}

/** OpenSSL variable-time path (2.); base in [0, m), 1 <= exp < m, m eligible. */
export function modPowOpenSslPublic(base: bigint, exp: bigint, m: bigint): bigint {
  const key = createPublicKey({
    key: { kty: "RSA", n: toBuffer(m).toString("base64url"), e: toBuffer(exp).toString("base64url") },
    format: "jwk",
  });
  return fromBuffer(publicEncrypt({ key, padding: constants.RSA_NO_PADDING }, toBuffer(base, byteLength(m))));
}

/** BigInt left-to-right sliding-window exponentiation (5.): the reference and the fallback. Variable-time. */
export function modPowBigInt(base: bigint, exp: bigint, m: bigint): bigint {
  const n = normalise(base, exp, m);
  if (typeof n === "bigint") return n;
  const [b, e] = n;
  const bits = bitLength(e);
  const w = bits > 768 ? 5 : bits > 192 ? 4 : bits > 24 ? 3 : 1;
  const b2 = (b * b) % m;
  const odd: bigint[] = [b]; // b^1, b^3, b^5, ..., b^(2^w - 1)
  for (let i = 1; i < 1 << (w - 1); i++) odd.push((odd[i - 1]! * b2) % m);
  const s = e.toString(2);
  let r = 1n;
  let i = 0;
  while (i < s.length) {
    if (s[i] === "0") {
      r = (r * r) % m;
      i++;
      continue;
    }
    let j = Math.min(i + w, s.length) - 1;
    while (s[j] === "0") j--;
    for (let k = i; k <= j; k++) r = (r * r) % m;
    r = (r * odd[(Number.parseInt(s.slice(i, j + 1), 2) - 1) >> 1]!) % m;
    i = j + 1;
  }
  return r;
}

/** OpenSSL constant-time path at the exact modulus size (6.); base in [2, m), exp >= 1, m eligible. */
export function modPowOpenSslExact(base: bigint, exp: bigint, m: bigint): bigint {
  const { key } = dhPrivateKey(m, base, exp);
  return spkiPublicValue(createPublicKey(key).export({ format: "der", type: "spki" }));
}

/**
 * Whether path 6. beats path 1.: when 3·m needs one more 64-bit word than m, 1. runs about twice as slow as the
 * exact size, and the difference (about 0.21 µs per exponent bit at 1024 bits, growing with the square of the
 * size) exceeds 6.'s fixed 0.75 ms from exponent·(bits/1024)² ≈ 3600 on (bench/ecdsa2p.bench.ts).
 */
function prefersExact(exp: bigint, m: bigint): boolean {
  const bits = bitLength(m);
  if (Math.ceil(bitLength(3n * m) / 64) === Math.ceil(bits / 64)) return false;
  return bitLength(exp) * (bits / 1024) ** 2 >= 3600;
}

/** Constant-time in the exponent on OpenSSL's faster path for this size; base in [2, m), exp >= 1. */
function modPowConstTime(base: bigint, exp: bigint, m: bigint): bigint {
  if (!dhEligible(m)) return modPowBigInt(base, exp, m);
  return prefersExact(exp, m) ? modPowOpenSslExact(base, exp, m) : modPowOpenSslConstTime(base, exp, m);
}

/**
 * base^exp mod m, constant-time in the exponent whenever OpenSSL accepts the modulus (every modulus the
 * protocols use: odd, 1024 to 8192 bits). Negative exponents invert the base first.
 */
export function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  const n = normalise(base, exp, m);
  if (typeof n === "bigint") return n;
  return modPowConstTime(n[0], n[1], m);
}

/** base^exp mod m for a public exponent: the fastest path, variable-time. */
export function modPowPublic(base: bigint, exp: bigint, m: bigint): bigint {
  const n = normalise(base, exp, m);
  if (typeof n === "bigint") return n;
  if (rsaEligible(m) && n[1] < m) return modPowOpenSslPublic(n[0], n[1], m);
  return modPowConstTime(n[0], n[1], m);
}

/**
 * Many exponentiations of one base modulo one (composite) modulus: a single OpenSSL DH object, so the modulus
 * keeps its exact word size (fastest code) and DH_check runs once. Constant-time in the exponent.
 */
export class FixedBase {
  readonly base: bigint;
  private readonly dh: DiffieHellman | undefined;

  constructor(
    base: bigint,
    readonly modulus: bigint,
  ) {
    this.base = mod(base, modulus);
    const bits = bitLength(modulus);
    const eligible = (modulus & 1n) === 1n && bits >= DH_MIN_BITS && bits <= DH_MAX_BITS;
    this.dh =
      eligible && this.base >= 2n ? createDiffieHellman(toBuffer(modulus), toBuffer(this.base)) : undefined;
  }

  /** base^exp mod modulus, exp >= 0. */
  pow(exp: bigint): bigint {
    if (exp < 0n) return fail("NEGATIVE_EXPONENT", "fixed-base exponentiation needs a non-negative exponent");
    if (exp === 0n) return 1n % this.modulus;
    if (!this.dh) return modPow(this.base, exp, this.modulus);
    setSecretExponent(this.dh, exp);
    return fromBuffer(this.dh.generateKeys());
  }
}

/**
 * Many exponentiations to one exponent modulo one (composite) modulus, e.g. r ↦ r^N mod N²: a single OpenSSL DH
 * object whose private key is the exponent, used through computeSecret (constant-time: OpenSSL sets
 * BN_FLG_CONSTTIME on the private key). Worth it from the second use: its DH_check costs about one exponentiation.
 */
export class FixedExponent {
  private readonly dh: DiffieHellman | undefined;

  constructor(
    readonly exponent: bigint,
    readonly modulus: bigint,
  ) {
    const bits = bitLength(modulus);
    const eligible = (modulus & 1n) === 1n && bits >= DH_MIN_BITS && bits <= DH_MAX_BITS && exponent > 0n;
    if (eligible) {
      this.dh = createDiffieHellman(toBuffer(modulus), 2);
      setSecretExponent(this.dh, exponent);
    }
  }

  /** base^exponent mod modulus. */
  pow(base: bigint): bigint {
    const b = mod(base, this.modulus);
    if (!this.dh || b < 2n || b === this.modulus - 1n) return modPow(b, this.exponent, this.modulus);
    try {
      return fromBuffer(this.dh.computeSecret(toBuffer(b)));
    } catch {
      // OpenSSL refuses a result of 1 or modulus − 1 (a DH safety check); those are computed directly.
      return modPow(b, this.exponent, this.modulus);
    }
  }
}

// DER for PKCS#3 Diffie-Hellman keys (dhKeyAgreement, 1.2.840.113549.1.3.1), just what path 4. needs.
const derLength = (n: number): Buffer => {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
};
const der = (tag: number, body: Buffer): Buffer =>
  Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
/** A DER INTEGER (non-negative); its intermediate copy of x is zeroed, since x may be a secret exponent. */
const derInt = (x: bigint): Buffer => {
  const b = toBuffer(x);
  const body = Buffer.alloc(b.length > 0 && b[0]! < 0x80 ? b.length : b.length + 1);
  b.copy(body, body.length - b.length);
  const out = der(0x02, body);
  b.fill(0);
  body.fill(0);
  return out;
};
const DH_OID = Buffer.from("06092a864886f70d010301", "hex");

/**
 * A PKCS#8 DH private key (prime p, generator g, private key x), imported without any check, and its DER
 * AlgorithmIdentifier. Every buffer that held x is zeroed once OpenSSL has its own copy. Throws what OpenSSL
 * throws for a key it will not take.
 */
function dhPrivateKey(p: bigint, g: bigint, x: bigint): { key: KeyObject; algorithm: Buffer } {
  const algorithm = der(0x30, Buffer.concat([DH_OID, der(0x30, Buffer.concat([derInt(p), derInt(g)]))]));
  const integer = derInt(x);
  const secret = der(0x04, integer);
  const pkcs8 = der(0x30, Buffer.concat([derInt(0n), algorithm, secret]));
  integer.fill(0);
  secret.fill(0);
  try {
    return { key: createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" }), algorithm };
  } finally {
    pkcs8.fill(0);
  }
}

/** One DER element at `at`: its tag and where its contents start and end. */
function derElement(b: Buffer, at: number): { tag: number; start: number; end: number } {
  let len = b[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const count = len & 0x7f;
    len = 0;
    for (let i = 0; i < count; i++) len = len * 256 + b[start + i]!;
    start += count;
  }
  return { tag: b[at]!, start, end: start + len };
}

/** The public value y of a DH SubjectPublicKeyInfo: SEQUENCE { algorithm, BIT STRING { 0, INTEGER y } }. */
function spkiPublicValue(spki: Buffer): bigint {
  const outer = derElement(spki, 0);
  const bits = derElement(spki, derElement(spki, outer.start).end);
  const y = derElement(spki, bits.start + 1);
  if (outer.tag !== 0x30 || bits.tag !== 0x03 || y.tag !== 0x02 || y.end > spki.length)
    return fail("MODEXP_SPKI", "OpenSSL returned a DH public key in an unexpected form");
  return fromBuffer(spki.subarray(y.start, y.end));
}

/**
 * base^exponent mod p for many bases, p prime (path 4.): constant-time in the exponent (OpenSSL flags a DH
 * private key BN_FLG_CONSTTIME), at the exact modulus' word size, and without the primality test a DH object
 * runs. The caller vouches that p is prime: the key agreement itself does not care, but OpenSSL refuses some
 * results (1, p − 1) and bases, which are then computed directly.
 */
export class FixedExponentModPrime {
  private readonly algorithm: Buffer | undefined;
  private readonly key: KeyObject | undefined;

  constructor(
    readonly exponent: bigint,
    readonly prime: bigint,
  ) {
    const bits = bitLength(prime);
    if (
      (prime & 1n) === 0n ||
      bits < DH_MIN_BITS ||
      bits > DH_MAX_BITS ||
      exponent <= 0n ||
      exponent >= prime
    )
      return;
    try {
      ({ key: this.key, algorithm: this.algorithm } = dhPrivateKey(prime, 2n, exponent));
    } catch {
      // An exponent OpenSSL will not take as a DH private key: every base goes the direct way.
    }
  }

  /** base^exponent mod prime. */
  pow(base: bigint): bigint {
    const b = mod(base, this.prime);
    if (!this.key || b < 2n || b === this.prime - 1n) return modPow(b, this.exponent, this.prime);
    const spki = der(
      0x30,
      Buffer.concat([this.algorithm!, der(0x03, Buffer.concat([Buffer.from([0]), derInt(b)]))]),
    );
    try {
      return fromBuffer(
        diffieHellman({
          privateKey: this.key,
          publicKey: createPublicKey({ key: spki, format: "der", type: "spki" }),
        }),
      );
    } catch {
      return modPow(b, this.exponent, this.prime);
    }
  }
}
