// Party one = the SE (inside the enclave): holds the Paillier key and c_key = Enc(s). DESIGN.md section 3.1, and
// the message flow of the brief: keygen P1 → KeyGenCommit, P2 → KeyGenOwnerShare, P1 → KeyGenSeShare (or, for a
// key update with a fixed share, the last two only); signing P2 → SignOwnerCommit, P1 → SignSeNonce,
// P2 → SignOwnerPartial, P1 → Signature.
import type {
  DlogProof,
  KeyGenCommit,
  KeyGenOwnerShare,
  KeyGenSeShare,
  Signature,
  SignOwnerCommit,
  SignOwnerPartial,
  SignSeNonce,
} from "../../proto/gen/ecdsa2p.ts";
import { Point as CurvePoint, type Point, parsePoint, pointBytes, toHex } from "../encoding.ts";
import { check, fail, ProtocolError } from "../errors.ts";
import type { Rng } from "../rng.ts";
import { readPoint, readPositiveBelow, readScalar, writeNat, writePoint, writeScalar } from "./codec.ts";
import { checkOpening, commit } from "./commit.ts";
import { mulG, mulSecret, Q, randomScalar, xOfMul } from "./ec.ts";
import {
  decrypt,
  encrypt,
  generatePaillierKey,
  type PaillierKey,
  paillierFactors,
  takeNonce,
  wipePaillierKey,
} from "./paillier.ts";
import { proveDlog, verifyDlog } from "./proofs/dlog.ts";
import { proveFactors } from "./proofs/fac.ts";
import { proveLogStar } from "./proofs/logstar.ts";
import { proveModulus } from "./proofs/mod.ts";
import {
  proverOps,
  type RingPedersenCache,
  type VerifiedRingPedersen,
  verifyRingPedersen,
} from "./ring-pedersen.ts";
import { checkRotatedShare } from "./rotation.ts";
import { reveal, secretScalar, wipe } from "./secret.ts";
import { checkDigest, checkSessionId } from "./session.ts";
import { ecdsaVerifyPoint, recoveryId } from "./verify.ts";

/** Signing session ids remembered per key (a key signs a handful of transactions in its life). */
export const MAX_SIGN_SESSIONS = 1024;

export interface PartyOneKey {
  readonly sessionId: Uint8Array;
  /** s, 32 bytes. */
  readonly share: Uint8Array;
  readonly sePublicShare: Point;
  readonly ownerPublicShare: Point;
  readonly sharedPublicKey: Point;
  readonly paillier: PaillierKey;
  /** c_key = Enc(s). */
  readonly encryptedShare: bigint;
  /** Hex of every signing session id used with this key: a replay is refused. */
  readonly usedSignSessions: Set<string>;
  /** Set for good when a signature failed its final verification (BitForge, CVE-2023-33242). */
  tainted: boolean;
  wiped: boolean;
}

/** What the enclave may show about a key. */
export function partyOnePublicInfo(key: PartyOneKey) {
  return {
    sharedPublicKey: pointBytes(key.sharedPublicKey),
    sePublicShare: pointBytes(key.sePublicShare),
    ownerPublicShare: pointBytes(key.ownerPublicShare),
    paillierModulus: new Uint8Array(writeNat(key.paillier.n)),
    tainted: key.tainted,
  };
}

/** Erases the SE share and the Paillier secret (which, with the public c_key, is as good as the share). */
export function wipePartyOneKey(key: PartyOneKey): void {
  wipe(key.share);
  wipePaillierKey(key.paillier);
  key.wiped = true;
}

function usable(key: PartyOneKey): void {
  check(!key.wiped, "KEY_WIPED", "this key share has been erased", "precondition");
  check(
    !key.tainted,
    "KEY_TAINTED",
    "this key is tainted: a signature failed its final verification, so it signs nothing more (exit by the backup transaction, or withdraw under a fresh key after review)",
    "precondition",
  );
}

const SE_SHARE = "se-share";
const OWNER_SHARE = "owner-share";

const shareCommitValues = (S: Point, proof: DlogProof): Uint8Array[] => [
  pointBytes(S),
  proof.commitment,
  proof.response,
];

