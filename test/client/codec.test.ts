import assert from "node:assert/strict";
import { test } from "node:test";
import {
  decodeKey,
  decodeRingPedersen,
  encodeKeyPublic,
  encodeRingPedersenParams,
  encodeRingPedersenSecret,
  packFields,
  unpackFields,
} from "../../client/codec.ts";
import type { PartyTwoKey } from "../../protocol/ecdsa2p/index.ts";
import { G, scalarBytes } from "../../protocol/encoding.ts";
import { testRingPedersen } from "../helpers/owners.ts";

function key(o: bigint, s: bigint): PartyTwoKey {
  const S = G.multiply(s);
  return {
    sessionId: new Uint8Array(16).fill(7),
    share: scalarBytes(o),
    ownerPublicShare: G.multiply(o),
    sePublicShare: S,
    sharedPublicKey: S.multiply(o),
    paillierModulus: (1n << 2047n) + 12345n,
    encryptedShare: 987654321n,
    wiped: false,
  };
}

test("the owner's key splits into a public blob and the share, and comes back whole", () => {
  const k = key(11n, 13n);
  const back = decodeKey(encodeKeyPublic(k), k.share);
  assert.ok(
    back.sharedPublicKey.equals(k.sharedPublicKey),
    "the decoded key has the original shared public key",
  );
  assert.ok(back.sePublicShare.equals(k.sePublicShare), "the decoded key has the original SE public share");
  assert.equal(back.paillierModulus, k.paillierModulus);
  assert.equal(back.encryptedShare, k.encryptedShare);
  assert.deepEqual(back.sessionId, k.sessionId);
  assert.equal(back.nonceEngine, undefined, "the nonce engine is never stored");
  assert.ok(!encodeKeyPublic(k).includes(Buffer.from(k.share)), "the public blob holds no share");
});

test("a share that does not belong to the stored key is refused", () => {
  const k = key(11n, 13n);
  assert.throws(
    () => decodeKey(encodeKeyPublic(k), scalarBytes(12n)),
    (e: Error & { code?: string }) => e.code === "WALLET_CORRUPT",
  );
  const other = key(11n, 17n);
  assert.throws(() => decodeKey(encodeKeyPublic(other).subarray(0, 60), k.share), /WALLET_CORRUPT|truncated/);
});

test("ring-Pedersen parameters round-trip; mismatched primes are refused", () => {
  const params = encodeRingPedersenParams(testRingPedersen);
  const secret = encodeRingPedersenSecret(testRingPedersen);
  const back = decodeRingPedersen(params, secret);
  assert.deepEqual(Buffer.from(back.params.modulus), Buffer.from(testRingPedersen.params.modulus));
  assert.deepEqual(Buffer.from(back.secret.lambda), Buffer.from(testRingPedersen.secret.lambda));
  const swapped = packFields([
    testRingPedersen.secret.p,
    testRingPedersen.secret.p,
    testRingPedersen.secret.lambda,
  ]);
  assert.throws(() => decodeRingPedersen(params, swapped), /primes do not match/);
});

test("length-prefixed fields refuse truncation and a wrong count", () => {
  const blob = packFields([Buffer.from("ab"), Buffer.alloc(0), Buffer.from("xyz")]);
  assert.deepEqual(unpackFields(blob, 3, "t").map(String), ["ab", "", "xyz"]);
  assert.throws(() => unpackFields(blob, 2, "t"), /3 fields, expected 2/);
  assert.throws(() => unpackFields(blob.subarray(0, blob.length - 1), 3, "t"), /truncated/);
});
