// The owner's side of the protocol (DESIGN.md 3.2–3.4): deposit, send and withdraw against an SE, and the
// co-signing they share (receiving is receive.ts). Storage, key derivation and the CLI build on these flows;
// they hold keys only in the objects they return.

import { secp256k1 } from "@noble/curves/secp256k1.js";
import * as bitcoin from "bitcoinjs-lib";
import type { PcrPolicy } from "../attestation/pcr-policy.ts";
import type { VerificationResult } from "../attestation/verify.ts";
import { type ChainBackend, ChainError } from "../chain/backend.ts";
import {
  BackupMode,
  type Outpoint,
  SignPurpose,
  StatechainStatus,
  type StatechainTx,
} from "../proto/gen/common.ts";
import { type GetInfoResponse, TransferMessage } from "../proto/gen/statechain.ts";
import {
  type HolderKey,
  holderKeyGenCommit,
  holderKeyGenFinish,
  holderSignCommit,
  holderSignFinish,
  holderSignNonce,
} from "../protocol/ecdsa2p/holder.ts";
import { generatePaillierKey, type PaillierKey, wipePaillierKey } from "../protocol/ecdsa2p/paillier.ts";
import { decrypt as eciesDecrypt, encrypt as eciesEncrypt } from "../protocol/ecies.ts";
import { N, parsePoint, parseScalar, pointBytes, scalarBytes } from "../protocol/encoding.ts";
import { check, ProtocolError } from "../protocol/errors.ts";
import type { MainstayKeyParams } from "../protocol/mainstay.ts";
import { solvePow } from "../protocol/pow.ts";
import type { Rng } from "../protocol/rng.ts";
import { signTransfer, signWithdraw, verifyChain } from "../protocol/statechain.ts";
import {
  buildBackupTx,
  buildFundingTx,
  buildKickoffTx,
  buildWithdrawalTx,
  MAX_FUNDING_TX_BYTES,
  signedFundingSize,
  type WalletUtxo,
} from "../protocol/tx/build.ts";
import { parseTx, txidOf, txidToHex } from "../protocol/tx/parse.ts";
import { bip143Digest, finalizeP2wpkhInput, type OwnInput, signP2wpkhInputs } from "../protocol/tx/sign.ts";
import { enclaveIdentity } from "./attested-policy.ts";
import { refuse, type SeClient } from "./se-client.ts";

export interface AttestationTrust {
  /** Trust the pinned AWS Nitro root (default true). */
  aws?: boolean;
  /** A simulator root the owner chose to trust; verdicts then say SIMULATOR. */
  simulatorRootPem?: string;
  pcrPolicy?: PcrPolicy;
  allowDebug?: boolean;
}

/** A keygen's owner-side secrets: the coin's Paillier key, and its share o when derived (else it is drawn). */
export interface KeygenSecrets {
  paillier: PaillierKey;
  share?: Uint8Array;
}

export interface OwnerContext {
  se: SeClient;
  chain: ChainBackend;
  network: bitcoin.Network;
  rng: Rng;
  now: () => number;
  /**
   * A fresh Paillier key for a new coin (deposit or receive): the owner is the Paillier holder (DESIGN.md 3.1),
   * with one key per coin, and the coin's share o derived beside it. A wallet hands out keys it prepared ahead
   * (both come from its seed, so a restore rebuilds them); without one a key is made on the spot and o drawn.
   */
  paillierKey?: () => Promise<KeygenSecrets>;
  /**
   * Starts making the key the next paillierKey() will return, without claiming it: a flow calls it when it
   * starts and paillierKey() only once its checks passed, so a coin refused early uses up no key.
   */
  preparePaillierKey?: () => void;
  /**
   * Called when a signature failed its final verification, before anything else happens: the caller records
   * the coin as tainted durably (its share and Paillier key never sign again; it leaves by its backup).
   */
  onTaint?: (statechainId: Outpoint, reason: string) => Promise<void>;
  trust: AttestationTrust;
  feeRateSatVb: number;
  /** The Mainstay service's attestation key, from the wallet's trust store (never the SE's GetInfo). */
  mainstayKey?: MainstayKeyParams;
  /** Confirmations a coin's funding needs, whatever the SE attests (default 3 on mainnet, 1 elsewhere; 0 only on regtest). */
  minConfirmations?: number;
  /** Highest fee rate (sat/vB) of a backup or kick-off this wallet accepts from a sender (default 50). */
  maxBackupFeeRateSatVb?: number;
  /** The Mainstay slot the SE publishes to, from the wallet's trust store (recorded when it trusted the SE). */
  mainstaySlot?: number;
  /**
   * Accept coins whose state the SE shows no proof of publication for (an SE running without Mainstay): they
   * are marked "unpublished". Off by default: such coins are refused.
   */
  allowUnpublished?: boolean;
  onProgress?: (event: string, detail?: Record<string, unknown>) => void;
}

