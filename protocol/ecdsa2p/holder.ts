// The owner as Paillier holder (DESIGN.md section 3.1, revised; Lindell 2017, Protocols 3.2 and 4.1, with the
// owner as P1). It holds o, a per-coin Paillier key and c_key = Enc_N(o); it commits to O before seeing S, proves
// N (Π^mod, Π^fac) and c_key (Π^log*) against the enclave's ring-Pedersen parameters, and finishes every
// signature from the enclave's c3 — after checking the enclave signed that c3 (partial-statement.ts).
//
// Taint (BitForge, CVE-2023-33242, aimed at o): a signature that fails its final verification after c3 was
// decrypted taints the key for good. holderSignFinish returns that as an outcome, not an exception, so the
// caller cannot miss it: it must write the taint durably before it does anything else.
import type { KeyObject } from "node:crypto";
import type {
  DlogProof,
  HolderKeyGenCommit,
  HolderKeyGenShare,
  SignerKeyGenShare,
  SignOwnerCommit,
  SignOwnerNonce,
  SignSeNonce,
  SignSePartial,
} from "../../proto/gen/ecdsa2p.ts";
import { Point as CurvePoint, type Point, parsePoint, pointBytes, scalarBytes } from "../encoding.ts";
import { check } from "../errors.ts";
import type { Rng } from "../rng.ts";
import { readPoint, readPositiveBelow, readScalar, writeNat, writePoint } from "./codec.ts";
import { commit } from "./commit.ts";
import { mulG, mulSecret, Q, randomScalar } from "./ec.ts";
import {
  decrypt,
  encrypt,
  type PaillierKey,
  paillierFactors,
  takeNonce,
  wipePaillierKey,
} from "./paillier.ts";
import { PARTIAL_PLAINTEXT_MAX } from "./params.ts";
import { verifyPartialStatement } from "./partial-statement.ts";
import { proveDlog, verifyDlog } from "./proofs/dlog.ts";
import { proveFactors } from "./proofs/fac.ts";
import { proveLogStar } from "./proofs/logstar.ts";
import { proveModulus } from "./proofs/mod.ts";
import { proverOps, type VerifiedRingPedersen } from "./ring-pedersen.ts";
import { ROLE, shareCommitValues, signCommitValues } from "./roles.ts";
import { invModN } from "./scalar-ct.ts";
import { reveal, secretScalar, wipe } from "./secret.ts";
import { checkDigest, checkSessionId } from "./session.ts";
import { decodeCompact, ecdsaVerifyPoint, encodeDer, recoveryId } from "./verify.ts";

export interface HolderKey {
  readonly sessionId: Uint8Array;
  /** o, 32 bytes. */
  readonly share: Uint8Array;
  readonly ownerPublicShare: Point;
  readonly sePublicShare: Point;
  readonly sharedPublicKey: Point;
  /** This coin's Paillier key: it encrypts o and nothing else. */
  readonly paillier: PaillierKey;
  /** c_key = Enc_N(o), as the enclave holds it. */
  readonly encryptedShare: bigint;
  /** Set for good when a signature failed its final verification: the coin leaves by its backup. */
  tainted: boolean;
  wiped: boolean;
}

/** Erases o and the Paillier secret (with c_key, either gives o back). */
export function wipeHolderKey(key: HolderKey): void {
  wipe(key.share);
  wipePaillierKey(key.paillier);
  key.wiped = true;
}

function usable(key: HolderKey): void {
  check(!key.wiped, "KEY_WIPED", "this key share has been erased", "precondition");
  check(
    !key.tainted,
    "KEY_TAINTED",
    "this coin's key is tainted: a signature failed its final verification, so it signs nothing more; the coin can only leave by its backup transaction",
    "precondition",
  );
}

function freshPaillier(paillier: PaillierKey): void {
  check(
    !paillier.used,
    "PAILLIER_KEY_USED",
    "this Paillier key already encrypts another share",
    "precondition",
  );
  check(
    paillier.n > PARTIAL_PLAINTEXT_MAX,
    "PAILLIER_MODULUS_TOO_SMALL",
    "Paillier modulus too small for the partial signature",
  );
}

