// Each zero-knowledge proof on its own: an honest proof verifies; a proof of a false statement, a tampered
// response, another session, or a malformed encoding is refused with the code naming the failed check.
import assert from "node:assert/strict";
import { generatePrimeSync } from "node:crypto";
import { test } from "node:test";
import type { RingPedersenParams } from "../../../proto/gen/ecdsa2p.ts";
import { jacobi, modInverse } from "../../../protocol/ecdsa2p/arith.ts";
import { writeNat, writeScalar } from "../../../protocol/ecdsa2p/codec.ts";
import { mulG, Q } from "../../../protocol/ecdsa2p/ec.ts";
import { FixedBase, modPow, modPowBigInt } from "../../../protocol/ecdsa2p/modexp.ts";
import {
  encrypt,
  encryptionNonce,
  generatePaillierKey,
  type PaillierKey,
  paillierFactors,
} from "../../../protocol/ecdsa2p/paillier.ts";
import {
  LOGSTAR_X_BITS,
  MOD_NTH_ROOT_ROUNDS,
  MOD_ROUNDS,
  PRM_ROUNDS,
} from "../../../protocol/ecdsa2p/params.ts";
import { proveDlog, verifyDlog } from "../../../protocol/ecdsa2p/proofs/dlog.ts";
import { proveFactors, verifyFactors } from "../../../protocol/ecdsa2p/proofs/fac.ts";
import { proveLogStar, verifyLogStar } from "../../../protocol/ecdsa2p/proofs/logstar.ts";
import { modulusChallenges, proveModulus, verifyModulus } from "../../../protocol/ecdsa2p/proofs/mod.ts";
import { provePrm, verifyPrm } from "../../../protocol/ecdsa2p/proofs/prm.ts";
import {
  generateRingPedersen,
  proverOps,
  RingPedersenCache,
  readRingPedersen,
  ringPedersenFromPrimes,
  verifierOps,
  verifyRingPedersen,
  wipeRingPedersen,
} from "../../../protocol/ecdsa2p/ring-pedersen.ts";
import { bytesToBigInt } from "../../../protocol/encoding.ts";
import { code, ringPedersen, rng, safePrimes, sid } from "./helpers.ts";

const blum = (bits: number) => generatePrimeSync(bits, { bigint: true, add: 4n, rem: 3n });
const bump = (b: Buffer): Buffer => writeNat(BigInt(`0x${b.toString("hex") || "0"}`) + 1n);

let paillier: PaillierKey;
const key = async () => {
  paillier ??= await generatePaillierKey({ rng });
  return paillier;
};

test("dlog: verifies; refuses another session, role, binding or point, a wrong response, bad encodings", () => {
  const x = 987654321n;
  const X = mulG(x);
  const ctx = { sessionId: sid(), role: "se-share", bind: [new Uint8Array([1, 2])] };
  const proof = proveDlog(x, X, ctx, rng);
  verifyDlog(X, proof, ctx, "S");
  const invalid = code("DLOG_PROOF_INVALID");
  assert.throws(() => verifyDlog(X, proof, { ...ctx, sessionId: sid() }, "S"), invalid);
  assert.throws(() => verifyDlog(X, proof, { ...ctx, role: "owner-share" }, "S"), invalid);
  assert.throws(() => verifyDlog(X, proof, { ...ctx, bind: [new Uint8Array([1, 3])] }, "S"), invalid);
  assert.throws(() => verifyDlog(mulG(x + 1n), proof, ctx, "S"), invalid);
  const z = BigInt(`0x${proof.response.toString("hex")}`);
  assert.throws(
    () => verifyDlog(X, { ...proof, response: writeScalar((z % (Q - 1n)) + 1n) }, ctx, "S"),
    invalid,
  );
  assert.throws(() => verifyDlog(X, undefined, ctx, "S"), code("DLOG_PROOF_MISSING"));
  assert.throws(() => verifyDlog(X, { ...proof, response: writeNat(Q) }, ctx, "S"), code("INVALID_SCALAR"));
  const offCurve = Buffer.alloc(33); // x = 0: 7 is not a square mod p, so no point has x = 0
  offCurve[0] = 2;
  assert.throws(() => verifyDlog(X, { ...proof, commitment: offCurve }, ctx, "S"), code("INVALID_POINT"));
  assert.throws(
    () => verifyDlog(X, { ...proof, commitment: Buffer.alloc(33, 0) }, ctx, "S"),
    code("INVALID_POINT"),
  );
  assert.throws(
    () => verifyDlog(X, { ...proof, commitment: proof.commitment.subarray(1) }, ctx, "S"),
    code("INVALID_POINT"),
  );
});

