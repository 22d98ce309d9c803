// Π^mod (CGGMP21, eprint 2021/060, Fig. 16): N is a Paillier-Blum modulus, N = p·q with p ≡ q ≡ 3 (mod 4) and
// gcd(N, φ(N)) = 1. For hash-derived y_i the prover gives a fourth root x_i of (−1)^a_i·w^b_i·y_i (MOD_ROUNDS
// rounds) and an N-th root z_i of y_i (the first MOD_NTH_ROOT_ROUNDS, see params.ts for why 8 suffice after trial
// division to 2^16).
//
// The challenge binds the Paillier key's random id, N and w, not a session id: the statement concerns N alone,
// so a proof made when the key was generated (in the enclave's key pool) proves the same fact in whichever
// session later sends it; forging one for a bad N still takes about 2^128 hash evaluations. Each key is used for
// exactly one keygen (PaillierKey.used).
import { checkPrimeSync } from "node:crypto";
import type { PaillierBlumProof } from "../../../proto/gen/ecdsa2p.ts";
import { check } from "../../errors.ts";
import type { Rng } from "../../rng.ts";
import { crt, gcd, jacobi, modInverse, randomNonZeroBelow } from "../arith.ts";
import { checkCount, readPositiveBelow, writeNat } from "../codec.ts";
import { challengesModN, Transcript } from "../fiat-shamir.ts";
import { FixedExponentModPrime, modPow, modPowPublic } from "../modexp.ts";
import { MOD_NTH_ROOT_ROUNDS, MOD_ROUNDS } from "../params.ts";

export const KEY_ID_BYTES = 16;

/** The y_i (exported so tests can answer them for a modulus the prover refuses, e.g. a prime). */
export function modulusChallenges(keyId: Uint8Array, n: bigint, w: bigint): bigint[] {
  const digest = new Transcript("paillier-blum").bytes("key_id", keyId).int("N", n).int("w", w).digest();
  return challengesModN(digest, "y", n, MOD_ROUNDS);
}

/**
 * f(y) = y^(((p+1)/4)² mod (p−1)) mod p, for p ≡ 3 (mod 4). It is multiplicative and f(y)^4 = χ(y)·y, χ the
 * Legendre symbol: one exponentiation gives both whether y is a square mod p and a fourth root of ±y.
 */
type FourthRootMap = { f: (y: bigint) => bigint; chi: (y: bigint, fy: bigint) => 1n | -1n; wipe: () => void };

function fourthRootMap(p: bigint): FourthRootMap {
  const root = new FixedExponentModPrime(((p + 1n) / 4n) ** 2n % (p - 1n), p);
  return {
    f: (y) => root.pow(y),
    chi: (y, fy) => {
      const f2 = (fy * fy) % p;
      return (f2 * f2) % p === y % p ? 1n : -1n;
    },
    wipe: () => root.wipe(),
  };
}

export function proveModulus(
  keyId: Uint8Array,
  n: bigint,
  p: bigint,
  q: bigint,
  rng: Rng,
  /** Called between rounds: a background generator may wait there while its thread should keep quiet. */
  between: () => void = () => {},
): PaillierBlumProof {
  const P = fourthRootMap(p);
  const Qm = fourthRootMap(q);
  try {
    return proveWithRoots(keyId, n, p, q, rng, between, P, Qm);
  } finally {
    // The engines keep DER encodings of p and q (modexp.ts, FixedExponentModPrime).
    P.wipe();
    Qm.wipe();
  }
}

function proveWithRoots(
  keyId: Uint8Array,
  n: bigint,
  p: bigint,
  q: bigint,
  rng: Rng,
  between: () => void,
  P: FourthRootMap,
  Qm: FourthRootMap,
): PaillierBlumProof {
  const qInvP = modInverse(q, p);
  // w with Jacobi symbol −1: a square modulo exactly one of p, q.
  let w: bigint;
  let fw: [bigint, bigint];
  let chiW: [bigint, bigint];
  for (;;) {
    w = randomNonZeroBelow(rng, n);
    fw = [P.f(w), Qm.f(w)];
    chiW = [P.chi(w, fw[0]), Qm.chi(w, fw[1])];
    if (chiW[0] !== chiW[1]) break;
  }
  const fMinusOne = [P.f(p - 1n), Qm.f(q - 1n)];
  const ys = modulusChallenges(keyId, n, w);
  const proof: PaillierBlumProof = { w: writeNat(w), x: [], a: [], b: [], z: [], keyId: Buffer.from(keyId) };
  for (const y of ys) {
    between();
    const fy = [P.f(y), Qm.f(y)];
    const chiY = [P.chi(y, fy[0]!), Qm.chi(y, fy[1]!)];
    // (−1)^a·w^b·y must be a square modulo p and q; both moduli are 3 mod 4, so χ(−1) = −1.
    let a = false;
    let b = false;
    search: for (const aa of [false, true])
      for (const bb of [false, true]) {
        const ok = [0, 1].every((i) => (aa ? -1n : 1n) * (bb ? chiW[i]! : 1n) * chiY[i]! === 1n);
        if (ok) {
          a = aa;
          b = bb;
          break search;
        }
      }
    const root = (i: 0 | 1, m: bigint): bigint => ((a ? fMinusOne[i]! : 1n) * (b ? fw[i] : 1n) * fy[i]!) % m;
    proof.x.push(writeNat(crt(root(0, p), p, root(1, q), q, qInvP)));
    proof.a.push(a);
    proof.b.push(b);
  }
  // N-th roots: y^(N⁻¹ mod (p−1)) mod p, likewise mod q.
  const dp = modInverse(n, p - 1n);
  const dq = modInverse(n, q - 1n);
  for (const y of ys.slice(0, MOD_NTH_ROOT_ROUNDS)) {
    between();
    proof.z.push(writeNat(crt(modPow(y % p, dp, p), p, modPow(y % q, dq, q), q, qInvP)));
  }
  return proof;
}

