// The project's ECDSA verifier for secp256k1: strict DER (BIP66) or 64-byte compact signatures, r and s in
// [1, n), Bitcoin's low-S rule by default (BIP146: s <= n/2), and the standard check x(u1·G + u2·P) mod n = r.
import { bytesToBigInt, concatBytes, Point, scalarBytes } from "../encoding.ts";
import { check, fail } from "../errors.ts";
import * as libsecp from "../libsecp.ts";
import { mulAddPublic, Q } from "./ec.ts";

const HALF_Q = Q >> 1n;

export interface EcdsaSignature {
  r: bigint;
  s: bigint;
}

/** The leftmost 256 bits of the digest as an integer (SEC1 bits2int); for Bitcoin the 32-byte sighash. */
export function digestToInt(digest: Uint8Array): bigint {
  check(digest.length > 0, "DIGEST_EMPTY", "message digest is empty");
  return bytesToBigInt(digest.subarray(0, 32));
}

/** BIP66's IsValidSignatureEncoding (without the sighash byte), then r and s as integers. */
export function decodeDer(sig: Uint8Array): EcdsaSignature {
  const bad = (rule: string): never => fail("DER_INVALID", `DER signature: ${rule}`);
  const len = sig.length;
  if (len < 8 || len > 72) bad(`length ${len} outside 8..72`);
  if (sig[0] !== 0x30) bad("not a SEQUENCE");
  if (sig[1] !== len - 2) bad("SEQUENCE length does not match");
  const lenR = sig[3]!;
  if (5 + lenR >= len) bad("r runs past the end");
  const lenS = sig[5 + lenR]!;
  if (lenR + lenS + 6 !== len) bad("lengths of r and s do not add up");
  const integer = (at: number, l: number, name: string): bigint => {
    if (sig[at - 2] !== 0x02) bad(`${name} is not an INTEGER`);
    if (l === 0) bad(`${name} is empty`);
    if (sig[at]! & 0x80) bad(`${name} is negative`);
    if (l > 1 && sig[at] === 0 && !(sig[at + 1]! & 0x80)) bad(`${name} has an unnecessary leading zero`);
    return bytesToBigInt(sig.subarray(at, at + l));
  };
  return { r: integer(4, lenR, "r"), s: integer(6 + lenR, lenS, "s") };
}

export function encodeDer({ r, s }: EcdsaSignature): Uint8Array {
  const int = (x: bigint): number[] => {
    let hex = x.toString(16);
    if (hex.length % 2) hex = `0${hex}`;
    const b = [...Buffer.from(hex, "hex")];
    return b[0]! & 0x80 ? [0, ...b] : b;
  };
  const rb = int(r);
  const sb = int(s);
  return new Uint8Array([0x30, rb.length + sb.length + 4, 0x02, rb.length, ...rb, 0x02, sb.length, ...sb]);
}

export function decodeCompact(sig: Uint8Array): EcdsaSignature {
  check(sig.length === 64, "SIGNATURE_LENGTH", `compact signature must be 64 bytes, got ${sig.length}`);
  return { r: bytesToBigInt(sig.subarray(0, 32)), s: bytesToBigInt(sig.subarray(32)) };
}

/**
 * u1·G + u2·P when (r, s) is a valid signature of `digest` under P, else undefined. The point gives the
 * recovery id (parity of its y, and whether its x exceeded n).
 */
export function ecdsaVerifyPoint(
  { r, s }: EcdsaSignature,
  digest: Uint8Array,
  P: Point,
  opts: { lowS?: boolean } = {},
): Point | undefined {
  if (r < 1n || r >= Q || s < 1n || s >= Q) return undefined;
  if ((opts.lowS ?? true) && s > HALF_Q) return undefined;
  const w = Point.Fn.inv(s);
  const u1 = (digestToInt(digest) * w) % Q;
  const u2 = (r * w) % Q;
  const R = mulAddPublic(u1, u2, P);
  if (R.equals(Point.ZERO)) return undefined;
  return R.toAffine().x % Q === r ? R : undefined;
}

/**
 * Verifies an ECDSA signature (DER, or 64-byte compact r‖s) on a 32-byte digest under a SEC1 public key (33 or 65
 * bytes) or a point. Malformed encodings and keys are simply invalid. `lowS` defaults to true.
 */
export function verifyEcdsa(
  sig: Uint8Array,
  digest: Uint8Array,
  publicKey: Uint8Array | Point,
  opts: { lowS?: boolean; format?: "der" | "compact" } = {},
): boolean {
  try {
    const format = opts.format ?? (sig.length === 64 ? "compact" : "der");
    const rs = format === "der" ? decodeDer(sig) : decodeCompact(sig);
    if ((opts.lowS ?? true) && digest.length === 32) {
      // libsecp256k1's check (low S required, as here): r and s must fit its 64-byte form.
      if (rs.r < 1n || rs.r >= Q || rs.s < 1n || rs.s > HALF_Q) return false;
      const key = publicKey instanceof Point ? publicKey.toBytes(true) : publicKey;
      return libsecp.verifyEcdsa(concatBytes(scalarBytes(rs.r), scalarBytes(rs.s)), digest, key);
    }
    const P = publicKey instanceof Point ? publicKey : Point.fromBytes(publicKey);
    if (P.equals(Point.ZERO)) return false;
    return ecdsaVerifyPoint(rs, digest, P, opts) !== undefined;
  } catch {
    return false;
  }
}

/** Recovery id of a verified signature from its point R = u1·G + u2·P. */
export function recoveryId(R: Point, r: bigint): number {
  const { x, y } = R.toAffine();
  return Number(y & 1n) | (x !== r ? 2 : 0);
}
