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
import { check, fail } from "../errors.ts";
import { bitLength, byteLength, mod, modInverse } from "./arith.ts";

const DH_MIN_BITS = 512;
const DH_MAX_BITS = 10_000;
const RSA_MIN_BITS = 512;
const RSA_MAX_BITS = 3072;

/** A public value as bytes (the variable-time RSA path only: secrets go through withScratch). */
function toBuffer(x: bigint, len?: number): Buffer {
  let hex = x.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  if (len !== undefined) hex = hex.padStart(len * 2, "0");
  return Buffer.from(hex, "hex");
}

/**
 * Runs `use` with an allocator of scratch buffers, and zeroes every buffer it handed out once `use` returns or
 * throws. Every encoding of a secret handed to OpenSSL here (exponents, primes, p², residues, DER keys) and every
 * result read back is built in such a buffer, in place, so no copy (a Buffer.concat or toBuffer intermediate)
 * outlives the call unzeroed. Each buffer has an ArrayBuffer of its own, outside the V8 heap (secret.ts).
 */
export function withScratch<T>(use: (alloc: (length: number) => Buffer) => T): T {
  const handedOut: Buffer[] = [];
  try {
    return use((length) => {
      const b = Buffer.from(new ArrayBuffer(length));
      handedOut.push(b);
      return b;
    });
  } finally {
    for (const b of handedOut) b.fill(0);
  }
}

type Alloc = (length: number) => Buffer;
const ownBuffer: Alloc = (length) => Buffer.from(new ArrayBuffer(length));

/** Writes x >= 0 big-endian into out[at, at + len), left-padded with zero bytes. */
function putNat(out: Buffer, at: number, x: bigint, len: number): void {
  let hex = x.toString(16);
  if (hex.length > 2 * len) fail("INTEGER_TOO_LARGE", `integer does not fit in ${len} bytes`);
  if (hex.length < 2 * len) hex = hex.padStart(2 * len, "0");
  out.write(hex, at, len, "hex");
}

/** x >= 1 in a buffer from `alloc`, minimal length. */
function natIn(alloc: Alloc, x: bigint): Buffer {
  const out = alloc(byteLength(x));
  putNat(out, 0, x, out.length);
  return out;
}

/** Hands OpenSSL an exponent (often a secret: a share, a nonce, a Paillier λ) from a buffer zeroed at once;
 * OpenSSL keeps its own in a constant-time BIGNUM that it clears when replaced or freed. */
function setSecretExponent(dh: DiffieHellman, exp: bigint): void {
  withScratch((alloc) => dh.setPrivateKey(natIn(alloc, exp)));
}

/** Replaces a DH object's private key (the last secret exponent) by 1, which makes OpenSSL clear the old one. */
const ONE = Buffer.from([1]);
const clearExponent = (dh: DiffieHellman): void => dh.setPrivateKey(ONE);

const fromBuffer = (b: Buffer): bigint => (b.length === 0 ? 0n : BigInt(`0x${b.toString("hex")}`));

/** fromBuffer for a result that may be secret: the buffer is zeroed once read. */
function readAndZero(b: Buffer): bigint {
  try {
    return fromBuffer(b);
  } finally {
    b.fill(0);
  }
}

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
  return withScratch((alloc) => {
    const dh = createDiffieHellman(natIn(alloc, 3n * m), natIn(alloc, base));
    dh.setPrivateKey(natIn(alloc, exp));
    const y = readAndZero(dh.generateKeys()) % m;
    clearExponent(dh);
    return y;
  });
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
  const key = withScratch((alloc) =>
    createPrivateKey({ key: dhPkcs8(alloc, m, base, exp), format: "der", type: "pkcs8" }),
  );
  const spki = createPublicKey(key).export({ format: "der", type: "spki" }); // holds m (maybe p²) and the result
  try {
    return spkiPublicValue(spki);
  } finally {
    spki.fill(0);
  }
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
      eligible && this.base >= 2n
        ? withScratch((alloc) => createDiffieHellman(natIn(alloc, modulus), natIn(alloc, this.base)))
        : undefined;
  }

  /** base^exp mod modulus, exp >= 0. The exponent (a share, a nonce) does not stay in the long-lived object. */
  pow(exp: bigint): bigint {
    if (exp < 0n) return fail("NEGATIVE_EXPONENT", "fixed-base exponentiation needs a non-negative exponent");
    if (exp === 0n) return 1n % this.modulus;
    if (!this.dh) return modPow(this.base, exp, this.modulus);
    setSecretExponent(this.dh, exp);
    try {
      return readAndZero(this.dh.generateKeys());
    } finally {
      clearExponent(this.dh);
    }
  }
}

