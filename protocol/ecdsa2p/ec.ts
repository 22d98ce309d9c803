// secp256k1 helpers. Multiplications by secret scalars of points other than G go through OpenSSL's ECDH (a
// constant-time Montgomery ladder, about twice as fast as the JavaScript one here) when only the x coordinate is
// needed, as for the ECDSA nonce point R.
import { createECDH } from "node:crypto";
import { bytesToBigInt, G, N, type Point, scalarBytes } from "../encoding.ts";
import type { Rng } from "../rng.ts";
import { randomBelow } from "./arith.ts";

export const Q = N;

/** Uniform in [1, q). */
export const randomScalar = (rng: Rng): bigint => randomBelow(rng, Q - 1n) + 1n;

export const mulG = (k: bigint): Point => G.multiply(k);

/** x(k·P) for a secret k in [1, q) and a valid point P. */
export function xOfMul(k: bigint, P: Point): bigint {
  const ecdh = createECDH("secp256k1");
  ecdh.setPrivateKey(scalarBytes(k));
  return bytesToBigInt(ecdh.computeSecret(P.toBytes(true)));
}

/** z·G − e·X for public z, e (the Schnorr verification point), not constant-time. */
export const schnorrPoint = (z: bigint, e: bigint, X: Point): Point => G.mulAddUnsafe(z, X, (Q - e) % Q);
