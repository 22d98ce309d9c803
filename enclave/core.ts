// The enclave's state and the helpers every protocol step uses (enclave/steps/*): the coin registry, one
// request at a time per coin with remembered answers, the chain-tip ratchet, the scrub of freed memory.
import { createHash } from "node:crypto";
import type { AttestationProvider } from "../attestation/providers/provider.ts";
import { ZERO_HASH } from "../attestation/receipt.ts";
import { StatechainStatus } from "../proto/gen/common.ts";
import type * as E from "../proto/gen/enclave.ts";
import { type Authenticated, type Codec, DEFAULT_WINDOW_MS, verifyRequest } from "../protocol/auth.ts";
import { wipeSignerSession } from "../protocol/ecdsa2p/signer.ts";
import { check, fail } from "../protocol/errors.ts";
import type { Rng } from "../protocol/rng.ts";
import { statechainIdBytes } from "../protocol/statechain.ts";
import { type Coin, CoinRegistry, SIGN_SESSION_TTL_MS, wipeCoin } from "./coins.ts";
import type { InstanceKeys } from "./instance.ts";
import type { ActionLog } from "./log.ts";
import { KeyedMutex } from "./mutex.ts";
import { coinContext, type EnclavePolicy } from "./policy.ts";

export const SVC = "/statechain.v1.StatechainService/";

/** A full collection, so the transient copies of secrets an operation made (BigInt digits, strings) are freed
 * and, with --clear-free-memory (set by bin/enclave.js), zeroed when their pages are swept. Sweeping runs after
 * the collection, lazily or on a background thread that lags on a loaded machine (a dead copy of s1 was still
 * there 1 time in 30); a second collection first completes the sweeping of the first, so afterwards every page is
 * swept. (A young-generation collection alone is not enough.) Costs ~20 ms per collection here. */
export function scrubFreedMemory(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return;
  gc();
  gc();
}

/**
 * The replica set an enclave is a member of (DESIGN.md 4.1, enclave/replica/member.ts). Every step's change goes
 * through its log before the step answers; a member that does not lead serves no step.
 */
export interface Replicator {
  leading(): boolean;
  status(): E.ReplicaStatus;
  /** Founds a new set with this enclave alone. */
  found(): Promise<void>;
  /** Leader: admits an enclave in no set, once its attestation checks (enclave/replica/member.ts). */
  admit(memberId: string): Promise<void>;
  /**
   * Replicates a step's change of `coin` (its new record, or its close with the answer kept for a retry).
   * Resolves once a majority committed it, or for an erasure once every member applied it.
   */
  commit(
    core: EnclaveCore,
    change: { coin: Coin; erasure: boolean; closed?: E.CloseStatechainResponse },
  ): Promise<void>;
}

export interface EnclaveDeps {
  policy: EnclavePolicy;
  provider: AttestationProvider;
  /**
   * Made at boot: ring-Pedersen parameters (trapdoor wiped) and the Ed25519 instance key. The safe primes take
   * seconds, so the enclave serves meanwhile and the steps that need them wait (Promise).
   */
  instance: InstanceKeys | Promise<InstanceKeys>;
  log: ActionLog;
  rng: Rng;
  now: () => number;
  instanceId: Buffer;
  pcrs: { pcr0: Buffer; pcr1: Buffer; pcr2: Buffer };
  simulatorRootPem: string;
  version: string;
  /**
   * Tests only (with the seeded test randomness): how long a scrub that follows an answer waits, so the erasure
   * test sees memory as an erasure's answer left it, before that scrub. Default: ANSWER_WRITE_MS.
   */
  scrubDelayMs?: number;
  /** Absent: a standalone enclave, whose state is its own. */
  replica?: Replicator;
}

export const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
/** How long after an answer's handler returns gRPC has written it, here with room to spare. */
export const ANSWER_WRITE_MS = 10;
export const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest();
export const idHexOf = (o: { txid: Uint8Array; vout: number }) => hex(statechainIdBytes(o));

/** Decodes an owner's signed request and checks its signature under the key `keyOf` picks. */
export function readSigned<T extends Authenticated>(
  codec: Codec<T>,
  method: string,
  bytes: Uint8Array,
  now: number,
): { req: T; verify: (key: Uint8Array) => void; hash: string } {
  check(bytes.length > 0, "REQUEST_MISSING", "the owner's signed request is missing");
  let req: T;
  try {
    req = codec.decode(bytes);
  } catch {
    return fail("REQUEST_PARSE", `the owner's ${method} request does not parse`);
  }
  return {
    req,
    hash: hex(sha256(bytes)),
    verify: (key) => verifyRequest(codec, SVC + method, req as never, key, { nowMs: now }),
  };
}

