// Checked conversions between wire bytes and curve values (DESIGN.md section 7): points are 33-byte compressed
// SEC1 and must be on the curve and not the identity; scalars are 32-byte big-endian in [1, n).
import { timingSafeEqual } from "node:crypto";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { check, fail } from "./errors.ts";

export const Point = secp256k1.Point;
export type Point = InstanceType<typeof secp256k1.Point>;
export const G = Point.BASE;
/** Order of the secp256k1 group. */
export const N = Point.Fn.ORDER;

export function bytesToBigInt(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt(`0x${Buffer.from(b).toString("hex")}`);
}

/** Big-endian, left-padded to `len` bytes; without `len`, minimal length (0 encodes as empty). */
export function bigIntToBytes(x: bigint, len?: number): Uint8Array {
  check(x >= 0n, "NEGATIVE_INTEGER", "cannot encode a negative integer");
  let hex = x === 0n ? "" : x.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  if (len !== undefined) {
    check(hex.length <= len * 2, "INTEGER_TOO_LARGE", `integer does not fit in ${len} bytes`);
    hex = hex.padStart(len * 2, "0");
  }
  return new Uint8Array(Buffer.from(hex, "hex"));
}

export function parsePoint(b: Uint8Array | undefined, what: string): Point {
  check(
    b && b.length === 33,
    "INVALID_POINT",
    () => `${what} must be a 33-byte compressed point, got ${b?.length ?? 0} bytes`,
  );
  check(b[0] === 2 || b[0] === 3, "INVALID_POINT", `${what} is not a compressed point (prefix ${b[0]})`);
  let p: Point;
  try {
    p = Point.fromBytes(b);
  } catch {
    return fail("INVALID_POINT", `${what} is not on secp256k1`);
  }
  check(!p.equals(Point.ZERO), "INVALID_POINT", `${what} is the point at infinity`);
  return p;
}

export function pointBytes(p: Point): Uint8Array {
  return p.toBytes(true);
}

export function parseScalar(b: Uint8Array | undefined, what: string): bigint {
  check(b && b.length === 32, "INVALID_SCALAR", () => `${what} must be 32 bytes, got ${b?.length ?? 0}`);
  const x = bytesToBigInt(b);
  check(x > 0n && x < N, "INVALID_SCALAR", `${what} is out of range [1, n)`);
  return x;
}

export function scalarBytes(x: bigint): Uint8Array {
  return bigIntToBytes(x, 32);
}

export const mod = (a: bigint, m: bigint): bigint => ((a % m) + m) % m;

/** Constant-time equality for secrets and MACs (lengths are public). */
export function equalCT(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

export const toHex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
