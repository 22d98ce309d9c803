// ECIES on secp256k1 for Enc(x1, C1), Enc(t2, K) and transfer messages, in the format of eciesjs's defaults (so
// other implementations interoperate; a test checks both directions against eciesjs):
//   ciphertext = R (65-byte uncompressed ephemeral key) ‖ nonce (16) ‖ tag (16) ‖ AES-256-GCM(key, plaintext)
//   key        = HKDF-SHA256(ikm = R ‖ r·K uncompressed, no salt, no info, 32 bytes)
// The curve arithmetic is ecdsa2p/ec.ts (libsecp256k1, on the keys' bytes); HKDF and AES-GCM
// are OpenSSL through node:crypto. Decryption failures surface as one typed error that reveals nothing about why.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { mulG, mulSecret } from "./ecdsa2p/ec.ts";
import { randomSecretBytes } from "./ecdsa2p/scalar-ct.ts";
import { secretBytes } from "./ecdsa2p/secret.ts";
import { concatBytes, parsePoint } from "./encoding.ts";
import { check, ProtocolError } from "./errors.ts";
import { systemRng } from "./rng.ts";

/** Bytes ECIES adds to a plaintext: 65-byte ephemeral key, 16-byte nonce, 16-byte tag. */
export const ECIES_OVERHEAD = 65 + 16 + 16;
const NONCE = 16;
const TAG = 16;

/** The compressed public key of an ECIES secret key (32 bytes in [1, n)), with no BigInt made of the secret. */
export function eciesPublicKey(secretKey: Uint8Array): Uint8Array {
  return mulG(secretKey).toBytes(true);
}

function deriveKey(ephemeral: Uint8Array, shared: Uint8Array): Buffer {
  const ikm = concatBytes(ephemeral, shared);
  const key = Buffer.from(hkdfSync("sha256", ikm, new Uint8Array(0), new Uint8Array(0), 32));
  ikm.fill(0);
  return key;
}

export function encrypt(publicKey: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const K = parsePoint(publicKey, "ECIES recipient key");
  // Drawn as bytes only: the ephemeral r with the ciphertext (which the host sees) would reveal the plaintext.
  const r = randomSecretBytes(systemRng);
  const R = mulG(r).toBytes(false);
  const shared = mulSecret(K, r).toBytes(false);
  r.fill(0);
  const key = deriveKey(R, shared);
  shared.fill(0);
  const nonce = randomBytes(NONCE);
  const cipher = createCipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG });
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  key.fill(0);
  return concatBytes(R, nonce, cipher.getAuthTag(), body);
}

export function decrypt(secretKey: Uint8Array, ciphertext: Uint8Array, what = "ciphertext"): Uint8Array {
  check(
    ciphertext.length > ECIES_OVERHEAD,
    "ECIES_MALFORMED",
    `${what} is too short to be an ECIES ciphertext`,
  );
  let key: Buffer | undefined;
  try {
    const R = secp256k1.Point.fromBytes(ciphertext.subarray(0, 65));
    const shared = mulSecret(R, secretKey).toBytes(false);
    key = deriveKey(ciphertext.subarray(0, 65), shared);
    shared.fill(0);
    const decipher = createDecipheriv("aes-256-gcm", key, ciphertext.subarray(65, 65 + NONCE), {
      authTagLength: TAG,
    });
    decipher.setAuthTag(ciphertext.subarray(65 + NONCE, ECIES_OVERHEAD));
    const a = decipher.update(ciphertext.subarray(ECIES_OVERHEAD));
    const b = decipher.final();
    // The plaintext may be a secret (x1, t2) that the caller wipes: in memory no collection moves.
    const out = secretBytes(a.length + b.length);
    out.set(a);
    out.set(b, a.length);
    a.fill(0);
    return out;
  } catch {
    throw new ProtocolError("ECIES_DECRYPT", `${what} does not decrypt under the expected key`);
  } finally {
    key?.fill(0);
  }
}
