// Π^fac (CGGMP21, Fig. 28): N0 = p·q with |p|, |q| < 2^(ℓ+ε+1)·√N0, against the enclave's ring-Pedersen
// parameters; so each factor exceeds √N0 / 2^(ℓ+ε+2), i.e. 2^252 for N0 >= 2^2047 ("no small factor").
// Ranges are shifted to be non-negative (same statistics), challenges e ∈ [0, q).
//   P = s^p t^μ, Q = s^q t^ν, A = s^α t^x, B = s^β t^y, T = Q^α t^r, and σ (R = s^N0 t^σ);
//   z1 = α + e·p, z2 = β + e·q, w1 = x + e·μ, w2 = y + e·ν, v = r + e·(σ − ν·p);
//   s^z1 t^w1 = A·P^e, s^z2 t^w2 = B·Q^e, Q^z1 t^v = T·R^e, z1, z2 < 2^(ℓ+ε+1)·√N0.
import type { NoSmallFactorProof } from "../../../proto/gen/ecdsa2p.ts";
import { check } from "../../errors.ts";
import type { Rng } from "../../rng.ts";
import { isqrt, randomBelow } from "../arith.ts";
import { readBelow, readInRange, readPositiveBelow, writeNat } from "../codec.ts";
import { challengeScalar, Transcript } from "../fiat-shamir.ts";
import { ELL, EPS } from "../params.ts";
import type { RingPedersenOps } from "../ring-pedersen.ts";

const TWO_L = 1n << BigInt(ELL);
const TWO_LE = 1n << BigInt(ELL + EPS);

function bounds(n0: bigint, nHat: bigint) {
  const sqrtN0 = isqrt(n0) + 1n;
  return {
    alpha: TWO_LE * sqrtN0,
    mu: TWO_L * nHat,
    sigma: TWO_L * n0 * nHat,
    r: TWO_LE * n0 * nHat,
    x: TWO_LE * nHat,
    z: 2n * TWO_LE * sqrtN0,
    w: 2n * TWO_LE * nHat,
    v: 2n * TWO_LE * n0 * nHat,
  };
}

function challenge(sessionId: Uint8Array, n0: bigint, rp: RingPedersenOps, first: bigint[]): bigint {
  const t = new Transcript("no-small-factor").bytes("sid", sessionId).int("N0", n0);
  t.int("N^", rp.pub.n).int("s", rp.pub.s).int("t", rp.pub.t);
  for (const [i, v] of first.entries()) t.int(`m${i}`, v);
  return challengeScalar(t.digest());
}

export function proveFactors(
  sessionId: Uint8Array,
  n0: bigint,
  p: bigint,
  q: bigint,
  rp: RingPedersenOps,
  rng: Rng,
): NoSmallFactorProof {
  const nHat = rp.pub.n;
  const b = bounds(n0, nHat);
  for (;;) {
    const [alpha, beta] = [randomBelow(rng, b.alpha), randomBelow(rng, b.alpha)];
    const [mu, nu] = [randomBelow(rng, b.mu), randomBelow(rng, b.mu)];
    const sigma = randomBelow(rng, b.sigma);
    const r = randomBelow(rng, b.r);
    const [x, y] = [randomBelow(rng, b.x), randomBelow(rng, b.x)];
    const P = rp.commit(p, mu);
    const Q = rp.commit(q, nu);
    const A = rp.commit(alpha, x);
    const B = rp.commit(beta, y);
    const T = (rp.pow(Q, alpha) * rp.commit(0n, r)) % nHat;
    const e = challenge(sessionId, n0, rp, [P, Q, A, B, T, sigma]);
    const v = r + e * (sigma - nu * p);
    if (v < 0n) continue; // probability about 2^-1280; the wire carries non-negative integers only
    return {
      p: writeNat(P),
      q: writeNat(Q),
      a: writeNat(A),
      b: writeNat(B),
      t: writeNat(T),
      sigma: writeNat(sigma),
      z1: writeNat(alpha + e * p),
      z2: writeNat(beta + e * q),
      w1: writeNat(x + e * mu),
      w2: writeNat(y + e * nu),
      v: writeNat(v),
    };
  }
}

export function verifyFactors(
  sessionId: Uint8Array,
  n0: bigint,
  proof: NoSmallFactorProof | undefined,
  rp: RingPedersenOps,
): void {
  check(proof, "NO_SMALL_FACTOR_PROOF_MISSING", "no-small-factor proof (Π^fac) is missing");
  const nHat = rp.pub.n;
  const b = bounds(n0, nHat);
  const P = readPositiveBelow(proof.p, nHat, "Π^fac P");
  const Q = readPositiveBelow(proof.q, nHat, "Π^fac Q");
  const A = readPositiveBelow(proof.a, nHat, "Π^fac A");
  const B = readPositiveBelow(proof.b, nHat, "Π^fac B");
  const T = readPositiveBelow(proof.t, nHat, "Π^fac T");
  const sigma = readBelow(proof.sigma, b.sigma, "Π^fac σ");
  const w1 = readBelow(proof.w1, b.w, "Π^fac w1");
  const w2 = readBelow(proof.w2, b.w, "Π^fac w2");
  const v = readBelow(proof.v, b.v, "Π^fac v");
  const meaning = "N is not shown to be free of small factors";
  const z1 = readInRange(proof.z1, b.z, "Π^fac z1", "NO_SMALL_FACTOR_PROOF_RANGE", meaning);
  const z2 = readInRange(proof.z2, b.z, "Π^fac z2", "NO_SMALL_FACTOR_PROOF_RANGE", meaning);
  const e = challenge(sessionId, n0, rp, [P, Q, A, B, T, sigma]);
  const R = rp.commit(n0, sigma);
  const fail = (eq: string) => `Π^fac: ${eq} does not hold, so N is not shown to have only large factors`;
  check(
    rp.commit(z1, w1) === (A * rp.pow(P, e)) % nHat,
    "NO_SMALL_FACTOR_PROOF_INVALID",
    fail("s^z1·t^w1 = A·P^e"),
  );
  check(
    rp.commit(z2, w2) === (B * rp.pow(Q, e)) % nHat,
    "NO_SMALL_FACTOR_PROOF_INVALID",
    fail("s^z2·t^w2 = B·Q^e"),
  );
  check(
    (rp.pow(Q, z1) * rp.commit(0n, v)) % nHat === (T * rp.pow(R, e)) % nHat,
    "NO_SMALL_FACTOR_PROOF_INVALID",
    fail("Q^z1·t^v = T·R^e"),
  );
}