// ---------------------------------------------------------------------------------------------------------
// keygen

export interface HolderKeyGenState {
  readonly sessionId: Uint8Array;
  readonly share: Uint8Array;
  readonly O: Point;
  readonly proof: DlogProof;
  /** Deposit: the commitment to O and its blind. Key update: none (O is fixed by o·S = P). */
  readonly commitment: Uint8Array | undefined;
  readonly blind: Uint8Array;
  /** Key update: the coin's shared key, which o·S must give. */
  readonly expectedSharedKey: Point | undefined;
  readonly paillier: PaillierKey;
  /** The enclave's parameters the proofs are made against; none in a resumed key update (its message is sent). */
  readonly ringPedersen: VerifiedRingPedersen | undefined;
  /** c_key, once the message carrying it is made. */
  encryptedShare: bigint | undefined;
  consumed: boolean;
}

/**
 * Deposit round 1: o, O = o·G with its proof, and a commitment to both, so the owner cannot choose o after
 * seeing S. o is `share` when given (a wallet derives it from its seed, so a restore rebuilds it), else drawn
 * here; either way it is fixed before S is known. `ringPedersen` are the enclave's parameters, verified (Π^prm)
 * against its attested identity.
 */
export function holderKeyGenCommit(opts: {
  sessionId: Uint8Array;
  paillier: PaillierKey;
  ringPedersen: VerifiedRingPedersen;
  share?: Uint8Array;
  rng: Rng;
}): { state: HolderKeyGenState; msg: HolderKeyGenCommit } {
  const sessionId = checkSessionId(opts.sessionId);
  freshPaillier(opts.paillier);
  const o = opts.share ? readScalar(opts.share, "owner share o") : randomScalar(opts.rng);
  const O = mulG(o);
  const proof = proveDlog(o, O, { sessionId, role: ROLE.ownerShare }, opts.rng);
  const { commitment, blind } = commit("holder-keygen", sessionId, shareCommitValues(O, proof), opts.rng);
  return {
    state: {
      sessionId,
      share: secretScalar(o),
      O,
      proof,
      commitment,
      blind,
      expectedSharedKey: undefined,
      paillier: opts.paillier,
      ringPedersen: opts.ringPedersen,
      encryptedShare: undefined,
      consumed: false,
    },
    msg: { commitment: Buffer.from(commitment) },
  };
}

/**
 * Key update (the receiver): o2 is the receiver's (drawn before t2 = t1·o2⁻¹), so there is no commitment round;
 * the message carries O2, the receiver's fresh Paillier key and its proofs at once.
 */
export function holderKeyUpdate(opts: {
  sessionId: Uint8Array;
  share: Uint8Array;
  sharedPublicKey: Uint8Array | Point;
  paillier: PaillierKey;
  ringPedersen: VerifiedRingPedersen;
  rng: Rng;
}): { state: HolderKeyGenState; msg: HolderKeyGenShare } {
  const sessionId = checkSessionId(opts.sessionId);
  freshPaillier(opts.paillier);
  const P =
    opts.sharedPublicKey instanceof CurvePoint
      ? opts.sharedPublicKey
      : parsePoint(opts.sharedPublicKey, "shared public key P");
  const o = readScalar(opts.share, "owner share o2");
  const O = mulG(o);
  const proof = proveDlog(o, O, { sessionId, role: ROLE.ownerShare }, opts.rng);
  const state: HolderKeyGenState = {
    sessionId,
    share: secretScalar(o),
    O,
    proof,
    commitment: undefined,
    blind: new Uint8Array(0),
    expectedSharedKey: P,
    paillier: opts.paillier,
    ringPedersen: opts.ringPedersen,
    encryptedShare: undefined,
    consumed: false,
  };
  return { state, msg: holderShareMessage(state, opts.rng) };
}