/** Answers are kept for retries of a request whose answer the host may have lost; ten minutes is plenty. */
export const ANSWER_TTL_MS = 10 * 60_000;

export function remembered<T>(coin: Coin, method: string, hash: string): T | undefined {
  const a = coin.answers.get(method);
  return a && a.requestHash === hash ? (a.response as T) : undefined;
}

/** Keeps `response` as the coin's latest answer (earlier answers are dropped: a later step supersedes them). */
export function remember<T>(coin: Coin, method: string, hash: string, response: T, at: number): T {
  coin.answers.clear();
  coin.answers.set(method, { requestHash: hash, response, at });
  return response;
}

export function coinStatus(c: Coin): StatechainStatus {
  if (c.stage === "closed") return StatechainStatus.STATECHAIN_STATUS_CLOSED;
  if (c.stage !== "funded") return StatechainStatus.STATECHAIN_STATUS_KEYGEN;
  if (c.withdraw) return StatechainStatus.STATECHAIN_STATUS_WITHDRAWING;
  if (c.pending) return StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING;
  return StatechainStatus.STATECHAIN_STATUS_ACTIVE;
}

export class EnclaveCore {
  readonly coins = new CoinRegistry();
  readonly mutex = new KeyedMutex();
  /**
   * Whether an operation left transient copies of secrets in freed memory since the last scrub (scrubFreedMemory,
   * ~35 ms). Keygen, a key update's new share and signing leave such copies (BigInt digits of a share, a nonce).
   * One scrub per transfer runs after the answer to the receiver's backup co-signature,
   * while host and wallets carry on; an erasure (key update, close) first runs a scrub still due, and makes no
   * copy of what it erases (s1, x1 and t2 never become BigInts: ecdsa2p/scalar-ct.ts), so when it answers no
   * copy of them is left anywhere. (A copy of a live share may stay until then: it is no erased secret yet.)
   */
  scrubDue = false;
  scrubScheduled = false;
  maxTip = 0;
  /** When maxTip last rose (enclave clock): how far the next tip may plausibly be above it. */
  maxTipAt = 0;
  lastReceipt: Uint8Array = ZERO_HASH;
  /** DepositInit answers by request hash, for a retried request; kept for as long as its signature is fresh. */
  readonly recentInits = new Map<string, { res: E.KeyGenInitResponse; at: number }>();
  readonly startedAt: number;

  constructor(readonly d: EnclaveDeps) {
    this.startedAt = d.now();
  }

  /** Records copies left in freed memory, for the next scrub. */
  scrubOwed(): void {
    this.scrubDue = true;
  }

  /**
   * Scrubs once the current answer is on its way. gRPC writes an answer a few event-loop turns after the handler
   * returns: a scrub at the next turn (setImmediate) held every co-signature back by its ~35 ms.
   */
  scrubLater(): void {
    this.scrubDue = true;
    if (this.scrubScheduled) return;
    this.scrubScheduled = true;
    setTimeout(() => {
      this.scrubScheduled = false;
      this.scrubNow();
    }, this.d.scrubDelayMs ?? ANSWER_WRITE_MS).unref();
  }

  scrubNow(): void {
    if (!this.scrubDue) return;
    this.scrubDue = false;
    scrubFreedMemory();
  }

  /** Runs a step on one coin: one request at a time per coin, and the same answer for a retried request. */
  step<T>(coin: Coin, method: string, hash: string, fn: () => Promise<T>): Promise<T> {
    return this.mutex.run(coin.depositId.toString("hex"), async () => {
      const again = remembered<T>(coin, method, hash);
      if (again) return again;
      const res = await fn();
      await this.commit(coin, method === "keyUpdate");
      return remember(coin, method, hash, res, this.d.now());
    });
  }

  /**
   * What a step changed, through the replica set's log before its answer leaves (DESIGN.md 4.1): a deposed
   * leader cannot commit, so it never answers from a state the set has moved past. An unfinished keygen is not
   * replicated (its depositor starts again on another leader).
   */
  async commit(coin: Coin, erasure: boolean, closed?: E.CloseStatechainResponse): Promise<void> {
    if (!this.d.replica || coin.stage === "keygen") return;
    await this.d.replica.commit(this, { coin, erasure, closed });
  }

  depositCoin(id: Uint8Array): Coin {
    check(id.length === 16, "INVALID_DEPOSIT_ID", "deposit id must be 16 bytes");
    const coin = this.coins.deposit(hex(id));
    check(coin, "UNKNOWN_DEPOSIT", "the enclave holds no deposit with this id", "not_found");
    return coin;
  }

