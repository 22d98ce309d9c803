// The SE (enclave) as homomorphic signer (DESIGN.md section 3.1, revised; Lindell 2017 with the SE as P2). Per
// coin it holds one 32-byte share s, the owner's public Paillier modulus N and c_key = Enc_N(o): no Paillier
// secret, so a key update erases one scalar. Before it keeps any of the owner's values it checks Π^mod (N is a
// Paillier-Blum modulus), Π^fac (no small factor, CVE-2023-33241) and Π^log* (c_key encrypts log O, in range)
// against its own ring-Pedersen parameters: without any one of them the owner could read s out of c3.
import type {
  DlogProof,
  HolderKeyGenCommit,
  HolderKeyGenShare,
  SignerKeyGenShare,
  SignOwnerCommit,
  SignOwnerNonce,
  SignSeNonce,
} from "../../proto/gen/ecdsa2p.ts";
import { Point as CurvePoint, type Point, parsePoint, pointBytes, toHex } from "../encoding.ts";
import { check } from "../errors.ts";
import type { Rng } from "../rng.ts";
import { gcd, randomBelow } from "./arith.ts";
import { readPoint, readPositiveBelow, readScalar, writePoint } from "./codec.ts";
import { checkOpening } from "./commit.ts";
import { mulG, mulSecret, Q, randomScalar } from "./ec.ts";
import { modPow } from "./modexp.ts";
import { checkPaillierModulus, type EncryptionNonce, encrypt, encryptionNonce } from "./paillier.ts";
import { PARTIAL_PLAINTEXT_MAX, RHO_MIN, RHO_SPAN } from "./params.ts";
import type { PartialStatement } from "./partial-statement.ts";
import { proveDlog, verifyDlog } from "./proofs/dlog.ts";
import { verifyFactors } from "./proofs/fac.ts";
import { verifyLogStar } from "./proofs/logstar.ts";
import { verifyModulus } from "./proofs/mod.ts";
import { type RingPedersenPublic, verifierOps } from "./ring-pedersen.ts";
import { ROLE, shareCommitValues, signCommitValues } from "./roles.ts";
import { checkRotatedShare } from "./rotation.ts";
import { invModN } from "./scalar-ct.ts";
import { reveal, secretScalar, wipe } from "./secret.ts";
import { checkDigest, checkSessionId } from "./session.ts";
import { digestToInt } from "./verify.ts";

/** Signing session ids remembered per key (a key signs a handful of transactions in its life). */
export const MAX_SIGNER_SESSIONS = 1024;

export interface SignerKey {
  readonly sessionId: Uint8Array;
  /** s, 32 bytes: the only secret the enclave holds for a coin. */
  readonly share: Uint8Array;
  readonly sePublicShare: Point;
  readonly ownerPublicShare: Point;
  readonly sharedPublicKey: Point;
  /** The owner's Paillier modulus N (public). */
  readonly paillierModulus: bigint;
  /** c_key = Enc_N(o) (public: only the owner can decrypt it). */
  readonly encryptedShare: bigint;
  /** Hex of every signing session id used with this key: a replay is refused. */
  readonly usedSignSessions: Set<string>;
  wiped: boolean;
}

/** Erases s: with it gone the enclave holds nothing secret for the coin. */
export function wipeSignerKey(key: SignerKey): void {
  wipe(key.share);
  key.wiped = true;
}

function usable(key: SignerKey): void {
  check(!key.wiped, "KEY_WIPED", "this key share has been erased", "precondition");
}

/**
 * The owner's Paillier modulus and c_key with their proofs, checked against the enclave's parameters `rp`
 * (DESIGN.md section 3.1): size, parity and small factors first, then Π^mod, the range and unit checks on
 * c_key, Π^fac and Π^log* for O. Cheap checks come before any exponentiation.
 */
function checkHolderPaillier(
  sessionId: Uint8Array,
  msg: HolderKeyGenShare,
  O: Point,
  rp: RingPedersenPublic,
): { n: bigint; cKey: bigint } {
  const n = checkPaillierModulus(msg.paillierModulus);
  check(
    n > PARTIAL_PLAINTEXT_MAX,
    "PAILLIER_MODULUS_TOO_SMALL",
    "Paillier modulus too small for the partial signature",
  );
  const cKey = readPositiveBelow(msg.encryptedShare, n * n, "encrypted owner share c_key");
  check(
    gcd(cKey, n) === 1n,
    "ENCRYPTED_SHARE_NOT_UNIT",
    "encrypted owner share c_key is not a unit modulo N",
  );
  verifyModulus(n, msg.modulusProof);
  const ops = verifierOps(rp);
  verifyFactors(sessionId, n, msg.factorProof, ops);
  verifyLogStar({ sessionId, n0: n, c: cKey, X: O }, msg.shareProof, ops);
  return { n, cKey };
}

