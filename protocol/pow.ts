// Proof of work for DepositInit: a solution is valid when SHA-256(challenge ‖ proof_key ‖ solution) has at
// least the required number of leading zero bits. The host issues challenges; the wallet solves them.
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes } from "./encoding.ts";

export function leadingZeroBits(h: Uint8Array): number {
  let n = 0;
  for (const byte of h) {
    if (byte === 0) {
      n += 8;
      continue;
    }
    return n + Math.clz32(byte) - 24;
  }
  return n;
}

export function powDigest(challenge: Uint8Array, proofKey: Uint8Array, solution: Uint8Array): Uint8Array {
  return sha256(concatBytes(challenge, proofKey, solution));
}

/** Finds a solution by counting (expected 2^bits hashes). */
export function solvePow(challenge: Uint8Array, proofKey: Uint8Array, bits: number): Uint8Array {
  const sol = new Uint8Array(8);
  const view = new DataView(sol.buffer);
  for (let i = 0n; ; i++) {
    view.setBigUint64(0, i);
    if (leadingZeroBits(powDigest(challenge, proofKey, sol)) >= bits) return sol;
  }
}