test("Π^prm: verifies; refuses s outside ⟨t⟩, a tampered response, wrong shape", () => {
  const rp = ringPedersen();
  const pub = readRingPedersen(rp.params);
  const tBase = new FixedBase(pub.t, pub.n);
  verifyPrm(pub, rp.params.proof, tBase);
  // s = −t^λ is not a square, so not in ⟨t⟩ ⊂ QR(N^): the honest algorithm with the "witness" λ fails.
  const { p, q } = safePrimes;
  const lambda = 12345n;
  const notInGroup = { ...pub, s: pub.n - new FixedBase(pub.t, pub.n).pow(lambda) };
  const forged = provePrm(notInGroup, { p, q, qInvP: 0n, lambda }, rng);
  assert.throws(() => verifyPrm(notInGroup, forged, tBase), code("RING_PEDERSEN_PROOF_INVALID"));
  const proof = rp.params.proof!;
  const tampered = { ...proof, responses: proof.responses.map((z, i) => (i === 7 ? bump(z) : z)) };
  assert.throws(() => verifyPrm(pub, tampered, tBase), code("RING_PEDERSEN_PROOF_INVALID"));
  const short = { ...proof, commitments: proof.commitments.slice(1) };
  assert.throws(() => verifyPrm(pub, short, tBase), code("PROOF_SHAPE"));
  assert.equal(proof.commitments.length, PRM_ROUNDS);
});

test("generateRingPedersen: two fresh safe primes, t a square, s = t^λ, a Π^prm the SE accepts", async () => {
  const fresh = await generateRingPedersen(rng);
  const pub = readRingPedersen(fresh.params);
  const p = bytesToBigInt(fresh.secret.p);
  const q = bytesToBigInt(fresh.secret.q);
  assert.equal(p * q, pub.n);
  assert.equal(pub.n.toString(2).length, 2048);
  for (const f of [p, q])
    assert.equal(modPowBigInt(2n, (f - 1n) / 2n - 1n, (f - 1n) / 2n), 1n, "(f−1)/2 is prime-ish");
  verifyRingPedersen(fresh.params);
  verifierOps(pub, fresh.secret); // checks s = t^λ
  wipeRingPedersen(fresh.secret);
  assert.ok(
    fresh.secret.lambda.every((b) => b === 0),
    "wiping the Ring-Pedersen secret zeroes λ",
  );
});

test("ring-Pedersen parameters: size, parity, units, missing proof", () => {
  const rp = ringPedersen();
  const small = { ...rp.params, modulus: writeNat(safePrimes.p * 3n) };
  assert.throws(() => verifyRingPedersen(small), code("RING_PEDERSEN_MODULUS_TOO_SMALL"));
  const even = { ...rp.params, modulus: writeNat(readRingPedersen(rp.params).n + 1n) };
  assert.throws(() => verifyRingPedersen(even), code("RING_PEDERSEN_MODULUS_EVEN"));
  const huge: RingPedersenParams = { ...rp.params, modulus: Buffer.alloc(600, 0xff) };
  assert.throws(() => verifyRingPedersen(huge), code("NUMBER_TOO_LARGE"));
  const nonUnit = { ...rp.params, t: writeNat(safePrimes.p * 5n) };
  assert.throws(() => verifyRingPedersen(nonUnit), code("RING_PEDERSEN_NOT_UNIT"));
  assert.throws(
    () => verifyRingPedersen({ ...rp.params, proof: undefined }),
    code("RING_PEDERSEN_PROOF_MISSING"),
  );
  assert.throws(() => verifyRingPedersen(undefined), code("RING_PEDERSEN_MISSING"));
});

