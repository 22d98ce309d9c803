// Byte layouts for what the wallet stores: the owner's two-party key (public part in the clear; the share o and
// the coin's Paillier primes sealed apart).
// Fields are length-prefixed (u32 big-endian); the cached nonce engine of a key is never stored.
import { mulG, mulSecret } from "../protocol/ecdsa2p/ec.ts";
import type { HolderKey } from "../protocol/ecdsa2p/holder.ts";
import { type PaillierKey, paillierKeyFromPrimes } from "../protocol/ecdsa2p/paillier.ts";
import { bigIntToBytes, bytesToBigInt, parsePoint, parseScalar, pointBytes } from "../protocol/encoding.ts";
import { check } from "../protocol/errors.ts";
import type { Rng } from "../protocol/rng.ts";

export function packFields(fields: readonly Uint8Array[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of fields) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(f.length);
    parts.push(len, Buffer.from(f));
  }
  return Buffer.concat(parts);
}

export function unpackFields(blob: Uint8Array, count: number, what: string): Buffer[] {
  const b = Buffer.from(blob);
  const out: Buffer[] = [];
  let at = 0;
  while (at < b.length) {
    check(at + 4 <= b.length, "WALLET_CORRUPT", `${what}: truncated field length`);
    const len = b.readUInt32BE(at);
    at += 4;
    check(at + len <= b.length, "WALLET_CORRUPT", `${what}: truncated field`);
    out.push(b.subarray(at, at + len));
    at += len;
  }
  check(out.length === count, "WALLET_CORRUPT", `${what}: ${out.length} fields, expected ${count}`);
  return out;
}

/** The public part of the owner's key: session id, O, S, P, the owner's Paillier N and c_key = Enc_N(o). */
export function encodeKeyPublic(key: HolderKey): Buffer {
  return packFields([
    key.sessionId,
    pointBytes(key.ownerPublicShare),
    pointBytes(key.sePublicShare),
    pointBytes(key.sharedPublicKey),
    bigIntToBytes(key.paillier.n),
    bigIntToBytes(key.encryptedShare),
  ]);
}

/** The key's secret part, sealed apart: the share o and the coin's Paillier primes p, q. */
export function encodeKeySecret(key: HolderKey): Buffer {
  return packFields([key.share, key.paillier.secret.p, key.paillier.secret.q]);
}

/** The secret part of a key whose public part is not made yet (a receive before its key update). */
export function encodeShareAndPaillier(share: Uint8Array, paillier: PaillierKey): Buffer {
  return packFields([share, paillier.secret.p, paillier.secret.q]);
}

/** The share and Paillier key of a sealed secret part (encodeKeySecret), p·q checked against `n` if given. */
export function decodeKeySecret(
  secret: Uint8Array,
  rng: Rng,
  n?: bigint,
): { share: Uint8Array; paillier: PaillierKey } {
  const [o, p, q] = unpackFields(secret, 3, "stored key secret") as [Buffer, Buffer, Buffer];
  const pp = bytesToBigInt(p);
  const qq = bytesToBigInt(q);
  check(
    n === undefined || pp * qq === n,
    "WALLET_CORRUPT",
    "the stored Paillier primes do not match the key",
  );
  const paillier = paillierKeyFromPrimes(pp, qq, { rng, modulusProof: false, nonces: 0 });
  // Restored for decryption only: a Paillier key encrypts one share, the one it was made for.
  paillier.used = true;
  return { share: new Uint8Array(o), paillier };
}

/** Rebuilds the key from its stored parts, checking o·G = O, o·S = P and p·q = N so a mixed-up row cannot sign. */
export function decodeKey(publicBlob: Uint8Array, secret: Uint8Array, rng: Rng): HolderKey {
  const [sessionId, O, S, P, n, c] = unpackFields(publicBlob, 6, "stored key") as [
    Buffer,
    Buffer,
    Buffer,
    Buffer,
    Buffer,
    Buffer,
  ];
  const { share, paillier } = decodeKeySecret(secret, rng, bytesToBigInt(n));
  const o = parseScalar(share, "stored owner share");
  const ownerPublicShare = parsePoint(O, "stored O");
  const sePublicShare = parsePoint(S, "stored S");
  const sharedPublicKey = parsePoint(P, "stored P");
  check(
    mulG(o).equals(ownerPublicShare) && mulSecret(sePublicShare, o).equals(sharedPublicKey),
    "WALLET_CORRUPT",
    "the stored share does not belong to the stored key",
  );
  return {
    sessionId: new Uint8Array(sessionId),
    share,
    ownerPublicShare,
    sePublicShare,
    sharedPublicKey,
    paillier,
    encryptedShare: bytesToBigInt(c),
    tainted: false,
    wiped: false,
  };
}
