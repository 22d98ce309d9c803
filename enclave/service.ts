// The enclave's handlers for enclave.proto: party one of the two-party ECDSA for every coin, the co-signing
// policy, the transfer (x1, attested transfer key, key update with erasure) and the withdrawal. Owner requests
// arrive as the exact bytes the owner signed; the enclave verifies those signatures itself and trusts the host
// only for what it names (the chain tip, a withdrawal's confirmation).
import { createHash, randomBytes } from "node:crypto";
import type { AttestationProvider } from "../attestation/providers/provider.ts";
import { encodeReceipt, erasedShareCommitment, receiptHash, ZERO_HASH } from "../attestation/receipt.ts";
import {
  encodeIdentityStatement,
  encodeTransferKeyStatement,
  statementHash,
} from "../attestation/statements.ts";
import {
  type KeyUpdateRecord,
  SignPurpose,
  StatechainStatus,
  type StatechainTx,
  StatechainTxKind,
} from "../proto/gen/common.ts";
import type * as E from "../proto/gen/enclave.ts";
import {
  DepositFundRequest,
  DepositInitRequest,
  DepositKeyGenRequest,
  SignFirstRequest,
  SignSecondRequest,
  TransferReceiverInitRequest,
  TransferReceiverKeyUpdateRequest,
  TransferSenderInitRequest,
  WithdrawInitRequest,
} from "../proto/gen/statechain.ts";
import { type Authenticated, type Codec, DEFAULT_WINDOW_MS, verifyRequest } from "../protocol/auth.ts";
import {
  generatePaillierKey,
  type PartyOneKey,
  p1KeyGenCommit,
  p1KeyGenFinish,
  p1KeyGenFixed,
  p1SignFinish,
  p1SignStart,
  type RingPedersenCache,
  randomSecretBytes,
  rotateShare,
  wipeKey,
  wipePaillierKey,
  wipeSignSession,
} from "../protocol/ecdsa2p/index.ts";
import { decrypt as eciesDecrypt, encrypt as eciesEncrypt, eciesPublicKey } from "../protocol/ecies.ts";
import { bigIntToBytes, parsePoint, pointBytes } from "../protocol/encoding.ts";
import { check, fail, ProtocolError } from "../protocol/errors.ts";
import type { Rng } from "../protocol/rng.ts";
import { initialState, nextState, statechainIdBytes, verifyStatechainTx } from "../protocol/statechain.ts";
import { parseTx, txidOf } from "../protocol/tx/parse.ts";
import { backupLock } from "../protocol/tx/policy.ts";
import { p2wpkhScript } from "../protocol/tx/script.ts";
import {
  type Coin,
  CoinRegistry,
  keep,
  MAX_SIGN_SESSIONS_OPEN,
  MAX_TRANSFER_KEYS,
  SIGN_SESSION_TTL_MS,
  stateChanged,
  wipeCoin,
  wipePending,
} from "./coins.ts";
import { type ChainView, checkCoSign, checkRelease } from "./cosign.ts";
import type { ActionLog } from "./log.ts";
import { KeyedMutex } from "./mutex.ts";
import { coinContext, type EnclavePolicy, policyHash, policyJson } from "./policy.ts";
import type { PaillierPool } from "./pool.ts";
import { Secret } from "./secret.ts";

const SVC = "/statechain.v1.StatechainService/";

/** A key as long-lived coin state: the proof of the Paillier modulus was sent already and unused encryption
 * nonces are wiped, so a live coin holds little more than s, p, q and c_key. */
function compactKey(key: PartyOneKey): PartyOneKey {
  key.paillier.modulusProof = undefined;
  for (const { r, rn } of key.paillier.nonces.splice(0)) {
    r.fill(0);
    rn.fill(0);
  }
  return key;
}

/** A full collection, so the transient copies of secrets an operation made (BigInt digits, strings) are freed
 * and, with --clear-free-memory (set by bin/enclave.js), zeroed when their pages are swept. Sweeping runs after
 * the collection, lazily or on a background thread that lags on a loaded machine (a dead copy of s1 was still
 * there 1 time in 30); a second collection first completes the sweeping of the first, so afterwards every page is
 * swept. (A young-generation collection alone is not enough.) Costs ~20 ms per collection here. */
function scrubFreedMemory(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return;
  gc();
  gc();
}

