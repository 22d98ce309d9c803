// Party two = the owner: checks everything the SE sends (commitment openings, DLog proofs, the Paillier modulus
// and its Π^mod and Π^fac, c_key and its Π^log*) and computes the homomorphic partial signature.
import type {
  DlogProof,
  KeyGenCommit,
  KeyGenOwnerShare,
  KeyGenSeShare,
  PaillierBlumProof,
  Signature,
  SignOwnerCommit,
  SignOwnerPartial,
  SignSeNonce,
} from "../../proto/gen/ecdsa2p.ts";
import { Point as CurvePoint, type Point, parsePoint, pointBytes, scalarBytes } from "../encoding.ts";
import { check } from "../errors.ts";
import type { Rng } from "../rng.ts";
import { randomBelow } from "./arith.ts";
import { readPoint, readPositiveBelow, readScalar, writeNat, writePoint } from "./codec.ts";
import { checkOpening, commit } from "./commit.ts";
import { mulG, mulSecret, Q, randomScalar, xOfMul } from "./ec.ts";
import { type FixedExponent, modPow } from "./modexp.ts";
import {
  checkPaillierModulus,
  type EncryptionNonce,
  encrypt,
  encryptionNonce,
  nonceEngine,
} from "./paillier.ts";
import { PARTIAL_PLAINTEXT_MAX, RHO_MIN, RHO_SPAN } from "./params.ts";
import { OWNER_NONCE, SE_NONCE } from "./party-one.ts";
import { proveDlog, verifyDlog } from "./proofs/dlog.ts";
import { verifyFactors } from "./proofs/fac.ts";
import { verifyLogStar } from "./proofs/logstar.ts";
import { verifyModulus } from "./proofs/mod.ts";
import { type RingPedersenKey, readRingPedersen, verifierOps } from "./ring-pedersen.ts";
import { invModN } from "./scalar-ct.ts";
import { reveal, wipe } from "./secret.ts";
import { checkDigest, checkSessionId } from "./session.ts";
import { decodeCompact, digestToInt, ecdsaVerifyPoint, encodeDer, recoveryId } from "./verify.ts";

export interface PartyTwoKey {
  readonly sessionId: Uint8Array;
  /** o, 32 bytes. */
  readonly share: Uint8Array;
  readonly ownerPublicShare: Point;
  readonly sePublicShare: Point;
  readonly sharedPublicKey: Point;
  readonly paillierModulus: bigint;
  /** c_key = Enc(s) under the SE's Paillier key. */
  readonly encryptedShare: bigint;
  /**
   * Cache (public values only, not to be stored): x ↦ x^N mod N², made by the first p2EncryptionNonce. Its
   * creation costs about two exponentiations, so it pays only for several nonces made ahead.
   */
  nonceEngine?: FixedExponent;
  wiped: boolean;
}

export function wipePartyTwoKey(key: PartyTwoKey): void {
  wipe(key.share);
  key.wiped = true;
}

// ---------------------------------------------------------------------------------------------------------
// keygen

export interface PartyTwoKeyGenState {
  readonly sessionId: Uint8Array;
  readonly share: Uint8Array;
  readonly O: Point;
  /** The SE's round-1 commitment (deposit); absent in a key update. */
  readonly seCommitment: Uint8Array | undefined;
  readonly ringPedersen: RingPedersenKey;
  consumed: boolean;
}

/**
 * The owner's share: fresh o (deposit), or the given one (a receiver's o2, drawn before t2). `commit` is the SE's
 * round-1 message in a deposit, absent in a key update.
 */
export function p2KeyGenShare(opts: {
  sessionId: Uint8Array;
  commit?: KeyGenCommit;
  ringPedersen: RingPedersenKey;
  rng: Rng;
  share?: Uint8Array;
}): { state: PartyTwoKeyGenState; msg: KeyGenOwnerShare } {
  const sessionId = checkSessionId(opts.sessionId);
  const seCommitment = opts.commit ? new Uint8Array(opts.commit.commitment) : undefined;
  check(
    seCommitment === undefined || seCommitment.length === 32,
    "COMMITMENT_LENGTH",
    "the SE's keygen commitment must be 32 bytes",
  );
  const o = opts.share ? readScalar(opts.share, "owner share") : randomScalar(opts.rng);
  const O = mulG(o);
  const proof = proveDlog(
    o,
    O,
    { sessionId, role: "owner-share", bind: [seCommitment ?? new Uint8Array(0)] },
    opts.rng,
  );
  return {
    state: {
      sessionId,
      share: scalarBytes(o),
      O,
      seCommitment,
      ringPedersen: opts.ringPedersen,
      consumed: false,
    },
    msg: { publicShare: writePoint(O), proof, ringPedersen: opts.ringPedersen.params },
  };
}

/**
 * Checks a Paillier modulus and its Π^mod ahead of the keygen answer that will carry them (in a transfer, the
 * SE shows them with the transfer key); give the result to p2KeyGenFinish as `verifiedModulus`.
 */