  /**
   * The host's tip, never allowed to go down (a host that lies low cannot unlock old backups earlier), nor up by
   * more than the chain can have grown since the last rise (policy tipSlackBlocks + tipBlocksPerHour × hours):
   * one bogus high tip would otherwise stop every later co-signature for good (audit #18.12). An implausible
   * tip is refused and not recorded.
   *
   * The first tip after start (always at a BindFunding: no coin exists before one) has nothing to be bounded by:
   * the enclave knows no height of its own, and no data it holds (policy, funding transaction) gives an upper
   * bound. Only header evidence from the host (proof of work from a checkpoint the policy attests) would. Until
   * then: in absolute mode a depositor's wallet refuses an h0 that is not about its own tip + initLock, so an
   * enclave whose first tip was bogus holds no honest coin, and a restart loses nothing; kick-off mode has no
   * such check.
   */
  acceptTip(tip: number): number {
    check(Number.isInteger(tip) && tip >= 0, "CHAIN_TIP", "chain tip must be a non-negative integer");
    check(
      tip >= this.maxTip,
      "CHAIN_TIP_REGRESSED",
      `chain tip ${tip} is below ${this.maxTip}, which the host reported before`,
      "precondition",
    );
    if (tip === this.maxTip) return tip;
    const now = this.d.now();
    if (this.maxTipAt > 0) {
      const p = this.d.policy;
      const hours = Math.max(0, now - this.maxTipAt) / 3_600_000;
      const bound = this.maxTip + p.tipSlackBlocks + Math.ceil(p.tipBlocksPerHour * hours);
      check(
        tip <= bound,
        "CHAIN_TIP_IMPLAUSIBLE",
        `chain tip ${tip} is implausibly far above ${this.maxTip} (at most ${bound} now); the enclave keeps ${this.maxTip}`,
        "precondition",
      );
    }
    this.maxTip = tip;
    this.maxTipAt = now;
    return tip;
  }

  fundedCoin(id: { txid: Uint8Array; vout: number } | undefined): Coin {
    check(id && id.txid.length === 32, "INVALID_OUTPOINT", "statechain id is missing or malformed");
    const coin = this.coins.statechain(idHexOf(id));
    check(coin, "UNKNOWN_STATECHAIN", "the enclave holds no statechain with this id", "not_found");
    check(coin.stage === "funded", "STATECHAIN_CLOSED", "this statechain is closed", "precondition");
    return coin;
  }

  context(coin: Coin) {
    return coinContext(this.d.policy, {
      outpoint: coin.outpoint!,
      amountSat: coin.amountSat!,
      sharedPublicKey: coin.sharedPublicKey!,
      initialLock: coin.initialLock!,
      kickoff: coin.kickoff,
    });
  }

  expireSessions(coin: Coin): void {
    const now = this.d.now();
    for (const [id, s] of coin.signSessions) {
      if (now - s.createdAt > SIGN_SESSION_TTL_MS) {
        wipeSignerSession(s.session);
        coin.signSessions.delete(id);
      }
    }
  }

  seFee(coin: Coin): bigint {
    return (coin.amountSat! * BigInt(this.d.policy.withdrawFeeBps)) / 10_000n;
  }

  /**
   * Refuses an owner's Paillier modulus that another coin here already uses: a fresh N per coin is the wallet's
   * rule (a reused N links an owner's coins), and a copied N is someone else's (DESIGN.md 3.1).
   */
  refuseReusedModulus(n: bigint): void {
    check(
      !this.coins.all().some((c) => c.key?.paillierModulus === n),
      "PAILLIER_MODULUS_REUSED",
      "this Paillier modulus is already used by another coin; every coin needs a fresh key",
    );
  }

  /** Forgets deposits that never got funded (each holds keygen state), and answers older than ANSWER_TTL_MS. */
  sweepDeposits(): void {
    const now = this.d.now();
    const cutoff = now - this.d.policy.depositTtlMs;
    // A replay older than twice the signature window is refused as stale before this cache is consulted.
    for (const [h, e] of this.recentInits) if (now - e.at > 2 * DEFAULT_WINDOW_MS) this.recentInits.delete(h);
    for (const c of this.coins.all()) {
      for (const [m, a] of c.answers) if (now - a.at > ANSWER_TTL_MS) c.answers.delete(m);
      if (c.stage !== "funded" && c.stage !== "closed" && c.createdAt < cutoff) {
        wipeCoin(c);
        this.coins.remove(c);
      }
    }
  }
}
