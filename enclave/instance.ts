// What an enclave instance makes once, at boot (DESIGN.md 3.1, 4.1): its ring-Pedersen parameters, against
// which owners prove their Paillier keys (Π^prm proves them well formed; the trapdoor is wiped right after, so
// the instance never holds it), and its Ed25519 instance key, which signs every partial signature c3 it
// releases. Both are named in the attested identity statement.
import { generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import type { RingPedersenParams } from "../proto/gen/ecdsa2p.ts";
import { type PartialStatement, partialStatementBytes } from "../protocol/ecdsa2p/partial-statement.ts";
import {
  generateRingPedersen,
  type RingPedersenKey,
  type RingPedersenPublic,
  readRingPedersen,
  wipeRingPedersen,
} from "../protocol/ecdsa2p/ring-pedersen.ts";
import type { Rng } from "../protocol/rng.ts";

export interface InstanceKeys {
  /** The parameters with their Π^prm, as owners receive them. */
  ringPedersen: RingPedersenParams;
  /** The same, read and checked, as the enclave verifies against them. */
  ringPedersenPublic: RingPedersenPublic;
  /** The Ed25519 public key, 32 raw bytes (in the identity statement). */
  publicKey: Buffer;
  /** Signs a partial signature's statement (partial-statement.ts). */
  signPartial(statement: PartialStatement): Buffer;
  /** Signs a replica-channel handshake transcript hash (replica/channel.ts), under HANDSHAKE_SIGNATURE_DOMAIN. */
  signHandshake(transcriptHash: Uint8Array): Buffer;
}

/**
 * What a handshake signature covers (issue #23): this ASCII prefix, then the 32-byte transcript hash. A partial
 * statement is signed as its bare 64-byte SHA-512 digest, so no handshake message (74 bytes, starting with this
 * prefix) can ever be taken for one, nor the reverse.
 */
export const HANDSHAKE_SIGNATURE_DOMAIN = "statechain/v1/replica-handshake-signature/";

export function handshakeSignedBytes(transcriptHash: Uint8Array): Buffer {
  if (transcriptHash.length !== 32) throw new RangeError("a handshake transcript hash is 32 bytes");
  return Buffer.concat([Buffer.from(HANDSHAKE_SIGNATURE_DOMAIN, "ascii"), transcriptHash]);
}

/** The instance's keys from ring-Pedersen parameters just made: their trapdoor is wiped here. */
export function instanceKeysFrom(rp: RingPedersenKey): InstanceKeys {
  wipeRingPedersen(rp.secret);
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url");
  const key: KeyObject = privateKey;
  return {
    ringPedersen: rp.params,
    ringPedersenPublic: readRingPedersen(rp.params),
    publicKey: raw,
    signPartial: (statement) => sign(null, partialStatementBytes(statement), key),
    signHandshake: (transcriptHash) => sign(null, handshakeSignedBytes(transcriptHash), key),
  };
}

/** Fresh keys for a new instance (the safe primes take a second or a few of CPU). */
export async function createInstanceKeys(rng: Rng): Promise<InstanceKeys> {
  return instanceKeysFrom(await generateRingPedersen(rng));
}