/** A coin the wallet owns (or owned): everything needed to co-sign, hand over, or exit by backup. */
export interface OwnedCoin {
  statechainId: Outpoint;
  amountSat: bigint;
  sharedPublicKey: Buffer;
  ownerIndex: number;
  initialLock: number;
  backupMode: "absolute" | "kickoff";
  interval: number;
  proofSecret: Buffer;
  backupSecret: Buffer;
  key: HolderKey;
  fundingTx: Buffer;
  /** This owner's backup, fully signed. */
  backupTx: Buffer;
  /** The earlier owners' backups, oldest first. */
  backupHistory: Buffer[];
  kickoffTx?: Buffer;
  /** Set by a receive: whether the coin's state was provably published when it was received. */
  publication?: "published" | "unpublished";
  /** Attestation verdicts of the key updates this wallet checked. */
  attestations: VerificationResult[];
}

export interface ReceiverIdentity {
  proofSecret: Uint8Array;
  backupSecret: Uint8Array;
}

export const pub = (sk: Uint8Array): Buffer => Buffer.from(secp256k1.getPublicKey(sk, true));

export function randomSecret(rng: Rng): Buffer {
  return Buffer.from(secp256k1.utils.randomSecretKey(rng(48)));
}

const progress = (ctx: OwnerContext, event: string, detail?: Record<string, unknown>) =>
  ctx.onProgress?.(event, detail);

/** The lock owner n's backup carries (absolute: block height; kick-off: relative blocks). */
export const lockFor = (initialLock: number, interval: number, ownerIndex: number): number =>
  initialLock - (ownerIndex - 1) * interval;

// -------------------------------------------------------------------------------------------------------------
// co-signing

/**
 * Runs a keygen flow with the coin's fresh Paillier key. The flow calls `key()` where it needs the key, once its
 * checks passed; the key is made meanwhile (a wallet's prepared one, or one started now). If the flow fails
 * before it hands the key over (`handOver()`: to a hook that persists it, a prepared key update, a returned coin),
 * the key is wiped once made: it never serves another coin. After the hand-over the key is the caller's: a key
 * update left unanswered is finished with it later.
 */
export async function withFreshPaillierKey<T>(
  ctx: OwnerContext,
  flow: (key: () => Promise<KeygenSecrets>, handOver: () => void) => Promise<T>,
): Promise<T> {
  // Without a wallet's keys, one is made now, beside the flow's checks; a wallet prepares its slot's next key.
  const early = ctx.paillierKey
    ? undefined
    : generatePaillierKey({ rng: ctx.rng }).then((paillier): KeygenSecrets => ({ paillier }));
  early?.catch(() => {});
  if (ctx.paillierKey) ctx.preparePaillierKey?.();
  let taken: Promise<KeygenSecrets> | undefined;
  const key = () => {
    taken ??= early ?? ctx.paillierKey!();
    taken.catch(() => {});
    return taken;
  };
  let handedOver = false;
  try {
    return await flow(key, () => {
      handedOver = true;
    });
  } catch (e) {
    if (!handedOver)
      (taken ?? early)?.then(
        (k) => {
          wipePaillierKey(k.paillier);
          k.share?.fill(0);
        },
        () => {},
      );
    throw e;
  }
}

/**
 * Runs the signing rounds for `raw` (DESIGN.md 3.1): commitment, the enclave's nonce, the opening; the enclave
 * releases c3 signed under its attested instance key, which is checked before c3 is decrypted; the owner
 * finishes and verifies the signature and hands it to the SE (SignComplete). Returns `raw` with the co-signed
 * input finalised. A signature that fails its final verification taints the coin (ctx.onTaint) and throws.
 */