// ---------------------------------------------------------------------------------------------------------
// keygen

export interface PartyOneKeyGenState {
  readonly sessionId: Uint8Array;
  readonly share: Uint8Array;
  readonly S: Point;
  readonly proof: DlogProof;
  readonly commitment: Uint8Array;
  readonly blind: Uint8Array;
  readonly paillier: Promise<PaillierKey>;
  consumed: boolean;
}

/**
 * Round 1 (deposit): a fresh share s, S = s·G with its proof, and a commitment to both. Without a pool key the
 * Paillier key generation starts now, on the thread pool, while the owner answers.
 */
export function p1KeyGenCommit(opts: { sessionId: Uint8Array; rng: Rng; paillier?: PaillierKey }): {
  state: PartyOneKeyGenState;
  msg: KeyGenCommit;
} {
  const sessionId = checkSessionId(opts.sessionId);
  check(
    !opts.paillier?.used,
    "PAILLIER_KEY_USED",
    "this Paillier key already encrypts another share",
    "precondition",
  );
  const s = randomScalar(opts.rng);
  const S = mulG(s);
  const proof = proveDlog(s, S, { sessionId, role: SE_SHARE }, opts.rng);
  const { commitment, blind } = commit("keygen", sessionId, shareCommitValues(S, proof), opts.rng);
  const paillier = opts.paillier ? Promise.resolve(opts.paillier) : generatePaillierKey({ rng: opts.rng });
  paillier.catch(() => {}); // awaited (and its error reported) by p1KeyGenFinish; no unhandled rejection if abandoned
  return {
    state: { sessionId, share: secretScalar(s), S, proof, commitment, blind, paillier, consumed: false },
    msg: { commitment: Buffer.from(commitment) },
  };
}

function readOwnerShare(msg: KeyGenOwnerShare | undefined, sessionId: Uint8Array, bind: Uint8Array): Point {
  check(msg, "KEYGEN_OWNER_SHARE_MISSING", "the owner's key share message is missing");
  const O = readPoint(msg.publicShare, "owner public share O");
  verifyDlog(O, msg.proof, { sessionId, role: OWNER_SHARE, bind: [bind] }, "owner public share O");
  return O;
}

/** Round 3 (deposit): checks the owner's share and ring-Pedersen parameters, answers with KeyGenSeShare. */
export async function p1KeyGenFinish(
  state: PartyOneKeyGenState,
  ownerShare: KeyGenOwnerShare,
  opts: { rng: Rng; ringPedersenCache?: RingPedersenCache },
): Promise<{ key: PartyOneKey; msg: KeyGenSeShare }> {
  check(!state.consumed, "KEYGEN_STATE_USED", "this keygen state has already been used", "precondition");
  // The owner's message is checked before the state is spent: a malformed share (a bad point, a wrong proof)
  // is refused and the owner may send a correct one, since nothing about s has been revealed yet.
  const O = readOwnerShare(ownerShare, state.sessionId, state.commitment);
  const rp = verifyRingPedersen(ownerShare.ringPedersen, opts.ringPedersenCache);
  state.consumed = true;
  try {
    const paillier = await state.paillier;
    return seShare({
      sessionId: state.sessionId,
      share: state.share,
      S: state.S,
      proof: state.proof,
      blind: state.blind,
      O,
      rp,
      paillier,
      rng: opts.rng,
    });
  } finally {
    wipe(state.share);
  }
}

/**
 * Key update (transfer): keygen with the fixed share s2 = t2·x1⁻¹·s1 (see rotation.ts) and a new Paillier key,
 * without a commitment round (s2 is determined by t2 and O2). Checks s2·O2 = P first. The key keeps its own copy
 * of s2; the caller wipes `share` (and s1, x1) once it is done with them.
 */
