// What the enclave holds per coin, in memory only. Secrets (the SE share s inside SignerKey, x1, transfer keys)
// are byte arrays that are zeroed on erasure; everything else is public (the owner's Paillier modulus and c_key
// among it: the enclave holds no Paillier secret, DESIGN.md 3.1).

import type { SignPurpose } from "../proto/gen/common.ts";
import type { KeyUpdateResponse } from "../proto/gen/enclave.ts";
import {
  type SignerKey,
  type SignerKeyGenState,
  type SignerSignSession,
  wipeSignerKey,
  wipeSignerSession,
} from "../protocol/ecdsa2p/signer.ts";
import type { Secret } from "./secret.ts";

export type CoinStage = "keygen" | "keyed" | "funded" | "closed";

export interface PendingTransfer {
  newOwnerIndex: number;
  receiverProofKey: Buffer;
  receiverBackupKey: Buffer;
  x1: Secret;
  encryptedX1: Buffer;
  /** The receiver's backup has been co-signed: the transfer can no longer be redirected. */
  backupSigned: boolean;
  /** Its txid (internal order): the only backup co-signed for owner n+1, named in the transfer-key statement. */
  backupTxid?: Buffer;
  /** Transfer keys handed out in attestation documents for this transfer (newest last, at most a few). */
  transferKeys: Array<{ publicKey: Buffer; secret: Secret }>;
}

export interface SignSessionEntry {
  session: SignerSignSession;
  purpose: SignPurpose;
  /** The transaction as the owner sent it: checked again against the coin's state when the signature is released. */
  tx: Buffer;
  txid: Buffer;
  /** The coin's stateVersion when the session opened: a session never outlives a change of state. */
  stateVersion: number;
  /** For backups: the owner index the backup is for. */
  ownerIndex: number;
  /** For kick-off: its output amount (becomes the kick-off context once signed). */
  kickoffAmountSat?: bigint;
  /** For backups in kick-off mode: the kick-off's confirmation height the host reported at SignFirst. */
  kickoffHeight?: number;
  createdAt: number;
}

export interface Coin {
  depositId: Buffer;
  depositProofKey: Buffer;
  stage: CoinStage;
  createdAt: number;
  keygen?: SignerKeyGenState;
  key?: SignerKey;
  sharedPublicKey?: Buffer;
  /** Set by BindFunding. */
  outpoint?: { txid: Buffer; vout: number };
  idHex?: string;
  amountSat?: bigint;
  initialLock?: number;
  kickoff?: { txid: Buffer; amountSat: bigint };
  ownerIndex: number;
  proofKey: Buffer;
  /** The current owner's backup key B_n. */
  backupKey?: Buffer;
  stateHash: Buffer;
  pending?: PendingTransfer;
  signSessions: Map<string, SignSessionEntry>;
  /** Counts changes of what co-signing depends on (pending transfer, withdrawal, kick-off, owner). */
  stateVersion: number;
  /** The answer of the key update that made the current owner (public), until the coin's next change of state:
   * a host that crashed before writing it learns it here (GetKeyUpdate). */
  lastKeyUpdate?: { ownerIndex: number; response: KeyUpdateResponse };
  withdraw?: { statechainTx: Buffer; withdrawScript: Buffer; closingState: Buffer; signedTxids: Set<string> };
  /** Last answer per method, keyed by the request hash: a retried request gets the same answer. */
  answers: Map<string, { requestHash: string; response: unknown; at: number }>;
}

/** A byte field of long-lived coin state, in a buffer of its own: a small `Buffer.from` is a slice of an 8 KB
 * pool slab and would keep the whole slab alive for as long as the coin lives (measured: 7 such fields made a
 * live coin cost ~38 KB instead of a few). Its memory is outside the V8 heap, where no collection moves it, so a
 * secret kept here leaves no stray copy behind for wipe() to miss. */
export function keep(b: Uint8Array): Buffer {
  const out = Buffer.allocUnsafeSlow(b.length);
  out.set(b);
  return out;
}

export const MAX_SIGN_SESSIONS_OPEN = 8;
export const SIGN_SESSION_TTL_MS = 10 * 60_000;
export const MAX_TRANSFER_KEYS = 4;