export async function coSign(
  ctx: OwnerContext,
  coin: Pick<OwnedCoin, "statechainId" | "sharedPublicKey" | "key" | "proofSecret">,
  purpose: SignPurpose,
  raw: Uint8Array,
  spendAmountSat: bigint,
): Promise<Buffer> {
  const digest = bip143Digest(raw, 0, coin.sharedPublicKey, spendAmountSat);
  const sessionId = Buffer.from(ctx.rng(16));
  const { state, msg } = holderSignCommit(coin.key, { sessionId, digest, rng: ctx.rng });
  // The identity is fetched beside SignFirst, but the SE's answer to SignFirst comes first: a refusal there (say,
  // a coin that is exit-only since an enclave restart) is the reason the user must see, not a failed fetch of the
  // restarted enclave's identity, which the refusal makes moot.
  const identityP = enclaveIdentity(ctx);
  identityP.catch(() => {});
  const first = await ctx.se.call(
    "signFirst",
    {
      statechainId: coin.statechainId,
      purpose,
      tx: Buffer.from(raw),
      inputIndex: 0,
      ownerCommit: msg,
      auth: undefined,
      sessionId,
    },
    coin.proofSecret,
  );
  const identity = await identityP;
  refuse(
    Buffer.from(first.digest).equals(Buffer.from(digest)),
    "DIGEST_MISMATCH",
    "the SE computed a different digest for this transaction",
  );
  const opening = holderSignNonce(coin.key, state, first.seNonce!, { rng: ctx.rng });
  const second = await ctx.se.call(
    "signSecond",
    { statechainId: coin.statechainId, sessionId, ownerNonce: opening, auth: undefined },
    coin.proofSecret,
  );
  const out = holderSignFinish(coin.key, state, second.sePartial!, { instanceKey: identity.instanceKey });
  if (!out.ok) {
    // Written down before anything else (CVE-2023-33242): this share and Paillier key never sign again.
    await ctx.onTaint?.(coin.statechainId, out.reason);
    throw new ProtocolError("KEY_TAINTED", out.reason, "precondition");
  }
  await ctx.se.call("signComplete", {
    statechainId: coin.statechainId,
    sessionId,
    signature: Buffer.from(out.signature.compact),
  });
  return Buffer.from(
    finalizeP2wpkhInput(raw, 0, out.signature.compact, coin.sharedPublicKey, spendAmountSat),
  );
}

// -------------------------------------------------------------------------------------------------------------
// deposit

export interface DepositOptions {
  amountSat: bigint;
  /** The wallet's own P2WPKH coins and their keys. */
  utxos: ReadonlyArray<WalletUtxo & { privateKey: Uint8Array }>;
  changeScript: Uint8Array;
  proofSecret?: Uint8Array;
  backupSecret?: Uint8Array;
  /** A prepaid deposit token, for an SE whose deposit guard is "token". */
  token?: string;
  /** Runs with the complete coin (share, backup) before the funding is broadcast: persist it here. */
  beforeBroadcast?: (coin: OwnedCoin) => Promise<void>;
}

export function deposit(ctx: OwnerContext, opts: DepositOptions): Promise<OwnedCoin> {
  return withFreshPaillierKey(ctx, (paillier, handOver) => depositWith(ctx, opts, paillier, handOver));
}