/**
 * Many exponentiations to one exponent modulo one (composite) modulus, e.g. r ↦ r^N mod N²: a single OpenSSL DH
 * object whose private key is the exponent, used through computeSecret (constant-time: OpenSSL sets
 * BN_FLG_CONSTTIME on the private key). Worth it from the second use: its DH_check costs about one exponentiation.
 */
export class FixedExponent {
  private dh: DiffieHellman | undefined;
  private wiped = false;

  constructor(
    readonly exponent: bigint,
    readonly modulus: bigint,
  ) {
    const bits = bitLength(modulus);
    const eligible = (modulus & 1n) === 1n && bits >= DH_MIN_BITS && bits <= DH_MAX_BITS && exponent > 0n;
    if (eligible) {
      this.dh = withScratch((alloc) => {
        const dh = createDiffieHellman(natIn(alloc, modulus), 2); // the modulus may be a secret p²
        dh.setPrivateKey(natIn(alloc, exponent));
        return dh;
      });
    }
  }

  /** base^exponent mod modulus. */
  pow(base: bigint): bigint {
    check(!this.wiped, "SECRET_WIPED", "this fixed-exponent engine has been wiped", "precondition");
    const b = mod(base, this.modulus);
    if (!this.dh || b < 2n || b === this.modulus - 1n) return modPow(b, this.exponent, this.modulus);
    try {
      const dh = this.dh;
      return withScratch((alloc) => readAndZero(dh.computeSecret(natIn(alloc, b))));
    } catch {
      // OpenSSL refuses a result of 1 or modulus − 1 (a DH safety check); those are computed directly.
      return modPow(b, this.exponent, this.modulus);
    }
  }

  /** Makes OpenSSL clear its copy of the exponent (it may be secret, e.g. N mod φ(p²)); pow refuses afterwards.
   * (The bigint fields cannot be cleared: drop the object.) */
  wipe(): void {
    if (this.dh) clearExponent(this.dh);
    this.dh = undefined;
    this.wiped = true;
  }
}

// DER for PKCS#3 Diffie-Hellman keys (dhKeyAgreement, 1.2.840.113549.1.3.1), just what paths 4. and 6. need.
// Sizes are computed first and each key is written into one buffer from the caller's allocator (withScratch),
// so a secret prime, p² or exponent is never copied into intermediate buffers.
const DH_OID = Buffer.from("06092a864886f70d010301", "hex");

const lengthSize = (len: number): number => (len < 0x80 ? 1 : len < 0x100 ? 2 : len < 0x10000 ? 3 : 4);
const tlvSize = (bodyLength: number): number => 1 + lengthSize(bodyLength) + bodyLength;
/** Contents length of a DER INTEGER x >= 0 (a leading zero byte when the top bit is set). */
const intSize = (x: bigint): number => (x === 0n ? 1 : byteLength(x) + (bitLength(x) % 8 === 0 ? 1 : 0));

class DerWriter {
  at = 0;
  constructor(readonly out: Buffer) {}

  header(tag: number, bodyLength: number): this {
    this.out[this.at++] = tag;
    const size = lengthSize(bodyLength);
    if (size === 1) this.out[this.at++] = bodyLength;
    else {
      this.out[this.at++] = 0x80 | (size - 1);
      for (let i = size - 2; i >= 0; i--) this.out[this.at++] = (bodyLength >> (8 * i)) & 0xff;
    }
    return this;
  }

  bytes(b: Uint8Array): this {
    this.out.set(b, this.at);
    this.at += b.length;
    return this;
  }

  int(x: bigint): this {
    const len = intSize(x);
    this.header(0x02, len);
    putNat(this.out, this.at, x, len);
    this.at += len;
    return this;
  }
}