/**
 * The state of a key update whose message was sent already (a receive resumed after a crash): rebuilt from o2,
 * the coin's Paillier key and the message itself, so the answer is checked against the c_key the enclave holds.
 */
export function holderKeyUpdateResume(opts: {
  sessionId: Uint8Array;
  share: Uint8Array;
  sharedPublicKey: Uint8Array | Point;
  paillier: PaillierKey;
  sent: HolderKeyGenShare;
}): HolderKeyGenState {
  const sessionId = checkSessionId(opts.sessionId);
  const P =
    opts.sharedPublicKey instanceof CurvePoint
      ? opts.sharedPublicKey
      : parsePoint(opts.sharedPublicKey, "shared public key P");
  const O = mulG(readScalar(opts.share, "owner share o2"));
  check(
    O.equals(readPoint(opts.sent.publicShare, "sent O2")) && opts.sent.proof !== undefined,
    "KEYGEN_RESUME_MISMATCH",
    "the stored key update was made with another share",
    "precondition",
  );
  const n = readPositiveBelow(opts.sent.paillierModulus, 1n << 4096n, "sent Paillier modulus");
  check(
    n === opts.paillier.n,
    "KEYGEN_RESUME_MISMATCH",
    "the stored key update names another Paillier key",
    "precondition",
  );
  return {
    sessionId,
    share: secretScalar(readScalar(opts.share, "owner share o2")),
    O,
    proof: opts.sent.proof,
    commitment: undefined,
    blind: new Uint8Array(0),
    expectedSharedKey: P,
    paillier: opts.paillier,
    ringPedersen: undefined,
    encryptedShare: readPositiveBelow(opts.sent.encryptedShare, n * n, "sent c_key"),
    consumed: false,
  };
}

/** What the owner proves about N and c_key (Π^mod, Π^fac, Π^log*), against the enclave's parameters. */
function holderShareMessage(state: HolderKeyGenState, rng: Rng): HolderKeyGenShare {
  const { sessionId, paillier } = state;
  freshPaillier(paillier);
  paillier.used = true;
  const n = paillier.n;
  const { p, q } = paillierFactors(paillier.secret);
  const o = reveal(state.share, "owner share");
  const nonce = takeNonce(paillier, rng);
  const cKey = encrypt(n, o, nonce);
  check(state.ringPedersen, "KEYGEN_STATE_KIND", "a resumed key update makes no new message", "precondition");
  const ops = proverOps(state.ringPedersen);
  paillier.modulusProof ??= proveModulus(paillier.id, n, p, q, rng);
  state.encryptedShare = cKey;
  return {
    publicShare: writePoint(state.O),
    proof: state.proof,
    blind: Buffer.from(state.blind),
    paillierModulus: writeNat(n),
    modulusProof: paillier.modulusProof,
    factorProof: proveFactors(sessionId, n, p, q, ops, rng),
    encryptedShare: writeNat(cKey),
    shareProof: proveLogStar(
      { sessionId, n0: n, c: cKey, X: state.O },
      { x: o, rho: nonce.r },
      ops,
      rng,
      takeNonce(paillier, rng),
    ),
  };
}

function readSignerShare(state: HolderKeyGenState, msg: SignerKeyGenShare | undefined): Point {
  check(msg, "KEYGEN_SE_SHARE_MISSING", "the SE's key share message is missing");
  const S = readPoint(msg.publicShare, "SE public share S");
  verifyDlog(
    S,
    msg.proof,
    { sessionId: state.sessionId, role: ROLE.seShare, bind: [state.commitment ?? pointBytes(state.O)] },
    "SE public share S",
  );
  return S;
}

function holderKey(state: HolderKeyGenState, S: Point, cKey: bigint): HolderKey {
  const P = mulSecret(S, state.share);
  check(
    !state.expectedSharedKey || P.equals(state.expectedSharedKey),
    "SHARED_KEY_MISMATCH",
    "o·S ≠ the coin's shared public key: the SE's new share does not belong to this coin",
  );
  return {
    sessionId: state.sessionId,
    share: state.share,
    ownerPublicShare: state.O,
    sePublicShare: S,
    sharedPublicKey: P,
    paillier: state.paillier,
    encryptedShare: cKey,
    tainted: false,
    wiped: false,
  };
}