async function depositWith(
  ctx: OwnerContext,
  opts: DepositOptions,
  secrets: () => Promise<KeygenSecrets>,
  handOver: () => void,
): Promise<OwnedCoin> {
  // Locks and intervals as the enclave attests them (audit #18.5), with its ring-Pedersen parameters and
  // instance key; checked while the deposit goes on. The coin's own Paillier key meanwhile (made ahead, or now).
  const attested = enclaveIdentity(ctx, { fresh: true });
  attested.catch(() => {});
  const info = await ctx.se.call("getInfo", {});
  checkNetwork(ctx, info);
  const c1 = Buffer.from(opts.proofSecret ?? randomSecret(ctx.rng));
  const b1 = Buffer.from(opts.backupSecret ?? randomSecret(ctx.rng));
  const C1 = pub(c1);
  // The funding's size before anything is asked of the SE: a transfer message carries it (#19.5). The shared key
  // is not known yet; any key gives the same size (C1 stands in). A funding that cannot be built at all is
  // reported where it always was, by the real build after key generation.
  let draft: { raw: Uint8Array; inputs: unknown[] } | undefined;
  try {
    draft = buildFundingTx({
      utxos: opts.utxos,
      amountSat: opts.amountSat,
      sharedPublicKey: C1,
      changeScript: opts.changeScript,
      feeRateSatVb: ctx.feeRateSatVb,
    });
  } catch {
    draft = undefined;
  }
  const size = draft ? signedFundingSize(draft.raw.length, draft.inputs.length) : 0;
  refuse(
    !draft || size <= MAX_FUNDING_TX_BYTES,
    "FUNDING_TOO_LARGE",
    `the funding would spend ${draft?.inputs.length} on-chain coins (about ${size} bytes, more than ${MAX_FUNDING_TX_BYTES}): every transfer of the coin carries its funding transaction, so such a coin could never be sent; consolidate the wallet's on-chain coins first (send them to the wallet's own address) or deposit less`,
  );
  let guard:
    | { $case: "pow"; value: { challenge: Buffer; solution: Buffer } }
    | { $case: "token"; value: string }
    | undefined;
  if (info.depositGuard === "token") {
    refuse(opts.token, "DEPOSIT_TOKEN", "this SE takes deposits with a prepaid token only; none was given");
    guard = { $case: "token", value: opts.token };
  } else if (info.depositGuard === "pow") {
    const ch = await ctx.se.call("getDepositChallenge", {});
    progress(ctx, "pow", { bits: ch.difficultyBits });
    guard = {
      $case: "pow",
      value: {
        challenge: ch.challenge,
        solution: Buffer.from(solvePow(ch.challenge, C1, ch.difficultyBits)),
      },
    };
  }
  progress(ctx, "keygen");
  const keygenSessionId = Buffer.from(ctx.rng(16));
  const { paillier, share } = await secrets();
  const h1 = holderKeyGenCommit({
    sessionId: keygenSessionId,
    paillier,
    ringPedersen: (await attested).ringPedersen,
    share,
    rng: ctx.rng,
  });
  share?.fill(0); // the state keeps its own copy
  const init = await ctx.se.call(
    "depositInit",
    { proofKey: C1, guard, auth: undefined, holderCommit: h1.msg, keygenSessionId },
    c1,
  );
  const { key, msg } = holderKeyGenFinish(h1.state, init.seShare!, { rng: ctx.rng });
  const kg = await ctx.se.call(
    "depositKeyGen",
    { depositId: init.depositId, ownerShare: msg, auth: undefined },
    c1,
  );
  const P = Buffer.from(pointBytes(key.sharedPublicKey));
  refuse(
    P.equals(kg.sharedPublicKey),
    "SHARED_KEY_MISMATCH",
    "the SE reports a different shared key than the key generation gives",
  );

  const funding = buildFundingTx({
    utxos: opts.utxos,
    amountSat: opts.amountSat,
    sharedPublicKey: P,
    changeScript: opts.changeScript,
    feeRateSatVb: ctx.feeRateSatVb,
  });
  const ownInputs: OwnInput[] = funding.inputs.map((u, inputIndex) => ({
    inputIndex,
    prevout: { script: u.script, valueSat: u.valueSat },
    privateKey: opts.utxos.find((x) => x.txid === u.txid && x.vout === u.vout)!.privateKey,
  }));
  const fundingTx = Buffer.from(signP2wpkhInputs(funding.raw, ownInputs));
  const bound = await ctx.se.call(
    "depositFund",
    { depositId: init.depositId, fundingTx, vout: funding.fundingVout, backupKey: pub(b1), auth: undefined },
    c1,
  );
  const id = bound.statechainId!;
  refuse(
    Buffer.from(id.txid).equals(Buffer.from(funding.txid)) && id.vout === funding.fundingVout,
    "STATECHAIN_ID",
    "the SE bound a different outpoint",
  );
  const mode = bound.backupMode === BackupMode.BACKUP_MODE_KICKOFF ? "kickoff" : "absolute";
  const policy = await attested;
  refuse(
    mode === policy.backupMode,
    "BACKUP_MODE",
    `the SE says ${mode} backups, its enclave attests ${policy.backupMode}`,
  );
  const tip = await ctx.chain.tipHeight();
  if (mode === "absolute") {
    refuse(
      bound.initialLock > tip + policy.lockSafetyMargin && bound.initialLock <= tip + policy.initLock + 6,
      "INITIAL_LOCK",
      `the SE set h0 = ${bound.initialLock}, not about tip ${tip} + ${policy.initLock}`,
    );
  } else
    refuse(
      bound.initialLock === policy.initLock,
      "INITIAL_LOCK",
      `the SE set the relative lock ${bound.initialLock}, its enclave attests ${policy.initLock}`,
    );
  const coin: OwnedCoin = {
    statechainId: id,
    amountSat: opts.amountSat,
    sharedPublicKey: P,
    ownerIndex: 1,
    initialLock: bound.initialLock,
    backupMode: mode,
    interval: policy.locktimeInterval,
    proofSecret: c1,
    backupSecret: b1,
    key,
    fundingTx,
    backupTx: Buffer.alloc(0),
    backupHistory: [],
    attestations: [],
  };
  progress(ctx, "backup");
  let spend = { txid: funding.txid, vout: funding.fundingVout };
  let spendAmount = opts.amountSat;
  if (mode === "kickoff") {
    const k = buildKickoffTx({
      outpoint: spend,
      amountSat: opts.amountSat,
      sharedPublicKey: P,
      feeRateSatVb: ctx.feeRateSatVb,
    });
    coin.kickoffTx = await coSign(ctx, coin, SignPurpose.SIGN_PURPOSE_KICKOFF, k.raw, opts.amountSat);
    spend = { txid: k.txid, vout: 0 };
    spendAmount = k.outputAmountSat;
  }
  const backup = buildBackupTx({
    mode,
    spend,
    spendAmountSat: spendAmount,
    backupKey: pub(b1),
    lock: lockFor(bound.initialLock, policy.locktimeInterval, 1),
    feeRateSatVb: ctx.feeRateSatVb,
  });
  coin.backupTx = await coSign(ctx, coin, SignPurpose.SIGN_PURPOSE_BACKUP, backup.raw, spendAmount);
  handOver(); // the coin, its key with it, is the caller's from here (a failed broadcast can be repeated)
  await opts.beforeBroadcast?.(coin);
  progress(ctx, "broadcast", { txid: funding.txidHex });
  await broadcastIdempotent(ctx.chain, fundingTx);
  return coin;
}

