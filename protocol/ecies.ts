// ECIES on secp256k1 for Enc(x1, C1), Enc(t2, K) and transfer messages, in the format of eciesjs's defaults (so
// other implementations interoperate; a test checks both directions against eciesjs):
//   ciphertext = R (65-byte uncompressed ephemeral key) ‖ nonce (16) ‖ tag (16) ‖ AES-256-GCM(key, plaintext)
//   key        = HKDF-SHA256(ikm = R ‖ r·K uncompressed, no salt, no info, 32 bytes)
// The curve arithmetic is libsecp256k1 (libsecp.ts; @noble/curves should its self-test fail); HKDF and AES-GCM
// are OpenSSL through node:crypto. Decryption failures surface as one typed error that reveals nothing about why.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { randomSecretBytes } from "./ecdsa2p/scalar-ct.ts";
import { concatBytes, type Point, parsePoint } from "./encoding.ts";
import { check, ProtocolError } from "./errors.ts";
import * as libsecp from "./libsecp.ts";
import { systemRng } from "./rng.ts";

/** Bytes ECIES adds to a plaintext: 65-byte ephemeral key, 16-byte nonce, 16-byte tag. */
export const ECIES_OVERHEAD = 65 + 16 + 16;
const NONCE = 16;
const TAG = 16;

/** k·P, uncompressed, for a secret scalar k given as 32 bytes in [1, n) (libsecp256k1 refuses others). */
function sharedPoint(P: Point, k: Uint8Array): Uint8Array {
  if (!libsecp.secretsSafe) return P.multiply(secp256k1.Point.Fn.fromBytes(k)).toBytes(false);
  return libsecp.mul(P.toBytes(false), k);
}

/** k·G, uncompressed. */
function publicPoint(k: Uint8Array): Uint8Array {
  return libsecp.secretsSafe ? libsecp.mulBase(k) : secp256k1.getPublicKey(k, false);
}

/** The compressed public key of an ECIES secret key (32 bytes in [1, n)), with no BigInt made of the secret. */
export function eciesPublicKey(secretKey: Uint8Array): Uint8Array {
  return secp256k1.Point.fromBytes(publicPoint(secretKey)).toBytes(true);
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
  const R = publicPoint(r);
  const shared = sharedPoint(K, r);
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
    const shared = sharedPoint(R, secretKey);
    key = deriveKey(ciphertext.subarray(0, 65), shared);
    shared.fill(0);
    const decipher = createDecipheriv("aes-256-gcm", key, ciphertext.subarray(65, 65 + NONCE), {
      authTagLength: TAG,
    });
    decipher.setAuthTag(ciphertext.subarray(65 + NONCE, ECIES_OVERHEAD));
    const a = decipher.update(ciphertext.subarray(ECIES_OVERHEAD));
    const b = decipher.final();
    // Memory of its own, outside the V8 heap: the plaintext may be a secret (x1, t2) that the caller wipes, and a
    // small typed array made by length lives on the heap, where a collection can move it and leave a copy behind.
    const out = new Uint8Array(new ArrayBuffer(a.length + b.length));
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
