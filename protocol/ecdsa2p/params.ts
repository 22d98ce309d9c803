// Sizes and security parameters (DESIGN.md section 3.1), with the arithmetic that ties them together. The
// assertions at the bottom run when the module loads, so a change that breaks the arithmetic cannot ship.
import { Q } from "./ec.ts";

/** ℓ: bits of the curve order q; an honest share lies in [1, q) ⊂ [0, 2^ℓ). */
export const ELL = 256;
/**
 * ε: slack of the range-bounded proofs (CGGMP21 takes ε = 2ℓ). A response z = α + e·x with α uniform below
 * 2^(ℓ+ε) and e·x < 2^(2ℓ) is within statistical distance 2^(ℓ−ε) = 2^-256 of one that does not depend on x.
 */
export const EPS = 512;
/** Statistical security of masks (ρ·q hiding v·x). */
export const STAT = 128;

export const PAILLIER_BITS = 2048;
export const PAILLIER_MIN_BITS = 2048;
export const PAILLIER_MAX_BITS = 4096;
export const RING_PEDERSEN_BITS = 2048;
export const RING_PEDERSEN_MIN_BITS = 2048;
export const RING_PEDERSEN_MAX_BITS = 4096;

/**
 * Π^mod fourth-root rounds: a modulus that is not a Paillier-Blum modulus answers one with probability at most
 * 1/2 (CGGMP21, Π^mod), so 128 rounds give 2^-128. Non-interactive: forging takes about 2^128 hash trials, not
 * 2^80 (a proof is bound to the key, not to a session, so one forgery could be replayed).
 */
export const MOD_ROUNDS = 128;
/**
 * Π^mod N-th-root rounds. N is trial-divided by every prime below 2^16 first; then if gcd(N, φ(N)) ≠ 1 some prime
 * r ≥ 2^16 divides both, the N-th powers have index at least r in Z*_N, and a random y has an N-th root with
 * probability at most 2^-16 (Goldberg, Reyzin, Sagga, Baldimtsi, "Efficient noninteractive certification of RSA
 * moduli and beyond", 2019). ⌈128 / 16⌉ = 8 rounds give 2^-128, instead of 128 full-size exponentiations.
 */
export const MOD_NTH_ROOT_ROUNDS = 8;
/**
 * Π^prm rounds (binary challenges): 2^-128. A wallet caches a verified Π^prm for good (RingPedersenCache), so a
 * forgery must cost 2^128 hash trials, not 2^80.
 */
export const PRM_ROUNDS = 128;

/**
 * What Π^log* proves about the plaintext x of c_key: |x| < 2^(ℓ+ε+1). The verifier accepts z1 < 2^(ℓ+ε+1);
 * two accepting answers to challenges e ≠ e' give x = (z1 − z1')/(e − e') with |e − e'| ≥ 1. (x may exceed q or
 * be "negative", i.e. N − |x|: the proof has slack, and the enclave's partial signature is built to tolerate it.)
 */
export const LOGSTAR_X_BITS = ELL + EPS + 1;

/*
 * The enclave's partial signature: c3 = Enc(a + ρ·q) ⊕ c_key^v with a = k_se⁻¹·m mod q, v = k_se⁻¹·r·s mod q
 * (k_se the enclave's nonce, s its share), so its plaintext is the integer T = a + ρ·q + v·x (x the plaintext of
 * c_key, as an integer with |x| < 2^LOGSTAR_X_BITS).
 *   |v·x| < q·2^769 < 2^(256+769) = 2^VX_BITS.
 *   ρ is uniform in [RHO_MIN, RHO_MIN + 2^RHO_BITS) with RHO_MIN·q > 2^VX_BITS, so T > 0.
 *   The span 2^RHO_BITS·q ≥ 2^(RHO_BITS+255) is at least 2^(VX_BITS+STAT), so ρ·q hides v·x: the statistical
 *   distance between T and T − v·x is at most 2^VX_BITS / 2^(VX_BITS+STAT) = 2^-128; RHO_BITS = 898.
 *   T < q + (RHO_MIN + 2^RHO_BITS)·q + 2^VX_BITS < 2^1156 < 2^(PAILLIER_MIN_BITS−1) ≤ N: T never wraps modulo N,
 *   so the owner decrypts exactly T, and T mod q = k_se⁻¹·(m + r·s·x) mod q.
 */
export const VX_BITS = ELL + LOGSTAR_X_BITS;
export const RHO_BITS = VX_BITS + STAT - (ELL - 1);
export const RHO_MIN = (1n << BigInt(VX_BITS)) / Q + 1n;
export const RHO_SPAN = 1n << BigInt(RHO_BITS);
/** Every plaintext T of a partial signature is below this. */
export const PARTIAL_PLAINTEXT_MAX = Q + (RHO_MIN + RHO_SPAN) * Q + (1n << BigInt(VX_BITS));

function assertParams(cond: boolean, what: string): void {
  if (!cond) throw new Error(`ecdsa2p parameter arithmetic broken: ${what}`);
}
assertParams(Q > 1n << BigInt(ELL - 1) && Q < 1n << BigInt(ELL), "q has ℓ bits");
assertParams(RHO_MIN * Q > 1n << BigInt(VX_BITS), "ρ_min·q exceeds every |v·x|, so T > 0");
assertParams(RHO_SPAN * Q >= 1n << BigInt(VX_BITS + STAT), "ρ·q hides v·x within 2^-128");
assertParams(PARTIAL_PLAINTEXT_MAX < 1n << BigInt(PAILLIER_MIN_BITS - 1), "T < N: no wrap-around");
assertParams(MOD_ROUNDS >= 128 && PRM_ROUNDS >= 128, "binary-challenge proofs have at least 128 rounds");
assertParams(
  MOD_NTH_ROOT_ROUNDS * 16 >= MOD_ROUNDS,
  "N-th-root rounds (2^-16 each) match the fourth-root rounds",
);