/** Asks the SE until the deposit is ACTIVE; `onWait` runs between polls (tests mine a block there). */
export async function confirmDeposit(
  ctx: OwnerContext,
  coin: OwnedCoin,
  opts: { pollMs?: number; timeoutMs?: number; onWait?: () => Promise<void> } = {},
): Promise<void> {
  const deadline = ctx.now() + (opts.timeoutMs ?? 30 * 60_000);
  for (;;) {
    const r = await ctx.se.call(
      "depositConfirm",
      { statechainId: coin.statechainId, auth: undefined },
      coin.proofSecret,
    );
    progress(ctx, "confirmations", { tx: "funding", have: r.confirmations, need: r.requiredConfirmations });
    if (r.status === StatechainStatus.STATECHAIN_STATUS_ACTIVE) return;
    check(ctx.now() < deadline, "DEPOSIT_TIMEOUT", "the deposit did not confirm in time", "precondition");
    if (opts.onWait) await opts.onWait();
    else await new Promise((res) => setTimeout(res, opts.pollMs ?? 5000));
  }
}

/** Broadcasts `raw`; a transaction the network already has counts as sent. Resolves with its txid. */
export async function broadcastIdempotent(chain: ChainBackend, raw: Uint8Array): Promise<string> {
  try {
    return await chain.broadcast(raw);
  } catch (e) {
    if (e instanceof ChainError && e.code === "already-known") return txidToHex(txidOf(parseTx(raw)));
    throw e;
  }
}

export function checkNetwork(ctx: OwnerContext, info: GetInfoResponse): void {
  const expected =
    ctx.network.bech32 === "bc" ? "bitcoin" : ctx.network.bech32 === "bcrt" ? "regtest" : undefined;
  refuse(
    !expected || info.network === expected,
    "NETWORK",
    `the SE runs on ${info.network}, this wallet on ${expected}`,
  );
}

// -------------------------------------------------------------------------------------------------------------
// transfer: sender

export interface ReceiverAddress {
  proofKey: Uint8Array;
  backupKey: Uint8Array;
}