/** Deposit round 2: checks S and its proof, opens O and sends N, c_key and the proofs. */
export function holderKeyGenFinish(
  state: HolderKeyGenState,
  signerShare: SignerKeyGenShare,
  opts: { rng: Rng },
): { key: HolderKey; msg: HolderKeyGenShare } {
  check(!state.consumed, "KEYGEN_STATE_USED", "this keygen state has already been used", "precondition");
  check(state.commitment, "KEYGEN_STATE_KIND", "a key update has no second round", "precondition");
  state.consumed = true;
  const S = readSignerShare(state, signerShare);
  const msg = holderShareMessage(state, opts.rng);
  return { key: holderKey(state, S, state.encryptedShare!), msg };
}

/** Key update reply: S2 with its proof, and o2·S2 = P. */
export function holderKeyUpdateFinish(state: HolderKeyGenState, signerShare: SignerKeyGenShare): HolderKey {
  check(!state.consumed, "KEYGEN_STATE_USED", "this keygen state has already been used", "precondition");
  check(
    !state.commitment,
    "KEYGEN_STATE_KIND",
    "a deposit keygen finishes with holderKeyGenFinish",
    "precondition",
  );
  state.consumed = true;
  const S = readSignerShare(state, signerShare);
  check(
    state.encryptedShare !== undefined,
    "KEYGEN_STATE_KIND",
    "no key update message was made",
    "precondition",
  );
  return holderKey(state, S, state.encryptedShare);
}

// ---------------------------------------------------------------------------------------------------------
// signing

export interface HolderSignState {
  readonly sessionId: Uint8Array;
  readonly digest: Uint8Array;
  /** k_o, 32 bytes; wiped once its inverse is made (after the enclave's nonce). */
  readonly nonce: Uint8Array;
  /** k_o⁻¹, 32 bytes; wiped when the signature is finished. */
  readonly nonceInverse: Uint8Array;
  readonly Ro: Point;
  readonly proof: DlogProof;
  readonly blind: Uint8Array;
  readonly commitment: Uint8Array;
  stage: "committed" | "opened" | "done";
  /** R = k_o·k_se·G and r = R.x mod q, once the enclave's nonce is known. */
  R: Point | undefined;
  r: bigint;
}

/** Signing round 1: a commitment to R_o = k_o·G and its proof. `digest` comes from the owner's own transaction. */
export function holderSignCommit(
  key: HolderKey,
  opts: { sessionId: Uint8Array; digest: Uint8Array; rng: Rng },
): { state: HolderSignState; msg: SignOwnerCommit } {
  usable(key);
  const sessionId = checkSessionId(opts.sessionId);
  const digest = new Uint8Array(checkDigest(opts.digest));
  const k = randomScalar(opts.rng);
  const Ro = mulG(k);
  const proof = proveDlog(k, Ro, { sessionId, role: ROLE.ownerNonce, bind: [digest] }, opts.rng);
  const { commitment, blind } = commit("sign", sessionId, signCommitValues(digest, Ro, proof), opts.rng);
  return {
    state: {
      sessionId,
      digest,
      nonce: secretScalar(k),
      nonceInverse: new Uint8Array(32),
      Ro,
      proof,
      blind,
      commitment,
      stage: "committed",
      R: undefined,
      r: 0n,
    },
    msg: { commitment: Buffer.from(commitment) },
  };
}