test("the ring-Pedersen cache remembers verified parameters, bounded: the least recently used are checked again", () => {
  const small = new RingPedersenCache(2);
  const params = [0, 1, 2].map(() => ringPedersenFromPrimes(safePrimes.p, safePrimes.q, rng).params);
  for (const p of params) verifyRingPedersen(p, small);
  assert.equal(small.size, 2);
  // A cached statement (N^, s, t) is not re-proved: even a now-broken proof for it is accepted from the cache...
  const broken = { ...params[2]!, proof: { commitments: [], responses: [] } };
  verifyRingPedersen(broken, small);
  // ...while the evicted, least recently used one is checked again.
  assert.throws(
    () => verifyRingPedersen({ ...params[0]!, proof: { commitments: [], responses: [] } }, small),
    code("PROOF_SHAPE"),
  );
});

test("Π^prm and verifyRingPedersen: an honest proof of 80 rounds is refused", () => {
  assert.ok(PRM_ROUNDS >= 128, `Π^prm runs at least 128 rounds (${PRM_ROUNDS})`);
  const rp = ringPedersen();
  const pub = readRingPedersen(rp.params);
  const { p, q } = safePrimes;
  const lambda = bytesToBigInt(rp.secret.lambda);
  const short = provePrm(pub, { p, q, qInvP: modInverse(q, p), lambda }, rng, 80);
  assert.equal(short.commitments.length, 80);
  const shape = code("PROOF_SHAPE");
  assert.throws(() => verifyPrm(pub, short, new FixedBase(pub.t, pub.n)), shape);
  assert.throws(() => verifyRingPedersen({ ...rp.params, proof: short }), shape);
});

test("ring-Pedersen parameters: t or s in {0, 1, N^ − 1, ≥ N^}, s = t, non-units are refused before Π^prm", () => {
  const rp = ringPedersen();
  const pub = readRingPedersen(rp.params);
  const { n } = pub;
  const { p, q } = safePrimes;
  const qInvP = modInverse(q, p);
  const degenerate = code("RING_PEDERSEN_DEGENERATE");
  // Each with the honest prover's Π^prm for its λ, which the rounds accept: only the parameter check refuses.
  const withProof = (s: bigint, t: bigint, lambda: bigint): RingPedersenParams => ({
    modulus: writeNat(n),
    s: writeNat(s),
    t: writeNat(t),
    proof: provePrm({ n, s, t }, { p, q, qInvP, lambda }, rng),
  });
  for (const [what, s, t, lambda] of [
    ["s = t", pub.t, pub.t, 1n],
    ["s = 1", 1n, pub.t, 0n],
    ["t = 1", 1n, 1n, 5n],
    ["t = N^ − 1", 1n, n - 1n, 0n],
    ["s = t = N^ − 1", n - 1n, n - 1n, 1n],
  ] as const) {
    const params = withProof(s, t, lambda);
    assert.throws(() => verifyRingPedersen(params), degenerate, what);
    assert.throws(() => verifyRingPedersen(params, new RingPedersenCache()), degenerate, what);
  }
  // The cheapest forgery of all for t = s = 1: A_i = 1, z_i = 0.
  const trivial = {
    modulus: writeNat(n),
    s: writeNat(1n),
    t: writeNat(1n),
    proof: {
      commitments: Array.from({ length: PRM_ROUNDS }, () => writeNat(1n)),
      responses: Array.from({ length: PRM_ROUNDS }, () => writeNat(0n)),
    },
  };
  assert.throws(() => verifyRingPedersen(trivial), degenerate);
  // s = N^ − 1 (not a square, so not in ⟨t⟩), with the real t and proof.
  assert.throws(() => verifyRingPedersen({ ...rp.params, s: writeNat(n - 1n) }), degenerate);
  // Out of [1, N^) and non-units were refused before as well; they still are, and before Π^prm is looked at.
  const range = code("NUMBER_OUT_OF_RANGE");
  for (const field of ["s", "t"] as const) {
    for (const v of [0n, n, n + 1n])
      assert.throws(
        () => verifyRingPedersen({ ...rp.params, [field]: writeNat(v), proof: undefined }),
        range,
      );
    assert.throws(
      () => verifyRingPedersen({ ...rp.params, [field]: writeNat(q * 7n), proof: undefined }),
      code("RING_PEDERSEN_NOT_UNIT"),
    );
  }
  verifyRingPedersen(rp.params);
});

