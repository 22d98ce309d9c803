// Long-lived secrets (shares, nonces, Paillier and ring-Pedersen factors) live in Uint8Arrays that `wipe` zeroes,
// so the enclave can erase a share for real. BigInt copies made to compute with them are transient: JavaScript
// offers no way to clear them, so they are never stored in key or session objects.
import { bytesToBigInt } from "../encoding.ts";
import { check } from "../errors.ts";

export function wipe(...arrays: (Uint8Array | undefined)[]): void {
  for (const a of arrays) a?.fill(0);
}

/** The value of a secret held as bytes; refuses a wiped (all-zero) secret. */
export function reveal(secret: Uint8Array, what: string): bigint {
  const x = bytesToBigInt(secret);
  check(x !== 0n, "SECRET_WIPED", `${what} has been wiped`, "precondition");
  return x;
}