/** Signing round 2: checks the enclave's nonce and its proof, then opens R_o. */
export function holderSignNonce(
  key: HolderKey,
  state: HolderSignState,
  seNonce: SignSeNonce,
  opts: { rng: Rng },
): SignOwnerNonce {
  usable(key);
  check(
    state.stage === "committed",
    "SIGN_STATE_USED",
    "this signing state has already been used",
    "precondition",
  );
  state.stage = "opened";
  try {
    check(seNonce, "SIGN_SE_NONCE_MISSING", "the SE's nonce message is missing");
    const { sessionId, digest } = state;
    const Rse = readPoint(seNonce.publicNonce, "SE nonce R_se");
    verifyDlog(
      Rse,
      seNonce.proof,
      { sessionId, role: ROLE.seNonce, bind: [digest, state.commitment] },
      "SE nonce R_se",
    );
    const R = mulSecret(Rse, state.nonce);
    const r = R.x % Q;
    check(r !== 0n, "SIGNATURE_R_ZERO", "nonce point gives r = 0");
    state.R = R;
    state.r = r;
    // Blinded (scalar-ct.ts): the variable-time inversion sees k_o·β, never k_o.
    invModN(state.nonce, opts.rng, state.nonceInverse);
    return { publicNonce: writePoint(state.Ro), proof: state.proof, blind: Buffer.from(state.blind) };
  } catch (err) {
    wipe(state.nonceInverse);
    throw err;
  } finally {
    wipe(state.nonce);
  }
}

export interface HolderSignature {
  readonly r: bigint;
  readonly s: bigint;
  readonly recoveryId: number;
  readonly compact: Uint8Array;
  readonly der: Uint8Array;
}

/** Either the finished signature, or the key is now tainted (persist that first, then tell the owner). */
export type HolderSignOutcome =
  | { readonly ok: true; readonly signature: HolderSignature }
  | { readonly ok: false; readonly tainted: true; readonly reason: string };

/**
 * Signing round 3: checks the enclave's signature over (session, P, digest, R, c3) under its attested instance
 * key — a c3 that is not the enclave's is refused without decrypting it — then decrypts, finishes
 * s = k_o⁻¹·Dec(c3) mod q, normalises to low-S and verifies under P.
 */
export function holderSignFinish(
  key: HolderKey,
  state: HolderSignState,
  partial: SignSePartial,
  opts: { instanceKey: KeyObject },
): HolderSignOutcome {
  usable(key);
  check(state.stage === "opened", "SIGN_STATE_USED", "this signing state is not awaiting c3", "precondition");
  state.stage = "done";
  try {
    check(partial, "SIGN_PARTIAL_MISSING", "the SE's partial signature message is missing");
    const n = key.paillier.n;
    const c3 = readPositiveBelow(partial.partialSignature, n * n, "partial signature c3");
    const { sessionId, digest, r } = state;
    const R = state.R!;
    verifyPartialStatement(
      opts.instanceKey,
      { sessionId, sharedPublicKey: key.sharedPublicKey, digest, R, c3 },
      partial.statementSignature,
    );
    // From here on the Paillier secret touches c3: any failure taints the key.
    try {
      const kInv = reveal(state.nonceInverse, "inverse nonce");
      const s0 = (kInv * (decrypt(key.paillier, c3) % Q)) % Q;
      const s = s0 > Q >> 1n ? Q - s0 : s0;
      const Rv = s === 0n ? undefined : ecdsaVerifyPoint({ r, s }, digest, key.sharedPublicKey);
      if (!Rv) return taint(key, "the two-party signature does not verify under the coin's shared key");
      const compact = new Uint8Array([...scalarBytes(r), ...scalarBytes(s)]);
      return {
        ok: true,
        signature: {
          r,
          s,
          recoveryId: recoveryId(Rv, r),
          compact,
          der: encodeDer(decodeCompact(compact)),
        },
      };
    } catch {
      return taint(key, "the enclave's partial signature could not be decrypted and finished");
    }
  } finally {
    wipe(state.nonceInverse);
  }
}

function taint(key: HolderKey, why: string): HolderSignOutcome {
  key.tainted = true;
  return {
    ok: false,
    tainted: true,
    reason: `${why}; this coin's key is now tainted and signs nothing more: the coin can only leave by its backup transaction`,
  };
}