test("Π^mod: verifies; refuses a non-Blum modulus, tampered roots or bits, another key id, wrong shape", async () => {
  const k = await key();
  const proof = k.modulusProof!;
  verifyModulus(k.n, proof);
  assert.equal(proof.x.length, MOD_ROUNDS);
  assert.equal(proof.z.length, MOD_NTH_ROOT_ROUNDS);
  const invalid = code("PAILLIER_BLUM_PROOF_INVALID");
  // p ≡ 1 (mod 4): −1 is a square mod p, and the prover's fourth roots come out wrong.
  let p1: bigint;
  do p1 = generatePrimeSync(1024, { bigint: true, add: 4n, rem: 1n });
  while ((p1 * blum(1024)).toString(2).length < 2048);
  const q1 = blum(1024);
  assert.throws(() => verifyModulus(p1 * q1, proveModulus(k.id, p1 * q1, p1, q1, rng)), invalid);
  const at = (list: Buffer[], i: number) => list.map((v, j) => (j === i ? bump(v) : v));
  assert.throws(() => verifyModulus(k.n, { ...proof, x: at(proof.x, 3) }), invalid);
  assert.throws(() => verifyModulus(k.n, { ...proof, z: at(proof.z, 1) }), /gcd\(N, φ\(N\)\) ≠ 1/);
  assert.throws(
    () => verifyModulus(k.n, { ...proof, a: proof.a.map((v, j) => (j === 5 ? !v : v)) }),
    invalid,
  );
  assert.throws(
    () => verifyModulus(k.n, { ...proof, b: proof.b.map((v, j) => (j === 9 ? !v : v)) }),
    invalid,
  );
  assert.throws(() => verifyModulus(k.n, { ...proof, keyId: Buffer.from(rng(16)) }), invalid);
  assert.throws(() => verifyModulus(k.n, { ...proof, keyId: Buffer.from(rng(15)) }), code("PROOF_SHAPE"));
  assert.throws(() => verifyModulus(k.n, { ...proof, z: proof.z.slice(1) }), code("PROOF_SHAPE"));
  assert.throws(() => verifyModulus(k.n, { ...proof, x: [...proof.x, proof.x[0]!] }), code("PROOF_SHAPE"));
  assert.throws(() => verifyModulus(k.n, { ...proof, w: writeNat(k.n) }), code("NUMBER_OUT_OF_RANGE"));
  assert.throws(() => verifyModulus(k.n, undefined), code("PAILLIER_BLUM_PROOF_MISSING"));
});

test("jacobi agrees with Euler's criterion modulo primes and is multiplicative in the modulus", () => {
  const primes = [3n, 7n, 11n, 13n, 10007n, blum(64)];
  for (const p of primes)
    for (const a of [0n, 1n, 2n, 5n, p - 1n, p + 2n, -3n, 123456789n]) {
      const e = modPowBigInt(((a % p) + p) % p, (p - 1n) / 2n, p);
      assert.equal(jacobi(a, p), e === 0n ? 0 : e === 1n ? 1 : -1, `(${a}/${p})`);
    }
  const [p, q] = [primes[4]!, primes[5]!];
  // `+ 0` turns the product 0 · (−1) = −0 into 0: strictEqual tells the two apart.
  for (const a of [2n, 3n, 99991n, p * 2n]) assert.equal(jacobi(a, p * q), jacobi(a, p) * jacobi(a, q) + 0);
});

