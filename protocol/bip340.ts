// BIP340 Schnorr signatures (proof keys: request auth, statechain transactions). libsecp256k1 (libsecp.ts) signs
// when its memory may hold a secret and verifies 32-byte messages; @noble/curves covers the rest. Both follow BIP340
// exactly, so a signature is the same bytes whichever signs it (a test checks).
import { schnorr } from "@noble/curves/secp256k1.js";
import * as libsecp from "./libsecp.ts";

/** Signs a 32-byte message; `aux` is 32 bytes of fresh randomness mixed into the nonce. */
export function bip340Sign(message: Uint8Array, secretKey: Uint8Array, aux: Uint8Array): Uint8Array {
  if (libsecp.secretsSafe && message.length === 32 && secretKey.length === 32 && aux.length === 32)
    return libsecp.signSchnorr(message, secretKey, aux);
  return schnorr.sign(message, secretKey, aux);
}

/** False for a wrong or malformed signature, message or key; never throws. */
export function bip340Verify(signature: Uint8Array, message: Uint8Array, xOnlyKey: Uint8Array): boolean {
  if (message.length === 32) return libsecp.verifySchnorr(signature, message, xOnlyKey);
  try {
    return schnorr.verify(signature, message, xOnlyKey);
  } catch {
    return false;
  }
}
