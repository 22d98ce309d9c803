// Modular exponentiation: every path (OpenSSL constant-time, OpenSSL public, fixed base, BigInt) against a
// naive square-and-multiply, on random and edge inputs; the integer helpers.
import assert from "node:assert/strict";
import {
  createPrivateKey,
  createPublicKey,
  type DiffieHellman,
  diffieHellman,
  generatePrimeSync,
  randomBytes,
} from "node:crypto";
import { test } from "node:test";
import {
  bitLength,
  crt,
  gcd,
  isqrt,
  modInverse,
  SMALL_PRIMES,
  smallFactor,
} from "../../../protocol/ecdsa2p/arith.ts";
import { readInRange, readNat, readPositiveBelow, writeNat } from "../../../protocol/ecdsa2p/codec.ts";
import {
  dhPkcs8,
  dhSpki,
  FixedBase,
  FixedExponent,
  FixedExponentModPrime,
  modPow,
  modPowBigInt,
  modPowOpenSslConstTime,
  modPowOpenSslExact,
  modPowOpenSslPublic,
  modPowPublic,
  withScratch,
} from "../../../protocol/ecdsa2p/modexp.ts";
import { code } from "./helpers.ts";

const rnd = (bits: number): bigint => BigInt(`0x${randomBytes(Math.ceil(bits / 8)).toString("hex")}`);