test("Π^mod: refuses a prime N with an otherwise valid proof, an even N, w of Jacobi symbol +1, non-unit roots", async () => {
  // A 2048-bit prime P ≡ 3 (mod 4) answers every round: −1 is a non-square, so ±y is a square and
  // y^(((P+1)/4)²) is a fourth root of it; gcd(P, P − 1) = 1, so N-th roots exist too.
  const P = blum(2048);
  const keyId = rng(16);
  let w: bigint;
  do w = bytesToBigInt(rng(256)) % P;
  while (jacobi(w, P) !== -1);
  const fourth = ((P + 1n) / 4n) ** 2n % (P - 1n);
  const nthRoot = modPowBigInt(P, -1n, P - 1n);
  const ys = modulusChallenges(keyId, P, w);
  const a = ys.map((y) => jacobi(y, P) === -1);
  const primeProof = {
    keyId: Buffer.from(keyId),
    w: writeNat(w),
    a,
    b: ys.map(() => false),
    x: ys.map((y, i) => writeNat(modPow(a[i] ? P - y : y, fourth, P))),
    z: ys.slice(0, MOD_NTH_ROOT_ROUNDS).map((y) => writeNat(modPow(y, nthRoot, P))),
  };
  assert.throws(() => verifyModulus(P, primeProof), code("PAILLIER_MODULUS_PRIME"));

  const k = await key();
  const proof = k.modulusProof!;
  const { p, q } = paillierFactors(k.secret);
  assert.throws(() => verifyModulus(k.n + 1n, proof), code("PAILLIER_MODULUS_EVEN"));
  const notMinusOne = /Jacobi symbol −1/;
  const w0 = bytesToBigInt(proof.w);
  assert.equal(jacobi(w0, k.n), -1);
  assert.throws(() => verifyModulus(k.n, { ...proof, w: writeNat((w0 * w0) % k.n) }), notMinusOne);
  assert.throws(() => verifyModulus(k.n, { ...proof, w: writeNat(p) }), notMinusOne);
  const notUnit = /x_i or z_i is not a unit/;
  const at = (list: Buffer[], i: number, v: bigint) => list.map((u, j) => (j === i ? writeNat(v) : u));
  assert.throws(() => verifyModulus(k.n, { ...proof, x: at(proof.x, 3, p) }), notUnit);
  assert.throws(() => verifyModulus(k.n, { ...proof, x: at(proof.x, MOD_ROUNDS - 1, 2n * q) }), notUnit);
  assert.throws(() => verifyModulus(k.n, { ...proof, z: at(proof.z, 1, q) }), notUnit);
  assert.throws(() => verifyModulus(k.n, { ...proof, x: at(proof.x, 0, 0n) }), code("NUMBER_OUT_OF_RANGE"));
  assert.throws(() => verifyModulus(k.n, { ...proof, z: at(proof.z, 0, k.n) }), code("NUMBER_OUT_OF_RANGE"));
  verifyModulus(k.n, proof);
});

test("Π^fac: verifies (with and without the trapdoor); refuses a modulus with a 264-bit factor, tampering", async () => {
  const k = await key();
  const { p, q } = paillierFactors(k.secret);
  const rp = ringPedersen();
  const prover = proverOps(verifyRingPedersen(rp.params));
  const pub = readRingPedersen(rp.params);
  const withTrapdoor = verifierOps(pub, rp.secret);
  const without = verifierOps(pub);
  const sessionId = sid();
  const proof = proveFactors(sessionId, k.n, p, q, prover, rng);
  verifyFactors(sessionId, k.n, proof, withTrapdoor);
  verifyFactors(sessionId, k.n, proof, without);
  const invalid = code("NO_SMALL_FACTOR_PROOF_INVALID");
  assert.throws(() => verifyFactors(sid(), k.n, proof, withTrapdoor), invalid);
  for (const field of ["w1", "w2", "v", "sigma", "z1"] as const) {
    assert.throws(
      () => verifyFactors(sessionId, k.n, { ...proof, [field]: bump(proof[field]) }, withTrapdoor),
      invalid,
    );
  }
  // An unbalanced modulus: the honest algorithm's z2 = β + e·q exceeds the bound.
  const small = blum(264);
  let big: bigint;
  do big = blum(1784);
  while ((small * big).toString(2).length !== 2048);
  const n = small * big;
  const unbalanced = proveFactors(sessionId, n, small, big, prover, rng);
  assert.throws(
    () => verifyFactors(sessionId, n, unbalanced, withTrapdoor),
    code("NO_SMALL_FACTOR_PROOF_RANGE"),
  );
  assert.throws(
    () => verifyFactors(sessionId, k.n, undefined, withTrapdoor),
    code("NO_SMALL_FACTOR_PROOF_MISSING"),
  );
  assert.throws(
    () => verifyFactors(sessionId, k.n, { ...proof, p: writeNat(safePrimes.p * 7n) }, withTrapdoor),
    code("RING_PEDERSEN_ELEMENT_NOT_UNIT"),
  );
  assert.throws(
    () => verifyFactors(sessionId, k.n, { ...proof, v: Buffer.alloc(2000, 1) }, withTrapdoor),
    code("NUMBER_TOO_LARGE"),
  );
});