/** Hands `coin` to `to` (DESIGN.md 3.3 steps 2–5). The coin is the receiver's once it completes its key update. */
export async function send(ctx: OwnerContext, coin: OwnedCoin, to: ReceiverAddress): Promise<void> {
  parsePoint(to.proofKey, "receiver proof key");
  parsePoint(to.backupKey, "receiver backup key");
  const sc = await ctx.se.call("getStatechain", { statechainId: coin.statechainId });
  const chain = verifyChain(sc.depositProofKey, sc.chain);
  refuse(
    Buffer.from(chain.currentKey).equals(pub(coin.proofSecret)),
    "NOT_OWNER",
    "the SE's statechain says this wallet is not the current owner",
  );
  progress(ctx, "transfer-init");
  const init = await ctx.se.call(
    "transferSenderInit",
    {
      statechainId: coin.statechainId,
      receiverProofKey: Buffer.from(to.proofKey),
      receiverBackupKey: Buffer.from(to.backupKey),
      auth: undefined,
    },
    coin.proofSecret,
  );
  const newIndex = coin.ownerIndex + 1;
  refuse(
    init.newOwnerIndex === newIndex,
    "OWNER_INDEX",
    `the SE names owner ${init.newOwnerIndex}, expected ${newIndex}`,
  );
  const lock = lockFor(coin.initialLock, coin.interval, newIndex);
  refuse(
    init.backupLock === lock,
    "BACKUP_LOCK",
    `the SE asks for lock ${init.backupLock}, the coin's schedule gives ${lock}`,
  );
  const x1 = eciesDecrypt(coin.proofSecret, init.encryptedX1, "encrypted x1");
  const t1 = scalarBytes((parseScalar(coin.key.share, "owner share") * parseScalar(x1, "x1")) % N);
  x1.fill(0);
  const { spend, amount } = backupInput(coin);
  const backup = buildBackupTx({
    mode: coin.backupMode,
    spend,
    spendAmountSat: amount,
    backupKey: to.backupKey,
    lock,
    feeRateSatVb: ctx.feeRateSatVb,
  });
  progress(ctx, "backup", { for: "the receiver", lock });
  const signedBackup = await coSign(ctx, coin, SignPurpose.SIGN_PURPOSE_BACKUP, backup.raw, amount);
  const sctx = signTransfer(coin.proofSecret, chain.currentState, to.proofKey, ctx.rng);
  const message = TransferMessage.encode({
    statechainId: coin.statechainId,
    t1: Buffer.from(t1),
    backupTx: signedBackup,
    backupHistory: [...coin.backupHistory, coin.backupTx],
    kickoffTx: coin.kickoffTx ?? Buffer.alloc(0),
    statechainTx: sctx,
    fundingTx: coin.fundingTx,
    amountSat: coin.amountSat,
    seEndpoint: ctx.se.endpoint,
  }).finish();
  t1.fill(0);
  progress(ctx, "transfer-send");
  await ctx.se.call(
    "transferSend",
    {
      statechainId: coin.statechainId,
      statechainTx: sctx,
      encryptedMessage: Buffer.from(eciesEncrypt(to.proofKey, message)),
      auth: undefined,
    },
    coin.proofSecret,
  );
}

/** What a backup (and a withdrawal) spends: the statechain outpoint, or kick-off output 0 in kick-off mode. */
export function backupInput(coin: {
  backupMode: "absolute" | "kickoff";
  kickoffTx?: Uint8Array | undefined;
  statechainId: Outpoint;
  amountSat: bigint;
}) {
  if (coin.backupMode === "kickoff" && coin.kickoffTx?.length) {
    const k = parseTx(coin.kickoffTx, "kick-off");
    return { spend: { txid: txidOf(k), vout: 0 }, amount: k.outs[0]!.value };
  }
  return { spend: { txid: coin.statechainId.txid, vout: coin.statechainId.vout }, amount: coin.amountSat };
}

// -------------------------------------------------------------------------------------------------------------
// withdrawal