export function p2CheckPaillierModulus(modulus: Uint8Array, proof: PaillierBlumProof | undefined): bigint {
  const n = checkPaillierModulus(modulus);
  verifyModulus(n, proof);
  return n;
}

/**
 * Checks the SE's KeyGenSeShare and returns the owner's key. A key update (no commitment) must say which shared
 * key it expects: o2·S2 = P. When the answer's N is `verifiedModulus` (p2CheckPaillierModulus passed on it), its
 * Π^mod is not checked again; any other N has its proof checked here.
 */
export function p2KeyGenFinish(
  state: PartyTwoKeyGenState,
  seShare: KeyGenSeShare,
  opts: { expectedSharedKey?: Uint8Array | Point; verifiedModulus?: bigint } = {},
): PartyTwoKey {
  check(!state.consumed, "KEYGEN_STATE_USED", "this keygen state has already been used", "precondition");
  state.consumed = true;
  check(seShare, "KEYGEN_SE_SHARE_MISSING", "the SE's key share message is missing");
  const { sessionId } = state;
  const expected =
    opts.expectedSharedKey === undefined || opts.expectedSharedKey instanceof CurvePoint
      ? opts.expectedSharedKey
      : parsePoint(opts.expectedSharedKey, "expected shared public key");
  const S = readPoint(seShare.publicShare, "SE public share S");
  const proof: DlogProof = seShare.proof ?? { commitment: Buffer.alloc(0), response: Buffer.alloc(0) };
  if (state.seCommitment) {
    checkOpening(
      "keygen",
      sessionId,
      [pointBytes(S), proof.commitment, proof.response],
      seShare.blind,
      state.seCommitment,
      "SE public share S",
    );
  } else {
    check(
      seShare.blind.length === 0,
      "KEYGEN_UNEXPECTED_OPENING",
      "a key update keygen has no commitment to open",
    );
    check(
      expected,
      "KEYGEN_EXPECTED_KEY_MISSING",
      "a keygen without commitment round (key update) must be checked against the expected shared key",
      "precondition",
    );
  }
  verifyDlog(S, seShare.proof, { sessionId, role: "se-share" }, "SE public share S");
  const n = checkPaillierModulus(seShare.paillierModulus);
  const cKey = readPositiveBelow(seShare.encryptedShare, n * n, "encrypted SE share c_key");
  if (n !== opts.verifiedModulus) verifyModulus(n, seShare.modulusProof);
  const ops = verifierOps(readRingPedersen(state.ringPedersen.params), state.ringPedersen.secret);
  verifyFactors(sessionId, n, seShare.factorProof, ops);
  verifyLogStar({ sessionId, n0: n, c: cKey, X: S }, seShare.shareProof, ops);
  const o = reveal(state.share, "owner share");
  const P = mulSecret(S, o);
  check(
    !expected || P.equals(expected),
    "SHARED_KEY_MISMATCH",
    "o·S ≠ the expected shared public key: the SE's new share does not belong to this coin",
  );
  return {
    sessionId,
    share: state.share,
    ownerPublicShare: state.O,
    sePublicShare: S,
    sharedPublicKey: P,
    paillierModulus: n,
    encryptedShare: cKey,
    wiped: false,
  };
}

/** Encryption randomness for this key's partial signatures, made ahead (e.g. while the wallet is idle) in numbers. */
export function p2EncryptionNonce(key: PartyTwoKey, rng: Rng): EncryptionNonce {
  key.nonceEngine ??= nonceEngine(key.paillierModulus);
  return p2PartialNonce(key, rng);
}

/**
 * Encryption randomness for one partial signature (through the key's engine if p2EncryptionNonce made one): what
 * p2SignPartial draws when given none. A wallet draws it while the SE answers the first signing round.
 */
export const p2PartialNonce = (key: PartyTwoKey, rng: Rng): EncryptionNonce =>
  encryptionNonce(key.paillierModulus, rng, key.nonceEngine);

// ---------------------------------------------------------------------------------------------------------
// signing

export interface PartyTwoSignState {
  readonly sessionId: Uint8Array;
  readonly digest: Uint8Array;
  /** k2, 32 bytes; wiped once the partial signature is made. */
  readonly nonce: Uint8Array;
  readonly R2: Point;
  readonly proof: DlogProof;
  readonly blind: Uint8Array;
  readonly commitment: Uint8Array;
  stage: "committed" | "partial" | "done";
  /** r, once known. */
  r: bigint;
}