test("Π^log*: verifies; refuses c_key of s + q under a proof for s, s + 2^600·q, another point or session", async () => {
  const k = await key();
  const rp = ringPedersen();
  const prover = proverOps(verifyRingPedersen(rp.params));
  const verifier = verifierOps(readRingPedersen(rp.params), rp.secret);
  const s = 0xc0ffeen * 2n ** 200n + 12345n;
  const X = mulG(s);
  const sessionId = sid();
  const nonce = encryptionNonce(k.n, rng);
  const c = encrypt(k.n, s, nonce);
  const st = { sessionId, n0: k.n, c, X };
  const proof = proveLogStar(st, { x: s, rho: nonce.r }, prover, rng);
  verifyLogStar(st, proof, verifier);
  verifyLogStar(st, proof, verifierOps(readRingPedersen(rp.params)));
  const invalid = code("ENCRYPTED_SHARE_PROOF_INVALID");
  // c_key = Enc(s + q) with the proof made for s.
  const cPlusQ = encrypt(k.n, s + Q, nonce);
  assert.throws(() => verifyLogStar({ ...st, c: cPlusQ }, proof, verifier), invalid);
  // c_key = Enc(s + j·q), j = 2^600, with a proof made consistently for that plaintext: out of range.
  const far = s + 2n ** 600n * Q;
  const cFar = encrypt(k.n, far, nonce);
  const farProof = proveLogStar({ ...st, c: cFar }, { x: far, rho: nonce.r }, prover, rng);
  assert.throws(
    () => verifyLogStar({ ...st, c: cFar }, farProof, verifier),
    code("ENCRYPTED_SHARE_PROOF_RANGE"),
  );
  assert.throws(() => verifyLogStar({ ...st, X: mulG(s + 1n) }, proof, verifier), invalid);
  // c_key encrypts s while the statement names X = (s+1)·G, the proof otherwise made honestly: the Paillier and
  // ring-Pedersen equations hold, only z1·G = Y + e·X fails.
  const wrongX = { ...st, X: mulG(s + 1n) };
  const mismatched = proveLogStar(wrongX, { x: s, rho: nonce.r }, prover, rng);
  assert.throws(() => verifyLogStar(wrongX, mismatched, verifier), /z1·G = Y \+ e·X/);
  // The ring-Pedersen commitment S to another value than c_key's plaintext: only s^z1·t^z3 = D·S^e fails.
  let first = true;
  const rigged = {
    ...prover,
    commit: (a: bigint, b: bigint) => {
      const c = prover.commit(first ? a + 1n : a, b);
      first = false;
      return c;
    },
  };
  const offRange = proveLogStar(st, { x: s, rho: nonce.r }, rigged, rng);
  assert.throws(() => verifyLogStar(st, offRange, verifier), /s\^z1·t\^z3 = D·S\^e/);
  assert.throws(() => verifyLogStar({ ...st, sessionId: sid() }, proof, verifier), invalid);
  for (const field of ["z1", "z2", "z3", "s", "d"] as const) {
    assert.throws(() => verifyLogStar(st, { ...proof, [field]: bump(proof[field]) }, verifier), invalid);
  }
  // A malicious SE with c_key = (1+N)^s·ρ^N for ρ ≡ 0 (mod p): a non-unit "ciphertext" whose proof, made with
  // randomness ≡ 0 (mod p) too, satisfies every equation. Only the unit check on z2 catches it.
  const { p } = paillierFactors(k.secret);
  const n2 = k.n * k.n;
  const bad = (r: bigint) => ({ n: k.n, r, rn: modPowBigInt(r, k.n, n2) });
  const rho = bad(p * 3n);
  const cNonUnit = encrypt(k.n, s, rho);
  const nonUnitProof = proveLogStar({ ...st, c: cNonUnit }, { x: s, rho: rho.r }, prover, rng, bad(p * 5n));
  assert.throws(() => verifyLogStar({ ...st, c: cNonUnit }, nonUnitProof, verifier), /z2 is not a unit/);
  assert.throws(() => verifyLogStar(st, undefined, verifier), code("ENCRYPTED_SHARE_PROOF_MISSING"));
});

