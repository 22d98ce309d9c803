// secp256k1 helpers. Point multiplications go through libsecp256k1 (libsecp.ts): about 5x faster than OpenSSL's
// generic-curve code and 10x faster than the JavaScript one, constant-time for secret scalars. Should its
// load-time self-test fail (its memory could keep a secret), secret scalars take the constant-time JavaScript
// multiplication instead, and x(k·P) OpenSSL's ECDH.
import { createECDH } from "node:crypto";
import { bytesToBigInt, G, N, Point, scalarBytes } from "../encoding.ts";
import * as libsecp from "../libsecp.ts";
import type { Rng } from "../rng.ts";
import { randomBelow } from "./arith.ts";
import { isScalarInRange } from "./scalar-ct.ts";

export const Q = N;

/** Uniform in [1, q). */
export const randomScalar = (rng: Rng): bigint => randomBelow(rng, Q - 1n) + 1n;

/** A scalar as a BigInt, or as 32 big-endian bytes when no BigInt of it should exist (ECIES keys). */
export type Scalar = bigint | Uint8Array;

const inRange = (k: Scalar): boolean => (typeof k === "bigint" ? k > 0n && k < Q : isScalarInRange(k));
/** The JavaScript fallback's form (it refuses what is out of range). */
const big = (k: Scalar): bigint => (typeof k === "bigint" ? k : Point.Fn.fromBytes(k));

/** k·G for k in [1, q), secret or not. */
export const mulG = (k: Scalar): Point =>
  libsecp.secretsSafe && inRange(k) ? Point.fromBytes(libsecp.mulBase(k)) : G.multiply(big(k));

/** k·P for a secret k in [1, q) and a valid point P. */
export const mulSecret = (P: Point, k: Scalar): Point =>
  libsecp.secretsSafe && inRange(k) && !P.equals(Point.ZERO)
    ? Point.fromBytes(libsecp.mul(P.toBytes(true), k))
    : P.multiply(big(k));

/** x(k·P) for a secret k in [1, q) and a valid point P. */
export function xOfMul(k: bigint, P: Point): bigint {
  if (libsecp.secretsSafe && inRange(k))
    return bytesToBigInt(libsecp.mul(P.toBytes(true), k).subarray(1, 33));
  const ecdh = createECDH("secp256k1");
  ecdh.setPrivateKey(scalarBytes(k));
  return bytesToBigInt(ecdh.computeSecret(P.toBytes(true)));
}

/** a·G + b·P for public a, b in [0, q) and a valid point P; not constant-time. */
export function mulAddPublic(a: bigint, b: bigint, P: Point): Point {
  if (!inRange(a) || !inRange(b) || P.equals(Point.ZERO)) return G.mulAddUnsafe(a, P, b);
  const sum = libsecp.add(libsecp.mulBase(a), libsecp.mul(P.toBytes(true), b));
  return sum ? Point.fromBytes(sum) : Point.ZERO; // undefined: the sum is the point at infinity
}

/** z·G − e·X for public z, e (the Schnorr verification point), not constant-time. */
export const schnorrPoint = (z: bigint, e: bigint, X: Point): Point =>
  mulAddPublic(z % Q, (Q - (e % Q)) % Q, X);