/** Signing round 1: commitment to R2 = k2·G and its proof. `digest` comes from the owner's own transaction. */
export function p2SignCommit(
  key: PartyTwoKey,
  opts: { sessionId: Uint8Array; digest: Uint8Array; rng: Rng },
): { state: PartyTwoSignState; msg: SignOwnerCommit } {
  check(!key.wiped, "KEY_WIPED", "this key share has been erased", "precondition");
  const sessionId = checkSessionId(opts.sessionId);
  const digest = new Uint8Array(checkDigest(opts.digest));
  const k2 = randomScalar(opts.rng);
  const R2 = mulG(k2);
  const proof = proveDlog(k2, R2, { sessionId, role: OWNER_NONCE, bind: [digest] }, opts.rng);
  const { commitment, blind } = commit(
    "sign",
    sessionId,
    [digest, pointBytes(R2), proof.commitment, proof.response],
    opts.rng,
  );
  return {
    state: {
      sessionId,
      digest,
      nonce: scalarBytes(k2),
      R2,
      proof,
      blind,
      commitment,
      stage: "committed",
      r: 0n,
    },
    msg: { commitment: Buffer.from(commitment) },
  };
}

/**
 * Signing round 2: checks the SE's nonce proof, then c3 = Enc(k2⁻¹·m + ρ·q) ⊕ c_key^(k2⁻¹·r·o), ρ drawn as
 * params.ts explains. `encryptionNonce` may carry an r^N computed ahead of time.
 */
export function p2SignPartial(
  key: PartyTwoKey,
  state: PartyTwoSignState,
  seNonce: SignSeNonce,
  opts: { rng: Rng; encryptionNonce?: EncryptionNonce },
): SignOwnerPartial {
  check(!key.wiped, "KEY_WIPED", "this key share has been erased", "precondition");
  check(
    state.stage === "committed",
    "SIGN_STATE_USED",
    "this signing state has already been used",
    "precondition",
  );
  state.stage = "partial";
  try {
    check(seNonce, "SIGN_SE_NONCE_MISSING", "the SE's nonce message is missing");
    const { sessionId, digest } = state;
    const R1 = readPoint(seNonce.publicNonce, "SE nonce R1");
    verifyDlog(
      R1,
      seNonce.proof,
      { sessionId, role: SE_NONCE, bind: [digest, state.commitment] },
      "SE nonce R1",
    );
    const k2 = reveal(state.nonce, "signing nonce");
    const r = xOfMul(k2, R1) % Q;
    check(r !== 0n, "SIGNATURE_R_ZERO", "nonce point gives r = 0");
    state.r = r;
    const n = key.paillierModulus;
    check(
      n > PARTIAL_PLAINTEXT_MAX,
      "PAILLIER_MODULUS_TOO_SMALL",
      "Paillier modulus too small for the partial signature",
    );
    // Blinded (scalar-ct.ts): the variable-time inversion sees k2·β, never k2.
    const k2invBytes = new Uint8Array(32);
    invModN(state.nonce, opts.rng, k2invBytes);
    const k2inv = reveal(k2invBytes, "inverse nonce");
    k2invBytes.fill(0);
    const a = (k2inv * (digestToInt(digest) % Q)) % Q;
    const v = (((k2inv * r) % Q) * reveal(key.share, "owner share")) % Q;
    const rho = RHO_MIN + randomBelow(opts.rng, RHO_SPAN);
    const n2 = n * n;
    const c3 =
      (encrypt(n, a + rho * Q, opts.encryptionNonce ?? p2PartialNonce(key, opts.rng)) *
        modPow(key.encryptedShare, v, n2)) %
      n2;
    return {
      publicNonce: writePoint(state.R2),
      proof: state.proof,
      blind: Buffer.from(state.blind),
      partialSignature: writeNat(c3),
    };
  } finally {
    wipe(state.nonce);
  }
}

/** Checks the SE's finished signature: the agreed r, low-S, valid under P. Returns it compact and DER-encoded. */
export function p2SignFinish(
  key: PartyTwoKey,
  state: PartyTwoSignState,
  signature: Signature,
): { r: bigint; s: bigint; recoveryId: number; compact: Uint8Array; der: Uint8Array } {
  check(
    state.stage === "partial",
    "SIGN_STATE_USED",
    "this signing state is not awaiting a signature",
    "precondition",
  );
  state.stage = "done";
  check(signature, "SIGNATURE_MISSING", "the SE's signature is missing");
  const r = readScalar(signature.r, "signature r");
  const s = readScalar(signature.s, "signature s");
  check(r === state.r, "SIGNATURE_INVALID", "the signature's r is not the one this session agreed on");
  const R = ecdsaVerifyPoint({ r, s }, state.digest, key.sharedPublicKey);
  check(R, "SIGNATURE_INVALID", "the SE's signature does not verify under the shared key (or is not low-S)");
  const compact = new Uint8Array([...scalarBytes(r), ...scalarBytes(s)]);
  const id = recoveryId(R, r);
  check(signature.recoveryId === id, "SIGNATURE_INVALID", "the signature's recovery id is wrong");
  return { r, s, recoveryId: id, compact, der: encodeDer(decodeCompact(compact)) };
}
