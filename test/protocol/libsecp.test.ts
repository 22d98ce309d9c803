// libsecp256k1 through WebAssembly (protocol/libsecp.ts), the ec.ts and BIP340 helpers built on it: every
// operation against the JavaScript reference (@noble/curves), edge scalars and the point at infinity, and no trace
// of a secret scalar left in the module's memory after a multiplication.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { schnorr, secp256k1 } from "@noble/curves/secp256k1.js";
import { bip340Sign, bip340Verify } from "../../protocol/bip340.ts";
import { mulAddPublic, mulG, mulSecret, Q, schnorrPoint, xOfMul } from "../../protocol/ecdsa2p/ec.ts";
import { bytesToBigInt, G, Point } from "../../protocol/encoding.ts";
import * as libsecp from "../../protocol/libsecp.ts";

const scalar = (): bigint => (bytesToBigInt(randomBytes(32)) % (Q - 1n)) + 1n;
const EDGE = [1n, 2n, Q - 1n, Q - 2n, Q >> 1n, (Q >> 1n) + 1n];

test("the module's stack is scrubbed where the self-test expects it: secret scalars may go to it", () => {
  assert.equal(libsecp.secretsSafe, true);
});

test("k·G, k·P, x(k·P) and a·G + b·P agree with the JavaScript code, edge scalars included", () => {
  for (const k of [...EDGE, ...Array.from({ length: 24 }, scalar)]) {
    const P = G.multiply(scalar());
    assert.ok(mulG(k).equals(G.multiply(k)), `k·G for k = ${k}`);
    assert.ok(mulSecret(P, k).equals(P.multiply(k)), `k·P for k = ${k}`);
    assert.equal(xOfMul(k, P), P.multiply(k).toAffine().x, `x(k·P) for k = ${k}`);
    const b = scalar();
    assert.ok(mulAddPublic(k, b, P).equals(G.mulAddUnsafe(k, P, b)), `a·G + b·P for a = ${k}`);
    assert.ok(schnorrPoint(k, b, P).equals(G.mulAddUnsafe(k, P, Q - b)), `z·G − e·X for z = ${k}`);
  }
});

test("a·G + b·P: zero scalars, the point at infinity as input and as result", () => {
  const a = scalar();
  const P = G.multiply(scalar());
  assert.ok(mulAddPublic(0n, a, P).equals(P.multiply(a)), "0·G + a·P is a·P");
  assert.ok(mulAddPublic(a, 0n, P).equals(G.multiply(a)), "a·G + 0·P is a·G");
  assert.ok(mulAddPublic(a, 5n, Point.ZERO).equals(G.multiply(a)), "a·G + 5·O is a·G");
  assert.ok(mulAddPublic(a, Q - a, G).equals(Point.ZERO), "a·G + (q − a)·G is the point at infinity");
  assert.ok(
    schnorrPoint(a, a, G).equals(Point.ZERO),
    "a·G − a·G (the Schnorr point with z = e = a, X = G) is the point at infinity",
  );
  assert.equal(libsecp.add(G.toBytes(true), G.negate().toBytes(true)), undefined);
});

test("no copy of a secret scalar stays in the module's memory after k·G, k·P or x(k·P)", () => {
  const P = G.multiply(scalar());
  for (let i = 0; i < 16; i++) {
    const k = scalar();
    mulG(k);
    assert.equal(libsecp.traces(k), false, "after k·G");
    mulSecret(P, k);
    assert.equal(libsecp.traces(k), false, "after k·P");
    xOfMul(k, P);
    assert.equal(libsecp.traces(k), false, "after x(k·P)");
  }
});

test("out-of-range scalars take the JavaScript path and are refused the same way", () => {
  const P = G.multiply(scalar());
  assert.throws(() => mulG(0n));
  assert.throws(() => mulG(Q));
  assert.throws(() => mulSecret(P, Q + 1n));
  assert.throws(() => libsecp.mulBase(Q));
  assert.throws(() => libsecp.mul(P.toBytes(true), 0n));
});