export async function p1KeyGenFixed(opts: {
  sessionId: Uint8Array;
  share: Uint8Array;
  ownerShare: KeyGenOwnerShare;
  sharedPublicKey: Uint8Array | Point;
  paillier?: PaillierKey;
  rng: Rng;
  ringPedersenCache?: RingPedersenCache;
}): Promise<{ key: PartyOneKey; msg: KeyGenSeShare }> {
  const sessionId = checkSessionId(opts.sessionId);
  const s = readScalar(opts.share, "new SE share s2");
  check(
    !opts.paillier?.used,
    "PAILLIER_KEY_USED",
    "this Paillier key already encrypts another share",
    "precondition",
  );
  const O = readOwnerShare(opts.ownerShare, sessionId, new Uint8Array(0));
  const P =
    opts.sharedPublicKey instanceof CurvePoint
      ? opts.sharedPublicKey
      : parsePoint(opts.sharedPublicKey, "shared public key P");
  checkRotatedShare(opts.share, O, P);
  const rp = verifyRingPedersen(opts.ownerShare.ringPedersen, opts.ringPedersenCache);
  const S = mulG(s);
  const proof = proveDlog(s, S, { sessionId, role: SE_SHARE }, opts.rng);
  const paillier = opts.paillier ?? (await generatePaillierKey({ rng: opts.rng }));
  const share = secretScalar(s);
  try {
    return seShare({
      sessionId,
      share,
      S,
      proof,
      blind: new Uint8Array(0),
      O,
      P,
      rp,
      paillier,
      rng: opts.rng,
    });
  } finally {
    wipe(share);
  }
}

function seShare(c: {
  sessionId: Uint8Array;
  share: Uint8Array;
  S: Point;
  proof: DlogProof;
  blind: Uint8Array;
  O: Point;
  /** The shared key when already known (a key update has checked s·O = P), else computed as s·O. */
  P?: Point;
  rp: VerifiedRingPedersen;
  paillier: PaillierKey;
  rng: Rng;
}): { key: PartyOneKey; msg: KeyGenSeShare } {
  const { sessionId, paillier, rng } = c;
  check(
    !paillier.used,
    "PAILLIER_KEY_USED",
    "this Paillier key already encrypts another share",
    "precondition",
  );
  paillier.used = true;
  const s = reveal(c.share, "SE share");
  const n = paillier.n;
  const { p, q } = paillierFactors(paillier.secret);
  const nonce = takeNonce(paillier, rng);
  const cKey = encrypt(n, s, nonce);
  const ops = proverOps(c.rp);
  paillier.modulusProof ??= proveModulus(paillier.id, n, p, q, rng);
  const msg: KeyGenSeShare = {
    publicShare: writePoint(c.S),
    proof: c.proof,
    blind: Buffer.from(c.blind),
    paillierModulus: writeNat(n),
    modulusProof: paillier.modulusProof,
    factorProof: proveFactors(sessionId, n, p, q, ops, rng),
    encryptedShare: writeNat(cKey),
    shareProof: proveLogStar(
      { sessionId, n0: n, c: cKey, X: c.S },
      { x: s, rho: nonce.r },
      ops,
      rng,
      takeNonce(paillier, rng),
    ),
  };
  const key: PartyOneKey = {
    sessionId,
    share: secretScalar(s),
    sePublicShare: c.S,
    ownerPublicShare: c.O,
    sharedPublicKey: c.P ?? mulSecret(c.O, s),
    paillier,
    encryptedShare: cKey,
    usedSignSessions: new Set(),
    tainted: false,
    wiped: false,
  };
  return { key, msg };
}

// ---------------------------------------------------------------------------------------------------------
// signing

export interface PartyOneSignSession {
  readonly sessionId: Uint8Array;
  readonly digest: Uint8Array;
  readonly ownerCommitment: Uint8Array;
  /** k1, 32 bytes; wiped when the session ends. */
  readonly nonce: Uint8Array;
  /** β, 32 bytes: k1 is inverted as β·(k1·β)⁻¹, so the variable-time inversion never sees k1 (wiped with it). */
  readonly nonceBlind: Uint8Array;
  consumed: boolean;
}

/** Zeroes a session's secrets (k1 and its blinding factor). */
export function wipeSignSession(session: PartyOneSignSession): void {
  session.nonce.fill(0);
  session.nonceBlind.fill(0);
}

export const SE_NONCE = "se-nonce";
export const OWNER_NONCE = "owner-nonce";

