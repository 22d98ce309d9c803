// Long-lived secrets (shares, nonces, Paillier and ring-Pedersen factors) live in Uint8Arrays that `wipe` zeroes,
// so the enclave can erase a share for real. BigInt copies made to compute with them are transient: JavaScript
// offers no way to clear them, so they are never stored in key or session objects.
import { bytesToBigInt } from "../encoding.ts";
import { check } from "../errors.ts";

/**
 * Zeroed bytes for a secret, in an ArrayBuffer of their own. V8 keeps ArrayBuffer storage outside its heap, where no
 * collection moves it: a small typed array made by length lives on the heap, and each time the collector moves it
 * the old copy stays behind in freed memory, out of reach of `wipe`.
 */
export const secretBytes = (length: number): Uint8Array => new Uint8Array(new ArrayBuffer(length));

/** A long-lived secret scalar as 32 big-endian bytes (secretBytes), written byte by byte because scalarBytes would
 * build an on-heap copy first. */
export function secretScalar(x: bigint): Uint8Array {
  const out = secretBytes(32);
  for (let i = 31; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

export function wipe(...arrays: (Uint8Array | undefined)[]): void {
  for (const a of arrays) a?.fill(0);
}

/** The value of a secret held as bytes; refuses a wiped (all-zero) secret. */
export function reveal(secret: Uint8Array, what: string): bigint {
  const x = bytesToBigInt(secret);
  check(x !== 0n, "SECRET_WIPED", `${what} has been wiped`, "precondition");
  return x;
}
