// The enclave's ring-Pedersen parameters (N^ = p·q with safe primes, t a random square, s = t^λ): the commitment
// scheme against which the owner proves its range and factor statements (Π^log*, Π^fac), so that their soundness
// rests on a modulus the owner did not choose. An enclave instance makes them once, at boot, and wipes their
// trapdoor (enclave/instance.ts); the owner checks Π^prm and may cache the verdict (RingPedersenCache, bounded)
// together with its exponentiation engines for s and t.
import { generatePrime } from "node:crypto";
import type { RingPedersenParams } from "../../proto/gen/ecdsa2p.ts";
import { bigIntToBytes, toHex } from "../encoding.ts";
import { check } from "../errors.ts";
import type { Rng } from "../rng.ts";
import { bitLength, crt, gcd, mod, modInverse, randomBelow, randomNonZeroBelow } from "./arith.ts";
import { readNat, readPositiveBelow, writeNat } from "./codec.ts";
import { Transcript } from "./fiat-shamir.ts";
import { FixedBase, modPow, modPowPublic } from "./modexp.ts";
import { RING_PEDERSEN_BITS, RING_PEDERSEN_MAX_BITS, RING_PEDERSEN_MIN_BITS } from "./params.ts";
import { provePrm, verifyPrm } from "./proofs/prm.ts";
import { reveal, wipe } from "./secret.ts";

export interface RingPedersenSecret {
  p: Uint8Array;
  q: Uint8Array;
  lambda: Uint8Array;
}

export interface RingPedersenKey {
  /** What the enclave publishes (GetAttestationResponse.ring_pedersen), with its Π^prm. */
  params: RingPedersenParams;
  secret: RingPedersenSecret;
}

const safePrime = (bits: number): Promise<bigint> =>
  new Promise((resolve, reject) =>
    generatePrime(bits, { bigint: true, safe: true }, (err, p) => (err ? reject(err) : resolve(p as bigint))),
  );

/** Fresh parameters: two safe primes from OpenSSL (seconds of CPU time; once per wallet), t, λ, s and Π^prm. */
export async function generateRingPedersen(rng: Rng, opts: { bits?: number } = {}): Promise<RingPedersenKey> {
  const bits = opts.bits ?? RING_PEDERSEN_BITS;
  check(
    bits >= RING_PEDERSEN_MIN_BITS && bits <= RING_PEDERSEN_MAX_BITS && bits % 2 === 0,
    "RING_PEDERSEN_BITS",
    `ring-Pedersen modulus size ${bits} not allowed`,
  );
  let [p, q] = await Promise.all([safePrime(bits / 2), safePrime(bits / 2)]);
  while (p === q || bitLength(p * q) !== bits) {
    const fresh = await safePrime(bits / 2);
    if (p < q) p = fresh;
    else q = fresh;
  }
  return ringPedersenFromPrimes(p, q, rng);
}

/** Parameters from given primes (generateRingPedersen's last step). */
export function ringPedersenFromPrimes(p: bigint, q: bigint, rng: Rng): RingPedersenKey {
  const n = p * q;
  const phi = (p - 1n) * (q - 1n);
  const qInvP = modInverse(q, p);
  const tau = randomNonZeroBelow(rng, n);
  const t = (tau * tau) % n;
  const lambda = randomBelow(rng, phi);
  const s = crt(modPow(t % p, lambda % (p - 1n), p), p, modPow(t % q, lambda % (q - 1n), q), q, qInvP);
  const proof = provePrm({ n, s, t }, { p, q, qInvP, lambda }, rng);
  const len = (bitLength(n) + 7) >> 3;
  return {
    params: { modulus: writeNat(n), s: writeNat(s), t: writeNat(t), proof },
    secret: { p: bigIntToBytes(p), q: bigIntToBytes(q), lambda: bigIntToBytes(lambda, len) },
  };
}

export function wipeRingPedersen(secret: RingPedersenSecret): void {
  wipe(secret.p, secret.q, secret.lambda);
}

export interface RingPedersenPublic {
  n: bigint;
  s: bigint;
  t: bigint;
  /** Names the parameters (cache key). */
  id: string;
}

/** Size, range and degeneracy checks (before any BigInt conversion of oversized input, and any exponentiation). */
export function readRingPedersen(params: RingPedersenParams | undefined): RingPedersenPublic {
  check(params, "RING_PEDERSEN_MISSING", "the enclave's ring-Pedersen parameters are missing");
  const n = readNat(params.modulus, RING_PEDERSEN_MAX_BITS, "ring-Pedersen modulus N^");
  check(
    bitLength(n) >= RING_PEDERSEN_MIN_BITS,
    "RING_PEDERSEN_MODULUS_TOO_SMALL",
    `ring-Pedersen modulus N^ has ${bitLength(n)} bits, fewer than ${RING_PEDERSEN_MIN_BITS}`,
  );
  check((n & 1n) === 1n, "RING_PEDERSEN_MODULUS_EVEN", "ring-Pedersen modulus N^ is even");
  const s = readPositiveBelow(params.s, n, "ring-Pedersen s");
  const t = readPositiveBelow(params.t, n, "ring-Pedersen t");
  // Degenerate parameters, refused before any exponentiation (CGGMP21 takes t = τ² and λ random mod φ(N^)):
  // t = ±1 generates at most {±1}; s = 1 makes s^a·t^b blind to a, s = t lets a and b swap. Each has a trivial
  // Π^prm, and commitments against it would bind nothing. (s = N^ − 1 is not even a square.)
  for (const [v, name] of [
    [t, "t"],
    [s, "s"],
  ] as const)
    check(
      v !== 1n && v !== n - 1n,
      "RING_PEDERSEN_DEGENERATE",
      `ring-Pedersen ${name} is ${v === 1n ? "1" : "N^ − 1"}`,
    );
  check(s !== t, "RING_PEDERSEN_DEGENERATE", "ring-Pedersen s equals t");
  const id = toHex(new Transcript("ring-pedersen-id").int("N", n).int("s", s).int("t", t).digest());
  return { n, s, t, id };
}

