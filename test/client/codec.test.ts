import assert from "node:assert/strict";
import { generatePrimeSync } from "node:crypto";
import { test } from "node:test";
import {
  decodeKey,
  decodeKeySecret,
  encodeKeyPublic,
  encodeKeySecret,
  packFields,
  unpackFields,
} from "../../client/codec.ts";
import type { HolderKey } from "../../protocol/ecdsa2p/holder.ts";
import { paillierKeyFromPrimes } from "../../protocol/ecdsa2p/paillier.ts";
import { G, scalarBytes } from "../../protocol/encoding.ts";
import { systemRng as rng } from "../../protocol/rng.ts";

const blum = () => generatePrimeSync(1024, { bigint: true, add: 4n, rem: 3n });
const [p, q] = [blum(), blum()];

function key(o: bigint, s: bigint): HolderKey {
  const S = G.multiply(s);
  return {
    sessionId: new Uint8Array(16).fill(7),
    share: scalarBytes(o),
    ownerPublicShare: G.multiply(o),
    sePublicShare: S,
    sharedPublicKey: S.multiply(o),
    paillier: paillierKeyFromPrimes(p, q, { rng, modulusProof: false, nonces: 0 }),
    encryptedShare: 987654321n,
    tainted: false,
    wiped: false,
  };
}

test("the owner's key splits into a public blob and a sealed secret (o, p, q), and comes back whole", () => {
  const k = key(11n, 13n);
  const secret = encodeKeySecret(k);
  const back = decodeKey(encodeKeyPublic(k), secret, rng);
  assert.ok(back.sharedPublicKey.equals(k.sharedPublicKey), "the shared key comes back");
  assert.ok(back.sePublicShare.equals(k.sePublicShare), "S comes back");
  assert.equal(back.paillier.n, k.paillier.n, "the coin's Paillier modulus comes back");
  assert.deepEqual(Buffer.from(back.paillier.secret.p), Buffer.from(k.paillier.secret.p), "p comes back");
  assert.equal(back.paillier.used, true, "a restored Paillier key encrypts nothing new");
  assert.equal(back.encryptedShare, k.encryptedShare, "c_key comes back");
  assert.deepEqual(back.sessionId, k.sessionId, "the session id comes back");
  const pub = encodeKeyPublic(k);
  assert.ok(!pub.includes(Buffer.from(k.share)), "the public blob holds no share");
  assert.ok(!pub.includes(Buffer.from(k.paillier.secret.p)), "the public blob holds no Paillier prime");
});

test("a share or primes that do not belong to the stored key are refused", () => {
  const k = key(11n, 13n);
  const wrongShare = packFields([scalarBytes(12n), k.paillier.secret.p, k.paillier.secret.q]);
  assert.throws(
    () => decodeKey(encodeKeyPublic(k), wrongShare, rng),
    (e: Error & { code?: string }) => e.code === "WALLET_CORRUPT",
  );
  const wrongPrimes = packFields([k.share, k.paillier.secret.p, k.paillier.secret.p]);
  assert.throws(() => decodeKey(encodeKeyPublic(k), wrongPrimes, rng), /Paillier primes do not match/);
  assert.throws(() => decodeKeySecret(packFields([k.share]), rng), /1 fields, expected 3/);
  const other = key(11n, 17n);
  assert.throws(
    () => decodeKey(encodeKeyPublic(other).subarray(0, 60), encodeKeySecret(k), rng),
    /WALLET_CORRUPT|truncated/,
  );
});

test("length-prefixed fields refuse truncation and a wrong count", () => {
  const blob = packFields([Buffer.from("ab"), Buffer.alloc(0), Buffer.from("xyz")]);
  assert.deepEqual(unpackFields(blob, 3, "t").map(String), ["ab", "", "xyz"]);
  assert.throws(() => unpackFields(blob, 2, "t"), /3 fields, expected 2/);
  assert.throws(() => unpackFields(blob.subarray(0, blob.length - 1), 3, "t"), /truncated/);
});