/**
 * Checks Π^mod for N. Its size and small factors are the caller's (checkPaillierModulus); what the proof itself
 * rests on is checked here, the cheap checks first (CGGMP21 Fig. 16, verification): N odd and composite, w of
 * Jacobi symbol −1, every root a unit, then the rounds.
 */
export function verifyModulus(n: bigint, proof: PaillierBlumProof | undefined): void {
  check(proof, "PAILLIER_BLUM_PROOF_MISSING", "Paillier-Blum modulus proof (Π^mod) is missing");
  check(
    proof.keyId.length === KEY_ID_BYTES,
    "PROOF_SHAPE",
    `Π^mod key id must be ${KEY_ID_BYTES} bytes, got ${proof.keyId.length}`,
  );
  checkCount(proof.x, MOD_ROUNDS, "Π^mod fourth roots");
  checkCount(proof.a, MOD_ROUNDS, "Π^mod sign bits");
  checkCount(proof.b, MOD_ROUNDS, "Π^mod w bits");
  checkCount(proof.z, MOD_NTH_ROOT_ROUNDS, "Π^mod N-th roots");
  check((n & 1n) === 1n, "PAILLIER_MODULUS_EVEN", "Paillier modulus N is even");
  const w = readPositiveBelow(proof.w, n, "Π^mod w");
  // w is a square modulo exactly one of p, q; (w/N) = 0 would also mean w is not a unit.
  check(
    jacobi(w, n) === -1,
    "PAILLIER_BLUM_PROOF_INVALID",
    "Π^mod w does not have Jacobi symbol −1 modulo N",
  );
  const xs = proof.x.map((x, i) => readPositiveBelow(x, n, `Π^mod x_${i}`));
  const zs = proof.z.map((z, i) => readPositiveBelow(z, n, `Π^mod z_${i}`));
  // Every x_i, z_i in Z*_N. A prime factor of N divides a product mod N iff it divides a factor: one gcd.
  let product = 1n;
  for (const v of [...xs, ...zs]) product = (product * v) % n;
  check(gcd(product, n) === 1n, "PAILLIER_BLUM_PROOF_INVALID", "Π^mod: an x_i or z_i is not a unit modulo N");
  // A prime N ≡ 3 (mod 4) answers every round (fourth roots of ±y and N-th roots all exist), so the rounds alone
  // would pass it. OpenSSL's Miller-Rabin stops at the first failed round (about one exponentiation for a
  // composite N); only a prime pays its full count.
  check(!checkPrimeSync(n), "PAILLIER_MODULUS_PRIME", "Paillier modulus N is prime");
  const ys = modulusChallenges(proof.keyId, n, w);
  for (let i = 0; i < MOD_ROUNDS; i++) {
    const x2 = (xs[i]! * xs[i]!) % n;
    let rhs = proof.b[i] ? (ys[i]! * w) % n : ys[i]!;
    if (proof.a[i] && rhs !== 0n) rhs = n - rhs;
    check(
      (x2 * x2) % n === rhs,
      "PAILLIER_BLUM_PROOF_INVALID",
      `Π^mod round ${i}: x^4 ≠ (−1)^a·w^b·y mod N, so N is not a Paillier-Blum modulus`,
    );
  }
  for (let i = 0; i < MOD_NTH_ROOT_ROUNDS; i++) {
    const z = zs[i]!;
    check(
      (modPowPublic(z, n - 1n, n) * z) % n === ys[i], // z^(N−1)·z: an exponent below N keeps the fastest path
      "PAILLIER_BLUM_PROOF_INVALID",
      `Π^mod round ${i}: z^N ≠ y mod N, so gcd(N, φ(N)) ≠ 1`,
    );
  }
}