function readHolderShare(msg: HolderKeyGenShare | undefined, sessionId: Uint8Array): Point {
  check(msg, "KEYGEN_OWNER_SHARE_MISSING", "the owner's key share message is missing");
  const O = readPoint(msg.publicShare, "owner public share O");
  verifyDlog(O, msg.proof, { sessionId, role: ROLE.ownerShare }, "owner public share O");
  return O;
}

// ---------------------------------------------------------------------------------------------------------
// keygen

export interface SignerKeyGenState {
  readonly sessionId: Uint8Array;
  readonly share: Uint8Array;
  readonly S: Point;
  readonly ownerCommitment: Uint8Array;
  consumed: boolean;
}

/** Deposit, after the owner's commitment: a fresh s and S = s·G with its proof (bound to that commitment). */
export function signerKeyGenShare(opts: { sessionId: Uint8Array; commit: HolderKeyGenCommit; rng: Rng }): {
  state: SignerKeyGenState;
  msg: SignerKeyGenShare;
} {
  const sessionId = checkSessionId(opts.sessionId);
  const ownerCommitment = opts.commit?.commitment;
  check(
    ownerCommitment?.length === 32,
    "COMMITMENT_LENGTH",
    "the owner's keygen commitment must be 32 bytes",
  );
  const s = randomScalar(opts.rng);
  const S = mulG(s);
  const proof = proveDlog(s, S, { sessionId, role: ROLE.seShare, bind: [ownerCommitment] }, opts.rng);
  return {
    state: {
      sessionId,
      share: secretScalar(s),
      S,
      ownerCommitment: new Uint8Array(ownerCommitment),
      consumed: false,
    },
    msg: { publicShare: writePoint(S), proof },
  };
}

/**
 * Deposit, the owner's second message: the opening of O, then N and c_key with their proofs. The state is
 * spent whatever the outcome (a refused owner starts a new keygen); on failure s is wiped.
 */
export function signerKeyGenFinish(
  state: SignerKeyGenState,
  holderShare: HolderKeyGenShare,
  opts: { ringPedersen: RingPedersenPublic },
): SignerKey {
  check(!state.consumed, "KEYGEN_STATE_USED", "this keygen state has already been used", "precondition");
  state.consumed = true;
  try {
    const { sessionId } = state;
    check(holderShare, "KEYGEN_OWNER_SHARE_MISSING", "the owner's key share message is missing");
    const O = readPoint(holderShare.publicShare, "owner public share O");
    const proof: DlogProof = holderShare.proof ?? { commitment: Buffer.alloc(0), response: Buffer.alloc(0) };
    checkOpening(
      "holder-keygen",
      sessionId,
      shareCommitValues(O, proof),
      holderShare.blind,
      state.ownerCommitment,
      "owner public share O",
    );
    readHolderShare(holderShare, sessionId);
    const { n, cKey } = checkHolderPaillier(sessionId, holderShare, O, opts.ringPedersen);
    return {
      sessionId,
      share: state.share,
      sePublicShare: state.S,
      ownerPublicShare: O,
      sharedPublicKey: mulSecret(O, state.share),
      paillierModulus: n,
      encryptedShare: cKey,
      usedSignSessions: new Set(),
      wiped: false,
    };
  } catch (err) {
    wipe(state.share);
    throw err;
  }
}

/**
 * Key update (transfer): the new share s2 = t2·x1⁻¹·s1 is fixed (rotation.ts), so there is no commitment round.
 * Checks s2·O2 = P and every proof about the receiver's Paillier key *before* the caller erases s1 and x1; the
 * key keeps its own copy of s2 (the caller wipes `share`).
 */
export function signerKeyUpdate(opts: {
  sessionId: Uint8Array;
  share: Uint8Array;
  holderShare: HolderKeyGenShare;
  sharedPublicKey: Uint8Array | Point;
  ringPedersen: RingPedersenPublic;
  rng: Rng;
}): { key: SignerKey; msg: SignerKeyGenShare } {
  const sessionId = checkSessionId(opts.sessionId);
  const s = readScalar(opts.share, "new SE share s2");
  const msg = opts.holderShare;
  const O = readHolderShare(msg, sessionId);
  check(msg.blind.length === 0, "KEYGEN_UNEXPECTED_OPENING", "a key update has no commitment to open");
  const P =
    opts.sharedPublicKey instanceof CurvePoint
      ? opts.sharedPublicKey
      : parsePoint(opts.sharedPublicKey, "shared public key P");
  checkRotatedShare(opts.share, O, P);
  const { n, cKey } = checkHolderPaillier(sessionId, msg, O, opts.ringPedersen);
  const S = mulG(s);
  const proof = proveDlog(s, S, { sessionId, role: ROLE.seShare, bind: [pointBytes(O)] }, opts.rng);
  return {
    key: {
      sessionId,
      share: secretScalar(s),
      sePublicShare: S,
      ownerPublicShare: O,
      sharedPublicKey: P,
      paillierModulus: n,
      encryptedShare: cKey,
      usedSignSessions: new Set(),
      wiped: false,
    },
    msg: { publicShare: writePoint(S), proof },
  };
}

// ---------------------------------------------------------------------------------------------------------
// signing