function naive(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n % m;
  b %= m;
  for (; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
  return r;
}

const oddModulus = (bits: number): bigint => rnd(bits) | (1n << BigInt(bits - 1)) | 1n;

test("all paths agree with square-and-multiply on random inputs, 64 to 4096-bit moduli", () => {
  for (const bits of [64, 511, 512, 1024, 2048, 3072, 3073, 4096]) {
    const m = oddModulus(bits);
    for (const eBits of bits > 2048
      ? [1, 17, 256, bits + 1]
      : [1, 17, 256, bits - 1, bits + 1, 2 * bits + 5]) {
      const b = rnd(bits + 8) % m;
      const e = rnd(eBits);
      const want = naive(b, e, m);
      assert.equal(modPow(b, e, m), want, `modPow ${bits}/${eBits}`);
      assert.equal(modPowPublic(b, e, m), want, `modPowPublic ${bits}/${eBits}`);
      assert.equal(modPowBigInt(b, e, m), want, `modPowBigInt ${bits}/${eBits}`);
      assert.equal(new FixedBase(b, m).pow(e), want, `FixedBase ${bits}/${eBits}`);
      assert.equal(new FixedExponent(e, m).pow(b), want, `FixedExponent ${bits}/${eBits}`);
    }
  }
});

test("the raw OpenSSL paths agree with BigInt where they apply", () => {
  for (const bits of [1024, 2048]) {
    const m = oddModulus(bits);
    for (let i = 0; i < 4; i++) {
      const b = (rnd(bits) % (m - 2n)) + 2n;
      const e = (rnd(bits) % (m - 1n)) + 1n;
      const want = modPowBigInt(b, e, m);
      assert.equal(modPowOpenSslConstTime(b, e, m), want);
      assert.equal(modPowOpenSslPublic(b, e, m), want);
    }
  }
});

test("the exact-size path (a PKCS#8 DH key) agrees with BigInt, edge results and over-long exponents included", () => {
  const p = generatePrimeSync(1024, { bigint: true });
  for (const m of [oddModulus(2048), oddModulus(4096), p * p, oddModulus(600)]) {
    const cases: [bigint, bigint][] = [
      [rnd(bitLength(m)) % m, rnd(bitLength(m))],
      [rnd(bitLength(m)) % m, rnd(2 * bitLength(m) + 77)], // exponent longer than the modulus
      [2n, rnd(256)],
      [m - 1n, 2n], // result 1
      [m - 1n, 3n], // result m − 1
      [rnd(bitLength(m)) % m, 1n],
    ];
    if (m === p * p) cases.push([p, 2n], [p + 1n, p]); // a base sharing a factor with m: result 0; a unit of order p
    for (const [b, e] of cases)
      assert.equal(
        modPowOpenSslExact(b, e, m),
        naive(b, e, m),
        `${bitLength(m)} bits, exponent ${bitLength(e)}`,
      );
  }
});

test("edge inputs: bases 0, 1, m−1, ≥ m; exponents 0, 1, m−1, m, m+1, negative", () => {
  const m = oddModulus(1024);
  const p = generatePrimeSync(1024, { bigint: true });
  const cases: [bigint, bigint][] = [
    [0n, 5n],
    [1n, 9n],
    [m - 1n, 3n],
    [m - 1n, 4n],
    [m, 3n],
    [m + 2n, 5n],
    [2n, 0n],
    [0n, 0n],
    [2n, 1n],
    [3n, m - 1n],
    [3n, m],
    [3n, m + 1n],
  ];
  for (const [b, e] of cases) {
    const want = naive(b, e, m);
    for (const f of [modPow, modPowPublic, modPowBigInt])
      assert.equal(f(b, e, m), want, `${f.name}(${b}, ${e})`);
    assert.equal(new FixedBase(b, m).pow(e), want, `FixedBase(${b}, ${e})`);
    assert.equal(new FixedExponent(e, m).pow(b), want, `FixedExponent(${b}, ${e})`);
  }
  // Results OpenSSL's computeSecret refuses (1 and m − 1) still come out: b^φ(N) = 1 for every unit b.
  const q = generatePrimeSync(1024, { bigint: true });
  const phi = new FixedExponent((p - 1n) * (q - 1n), p * q);
  for (const b of [3n, 5n, rnd(1500) % (p * q)]) assert.equal(phi.pow(b), 1n);
  assert.equal(modPow(5n, 7n, 1n), 0n);
  assert.equal((modPow(5n, -7n, p) * modPow(5n, 7n, p)) % p, 1n);
  assert.equal((modPowPublic(5n, -7n, p) * modPowPublic(5n, 7n, p)) % p, 1n);
  assert.throws(() => modPow(p, -1n, p), code("NOT_INVERTIBLE"));
  assert.throws(() => modPow(2n, 3n, 0n), code("INVALID_MODULUS"));
  assert.throws(() => new FixedBase(3n, m).pow(-1n), code("NEGATIVE_EXPONENT"));
});

test("what OpenSSL refuses (even or tiny moduli, base 1) falls back to BigInt", () => {
  const even = rnd(1024) << 1n;
  const tiny = oddModulus(300);
  assert.throws(() => modPowOpenSslConstTime(3n, 5n, even));
  assert.throws(() => modPowOpenSslPublic(3n, 5n, even));
  assert.throws(() => modPowOpenSslConstTime(3n, 5n, tiny), /modulus too small/);
  assert.throws(() => modPowOpenSslConstTime(1n, 5n, oddModulus(1024)), /bad generator/);
  for (const m of [even, tiny, 97n, 2n ** 64n]) {
    const b = rnd(1100) % m;
    const e = rnd(700);
    assert.equal(modPow(b, e, m), naive(b, e, m));
    assert.equal(modPowPublic(b, e, m), naive(b, e, m));
    assert.equal(new FixedBase(b, m).pow(e), naive(b, e, m));
    assert.equal(new FixedExponent(e, m).pow(b), naive(b, e, m));
  }
});

test("integer helpers: gcd, inverse, isqrt, CRT, trial division", () => {
  const p = generatePrimeSync(512, { bigint: true });
  const q = generatePrimeSync(512, { bigint: true });
  assert.equal(gcd(p * 6n, q * 6n), 6n);
  assert.equal((modInverse(q, p) * q) % p, 1n);
  const n = p * q;
  const s = isqrt(n);
  assert.ok(s * s <= n && (s + 1n) * (s + 1n) > n, "isqrt(n) is the floor of the square root");
  assert.equal(isqrt(0n), 0n);
  assert.equal(isqrt(15n), 3n);
  assert.equal(isqrt(16n), 4n);
  const x = rnd(1000) % n;
  assert.equal(crt(x % p, p, x % q, q, modInverse(q, p)), x);
  assert.equal(SMALL_PRIMES.length, 6542); // π(2^16)
  assert.equal(smallFactor(n), 0);
  assert.equal(smallFactor(n * 65521n), 65521);
  assert.equal(smallFactor(n * 3n * 5n), 3);
});

test("wire numbers: size refused before conversion, canonical form, ranges", () => {
  assert.throws(
    () => readNat(new Uint8Array(1 << 20).fill(1), 2048, "N"),
    /N is 1048576 bytes, more than the 256 allowed/,
  );
  assert.throws(() => readNat(new Uint8Array([0x10, 0, 0]), 20, "x"), /more than 20 bits/);
  assert.throws(() => readNat(new Uint8Array([0, 1]), 16, "x"), code("NON_CANONICAL_NUMBER"));
  assert.equal(readNat(new Uint8Array(0), 16, "x"), 0n);
  assert.equal(readNat(writeNat(65535n), 16, "x"), 65535n);
  assert.throws(() => readPositiveBelow(writeNat(0n), 10n, "x"), code("NUMBER_OUT_OF_RANGE"));
  assert.throws(() => readPositiveBelow(writeNat(10n), 10n, "x"), code("NUMBER_OUT_OF_RANGE"));
  assert.equal(readPositiveBelow(writeNat(9n), 10n, "x"), 9n);
  assert.throws(
    () => readInRange(writeNat(2n ** 300n), 2n ** 256n, "z", "RANGE_CODE", "why"),
    code("RANGE_CODE"),
  );
  assert.throws(
    () => readInRange(new Uint8Array(2000).fill(1), 2n ** 256n, "z", "RANGE_CODE", "why"),
    code("NUMBER_TOO_LARGE"),
  );
});

test("FixedExponentModPrime agrees with BigInt for 512 to 3072-bit primes, every exponent size, edge bases", () => {
  for (const bits of [512, 1024, 2048, 3072]) {
    const p = generatePrimeSync(bits, { bigint: true });
    for (const e of [1n, 2n, 65537n, rnd(bits) % (p - 1n), p - 2n]) {
      const fixed = new FixedExponentModPrime(e, p);
      for (const b of [0n, 1n, 2n, p - 1n, p, p + 5n, -3n, rnd(bits) % p, rnd(bits + 64)])
        assert.equal(fixed.pow(b), modPowBigInt(b, e, p), `${bits}-bit prime, base ${b}, exponent ${e}`);
    }
  }
});

test("FixedExponentModPrime falls back to the direct path where OpenSSL's key agreement does not apply", () => {
  const small = 1000003n; // below OpenSSL's 512-bit floor
  const p = generatePrimeSync(1024, { bigint: true });
  const cases: [bigint, bigint][] = [
    [small, 12345n],
    [p, 0n], // exponent 0: not a DH private key
    [p, p + 3n], // exponent ≥ p
    [p, (p - 1n) / 2n], // Legendre symbol: many results are p − 1 or 1, which OpenSSL refuses as a secret
  ];
  for (const [m, e] of cases) {
    const fixed = new FixedExponentModPrime(e, m);
    for (let i = 0; i < 8; i++) {
      const b = rnd(1100);
      assert.equal(fixed.pow(b), modPowBigInt(b, e, m), `modulus ${bitLength(m)} bits, exponent ${e}`);
    }
  }
});

const allZero = (b: Uint8Array): boolean => b.every((v) => v === 0);
/** Whether `haystack` contains the big-endian bytes of x. */
const holds = (haystack: Uint8Array, x: bigint): boolean =>
  Buffer.from(haystack).includes(
    Buffer.from(x.toString(16).padStart(Math.ceil(x.toString(16).length / 2) * 2, "0"), "hex"),
  );

test("withScratch zeroes every buffer it handed out, when the callback returns and when it throws", () => {
  const kept: Buffer[] = [];
  const got = withScratch((alloc) => {
    for (const n of [1, 64, 65, 600]) kept.push(alloc(n).fill(0xa5));
    return kept.map((b) => b.length);
  });
  assert.deepEqual(got, [1, 64, 65, 600]);
  assert.ok(kept.every(allZero), "withScratch zeroes every buffer it handed out when the callback returns");
  const thrown: Buffer[] = [];
  assert.throws(() =>
    withScratch((alloc) => {
      thrown.push(alloc(300).fill(7));
      throw new Error("OpenSSL refused");
    }),
  );
  assert.ok(thrown.every(allZero), "withScratch zeroes every buffer it handed out when the callback throws");
});

test("DH PKCS#8 and SPKI encodings of a secret prime: one buffer each, accepted by OpenSSL, zeroed after use", () => {
  const p = generatePrimeSync(1024, { bigint: true });
  const x = rnd(1000) | (1n << 1015n); // a top bit set needs INTEGER's leading zero byte
  const y = (1n << 1016n) + 12345n;
  const allocated: Buffer[] = [];
  const secret = withScratch((alloc) => {
    const counted = (n: number) => {
      const b = alloc(n);
      allocated.push(b);
      return b;
    };
    const pkcs8 = dhPkcs8(counted, p, 2n, x);
    const spki = dhSpki(counted, p, 2n, y);
    assert.equal(allocated.length, 2, "each key is written into a single buffer");
    assert.ok(
      holds(pkcs8, p) && holds(pkcs8, x) && holds(spki, p),
      "the PKCS#8 key holds p and x and the SPKI holds p",
    );
    const privateKey = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" });
    // OpenSSL re-encodes the key it parsed: the same DER, so ours is canonical.
    assert.deepEqual(privateKey.export({ format: "der", type: "pkcs8" }), pkcs8);
    const publicKey = createPublicKey({ key: spki, format: "der", type: "spki" });
    assert.deepEqual(publicKey.export({ format: "der", type: "spki" }), spki);
    return diffieHellman({ privateKey, publicKey });
  });
  assert.equal(BigInt(`0x${secret.toString("hex")}`), modPowBigInt(y, x, p));
  assert.ok(allocated.every(allZero), "every buffer that held p or x is zero");
});

test("FixedExponentModPrime: pow leaves only the prime's encodings behind, and wipe() zeroes those", () => {
  const p = generatePrimeSync(1024, { bigint: true, add: 4n, rem: 3n });
  const e = ((p + 1n) / 4n) ** 2n % (p - 1n);
  const fixed = new FixedExponentModPrime(e, p);
  for (const b of [rnd(1100), (1n << 1000n) + 5n, 1n << 1015n, rnd(1100)])
    assert.equal(fixed.pow(b), modPowBigInt(b, e, p));
  const kept = fixed.retainedBuffers();
  assert.ok(kept.length >= 2, "one SPKI per INTEGER size of the base");
  assert.ok(kept.length <= 3, `at most 3 SPKI buffers are kept (${kept.length})`);
  for (const b of kept) {
    assert.ok(holds(b, p), "the SPKI names p");
    assert.ok(allZero(b.subarray(b.length - 8)), "the last base is zeroed after its call");
  }
  fixed.wipe();
  assert.ok(kept.every(allZero), "wipe() zeroes every kept encoding of p");
  assert.equal(fixed.retainedBuffers().length, 0);
  assert.throws(() => fixed.pow(5n), code("SECRET_WIPED"));
});

test("FixedExponent.wipe() makes OpenSSL drop the exponent; FixedBase keeps no exponent after pow", () => {
  const p = generatePrimeSync(1024, { bigint: true });
  const p2 = p * p;
  const e = p * (p - 1n) - 12345n;
  const fixed = new FixedExponent(e, p2);
  assert.equal(fixed.pow(7n), modPowBigInt(7n, e, p2));
  const dh = (fixed as unknown as { dh: DiffieHellman }).dh;
  assert.equal(BigInt(`0x${dh.getPrivateKey().toString("hex")}`), e);
  fixed.wipe();
  assert.deepEqual([...dh.getPrivateKey()], [1]);
  assert.throws(() => fixed.pow(7n), code("SECRET_WIPED"));
  // A cached FixedBase (ring-Pedersen s, t) sees the SE's share as exponent: it must not stay in the object.
  const m = oddModulus(2048);
  const base = new FixedBase(3n, m);
  const share = rnd(256);
  assert.equal(base.pow(share), modPowBigInt(3n, share, m));
  assert.deepEqual([...(base as unknown as { dh: DiffieHellman }).dh.getPrivateKey()], [1]);
});
