// Byte layouts for what the wallet stores: the owner's two-party key (public part in the clear, the share o
// sealed apart) and the ring-Pedersen key (public parameters with Π^prm in the clear, p, q, λ sealed).
// Fields are length-prefixed (u32 big-endian); the cached nonce engine of a key is never stored.
import { RingPedersenParams } from "../proto/gen/ecdsa2p.ts";
import { mulG, mulSecret } from "../protocol/ecdsa2p/ec.ts";
import type { PartyTwoKey, RingPedersenKey } from "../protocol/ecdsa2p/index.ts";
import { bigIntToBytes, bytesToBigInt, parsePoint, parseScalar, pointBytes } from "../protocol/encoding.ts";
import { check } from "../protocol/errors.ts";

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

/** The public part of the owner's key: session id, O, S, P, the SE's Paillier N and c_key. */
export function encodeKeyPublic(key: PartyTwoKey): Buffer {
  return packFields([
    key.sessionId,
    pointBytes(key.ownerPublicShare),
    pointBytes(key.sePublicShare),
    pointBytes(key.sharedPublicKey),
    bigIntToBytes(key.paillierModulus),
    bigIntToBytes(key.encryptedShare),
  ]);
}

/** Rebuilds the key from its stored parts, checking o·G = O and o·S = P so a mixed-up row cannot sign. */
export function decodeKey(publicBlob: Uint8Array, share: Uint8Array): PartyTwoKey {
  const [sessionId, O, S, P, n, c] = unpackFields(publicBlob, 6, "stored key") as [
    Buffer,
    Buffer,
    Buffer,
    Buffer,
    Buffer,
    Buffer,
  ];
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
    share: new Uint8Array(share),
    ownerPublicShare,
    sePublicShare,
    sharedPublicKey,
    paillierModulus: bytesToBigInt(n),
    encryptedShare: bytesToBigInt(c),
    wiped: false,
  };
}

export function encodeRingPedersenParams(key: RingPedersenKey): Buffer {
  return Buffer.from(RingPedersenParams.encode(key.params).finish());
}

export function encodeRingPedersenSecret(key: RingPedersenKey): Buffer {
  return packFields([key.secret.p, key.secret.q, key.secret.lambda]);
}

export function decodeRingPedersen(params: Uint8Array, secret: Uint8Array): RingPedersenKey {
  const [p, q, lambda] = unpackFields(secret, 3, "stored ring-Pedersen secret") as [Buffer, Buffer, Buffer];
  const decoded = RingPedersenParams.decode(params);
  check(
    bytesToBigInt(p) * bytesToBigInt(q) === bytesToBigInt(decoded.modulus),
    "WALLET_CORRUPT",
    "the stored ring-Pedersen primes do not match its modulus",
  );
  return {
    params: decoded,
    secret: { p: new Uint8Array(p), q: new Uint8Array(q), lambda: new Uint8Array(lambda) },
  };
}
