// Wire values <-> numbers and points. Lengths are checked before any BigInt conversion, so an oversized number
// costs nothing to refuse; big integers must be canonical (unsigned big-endian, no leading zero byte).
import { bytesToBigInt, type Point, parsePoint, parseScalar, pointBytes, scalarBytes } from "../encoding.ts";
import { check } from "../errors.ts";
import { bitLength } from "./arith.ts";

/** A canonical non-negative integer of at most `maxBits` bits. */
export function readNat(b: Uint8Array | undefined, maxBits: number, what: string): bigint {
  const len = b?.length ?? 0;
  check(
    len <= (maxBits + 7) >> 3,
    "NUMBER_TOO_LARGE",
    () => `${what} is ${len} bytes, more than the ${(maxBits + 7) >> 3} allowed`,
  );
  if (!b || len === 0) return 0n;
  check(b[0] !== 0, "NON_CANONICAL_NUMBER", `${what} has a leading zero byte`);
  const x = bytesToBigInt(b);
  check(bitLength(x) <= maxBits, "NUMBER_TOO_LARGE", `${what} has more than ${maxBits} bits`);
  return x;
}

/** An integer below `bound` (exclusive), at least `min`. */
export function readBelow(b: Uint8Array | undefined, bound: bigint, what: string, min = 0n): bigint {
  const x = readNat(b, bitLength(bound), what);
  check(x < bound, "NUMBER_OUT_OF_RANGE", `${what} is not below its bound`);
  check(x >= min, "NUMBER_OUT_OF_RANGE", `${what} is below ${min}`);
  return x;
}

/**
 * A number whose range is itself the statement a proof makes (Π^log*'s z1, Π^fac's z1, z2): read with room to
 * spare (still a hard size cap), so that an out-of-range answer fails with `code` and a message saying what the
 * range means, not as a generic oversized number.
 */
export function readInRange(
  b: Uint8Array | undefined,
  bound: bigint,
  what: string,
  code: string,
  meaning: string,
): bigint {
  const x = readNat(b, bitLength(bound) + RANGE_READ_SLACK_BITS, what);
  check(x < bound, code, `${what} is not below its bound: ${meaning}`);
  return x;
}

const RANGE_READ_SLACK_BITS = 2048;

/** An integer in [1, n). */
export const readPositiveBelow = (b: Uint8Array | undefined, n: bigint, what: string): bigint =>
  readBelow(b, n, what, 1n);

export function writeNat(x: bigint): Buffer {
  check(x >= 0n, "NEGATIVE_INTEGER", "cannot encode a negative integer");
  if (x === 0n) return Buffer.alloc(0);
  let hex = x.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return Buffer.from(hex, "hex");
}

export const readPoint = (b: Uint8Array | undefined, what: string): Point => parsePoint(b, what);
export const writePoint = (p: Point): Buffer => Buffer.from(pointBytes(p));
export const readScalar = (b: Uint8Array | undefined, what: string): bigint => parseScalar(b, what);
export const writeScalar = (x: bigint): Buffer => Buffer.from(scalarBytes(x));

/** Exactly `count` entries. */
export function checkCount(list: readonly unknown[] | undefined, count: number, what: string): void {
  const n = list?.length ?? 0;
  check(n === count, "PROOF_SHAPE", `${what} has ${n} entries, expected ${count}`);
}