/** Withdraws `coin` to `destination` (a scriptPubKey); resolves with the withdrawal's txid once broadcast. */
export async function withdraw(
  ctx: OwnerContext,
  coin: OwnedCoin,
  destination: Uint8Array,
  hooks: {
    onSigned?: (tx: Buffer, txid: string) => Promise<void>;
    /** The WITHDRAW statement signed before (a retry sends the same one: the SE accepts it again, #19.3). */
    statement?: StatechainTx;
    /** Runs with the signed WITHDRAW statement before it is sent: the place to persist it. */
    onStatement?: (sctx: StatechainTx) => Promise<void>;
  } = {},
): Promise<{ txid: string; tx: Buffer }> {
  const sc = await ctx.se.call("getStatechain", { statechainId: coin.statechainId });
  const chain = verifyChain(sc.depositProofKey, sc.chain);
  refuse(
    Buffer.from(chain.currentKey).equals(pub(coin.proofSecret)),
    "NOT_OWNER",
    "the SE's statechain says this wallet is not the current owner",
  );
  const reuse =
    hooks.statement &&
    Buffer.from(hooks.statement.withdrawScript).equals(Buffer.from(destination)) &&
    Buffer.from(hooks.statement.previousState).equals(Buffer.from(chain.currentState));
  const sctx = reuse
    ? hooks.statement!
    : signWithdraw(coin.proofSecret, chain.currentState, destination, ctx.rng);
  if (!reuse) await hooks.onStatement?.(sctx);
  progress(ctx, "withdraw-init");
  const w = await ctx.se.call(
    "withdrawInit",
    { statechainId: coin.statechainId, statechainTx: sctx, auth: undefined },
    coin.proofSecret,
  );
  const seFee =
    w.feeSat > 0n
      ? { script: bitcoin.address.toOutputScript(w.feeAddress, ctx.network), amountSat: w.feeSat }
      : undefined;
  const { spend, amount } = await withdrawalInput(ctx, coin);
  const tx = buildWithdrawalTx({
    spend,
    spendAmountSat: amount,
    withdrawScript: destination,
    seFee,
    feeRateSatVb: ctx.feeRateSatVb,
  });
  progress(ctx, "cosign", { tx: "withdrawal" });
  const signed = await coSign(ctx, coin, SignPurpose.SIGN_PURPOSE_WITHDRAWAL, tx.raw, amount);
  await hooks.onSigned?.(signed, tx.txidHex);
  progress(ctx, "broadcast", { tx: "withdrawal", txid: tx.txidHex });
  await ctx.se.call(
    "withdrawConfirm",
    { statechainId: coin.statechainId, withdrawalTx: signed, auth: undefined },
    coin.proofSecret,
  );
  return { txid: tx.txidHex, tx: signed };
}

/**
 * What a withdrawal spends: the statechain outpoint while it is unspent; in kick-off mode, once the kick-off
 * is on chain, its output 0 (the enclave co-signs either, as at most one of them can ever be spent).
 */
async function withdrawalInput(ctx: OwnerContext, coin: OwnedCoin) {
  const direct = {
    spend: { txid: coin.statechainId.txid, vout: coin.statechainId.vout },
    amount: coin.amountSat,
  };
  if (coin.backupMode !== "kickoff" || !coin.kickoffTx?.length) return direct;
  const unspent = await ctx.chain.getUtxo(txidToHex(coin.statechainId.txid), coin.statechainId.vout);
  return unspent ? direct : backupInput(coin);
}

/** Asks the SE until the withdrawal is confirmed and the statechain closed. */
export async function confirmWithdrawal(
  ctx: OwnerContext,
  coin: OwnedCoin,
  opts: { timeoutMs?: number; onWait?: () => Promise<void>; pollMs?: number } = {},
): Promise<void> {
  const deadline = ctx.now() + (opts.timeoutMs ?? 30 * 60_000);
  for (;;) {
    const r = await ctx.se.call(
      "withdrawConfirm",
      { statechainId: coin.statechainId, withdrawalTx: Buffer.alloc(0), auth: undefined },
      coin.proofSecret,
    );
    progress(ctx, "confirmations", {
      tx: "withdrawal",
      have: r.confirmations,
      need: r.requiredConfirmations,
    });
    if (r.status === StatechainStatus.STATECHAIN_STATUS_CLOSED) return;
    check(ctx.now() < deadline, "WITHDRAW_TIMEOUT", "the withdrawal did not confirm in time", "precondition");
    if (opts.onWait) await opts.onWait();
    else await new Promise((res) => setTimeout(res, opts.pollMs ?? 5000));
  }
}