export interface SignerSignSession {
  readonly sessionId: Uint8Array;
  readonly digest: Uint8Array;
  readonly ownerCommitment: Uint8Array;
  /** k_se, 32 bytes; wiped when the session ends. */
  readonly nonce: Uint8Array;
  consumed: boolean;
}

export function wipeSignerSession(session: SignerSignSession): void {
  wipe(session.nonce);
}

/**
 * Signing round 1 reply. `digest` is what the enclave computed from the transaction itself, never one handed
 * over. Refuses a wiped key and a session id already used with this key.
 */
export function signerSignStart(
  key: SignerKey,
  opts: { sessionId: Uint8Array; digest: Uint8Array; ownerCommit: SignOwnerCommit; rng: Rng },
): { session: SignerSignSession; msg: SignSeNonce } {
  usable(key);
  const sessionId = checkSessionId(opts.sessionId);
  const digest = new Uint8Array(checkDigest(opts.digest));
  const ownerCommitment = opts.ownerCommit?.commitment;
  check(ownerCommitment?.length === 32, "COMMITMENT_LENGTH", "the owner's nonce commitment must be 32 bytes");
  const id = toHex(sessionId);
  check(
    !key.usedSignSessions.has(id),
    "SESSION_REPLAY",
    "this signing session id was already used with this key",
    "unauthenticated",
  );
  check(
    key.usedSignSessions.size < MAX_SIGNER_SESSIONS,
    "SIGN_SESSIONS_EXHAUSTED",
    `this key has had ${MAX_SIGNER_SESSIONS} signing sessions, the most one key may have`,
    "exhausted",
  );
  key.usedSignSessions.add(id);
  const k = randomScalar(opts.rng);
  const Rse = mulG(k);
  const proof = proveDlog(
    k,
    Rse,
    { sessionId, role: ROLE.seNonce, bind: [digest, ownerCommitment] },
    opts.rng,
  );
  return {
    session: {
      sessionId,
      digest,
      ownerCommitment: new Uint8Array(ownerCommitment),
      nonce: secretScalar(k),
      consumed: false,
    },
    msg: { publicNonce: writePoint(Rse), proof },
  };
}

/**
 * Signing round 2: checks the owner's opening of R_o and its proof, then c3 = Enc_N(k_se⁻¹·m + ρ·q) ⊕
 * c_key^(k_se⁻¹·r·s), ρ drawn as params.ts explains so the plaintext never wraps modulo N and hides
 * k_se⁻¹·r·s·o over the integers. Returns the statement the caller signs under its instance key
 * (partial-statement.ts) before c3 leaves the enclave. `encryptionNonce` may carry r^N mod N² made ahead.
 */
export function signerSignPartial(
  key: SignerKey,
  session: SignerSignSession,
  ownerNonce: SignOwnerNonce,
  opts: { rng: Rng; encryptionNonce?: EncryptionNonce },
): { c3: bigint; statement: PartialStatement } {
  check(!session.consumed, "SIGN_SESSION_USED", "this signing session has already finished", "precondition");
  session.consumed = true;
  try {
    usable(key);
    const { sessionId, digest } = session;
    check(ownerNonce, "SIGN_OWNER_NONCE_MISSING", "the owner's nonce opening is missing");
    const Ro = readPoint(ownerNonce.publicNonce, "owner nonce R_o");
    const proof = ownerNonce.proof ?? { commitment: Buffer.alloc(0), response: Buffer.alloc(0) };
    checkOpening(
      "sign",
      sessionId,
      signCommitValues(digest, Ro, proof),
      ownerNonce.blind,
      session.ownerCommitment,
      "owner nonce R_o",
    );
    verifyDlog(Ro, ownerNonce.proof, { sessionId, role: ROLE.ownerNonce, bind: [digest] }, "owner nonce R_o");
    const R = mulSecret(Ro, session.nonce);
    const r = R.x % Q;
    check(r !== 0n, "SIGNATURE_R_ZERO", "nonce point gives r = 0");
    // Blinded (scalar-ct.ts): the variable-time inversion sees k_se·β, never k_se.
    const kInvBytes = new Uint8Array(32);
    invModN(session.nonce, opts.rng, kInvBytes);
    const kInv = reveal(kInvBytes, "inverse nonce");
    wipe(kInvBytes);
    const n = key.paillierModulus;
    const n2 = n * n;
    const a = (kInv * (digestToInt(digest) % Q)) % Q;
    const v = (((kInv * r) % Q) * reveal(key.share, "SE share")) % Q;
    const rho = RHO_MIN + randomBelow(opts.rng, RHO_SPAN);
    const nonce = opts.encryptionNonce ?? encryptionNonce(n, opts.rng);
    const c3 = (encrypt(n, a + rho * Q, nonce) * modPow(key.encryptedShare, v, n2)) % n2;
    return { c3, statement: { sessionId, sharedPublicKey: key.sharedPublicKey, digest, R, c3 } };
  } finally {
    wipe(session.nonce);
  }
}