export interface EnclaveDeps {
  policy: EnclavePolicy;
  provider: AttestationProvider;
  pool: PaillierPool;
  log: ActionLog;
  rng: Rng;
  now: () => number;
  instanceId: Buffer;
  pcrs: { pcr0: Buffer; pcr1: Buffer; pcr2: Buffer };
  simulatorRootPem: string;
  ringPedersenCache: RingPedersenCache;
  version: string;
  /**
   * Tests only (with the seeded test randomness): how long a scrub that follows an answer waits, so the erasure
   * test sees memory as an erasure's answer left it, before that scrub. Default: ANSWER_WRITE_MS.
   */
  scrubDelayMs?: number;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
/** How long after an answer's handler returns gRPC has written it, here with room to spare. */
const ANSWER_WRITE_MS = 10;
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest();
const idHexOf = (o: { txid: Uint8Array; vout: number }) => hex(statechainIdBytes(o));

/** Decodes an owner's signed request and checks its signature under the key `keyOf` picks. */
function readSigned<T extends Authenticated>(
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

function remembered<T>(coin: Coin, method: string, hash: string): T | undefined {
  const a = coin.answers.get(method);
  return a && a.requestHash === hash ? (a.response as T) : undefined;
}

/** Keeps `response` as the coin's latest answer (earlier answers are dropped: a later step supersedes them). */
function remember<T>(coin: Coin, method: string, hash: string, response: T, at: number): T {
  coin.answers.clear();
  coin.answers.set(method, { requestHash: hash, response, at });
  return response;
}

function coinStatus(c: Coin): StatechainStatus {
  if (c.stage === "closed") return StatechainStatus.STATECHAIN_STATUS_CLOSED;
  if (c.key?.tainted) return StatechainStatus.STATECHAIN_STATUS_TAINTED;
  if (c.stage !== "funded") return StatechainStatus.STATECHAIN_STATUS_KEYGEN;
  if (c.withdraw) return StatechainStatus.STATECHAIN_STATUS_WITHDRAWING;
  if (c.pending) return StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING;
  return StatechainStatus.STATECHAIN_STATUS_ACTIVE;
}

export class Enclave {
  readonly coins = new CoinRegistry();
  private readonly mutex = new KeyedMutex();
  /**
   * Whether an operation left transient copies of secrets in freed memory since the last scrub (scrubFreedMemory,
   * ~35 ms). Keygen, a key update's new share and signing leave such copies (BigInt digits of a share, a nonce,
   * the Paillier factors). One scrub per transfer runs after the answer to the receiver's backup co-signature,
   * while host and wallets carry on; an erasure (key update, close) first runs a scrub still due, and makes no
   * copy of what it erases (s1, x1 and t2 never become BigInts: ecdsa2p/scalar-ct.ts), so when it answers no
   * copy of them is left anywhere. (A copy of a live share may stay until then: it is no erased secret yet.)
   */
  private scrubDue = false;
  private scrubScheduled = false;
  private maxTip = 0;
  /** When maxTip last rose (enclave clock): how far the next tip may plausibly be above it. */
  private maxTipAt = 0;
  private lastReceipt: Uint8Array = ZERO_HASH;
  /** DepositInit answers by request hash, for a retried request; kept for as long as its signature is fresh. */
  private readonly recentInits = new Map<string, { res: E.KeyGenInitResponse; at: number }>();
  private readonly startedAt: number;

  constructor(private readonly d: EnclaveDeps) {
    this.startedAt = d.now();
  }

  /** Records copies left in freed memory, for the next scrub. */
  private scrubOwed(): void {
    this.scrubDue = true;
  }

  /**
   * Scrubs once the current answer is on its way. gRPC writes an answer a few event-loop turns after the handler
   * returns: a scrub at the next turn (setImmediate) held every co-signature back by its ~35 ms.
   */
  private scrubLater(): void {
    this.scrubDue = true;
    if (this.scrubScheduled) return;
    this.scrubScheduled = true;
    setTimeout(() => {
      this.scrubScheduled = false;
      this.scrubNow();
    }, this.d.scrubDelayMs ?? ANSWER_WRITE_MS).unref();
  }

  private scrubNow(): void {
    if (!this.scrubDue) return;
    this.scrubDue = false;
    scrubFreedMemory();
  }

  /** Runs a step on one coin: one request at a time per coin, and the same answer for a retried request. */
  private step<T>(coin: Coin, method: string, hash: string, fn: () => Promise<T>): Promise<T> {
    return this.mutex.run(coin.depositId.toString("hex"), async () => {
      const again = remembered<T>(coin, method, hash);
      if (again) return again;
      return remember(coin, method, hash, await fn(), this.d.now());
    });
  }

  // ------------------------------------------------------------------------------------------------------
  // identity

  async getStatus(): Promise<E.GetStatusResponse> {
    const d = this.d;
    return {
      instanceId: d.instanceId,
      startedAtMs: BigInt(this.startedAt),
      logHead: d.log.head,
      logLength: d.log.length,
      lastReceiptHash: Buffer.from(this.lastReceipt),
      attestationMode: d.provider.mode,
      pcr0: d.pcrs.pcr0.toString("hex"),
      pcr1: d.pcrs.pcr1.toString("hex"),
      pcr2: d.pcrs.pcr2.toString("hex"),
      statechainCount: this.coins.size,
      paillierPoolSize: d.pool.size,
      maxChainTip: this.maxTip,
      policyHash: policyHash(d.policy),
      version: d.version,
      simulatorRootPem: d.simulatorRootPem,
      policyJson: policyJson(d.policy),
    };
  }

  async getAttestation(req: E.GetAttestationRequest): Promise<E.GetAttestationResponse> {
    check(
      req.nonce.length >= 16 && req.nonce.length <= 64,
      "ATTESTATION_NONCE",
      "attestation nonce must be 16 to 64 bytes",
    );
    const identity = encodeIdentityStatement({
      instance: this.d.instanceId,
      log: this.d.log.head,
      policy: policyHash(this.d.policy),
      time: this.d.now(),
    });
    const document = await this.d.provider.attest({ nonce: req.nonce, userData: statementHash(identity) });
    return { document: Buffer.from(document), identity: Buffer.from(identity) };
  }

  async listStatechains(req: E.ListStatechainsRequest): Promise<E.ListStatechainsResponse> {
    const size = Math.min(Math.max(req.pageSize || 100, 1), 1000);
    const after = hex(req.pageAfter);
    const all = this.coins
      .all()
      .map((c) => ({ c, k: c.depositId.toString("hex") }))
      .sort((a, b) => a.k.localeCompare(b.k))
      .filter((x) => x.k > after);
    const page = all.slice(0, size);
    return {
      statechains: page.map(({ c }) => ({
        depositId: c.depositId,
        statechainId: c.outpoint,
        sharedPublicKey: c.sharedPublicKey ?? Buffer.alloc(0),
        ownerIndex: c.ownerIndex,
        proofKey: c.proofKey,
        stateHash: c.stateHash,
        status: coinStatus(c),
        initialLock: c.initialLock ?? 0,
        amountSat: c.amountSat ?? 0n,
      })),
      nextPageAfter: all.length > size ? page[page.length - 1]!.c.depositId : Buffer.alloc(0),
    };
  }

  // ------------------------------------------------------------------------------------------------------
  // deposit

  async keyGenInit(r: E.KeyGenInitRequest): Promise<E.KeyGenInitResponse> {
    const { req, verify, hash } = readSigned(
      DepositInitRequest,
      "DepositInit",
      r.signedRequest,
      this.d.now(),
    );
    const seen = this.recentInits.get(hash);
    if (seen) return seen.res;
    parsePoint(req.proofKey, "proof key");
    verify(req.proofKey);
    this.sweepDeposits();
    // The enclave's memory is fixed: unfunded deposits are capped here, whatever the host lets through (#19.2).
    const unfunded = this.coins.all().filter((c) => c.stage === "keygen" || c.stage === "keyed");
    check(
      unfunded.length < this.d.policy.maxUnfundedDeposits,
      "DEPOSITS_BUSY",
      "the enclave holds the most deposits that may wait for their funding; try again in a few minutes",
      "exhausted",
    );
    check(
      unfunded.filter((c) => c.depositProofKey.equals(Buffer.from(req.proofKey))).length < 2,
      "DEPOSITS_PER_KEY",
      "this proof key has two deposits waiting for their funding already",
      "exhausted",
    );
    const depositId = keep(this.d.rng(16));
    const { state, msg } = p1KeyGenCommit({
      sessionId: depositId,
      rng: this.d.rng,
      paillier: this.d.pool.take(),
    });
    const proofKey = keep(req.proofKey);
    const coin: Coin = {
      depositId,
      depositProofKey: proofKey,
      stage: "keygen",
      createdAt: this.d.now(),
      keygen: state,
      ownerIndex: 1,
      proofKey,
      stateHash: keep(initialState(req.proofKey)),
      signSessions: new Map(),
      stateVersion: 0,
      answers: new Map(),
    };
    this.coins.add(coin);
    this.d.log.append({ type: "deposit-init", subject: hex(depositId), at: this.d.now() });
    const res = { depositId, keygenCommit: { commitment: keep(msg.commitment) } };
    this.recentInits.set(hash, { res, at: this.d.now() });
    if (this.recentInits.size > 1000) this.recentInits.delete(this.recentInits.keys().next().value!);
    return res;
  }

  private depositCoin(id: Uint8Array): Coin {
    check(id.length === 16, "INVALID_DEPOSIT_ID", "deposit id must be 16 bytes");
    const coin = this.coins.deposit(hex(id));
    check(coin, "UNKNOWN_DEPOSIT", "the enclave holds no deposit with this id", "not_found");
    return coin;
  }

  async keyGenFinish(r: E.KeyGenFinishRequest): Promise<E.KeyGenFinishResponse> {
    const { req, verify, hash } = readSigned(
      DepositKeyGenRequest,
      "DepositKeyGen",
      r.signedRequest,
      this.d.now(),
    );
    const coin = this.depositCoin(req.depositId);
    return this.step(coin, "keyGenFinish", hash, async () => {
      verify(coin.depositProofKey);
      check(
        coin.stage === "keygen" && coin.keygen,
        "KEYGEN_DONE",
        "key generation for this deposit is already complete",
        "precondition",
      );
      check(req.ownerShare, "MISSING_OWNER_SHARE", "owner share is missing");
      const { key, msg } = await p1KeyGenFinish(coin.keygen, req.ownerShare, {
        rng: this.d.rng,
        ringPedersenCache: this.d.ringPedersenCache,
      });
      coin.keygen = undefined;
      coin.key = compactKey(key);
      coin.sharedPublicKey = keep(pointBytes(key.sharedPublicKey));
      coin.stage = "keyed";
      this.d.log.append({ type: "keygen", subject: hex(coin.depositId), at: this.d.now() });
      this.scrubOwed(); // BigInt copies of the new share s and of the Paillier factors
      return { seShare: msg, sharedPublicKey: coin.sharedPublicKey };
    });
  }

  /**
   * The host's tip, never allowed to go down (a host that lies low cannot unlock old backups earlier), nor up by
   * more than the chain can have grown since the last rise (policy tipSlackBlocks + tipBlocksPerHour × hours):
   * one bogus high tip would otherwise stop every later co-signature for good (audit #18.12). An implausible
   * tip is refused and not recorded.
   */
  private acceptTip(tip: number): number {
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

  async bindFunding(r: E.BindFundingRequest): Promise<E.BindFundingResponse> {
    const { req, verify, hash } = readSigned(
      DepositFundRequest,
      "DepositFund",
      r.signedRequest,
      this.d.now(),
    );
    const coin = this.depositCoin(req.depositId);
    return this.step(coin, "bindFunding", hash, async () => {
      verify(coin.depositProofKey);
      check(
        coin.stage === "keyed",
        "WRONG_STAGE",
        coin.stage === "keygen"
          ? "finish key generation before binding the funding transaction"
          : "this deposit is already bound to a funding output",
        "precondition",
      );
      const backupKey = parsePoint(req.backupKey, "backup key B1");
      const tx = parseTx(req.fundingTx, "funding transaction");
      const out = tx.outs[req.vout];
      check(out, "FUNDING_VOUT", `funding transaction has no output ${req.vout}`);
      check(
        Buffer.from(out.script).equals(Buffer.from(p2wpkhScript(coin.sharedPublicKey!))),
        "FUNDING_SCRIPT",
        `funding output ${req.vout} does not pay P2WPKH of the shared key`,
      );
      const p = this.d.policy;
      check(
        out.value >= BigInt(p.minDepositSat) && out.value <= BigInt(p.maxDepositSat),
        "DEPOSIT_AMOUNT",
        `deposit amount ${out.value} sat is outside [${p.minDepositSat}, ${p.maxDepositSat}]`,
      );
      const tip = this.acceptTip(r.chainTip);
      const outpoint = { txid: keep(txidOf(tx)), vout: req.vout };
      const idHex = idHexOf(outpoint);
      check(
        !this.coins.statechain(idHex),
        "DUPLICATE_STATECHAIN",
        "another deposit is already bound to this outpoint",
        "precondition",
      );
      coin.outpoint = outpoint;
      coin.amountSat = out.value;
      coin.initialLock = p.backupMode === "absolute" ? tip + p.initLock : p.initLock;
      coin.backupKey = keep(pointBytes(backupKey));
      coin.stage = "funded";
      this.coins.bind(coin, idHex);
      coin.answers.clear();
      this.d.log.append({
        type: "bind-funding",
        subject: idHex,
        detail: { initialLock: coin.initialLock },
        at: this.d.now(),
      });
      return {
        statechainId: outpoint,
        amountSat: out.value,
        initialLock: coin.initialLock,
        backupMode: p.backupMode === "kickoff" ? 2 : 1,
      };
    });
  }

  // ------------------------------------------------------------------------------------------------------
  // co-signing

  private fundedCoin(id: { txid: Uint8Array; vout: number } | undefined): Coin {
    check(id && id.txid.length === 32, "INVALID_OUTPOINT", "statechain id is missing or malformed");
    const coin = this.coins.statechain(idHexOf(id));
    check(coin, "UNKNOWN_STATECHAIN", "the enclave holds no statechain with this id", "not_found");
    check(coin.stage === "funded", "STATECHAIN_CLOSED", "this statechain is closed", "precondition");
    return coin;
  }

  private context(coin: Coin) {
    return coinContext(this.d.policy, {
      outpoint: coin.outpoint!,
      amountSat: coin.amountSat!,
      sharedPublicKey: coin.sharedPublicKey!,
      initialLock: coin.initialLock!,
      kickoff: coin.kickoff,
    });
  }

  async signFirst(r: E.SignFirstRequest): Promise<E.SignFirstResponse> {
    const { req, verify, hash } = readSigned(SignFirstRequest, "SignFirst", r.signedRequest, this.d.now());
    const coin = this.fundedCoin(req.statechainId);
    return this.step(coin, "signFirst", hash, async () => {
      verify(coin.proofKey);
      check(
        coin.key && !coin.key.tainted,
        "KEY_TAINTED",
        "this key is tainted and co-signs nothing more; exit by the backup transaction",
        "precondition",
      );
      const tip = this.acceptTip(r.chainTip);
      check(req.ownerCommit, "MISSING_OWNER_COMMIT", "owner nonce commitment is missing");
      check(req.inputIndex === 0, "INPUT_INDEX", "the co-signed input must be input 0");
      this.expireSessions(coin);
      check(
        coin.signSessions.size < MAX_SIGN_SESSIONS_OPEN,
        "TOO_MANY_SESSIONS",
        `at most ${MAX_SIGN_SESSIONS_OPEN} signing sessions may be open per coin`,
        "exhausted",
      );
      // Kick-off mode: the recorded kick-off's confirmation height, if the host saw it confirm (0: not yet).
      const chain: ChainView = { tip, kickoffHeight: r.kickoffHeight > 0 ? r.kickoffHeight : undefined };
      const terms = checkCoSign(coin, this.d.policy, req.purpose, req.tx, chain, this.seFee(coin));
      const { digest, txid, ownerIndex, kickoffAmountSat } = terms;
      const { session, msg } = p1SignStart(coin.key, {
        sessionId: req.sessionId,
        digest,
        ownerCommit: req.ownerCommit,
        rng: this.d.rng,
      });
      this.scrubOwed(); // BigInt copies of the nonce k1 (with a signature, k1 and the owner's k2 give the key)
      coin.signSessions.set(hex(req.sessionId), {
        session,
        purpose: req.purpose,
        tx: Buffer.from(req.tx),
        txid: Buffer.from(txid),
        stateVersion: coin.stateVersion,
        ownerIndex,
        kickoffAmountSat,
        kickoffHeight: chain.kickoffHeight,
        createdAt: this.d.now(),
      });
      return {
        sessionId: req.sessionId,
        seNonce: msg,
        digest: Buffer.from(digest),
      };
    });
  }

  private expireSessions(coin: Coin): void {
    const now = this.d.now();
    for (const [id, s] of coin.signSessions) {
      if (now - s.createdAt > SIGN_SESSION_TTL_MS) {
        wipeSignSession(s.session);
        coin.signSessions.delete(id);
      }
    }
  }

  private seFee(coin: Coin): bigint {
    return (coin.amountSat! * BigInt(this.d.policy.withdrawFeeBps)) / 10_000n;
  }

  async signSecond(r: E.SignSecondRequest): Promise<E.SignSecondResponse> {
    const { req, verify, hash } = readSigned(SignSecondRequest, "SignSecond", r.signedRequest, this.d.now());
    const coin = this.fundedCoin(req.statechainId);
    return this.step(coin, "signSecond", hash, async () => {
      verify(coin.proofKey);
      const entry = coin.signSessions.get(hex(req.sessionId));
      check(entry, "UNKNOWN_SESSION", "no open signing session with this id", "not_found");
      check(req.ownerPartial, "MISSING_OWNER_PARTIAL", "owner partial signature is missing");
      coin.signSessions.delete(hex(req.sessionId));
      // Checked again now, against the coin as it is when the signature is released (audit #18.1, #18.2).
      try {
        checkRelease(
          coin,
          this.d.policy,
          entry,
          { tip: this.maxTip, kickoffHeight: entry.kickoffHeight },
          this.seFee(coin),
        );
      } catch (err) {
        wipeSignSession(entry.session);
        throw err;
      }
      let signature: E.SignSecondResponse["signature"];
      try {
        signature = p1SignFinish(coin.key!, entry.session, req.ownerPartial);
      } catch (err) {
        if (coin.key?.tainted) {
          this.d.log.append({ type: "tainted", subject: coin.idHex!, at: this.d.now() });
          throw new ProtocolError(
            "KEY_TAINTED",
            "the two-party signature failed its final verification; the key is now tainted and co-signs nothing more (exit by the backup transaction)",
            "precondition",
          );
        }
        throw err;
      } finally {
        this.scrubLater(); // copies of the nonce k1 and of the Paillier factors (decryption), answer or not
      }
      if (entry.purpose === SignPurpose.SIGN_PURPOSE_KICKOFF) {
        if (!coin.kickoff) {
          coin.kickoff = { txid: entry.txid, amountSat: entry.kickoffAmountSat! };
          stateChanged(coin); // backups opened before spend nothing the coin has
        }
      } else if (
        entry.purpose === SignPurpose.SIGN_PURPOSE_BACKUP &&
        coin.pending &&
        entry.ownerIndex === coin.pending.newOwnerIndex
      ) {
        // checkRelease made sure it pays this receiver's backup key at its lock.
        coin.pending.backupSigned = true;
        coin.pending.backupTxid = entry.txid;
      } else if (entry.purpose === SignPurpose.SIGN_PURPOSE_WITHDRAWAL) {
        coin.withdraw!.signedTxids.add(hex(entry.txid));
      }
      this.d.log.append({
        type: "sign",
        subject: coin.idHex!,
        detail: {
          purpose: entry.purpose,
          owner: entry.ownerIndex,
          txid: Buffer.from(entry.txid).reverse().toString("hex"),
        },
        at: this.d.now(),
      });
      return { signature };
    });
  }

  // ------------------------------------------------------------------------------------------------------
  // transfer

  async transferInit(r: E.TransferInitRequest): Promise<E.TransferInitResponse> {
    const { req, verify, hash } = readSigned(
      TransferSenderInitRequest,
      "TransferSenderInit",
      r.signedRequest,
      this.d.now(),
    );
    const coin = this.fundedCoin(req.statechainId);
    return this.step(coin, "transferInit", hash, async () => {
      verify(coin.proofKey);
      check(
        coin.key && !coin.key.tainted,
        "KEY_TAINTED",
        "this key is tainted; the coin can only exit by its backup",
        "precondition",
      );
      check(
        !coin.withdraw,
        "WITHDRAWING",
        "a withdrawal has started; the coin cannot be transferred",
        "precondition",
      );
      const C2 = keep(pointBytes(parsePoint(req.receiverProofKey, "receiver proof key")));
      const B2 = keep(pointBytes(parsePoint(req.receiverBackupKey, "receiver backup key")));
      check(!C2.equals(coin.proofKey), "SELF_TRANSFER", "the receiver proof key is the current owner's");
      const p = coin.pending;
      if (p) {
        if (p.receiverProofKey.equals(C2) && p.receiverBackupKey.equals(B2)) {
          return {
            encryptedX1: p.encryptedX1,
            newOwnerIndex: p.newOwnerIndex,
            backupLock: backupLock(this.context(coin), p.newOwnerIndex),
          };
        }
        check(
          !p.backupSigned,
          "TRANSFER_COMMITTED",
          "the receiver's backup is already co-signed; this transfer cannot be redirected",
          "precondition",
        );
        wipePending(p);
        coin.pending = undefined;
      }
      stateChanged(coin); // a backup session opened for an earlier receiver (or none) releases nothing now
      const newOwnerIndex = coin.ownerIndex + 1;
      const lock = backupLock(this.context(coin), newOwnerIndex);
      const x1 = randomSecretBytes(this.d.rng); // as bytes only: no BigInt copy of x1 to outlive its erasure
      const encryptedX1 = Buffer.from(eciesEncrypt(coin.proofKey, x1));
      coin.pending = {
        newOwnerIndex,
        receiverProofKey: C2,
        receiverBackupKey: B2,
        x1: new Secret(x1),
        encryptedX1,
        backupSigned: false,
        transferKeys: [],
      };
      x1.fill(0);
      this.d.log.append({
        type: "transfer-init",
        subject: coin.idHex!,
        detail: { to: newOwnerIndex },
        at: this.d.now(),
      });
      return { encryptedX1, newOwnerIndex, backupLock: lock };
    });
  }

  async transferKey(r: E.TransferKeyRequest): Promise<E.TransferKeyResponse> {
    const { req, verify } = readSigned(
      TransferReceiverInitRequest,
      "TransferReceiverInit",
      r.signedRequest,
      this.d.now(),
    );
    const coin = this.fundedCoin(req.statechainId);
    return this.mutex.run(coin.depositId.toString("hex"), async () => {
      // The signature first, under the key the request names: otherwise NOT_RECEIVER would tell anyone whether
      // a given proof key is the pending receiver (audit #18.13).
      parsePoint(req.receiverProofKey, "receiver proof key");
      verify(req.receiverProofKey);
      const p = coin.pending;
      const receiving = p?.receiverProofKey.equals(Buffer.from(req.receiverProofKey)) === true;
      check(p && receiving, "NOT_RECEIVER", "no transfer to this proof key is pending", "precondition");
      check(
        p.backupSigned && p.backupTxid,
        "BACKUP_MISSING",
        "the receiver's backup transaction must be co-signed before a transfer key is handed out",
        "precondition",
      );
      check(
        req.nonce.length >= 16 && req.nonce.length <= 64,
        "ATTESTATION_NONCE",
        "attestation nonce must be 16 to 64 bytes",
      );
      // Bytes only, never a BigInt: with this key and the encrypted t2 the host keeps, t2 would be recoverable.
      const sk = randomSecretBytes(this.d.rng);
      const publicKey = Buffer.from(eciesPublicKey(sk));
      const context = encodeTransferKeyStatement({
        statechain: statechainIdBytes(coin.outpoint!),
        epoch: p.newOwnerIndex,
        receiver: p.receiverProofKey,
        instance: this.d.instanceId,
        share: pointBytes(coin.key!.sePublicShare),
        kickoff: coin.kickoff ? coin.kickoff.txid : null,
        backup: p.backupTxid,
        policy: policyHash(this.d.policy),
      });
      const doc = await this.d.provider.attest({
        nonce: req.nonce,
        userData: statementHash(context),
        publicKey,
      });
      p.transferKeys.push({ publicKey, secret: new Secret(sk) });
      sk.fill(0);
      while (p.transferKeys.length > MAX_TRANSFER_KEYS) p.transferKeys.shift()!.secret.wipe();
      // The key update's Paillier key, set aside now (one per transfer, however many transfer keys): the
      // receiver checks its Π^mod while the key update runs.
      p.paillier ??= this.d.pool.take() ?? (await generatePaillierKey({ rng: this.d.rng }));
      return {
        attestationDocument: Buffer.from(doc),
        transferContext: Buffer.from(context),
        paillierModulus: Buffer.from(bigIntToBytes(p.paillier.n)),
        modulusProof: p.paillier.modulusProof,
      };
    });
  }

  async keyUpdate(r: E.KeyUpdateRequest): Promise<E.KeyUpdateResponse> {
    const { req, verify, hash } = readSigned(
      TransferReceiverKeyUpdateRequest,
      "TransferReceiverKeyUpdate",
      r.signedRequest,
      this.d.now(),
    );
    const coin = this.fundedCoin(req.statechainId);
    return this.step(coin, "keyUpdate", hash, async () => {
      this.scrubNow(); // copies an earlier step left (the old Paillier factors, from signing) go before the erasure
      const p = coin.pending;
      const receiving = p?.receiverProofKey.equals(Buffer.from(req.receiverProofKey)) === true;
      check(
        p && receiving,
        "NOT_RECEIVER",
        "no transfer to this proof key is pending (the key update for this owner may already be done)",
        "precondition",
      );
      verify(p.receiverProofKey);
      check(
        coin.key && !coin.key.tainted,
        "KEY_TAINTED",
        "this key is tainted; the coin can only exit by its backup",
        "precondition",
      );
      check(
        p.backupSigned,
        "BACKUP_MISSING",
        "the receiver's backup transaction must be co-signed before the key update",
        "precondition",
      );
      check(req.ownerShare, "MISSING_OWNER_SHARE", "owner share is missing");
      check(
        req.nonce.length >= 16 && req.nonce.length <= 64,
        "ATTESTATION_NONCE",
        "attestation nonce must be 16 to 64 bytes",
      );
      const sctx: StatechainTx | undefined = r.statechainTx;
      check(
        sctx && sctx.kind === StatechainTxKind.STATECHAIN_TX_KIND_TRANSFER,
        "SCTX_KIND",
        "the sender's statechain transaction must be a TRANSFER",
      );
      check(
        Buffer.from(sctx.nextProofKey).equals(p.receiverProofKey),
        "SCTX_RECEIVER",
        "the sender's statechain transaction does not transfer to this receiver",
      );
      verifyStatechainTx(sctx, coin.proofKey, coin.stateHash);
      check(
        p.transferKeys.length > 0,
        "NO_TRANSFER_KEY",
        "ask for an attested transfer key (TransferReceiverInit) first",
        "precondition",
      );

      // t2 = Dec(transfer key): try the keys handed out for this transfer, newest first.
      let t2: Uint8Array | undefined;
      let usedKey: Buffer | undefined;
      for (const k of [...p.transferKeys].reverse()) {
        try {
          t2 = k.secret.use((sk) => eciesDecrypt(sk, req.encryptedT2, "encrypted t2"));
          usedKey = k.publicKey;
          break;
        } catch {
          // not this key
        }
      }
      check(
        t2 && usedKey,
        "T2_DECRYPT",
        "encrypted t2 does not decrypt under any transfer key this enclave handed out",
      );
      check(t2.length === 32, "T2_INVALID", "t2 must be a 32-byte scalar");
      const oldKey = coin.key;
      const s2 = coin.key.share && p.x1.use((x1) => rotateShare(oldKey.share, x1, t2!, this.d.rng));
      t2.fill(0);
      // Fixed-share keygen for the receiver; checks s2·O2 = P first. Nothing is erased if it fails.
      // The Paillier key set aside with the transfer key (or, without one, from the pool) becomes the new key's;
      // a refused attempt leaves it set aside, unless it got used.
      const paillier = p.paillier ?? this.d.pool.take();
      p.paillier = undefined;
      let fresh: Awaited<ReturnType<typeof p1KeyGenFixed>>;
      try {
        fresh = await p1KeyGenFixed({
          sessionId: req.keygenSessionId,
          share: s2,
          ownerShare: req.ownerShare,
          sharedPublicKey: coin.sharedPublicKey!,
          paillier,
          rng: this.d.rng,
          ringPedersenCache: this.d.ringPedersenCache,
        });
      } catch (err) {
        if (paillier?.used) wipePaillierKey(paillier);
        else p.paillier = paillier;
        throw err;
      } finally {
        s2.fill(0);
      }
      const newIndex = p.newOwnerIndex;
      const newState = keep(nextState(sctx));
      const idBytes = statechainIdBytes(coin.outpoint!);
      const oldS = pointBytes(oldKey.sePublicShare);
      const now = this.d.now();
      const logEntry = { type: "key-update", subject: coin.idHex!, detail: { to: newIndex }, at: now };
      const receipt = encodeReceipt({
        type: "key-update",
        statechain: idBytes,
        epoch: newIndex,
        erased: erasedShareCommitment(oldS),
        S2: pointBytes(fresh.key.sePublicShare),
        prev: this.lastReceipt,
        log: this.d.log.peek(logEntry),
        time: now,
      });
      let doc: Uint8Array;
      try {
        doc = await this.d.provider.attest({
          nonce: req.nonce,
          userData: receiptHash(receipt),
          publicKey: usedKey,
        });
      } catch (err) {
        wipeKey(fresh.key);
        throw err;
      }
      // Commit: from here on nothing awaits, so the erasure and the new state happen together.
      this.d.log.append(logEntry);
      this.lastReceipt = receiptHash(receipt);
      wipeKey(oldKey);
      wipePending(p);
      stateChanged(coin);
      coin.answers.clear();
      coin.key = compactKey(fresh.key);
      coin.pending = undefined;
      coin.ownerIndex = newIndex;
      coin.proofKey = p.receiverProofKey;
      coin.backupKey = p.receiverBackupKey;
      coin.stateHash = newState;
      const keyUpdate: KeyUpdateRecord = {
        ownerIndex: newIndex,
        receipt: Buffer.from(receipt),
        attestationDocument: Buffer.from(doc),
        attestationNonce: req.nonce,
      };
      this.scrubOwed(); // BigInt copies of the new share s2 and of the new Paillier factors
      const response = { seShare: fresh.msg, keyUpdate, stateHash: newState };
      coin.lastKeyUpdate = { ownerIndex: newIndex, response };
      return response;
    });
  }

  /** The last key update's answer (public), for a host that lost it in a crash (DESIGN.md 3.3: never neither). */
  async getKeyUpdate(r: E.GetKeyUpdateRequest): Promise<E.GetKeyUpdateResponse> {
    const coin = this.fundedCoin(r.statechainId);
    const last = coin.lastKeyUpdate;
    check(last, "NO_KEY_UPDATE", "the enclave keeps no key update answer for this coin now", "not_found");
    return { ownerIndex: last.ownerIndex, result: last.response };
  }

  // ------------------------------------------------------------------------------------------------------
  // withdrawal

  async withdrawInit(r: E.WithdrawInitRequest): Promise<E.WithdrawInitResponse> {
    const { req, verify, hash } = readSigned(
      WithdrawInitRequest,
      "WithdrawInit",
      r.signedRequest,
      this.d.now(),
    );
    const coin = this.fundedCoin(req.statechainId);
    return this.step(coin, "withdrawInit", hash, async () => {
      verify(coin.proofKey);
      check(
        coin.key && !coin.key.tainted,
        "KEY_TAINTED",
        "this key is tainted; a withdrawal needs a fresh key after operator review",
        "precondition",
      );
      const sctx = req.statechainTx;
      check(
        sctx && sctx.kind === StatechainTxKind.STATECHAIN_TX_KIND_WITHDRAW,
        "SCTX_KIND",
        "statechain transaction must be a WITHDRAW",
      );
      verifyStatechainTx(sctx, coin.proofKey, coin.stateHash);
      const encoded = Buffer.from(sctx.signature);
      if (coin.withdraw) {
        check(
          coin.withdraw.statechainTx.equals(encoded),
          "WITHDRAW_STARTED",
          "a different withdrawal is already under way",
          "precondition",
        );
      } else {
        // A transfer that never completed is abandoned: its x1 and transfer keys are erased.
        wipePending(coin.pending);
        coin.pending = undefined;
        stateChanged(coin);
        coin.withdraw = {
          statechainTx: encoded,
          withdrawScript: keep(sctx.withdrawScript),
          closingState: keep(nextState(sctx)),
          signedTxids: new Set(),
        };
        this.d.log.append({ type: "withdraw-init", subject: coin.idHex!, at: this.d.now() });
      }
      return {
        feeSat: this.seFee(coin),
        feeAddress: this.d.policy.feeScript,
        stateHash: coin.withdraw.closingState,
      };
    });
  }

  async closeStatechain(r: E.CloseStatechainRequest): Promise<E.CloseStatechainResponse> {
    const id = r.statechainId;
    check(id && id.txid.length === 32, "INVALID_OUTPOINT", "statechain id is missing or malformed");
    const idHex = idHexOf(id);
    const done = this.coins.closed.get(idHex) as E.CloseStatechainResponse | undefined;
    if (done) return done;
    const coin = this.fundedCoin(id);
    return this.mutex.run(coin.depositId.toString("hex"), async () => {
      const w = coin.withdraw;
      check(w, "WITHDRAW_NOT_STARTED", "this statechain has no withdrawal", "precondition");
      check(r.withdrawalTxid.length === 32, "INVALID_TXID", "withdrawal txid must be 32 bytes");
      check(
        w.signedTxids.has(hex(r.withdrawalTxid)),
        "WITHDRAW_TXID",
        "the enclave co-signed no withdrawal with this txid for this statechain",
        "precondition",
      );
      const now = this.d.now();
      const logEntry = { type: "erasure", subject: idHex, at: now };
      const receipt = encodeReceipt({
        type: "erasure",
        statechain: statechainIdBytes(coin.outpoint!),
        epoch: coin.ownerIndex,
        erased: erasedShareCommitment(pointBytes(coin.key!.sePublicShare)),
        S2: null,
        prev: this.lastReceipt,
        log: this.d.log.peek(logEntry),
        time: now,
      });
      const nonce = randomBytes(32);
      const doc = await this.d.provider.attest({ nonce, userData: receiptHash(receipt) });
      this.d.log.append(logEntry);
      this.lastReceipt = receiptHash(receipt);
      wipeCoin(coin);
      coin.stage = "closed";
      this.coins.remove(coin);
      const res: E.CloseStatechainResponse = {
        erasure: {
          ownerIndex: coin.ownerIndex,
          receipt: Buffer.from(receipt),
          attestationDocument: Buffer.from(doc),
          attestationNonce: nonce,
        },
      };
      this.coins.closed.set(idHex, res);
      this.scrubDue = true; // a full scrub before this answer, due or not (closing is rare)
      this.scrubNow();
      return res;
    });
  }

  /** Forgets deposits that never got funded (each holds keygen state and possibly a Paillier key). */
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

  handlers(): Record<string, (req: never) => Promise<unknown>> {
    const names = [
      "getStatus",
      "getAttestation",
      "listStatechains",
      "keyGenInit",
      "keyGenFinish",
      "bindFunding",
      "signFirst",
      "signSecond",
      "transferInit",
      "transferKey",
      "keyUpdate",
      "getKeyUpdate",
      "withdrawInit",
      "closeStatechain",
    ] as const;
    return Object.fromEntries(
      names.map((n) => [n, (req: never) => (this[n] as (r: never) => Promise<unknown>).call(this, req)]),
    );
  }
}
