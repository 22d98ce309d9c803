// Key update helpers for a transfer (DESIGN.md section 3.3 steps 7-8): the enclave turns its share s1, the
// transfer secret x1 and the receiver's t2 = o1·x1·o2⁻¹ into s2 = t2·x1⁻¹·s1 = s1·o1·o2⁻¹, so that s2·o2 = s1·o1
// and P stays the same; it must check s2·O2 = P before erasing s1 and x1.
import { Point as CurvePoint, type Point, parsePoint, parseScalar, scalarBytes } from "../encoding.ts";
import { check } from "../errors.ts";
import { mulSecret, Q } from "./ec.ts";

/** s2 = t2·x1⁻¹·s1 mod q, all 32-byte scalars in [1, q). */
export function rotateShare(s1: Uint8Array, x1: Uint8Array, t2: Uint8Array): Uint8Array {
  const a = parseScalar(s1, "current SE share s1");
  const x = parseScalar(x1, "transfer secret x1");
  const t = parseScalar(t2, "receiver's t2");
  return scalarBytes((((t * CurvePoint.Fn.inv(x)) % Q) * a) % Q);
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