test("Π^log*: z1 is refused from exactly 2^(ℓ+ε+1) on, by the range check", async () => {
  const k = await key();
  const rp = ringPedersen();
  const prover = proverOps(verifyRingPedersen(rp.params));
  const verifier = verifierOps(readRingPedersen(rp.params), rp.secret);
  const bound = 1n << BigInt(LOGSTAR_X_BITS);
  const s = 0xc0ffeen;
  const nonce = encryptionNonce(k.n, rng);
  const st = { sessionId: sid(), n0: k.n, c: encrypt(k.n, s, nonce), X: mulG(s) };
  const proof = proveLogStar(st, { x: s, rho: nonce.r }, prover, rng);
  verifyLogStar(st, proof, verifier);
  // A valid proof with z1 replaced: the bound and above are refused by the range check (its code, before any
  // equation is tried); one below is read and then fails the equations, so the bound is exactly 2^(ℓ+ε+1).
  for (const z1 of [bound, bound + 1n])
    assert.throws(
      () => verifyLogStar(st, { ...proof, z1: writeNat(z1) }, verifier),
      code("ENCRYPTED_SHARE_PROOF_RANGE"),
    );
  assert.throws(
    () => verifyLogStar(st, { ...proof, z1: writeNat(bound - 1n) }, verifier),
    code("ENCRYPTED_SHARE_PROOF_INVALID"),
  );
});

test("Π^log*: an honest proof for a too-large x is refused by the range check alone", async () => {
  const k = await key();
  const rp = ringPedersen();
  const prover = proverOps(verifyRingPedersen(rp.params));
  const verifiers = [
    verifierOps(readRingPedersen(rp.params), rp.secret),
    verifierOps(readRingPedersen(rp.params)),
  ];
  const bound = 1n << BigInt(LOGSTAR_X_BITS);
  const range = code("ENCRYPTED_SHARE_PROOF_RANGE");
  const proveFor = (x: bigint) => {
    const nonce = encryptionNonce(k.n, rng);
    const st = { sessionId: sid(), n0: k.n, c: encrypt(k.n, x, nonce), X: mulG(x % Q) };
    return { st, proof: proveLogStar(st, { x, rho: nonce.r }, prover, rng) };
  };
  // x = 2^530, far above any share: z1 = α + e·x lands just above the bound, below 2^64 times it (e ≥ 2^239
  // except with probability 2^-17; e·x < 2^786), and every equation holds. Only z1 < 2^(ℓ+ε+1) refuses it.
  let slack: ReturnType<typeof proveFor>;
  do slack = proveFor(1n << 530n);
  while (bytesToBigInt(slack.proof.z1) < bound);
  assert.ok(
    bytesToBigInt(slack.proof.z1) < bound << 64n,
    "the crafted z1 lies above the bound but below 2^64 times it",
  );
  for (const v of verifiers) assert.throws(() => verifyLogStar(slack.st, slack.proof, v), range);
  // x just outside what Π^log* proves (|x| < 2^(ℓ+ε+1)): z1 ≥ e·x is out of range for every e ≥ 1.
  for (const x of [bound, bound + 1n]) {
    const { st, proof } = proveFor(x);
    for (const v of verifiers) assert.throws(() => verifyLogStar(st, proof, v), range);
  }
});

test("Π^mod: the first 80 rounds of an honest proof (what an 80-round prover sends) are refused", async () => {
  assert.ok(
    MOD_ROUNDS >= 128 && MOD_NTH_ROOT_ROUNDS >= 8,
    `Π^mod runs at least 128 rounds and 8 n-th roots (${MOD_ROUNDS}, ${MOD_NTH_ROOT_ROUNDS})`,
  );
  const k = await key();
  const proof = k.modulusProof!;
  // The y_i are expanded in counter mode, so an 80-round prover's challenges are these proof's first 80.
  const old = { ...proof, x: proof.x.slice(0, 80), a: proof.a.slice(0, 80), b: proof.b.slice(0, 80) };
  assert.throws(() => verifyModulus(k.n, { ...old, z: proof.z.slice(0, 5) }), code("PROOF_SHAPE"));
  assert.throws(() => verifyModulus(k.n, old), code("PROOF_SHAPE"));
  assert.throws(() => verifyModulus(k.n, { ...proof, z: proof.z.slice(0, 5) }), code("PROOF_SHAPE"));
});