/** AlgorithmIdentifier { dhKeyAgreement, DHParameter { p, g } }: its size, and a writer for it. */
function dhAlgorithm(p: bigint, g: bigint): { size: number; write: (w: DerWriter) => void } {
  const params = tlvSize(intSize(p)) + tlvSize(intSize(g));
  const body = DH_OID.length + tlvSize(params);
  return {
    size: tlvSize(body),
    write: (w) => w.header(0x30, body).bytes(DH_OID).header(0x30, params).int(p).int(g),
  };
}

/** PrivateKeyInfo { 0, AlgorithmIdentifier(p, g), OCTET STRING { INTEGER x } } in one buffer from `alloc`. */
export function dhPkcs8(alloc: Alloc, p: bigint, g: bigint, x: bigint): Buffer {
  const algorithm = dhAlgorithm(p, g);
  const secret = tlvSize(intSize(x));
  const body = tlvSize(1) + algorithm.size + tlvSize(secret);
  const w = new DerWriter(alloc(tlvSize(body)));
  w.header(0x30, body).int(0n);
  algorithm.write(w);
  w.header(0x04, secret).int(x);
  return w.out;
}

/**
 * SubjectPublicKeyInfo { AlgorithmIdentifier(p, g), BIT STRING { 0, INTEGER y } } in one buffer from `alloc`,
 * with the contents of y (`yLength` bytes, see intSize) left zero at its very end for putNat to fill.
 */
function dhSpkiTemplate(alloc: Alloc, p: bigint, g: bigint, yLength: number): Buffer {
  const algorithm = dhAlgorithm(p, g);
  const bits = 1 + tlvSize(yLength);
  const body = algorithm.size + tlvSize(bits);
  const w = new DerWriter(alloc(tlvSize(body)));
  w.header(0x30, body);
  algorithm.write(w);
  w.header(0x03, bits).bytes(Uint8Array.of(0)).header(0x02, yLength);
  return w.out;
}

/** dhSpkiTemplate with y filled in. */
export function dhSpki(alloc: Alloc, p: bigint, g: bigint, y: bigint): Buffer {
  const len = intSize(y);
  const out = dhSpkiTemplate(alloc, p, g, len);
  putNat(out, out.length - len, y, len);
  return out;
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
 *
 * p is secret (a Paillier prime). Each base travels as a DH public key whose DER names p; one such SPKI is kept
 * per size of the base's INTEGER (two or three in practice) and only its last bytes are rewritten per call, so
 * pow() makes no copy of p. wipe() zeroes them (the caller's erasure path: proveModulus wipes its engines).
 */
export class FixedExponentModPrime {
  private key: KeyObject | undefined;
  private readonly spki = new Map<number, Buffer>();
  private wiped = false;

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
      this.key = withScratch((alloc) =>
        createPrivateKey({ key: dhPkcs8(alloc, prime, 2n, exponent), format: "der", type: "pkcs8" }),
      );
    } catch {
      // An exponent OpenSSL will not take as a DH private key: every base goes the direct way.
    }
  }

  /** base^exponent mod prime. */
  pow(base: bigint): bigint {
    check(!this.wiped, "SECRET_WIPED", "this fixed-exponent engine has been wiped", "precondition");
    const b = mod(base, this.prime);
    if (!this.key || b < 2n || b === this.prime - 1n) return modPow(b, this.exponent, this.prime);
    const len = intSize(b);
    let spki = this.spki.get(len);
    if (!spki) {
      spki = dhSpkiTemplate(ownBuffer, this.prime, 2n, len);
      this.spki.set(len, spki);
    }
    const at = spki.length - len;
    putNat(spki, at, b, len);
    try {
      const publicKey = createPublicKey({ key: spki, format: "der", type: "spki" });
      return readAndZero(diffieHellman({ privateKey: this.key, publicKey }));
    } catch {
      return modPow(b, this.exponent, this.prime);
    } finally {
      spki.fill(0, at);
    }
  }

  /** The buffers it keeps that hold the prime (for tests of wipe()). */
  retainedBuffers(): readonly Buffer[] {
    return [...this.spki.values()];
  }

  /** Zeroes every kept encoding of the prime and drops the key object (OpenSSL frees it); pow refuses afterwards. */
  wipe(): void {
    for (const b of this.spki.values()) b.fill(0);
    this.spki.clear();
    this.key = undefined;
    this.wiped = true;
  }
}