test("BIP340: the same signature bytes as @noble/curves, and the same verdicts on tampered input", () => {
  for (let i = 0; i < 32; i++) {
    const sk = schnorr.utils.randomSecretKey();
    const pk = schnorr.getPublicKey(sk);
    const msg = randomBytes(32);
    const aux = randomBytes(32);
    const sig = bip340Sign(msg, sk, aux);
    assert.deepEqual(Buffer.from(sig), Buffer.from(schnorr.sign(msg, sk, aux)));
    assert.equal(bip340Verify(sig, msg, pk), true);
    const flipped = Uint8Array.from(sig);
    flipped[i % 64]! ^= 1 << (i % 8);
    assert.equal(bip340Verify(flipped, msg, pk), false, "tampered signature");
    assert.equal(bip340Verify(sig, randomBytes(32), pk), false, "other message");
    assert.equal(bip340Verify(sig, msg, schnorr.getPublicKey(schnorr.utils.randomSecretKey())), false);
    assert.equal(libsecp.traces(bytesToBigInt(sk)), false, "no trace of the key after signing");
  }
});

test("BIP340: malformed keys and signatures are false, not errors; other message lengths go to noble", () => {
  const sk = schnorr.utils.randomSecretKey();
  const msg = randomBytes(32);
  const sig = bip340Sign(msg, sk, randomBytes(32));
  const pk = schnorr.getPublicKey(sk);
  assert.equal(bip340Verify(sig, msg, new Uint8Array(32).fill(0xff)), false, "x ≥ p");
  assert.equal(bip340Verify(sig, msg, new Uint8Array(32)), false, "x = 0 (not on the curve)");
  assert.equal(bip340Verify(sig, msg, pk.subarray(1)), false, "31-byte key");
  assert.equal(bip340Verify(sig.subarray(1), msg, pk), false, "63-byte signature");
  const long = randomBytes(45);
  const sigLong = bip340Sign(long, sk, randomBytes(32));
  assert.equal(bip340Verify(sigLong, long, pk), true);
  assert.equal(schnorr.verify(sigLong, long, pk), true);
  assert.equal(bip340Verify(sigLong, randomBytes(45), pk), false);
});

test("ECDSA verification and decompression: same verdicts as noble, SEC1 forms only (no hybrid 06/07 keys)", () => {
  for (let i = 0; i < 64; i++) {
    const sk = secp256k1.utils.randomSecretKey();
    const pk = secp256k1.getPublicKey(sk, i % 2 === 0);
    const digest = randomBytes(32);
    const sig = secp256k1.sign(digest, sk, { prehash: false, lowS: i % 3 !== 0 });
    if (i % 4 === 0) sig[i % 64]! ^= 1;
    assert.equal(
      libsecp.verifyEcdsa(sig, digest, pk),
      secp256k1.verify(sig, digest, pk, { prehash: false, lowS: true }),
      `case ${i}`,
    );
    const full = secp256k1.getPublicKey(sk, false);
    assert.deepEqual(Buffer.from(libsecp.uncompressed(pk)!), Buffer.from(full));
    const hybrid = Uint8Array.from(full);
    hybrid[0] = 6 + (full[64]! & 1);
    assert.equal(libsecp.uncompressed(hybrid), undefined, "hybrid key refused");
    const good = secp256k1.sign(digest, sk, { prehash: false, lowS: true });
    assert.equal(libsecp.verifyEcdsa(good, digest, hybrid), false, "hybrid key refused");
  }
  assert.equal(
    libsecp.uncompressed(Uint8Array.from([2, ...new Uint8Array(32).fill(0xff)])),
    undefined,
    "x ≥ p",
  );
  assert.equal(libsecp.uncompressed(new Uint8Array(33)), undefined);
});
