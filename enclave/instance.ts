// What an enclave instance makes once, at boot (DESIGN.md 3.1, 4.1): its ring-Pedersen parameters, against
// which owners prove their Paillier keys (Π^prm proves them well formed; the trapdoor is wiped right after, so
// the instance never holds it), and its Ed25519 instance key, which signs every partial signature c3 it
// releases. Both are named in the attested identity statement.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { RingPedersenParams } from "../proto/gen/ecdsa2p.ts";
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
  /**
   * The parameters and the private key as bytes, for the members of this enclave's replica set only (sealed to
   * them over attested channels, replica/member.ts): owners see one identity whichever member leads.
   */
  exportForReplicas(): Buffer;
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
  return keysOf(rp.params, generateKeyPairSync("ed25519").privateKey);
}

function keysOf(params: RingPedersenParams, key: KeyObject): InstanceKeys {
  const raw = Buffer.from(createPublicKey(key).export({ format: "jwk" }).x!, "base64url");
  return {
    ringPedersen: params,
    ringPedersenPublic: readRingPedersen(params),
    publicKey: raw,
    signPartial: (statement) => sign(null, partialStatementBytes(statement), key),
    signHandshake: (transcriptHash) => sign(null, handshakeSignedBytes(transcriptHash), key),
    exportForReplicas: () => {
      const der = key.export({ format: "der", type: "pkcs8" });
      const rp = RingPedersenParams.encode(params).finish();
      const len = Buffer.alloc(4);
      len.writeUInt32BE(rp.length);
      const out = Buffer.concat([len, rp, der]);
      der.fill(0);
      return out;
    },
  };
}

/** What a replica member signs its channel handshakes with: an Ed25519 key of its own, its member id. */
export type MemberKeys = Pick<InstanceKeys, "publicKey" | "signHandshake">;

/** A member's own key, made at boot in an instant (the set's identity, with its safe primes, comes later). */
export function createMemberKeys(): MemberKeys {
  const key = generateKeyPairSync("ed25519").privateKey;
  return {
    publicKey: Buffer.from(createPublicKey(key).export({ format: "jwk" }).x!, "base64url"),
    signHandshake: (transcriptHash) => sign(null, handshakeSignedBytes(transcriptHash), key),
  };
}

/** Keys a member of the set exported (exportForReplicas). Throws on malformed bytes. */
export function importInstanceKeys(bytes: Uint8Array): InstanceKeys {
  const b = Buffer.from(bytes);
  if (b.length < 4) throw new RangeError("instance keys are truncated");
  const n = b.readUInt32BE(0);
  if (n > b.length - 4) throw new RangeError("instance keys are truncated");
  const params = RingPedersenParams.decode(b.subarray(4, 4 + n));
  const der = b.subarray(4 + n);
  const key = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  b.fill(0);
  if (key.asymmetricKeyType !== "ed25519") throw new RangeError("instance key is not Ed25519");
  return keysOf(params, key);
}

/** Fresh keys for a new instance (the safe primes take a second or a few of CPU). */
export async function createInstanceKeys(rng: Rng): Promise<InstanceKeys> {
  return instanceKeysFrom(await generateRingPedersen(rng));
}