/** Parameters whose Π^prm the owner has checked, with the exponentiation engines for s and t. */
export interface VerifiedRingPedersen {
  pub: RingPedersenPublic;
  sBase: FixedBase;
  tBase: FixedBase;
}

/** Verified parameters by id, least recently used evicted beyond `maxEntries`. */
export class RingPedersenCache {
  private readonly entries = new Map<string, VerifiedRingPedersen>();

  constructor(readonly maxEntries = 64) {}

  get(id: string): VerifiedRingPedersen | undefined {
    const v = this.entries.get(id);
    if (v) {
      this.entries.delete(id);
      this.entries.set(id, v);
    }
    return v;
  }

  add(v: VerifiedRingPedersen): void {
    this.entries.delete(v.pub.id);
    this.entries.set(v.pub.id, v);
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  get size(): number {
    return this.entries.size;
  }
}

/** The owner's check of the enclave's parameters: sizes, units, Π^prm (skipped when the cache has seen them). */
export function verifyRingPedersen(
  params: RingPedersenParams | undefined,
  cache?: RingPedersenCache,
): VerifiedRingPedersen {
  const pub = readRingPedersen(params);
  const hit = cache?.get(pub.id);
  if (hit) return hit;
  check(
    gcd(pub.s, pub.n) === 1n && gcd(pub.t, pub.n) === 1n,
    "RING_PEDERSEN_NOT_UNIT",
    "ring-Pedersen s or t is not a unit modulo N^",
  );
  const tBase = new FixedBase(pub.t, pub.n);
  verifyPrm(pub, params!.proof, tBase);
  const verified = { pub, sBase: new FixedBase(pub.s, pub.n), tBase };
  cache?.add(verified);
  return verified;
}

/** What Π^fac and Π^log* compute with: commitments s^a·t^b and other powers modulo N^ (a, b, e >= 0). */
export interface RingPedersenOps {
  pub: RingPedersenPublic;
  commit(a: bigint, b: bigint): bigint;
  pow(base: bigint, e: bigint): bigint;
}

/** The prover's (the owner's) operations: its exponents are secret, so all constant-time. */
export function proverOps(v: VerifiedRingPedersen): RingPedersenOps {
  const n = v.pub.n;
  return {
    pub: v.pub,
    commit: (a, b) => (v.sBase.pow(a) * v.tBase.pow(b)) % n,
    pow: (base, e) => modPow(base, e, n),
  };
}

/**
 * The verifier's operations (the enclave's, on public values). A verifier that knows the trapdoor (the enclave no
 * longer does once its parameters are made; tests do) computes s^a·t^b = t^(λa+b) and every power modulo p and q
 * with exponents reduced mod p−1, q−1 (several times faster, same group elements), checking on the way that the
 * elements the prover sent are units.
 */
export function verifierOps(pub: RingPedersenPublic, trapdoor?: RingPedersenSecret): RingPedersenOps {
  const n = pub.n;
  if (!trapdoor) {
    return {
      pub,
      commit: (a, b) => (modPowPublic(pub.s, a, n) * modPowPublic(pub.t, b, n)) % n,
      pow: (base, e) => modPowPublic(base, e, n),
    };
  }
  const p = reveal(trapdoor.p, "ring-Pedersen secret");
  const q = reveal(trapdoor.q, "ring-Pedersen secret");
  const lambda = reveal(trapdoor.lambda, "ring-Pedersen secret");
  check(p * q === n, "RING_PEDERSEN_SECRET_MISMATCH", "ring-Pedersen secret does not match the parameters");
  const qInvP = modInverse(q, p);
  const crtPow = (base: bigint, e: bigint): bigint =>
    crt(modPow(base % p, e % (p - 1n), p), p, modPow(base % q, e % (q - 1n), q), q, qInvP);
  check(
    crtPow(pub.t, lambda) === pub.s,
    "RING_PEDERSEN_SECRET_MISMATCH",
    "ring-Pedersen λ does not give s = t^λ",
  );
  return {
    pub,
    commit: (a, b) => crtPow(pub.t, mod(lambda * a + b, (p - 1n) * (q - 1n))),
    pow: (base, e) => {
      check(
        base % p !== 0n && base % q !== 0n,
        "RING_PEDERSEN_ELEMENT_NOT_UNIT",
        "a ring-Pedersen commitment is not a unit modulo N^",
      );
      return crtPow(base, e);
    },
  };
}