export function wipePending(p: PendingTransfer | undefined): void {
  if (!p) return;
  p.x1.wipe();
  for (const k of p.transferKeys) k.secret.wipe();
  p.transferKeys.length = 0;
}

/**
 * Records a change of the coin's state that co-signing depends on: every open signing session is void (its
 * nonce wiped), so nothing opened against the earlier state is ever released.
 */
export function stateChanged(c: Coin): void {
  c.stateVersion++;
  c.lastKeyUpdate = undefined;
  for (const s of c.signSessions.values()) wipeSignerSession(s.session);
  c.signSessions.clear();
}

/** Erases every secret the coin holds. */
export function wipeCoin(c: Coin): void {
  if (c.key) wipeSignerKey(c.key);
  if (c.keygen) c.keygen.share.fill(0);
  stateChanged(c);
  wipePending(c.pending);
  c.pending = undefined;
}

/** How long, and for how many coins at most, CloseStatechain's answer is kept for a retry (audit #19.13). */
export const CLOSED_RETENTION_MS = 7 * 24 * 3600_000;
export const MAX_CLOSED_KEPT = 10_000;

/**
 * The answers of CloseStatechain (erasure receipt and its attestation document, a few KB each), by statechain id,
 * so a host that crashed before storing one gets it again. Kept for `retentionMs` and at most `max` of them, the
 * oldest dropped first. Dropping one never lets its coin be used again: a closed coin is out of the registry (its
 * share wiped), so every call naming it fails with UNKNOWN_STATECHAIN, and its outpoint cannot be bound to another
 * deposit (BindFunding checks that the output pays the new deposit's fresh shared key). A CloseStatechain retried
 * after the drop gets UNKNOWN_STATECHAIN (NOT_FOUND) instead of the receipt: only a host that lost the answer and
 * stayed down past the retention (or 10,000 closes) misses it; the erasure itself is in the enclave's log.
 */
export class ClosedCoins {
  private readonly answers = new Map<string, { answer: unknown; at: number }>();

  constructor(
    private readonly now: () => number = Date.now,
    readonly max = MAX_CLOSED_KEPT,
    readonly retentionMs = CLOSED_RETENTION_MS,
  ) {}

  get(idHex: string): unknown {
    const e = this.answers.get(idHex);
    if (e && this.now() - e.at > this.retentionMs) {
      this.answers.delete(idHex);
      return undefined;
    }
    return e?.answer;
  }

  set(idHex: string, answer: unknown): void {
    this.answers.delete(idHex);
    this.answers.set(idHex, { answer, at: this.now() });
    // Insertion order is time order: the oldest are at the front.
    const cutoff = this.now() - this.retentionMs;
    for (const [k, e] of this.answers) {
      if (this.answers.size <= this.max && e.at >= cutoff) break;
      this.answers.delete(k);
    }
  }

  get size(): number {
    return this.answers.size;
  }
}

/** Coins by deposit id and, once funded, by statechain id (both hex). */
export class CoinRegistry {
  private readonly byDeposit = new Map<string, Coin>();
  private readonly byStatechain = new Map<string, Coin>();
  /** Erasure records of closed coins, for idempotent CloseStatechain answers (bounded: ClosedCoins). */
  readonly closed: ClosedCoins;

  constructor(now: () => number = Date.now) {
    this.closed = new ClosedCoins(now);
  }

  add(c: Coin): void {
    this.byDeposit.set(c.depositId.toString("hex"), c);
  }

  bind(c: Coin, idHex: string): void {
    c.idHex = idHex;
    this.byStatechain.set(idHex, c);
  }

  deposit(idHex: string): Coin | undefined {
    return this.byDeposit.get(idHex);
  }

  statechain(idHex: string): Coin | undefined {
    return this.byStatechain.get(idHex);
  }

  remove(c: Coin): void {
    this.byDeposit.delete(c.depositId.toString("hex"));
    if (c.idHex) this.byStatechain.delete(c.idHex);
  }

  get size(): number {
    return this.byDeposit.size;
  }

  all(): Coin[] {
    return [...this.byDeposit.values()];
  }
}
