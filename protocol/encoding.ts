// Checked conversions between wire bytes and curve values (DESIGN.md section 7): points are 33-byte compressed
// SEC1 and must be on the curve and not the identity; scalars are 32-byte big-endian in [1, n).
import { timingSafeEqual } from "node:crypto";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { check, fail } from "./errors.ts";
import * as libsecp from "./libsecp.ts";

export const Point = secp256k1.Point;
export type Point = InstanceType<typeof secp256k1.Point>;
export const G = Point.BASE;
/** Order of the secp256k1 group. */
export const N = Point.Fn.ORDER;

export function bytesToBigInt(b: Uint8Array): bigint {
  // Word by word, without an intermediate Buffer or hex string: callers convert secrets too, and a copy
  // left in a pooled buffer would outlive the secret's erasure.
  let x = 0n;
  const head = b.length % 8;
  for (let i = 0; i < head; i++) x = (x << 8n) | BigInt(b[i]!);
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let i = head; i < b.length; i += 8) x = (x << 64n) | view.getBigUint64(i);
  return x;
}

/** Big-endian, left-padded to `len` bytes; without `len`, minimal length (0 encodes as empty). */
export function bigIntToBytes(x: bigint, len?: number): Uint8Array {
  check(x >= 0n, "NEGATIVE_INTEGER", "cannot encode a negative integer");
  let bytes = 0;
  for (let y = x; y > 0n; y >>= 64n) bytes += 8;
  const out = new Uint8Array(bytes);
  const view = new DataView(out.buffer);
  let y = x;
  for (let i = bytes - 8; i >= 0; i -= 8) {
    view.setBigUint64(i, y & 0xffffffffffffffffn);
    y >>= 64n;
  }
  let start = 0;
  while (start < out.length && out[start] === 0) start++;
  const size = out.length - start;
  if (len === undefined) {
    const exact = out.slice(start);
    out.fill(0);
    return exact;
  }
  check(size <= len, "INTEGER_TOO_LARGE", `integer does not fit in ${len} bytes`);
  const padded = new Uint8Array(len);
  padded.set(out.subarray(start), len - size);
  out.fill(0);
  return padded;
}

export function parsePoint(b: Uint8Array | undefined, what: string): Point {
  check(
    b && b.length === 33,
    "INVALID_POINT",
    () => `${what} must be a 33-byte compressed point, got ${b?.length ?? 0} bytes`,
  );
  check(b[0] === 2 || b[0] === 3, "INVALID_POINT", `${what} is not a compressed point (prefix ${b[0]})`);
  // Decompressed by libsecp256k1 (its square root is ~3x faster than the JavaScript one), then taken as is.
  const full = libsecp.uncompressed(b);
  if (!full) return fail("INVALID_POINT", `${what} is not on secp256k1`);
  const p = Point.fromBytes(full);
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