/**
 * Signing round 1 reply. `digest` is what the enclave computed from the transaction itself. Refuses a tainted
 * key and a session id already used with this key.
 */
export function p1SignStart(
  key: PartyOneKey,
  opts: { sessionId: Uint8Array; digest: Uint8Array; ownerCommit: SignOwnerCommit; rng: Rng },
): { session: PartyOneSignSession; msg: SignSeNonce } {
  usable(key);
  const sessionId = checkSessionId(opts.sessionId);
  const digest = checkDigest(opts.digest);
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
    key.usedSignSessions.size < MAX_SIGN_SESSIONS,
    "SIGN_SESSIONS_EXHAUSTED",
    `this key has had ${MAX_SIGN_SESSIONS} signing sessions, the most one key may have`,
    "exhausted",
  );
  key.usedSignSessions.add(id);
  const k1 = randomScalar(opts.rng);
  const R1 = mulG(k1);
  const proof = proveDlog(k1, R1, { sessionId, role: SE_NONCE, bind: [digest, ownerCommitment] }, opts.rng);
  return {
    session: {
      sessionId,
      digest,
      ownerCommitment: new Uint8Array(ownerCommitment),
      nonce: secretScalar(k1),
      nonceBlind: secretScalar(randomScalar(opts.rng)),
      consumed: false,
    },
    msg: { publicNonce: writePoint(R1), proof },
  };
}

/**
 * Signing round 2: checks the owner's nonce opening and proof, decrypts the partial signature, finishes, normalises
 * to low-S and verifies under P. A failed verification taints the key for good and throws: an unverified
 * signature is never released.
 */
export function p1SignFinish(
  key: PartyOneKey,
  session: PartyOneSignSession,
  partial: SignOwnerPartial,
): Signature {
  check(!session.consumed, "SIGN_SESSION_USED", "this signing session has already finished", "precondition");
  session.consumed = true;
  try {
    usable(key);
    const { sessionId, digest } = session;
    check(partial, "SIGN_PARTIAL_MISSING", "the owner's partial signature message is missing");
    const R2 = readPoint(partial.publicNonce, "owner nonce R2");
    const proof = partial.proof ?? { commitment: Buffer.alloc(0), response: Buffer.alloc(0) };
    checkOpening(
      "sign",
      sessionId,
      [digest, pointBytes(R2), proof.commitment, proof.response],
      partial.blind,
      session.ownerCommitment,
      "owner nonce R2",
    );
    verifyDlog(R2, partial.proof, { sessionId, role: OWNER_NONCE, bind: [digest] }, "owner nonce R2");
    const n = key.paillier.n;
    const c3 = readPositiveBelow(partial.partialSignature, n * n, "partial signature c3");
    const k1 = reveal(session.nonce, "signing nonce");
    const r = xOfMul(k1, R2) % Q;
    check(r !== 0n, "SIGNATURE_R_ZERO", "nonce point gives r = 0");
    // From here on the Paillier secret has touched the owner's ciphertext: any failure taints the key.
    try {
      const beta = reveal(session.nonceBlind, "nonce blind");
      const k1inv = (CurvePoint.Fn.inv((k1 * beta) % Q) * beta) % Q;
      const s0 = (k1inv * (decrypt(key.paillier, c3) % Q)) % Q;
      const s = s0 > Q >> 1n ? Q - s0 : s0;
      const R = s === 0n ? undefined : ecdsaVerifyPoint({ r, s }, digest, key.sharedPublicKey);
      if (!R) {
        return fail(
          "SIGNATURE_INVALID",
          "the two-party signature does not verify under the shared key; the key is now tainted and signs nothing more",
          "internal",
        );
      }
      return { r: writeScalar(r), s: writeScalar(s), recoveryId: recoveryId(R, r) };
    } catch (err) {
      key.tainted = true;
      if (err instanceof ProtocolError && err.code === "SIGNATURE_INVALID") throw err;
      return fail(
        "SIGNATURE_INVALID",
        "the owner's partial signature could not be finished; the key is now tainted and signs nothing more",
        "internal",
      );
    }
  } finally {
    wipe(session.nonce);
  }
}
