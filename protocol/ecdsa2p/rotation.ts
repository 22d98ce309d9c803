// Key update helpers for a transfer (DESIGN.md section 3.3 steps 7-8): the enclave turns its share s1, the
// transfer secret x1 and the receiver's t2 = o1·x1·o2⁻¹ into s2 = t2·x1⁻¹·s1 = s1·o1·o2⁻¹, so that s2·o2 = s1·o1
// and P stays the same; it must check s2·O2 = P before erasing s1 and x1.
import { Point as CurvePoint, type Point, parsePoint, parseScalar } from "../encoding.ts";
import { check } from "../errors.ts";
import type { Rng } from "../rng.ts";
import { mulSecret } from "./ec.ts";
import { invModN, isScalarInRange, mulModN } from "./scalar-ct.ts";
import { secretBytes } from "./secret.ts";

/**
 * s2 = t2·x1⁻¹·s1 mod q, all 32-byte scalars in [1, q), computed on their bytes (scalar-ct.ts): no BigInt of s1,
 * x1 or t2 is made, so wiping their bytes afterwards erases them. s2 comes back in memory of its own.
 */
export function rotateShare(s1: Uint8Array, x1: Uint8Array, t2: Uint8Array, rng: Rng): Uint8Array {
  checkScalarBytes(s1, "current SE share s1");
  checkScalarBytes(x1, "transfer secret x1");
  checkScalarBytes(t2, "receiver's t2");
  const x1Inverse = secretBytes(32);
  const s2 = secretBytes(32);
  try {
    invModN(x1, rng, x1Inverse);
    mulModN(t2, x1Inverse, s2);
    mulModN(s2, s1, s2);
    return s2;
  } finally {
    x1Inverse.fill(0);
  }
}

/** A 32-byte scalar in [1, q), checked byte by byte (no BigInt of it). */
function checkScalarBytes(b: Uint8Array, what: string): void {
  check(b.length === 32, "INVALID_SCALAR", `${what} must be 32 bytes, got ${b.length}`);
  check(isScalarInRange(b), "INVALID_SCALAR", `${what} is out of range [1, n)`);
}

/** Throws ROTATION_MISMATCH unless s2·O2 = P. */
export function checkRotatedShare(
  s2: Uint8Array,
  ownerPublicShare: Uint8Array | Point,
  sharedKey: Uint8Array | Point,
) {
  const s = parseScalar(s2, "new SE share s2");
  const O2 = ownerPublicShare instanceof CurvePoint ? ownerPublicShare : parsePoint(ownerPublicShare, "O2");
  const P = sharedKey instanceof CurvePoint ? sharedKey : parsePoint(sharedKey, "shared public key P");
  check(
    mulSecret(O2, s).equals(P),
    "ROTATION_MISMATCH",
    "s2·O2 ≠ P: the receiver's t2 or O2 does not belong to this key",
    "precondition",
  );
}
