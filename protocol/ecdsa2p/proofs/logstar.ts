// Π^log* (CGGMP21, Fig. 25): C = (1+N0)^x·ρ^N0 mod N0² encrypts the discrete log of X = x·G, with
// |x| < 2^(ℓ+ε+1) (params.ts LOGSTAR_X_BITS), against the enclave's ring-Pedersen parameters. This is Lindell's
// "PDL" and its range proof in one Σ-protocol; the range is what stops a malicious owner from choosing x so that
// the enclave's partial signature wraps modulo N0 and leaks the enclave's share. Ranges shifted to be non-negative.
//   S = s^x t^μ, A = (1+N0)^α r^N0 mod N0², Y = α·G, D = s^α t^γ;
//   z1 = α + e·x, z2 = r·ρ^e mod N0, z3 = γ + e·μ;
//   (1+N0)^z1·z2^N0 = A·C^e mod N0², z1·G = Y + e·X, s^z1 t^z3 = D·S^e mod N^, z1 < 2^(ℓ+ε+1).
import type { EncryptedDlogRangeProof } from "../../../proto/gen/ecdsa2p.ts";
import type { Point } from "../../encoding.ts";
import { check } from "../../errors.ts";
import type { Rng } from "../../rng.ts";
import { gcd, randomBelow } from "../arith.ts";
import { readBelow, readInRange, readPoint, readPositiveBelow, writeNat, writePoint } from "../codec.ts";
import { mulG, Q, schnorrPoint } from "../ec.ts";
import { challengeScalar, Transcript } from "../fiat-shamir.ts";
import { type FixedExponent, modPow, modPowPublic } from "../modexp.ts";
import { type EncryptionNonce, encryptionNonce } from "../paillier.ts";
import { ELL, EPS, LOGSTAR_X_BITS } from "../params.ts";
import type { RingPedersenOps } from "../ring-pedersen.ts";

const ALPHA_BOUND = 1n << BigInt(ELL + EPS);
const Z1_BOUND = 1n << BigInt(LOGSTAR_X_BITS);

export interface LogStarStatement {
  sessionId: Uint8Array;
  /** The Paillier modulus N0. */
  n0: bigint;
  /** The ciphertext C (c_key). */
  c: bigint;
  /** The point X whose discrete log C encrypts. */
  X: Point;
}

function challenge(
  st: LogStarStatement,
  rp: RingPedersenOps,
  S: bigint,
  A: bigint,
  Y: Point,
  D: bigint,
): bigint {
  const t = new Transcript("encrypted-dlog-range").bytes("sid", st.sessionId);
  t.int("N0", st.n0).int("C", st.c).point("X", st.X);
  t.int("N^", rp.pub.n).int("s", rp.pub.s).int("t", rp.pub.t);
  return challengeScalar(t.int("S", S).int("A", A).point("Y", Y).int("D", D).digest());
}

/** Witness: x (the share) and the randomness ρ of C. `nonce` may bring A's randomness precomputed. */
export function proveLogStar(
  st: LogStarStatement,
  witness: { x: bigint; rho: bigint },
  rp: RingPedersenOps,
  rng: Rng,
  nonce?: EncryptionNonce,
): EncryptedDlogRangeProof {
  const { n0 } = st;
  const n02 = n0 * n0;
  const nHat = rp.pub.n;
  let alpha = randomBelow(rng, ALPHA_BOUND);
  while (alpha % Q === 0n) alpha = randomBelow(rng, ALPHA_BOUND);
  const mu = randomBelow(rng, (1n << BigInt(ELL)) * nHat);
  const { r, rn } = nonce ?? encryptionNonce(n0, rng);
  const gamma = randomBelow(rng, ALPHA_BOUND * nHat);
  const S = rp.commit(witness.x, mu);
  const A = (((1n + alpha * n0) % n02) * rn) % n02;
  const Y = mulG(alpha % Q);
  const D = rp.commit(alpha, gamma);
  const e = challenge(st, rp, S, A, Y, D);
  return {
    s: writeNat(S),
    a: writeNat(A),
    y: writePoint(Y),
    d: writeNat(D),
    z1: writeNat(alpha + e * witness.x),
    z2: writeNat((r * modPow(witness.rho, e, n0)) % n0),
    z3: writeNat(gamma + e * mu),
  };
}

/** `nthPower` (x ↦ x^N0 mod N0², e.g. a nonce engine for this key) is used for z2^N0 when given. */
export function verifyLogStar(
  st: LogStarStatement,
  proof: EncryptedDlogRangeProof | undefined,
  rp: RingPedersenOps,
  nthPower?: FixedExponent,
): void {
  check(
    proof,
    "ENCRYPTED_SHARE_PROOF_MISSING",
    "proof that c_key encrypts the owner's share (Π^log*) is missing",
  );
  const { n0 } = st;
  const n02 = n0 * n0;
  const nHat = rp.pub.n;
  const S = readPositiveBelow(proof.s, nHat, "Π^log* S");
  const A = readPositiveBelow(proof.a, n02, "Π^log* A");
  const Y = readPoint(proof.y, "Π^log* Y");
  const D = readPositiveBelow(proof.d, nHat, "Π^log* D");
  const z1 = readInRange(
    proof.z1,
    Z1_BOUND,
    "Π^log* z1",
    "ENCRYPTED_SHARE_PROOF_RANGE",
    `c_key is not shown to encrypt a value below 2^${LOGSTAR_X_BITS}`,
  );
  const z2 = readPositiveBelow(proof.z2, n0, "Π^log* z2");
  const z3 = readBelow(proof.z3, 2n * ALPHA_BOUND * nHat, "Π^log* z3");
  // z2 a unit makes the left side below a unit, hence A and C too: no ciphertext sharing a factor with N0.
  check(gcd(z2, n0) === 1n, "ENCRYPTED_SHARE_PROOF_INVALID", "Π^log*: z2 is not a unit modulo N");
  const e = challenge(st, rp, S, A, Y, D);
  const fail = (eq: string) =>
    `Π^log*: ${eq} does not hold, so c_key is not shown to encrypt the owner's share`;
  check(
    (((1n + z1 * n0) % n02) * (nthPower?.pow(z2) ?? modPowPublic(z2, n0, n02))) % n02 ===
      (A * modPowPublic(st.c, e, n02)) % n02,
    "ENCRYPTED_SHARE_PROOF_INVALID",
    fail("(1+N)^z1·z2^N = A·C^e mod N²"),
  );
  check(schnorrPoint(z1 % Q, e, st.X).equals(Y), "ENCRYPTED_SHARE_PROOF_INVALID", fail("z1·G = Y + e·X"));
  check(
    rp.commit(z1, z3) === (D * rp.pow(S, e)) % nHat,
    "ENCRYPTED_SHARE_PROOF_INVALID",
    fail("s^z1·t^z3 = D·S^e"),
  );
}
