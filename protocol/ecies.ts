// ECIES on secp256k1 (eciesjs: ephemeral key, HKDF-SHA256, AES-256-GCM) for Enc(x1, C1), Enc(t1, C2), Enc(t2, K)
// and transfer messages. Decryption failures surface as one typed error that reveals nothing about why.
import { decrypt as eciesDecrypt, encrypt as eciesEncrypt } from "eciesjs";
import { parsePoint } from "./encoding.ts";
import { check, ProtocolError } from "./errors.ts";

/** Bytes ECIES adds to a plaintext: 65-byte ephemeral key, 16-byte nonce, 16-byte tag. */
export const ECIES_OVERHEAD = 65 + 16 + 16;

export function encrypt(publicKey: Uint8Array, plaintext: Uint8Array): Uint8Array {
  parsePoint(publicKey, "ECIES recipient key");
  return new Uint8Array(eciesEncrypt(publicKey, plaintext));
}

export function decrypt(secretKey: Uint8Array, ciphertext: Uint8Array, what = "ciphertext"): Uint8Array {
  check(
    ciphertext.length > ECIES_OVERHEAD,
    "ECIES_MALFORMED",
    `${what} is too short to be an ECIES ciphertext`,
  );
  try {
    const plain = eciesDecrypt(secretKey, ciphertext);
    const out = new Uint8Array(plain);
    plain.fill(0); // the library's buffer would otherwise keep a copy of the (often secret) plaintext
    return out;
  } catch {
    throw new ProtocolError("ECIES_DECRYPT", `${what} does not decrypt under the expected key`);
  }
}
