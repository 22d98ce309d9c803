// The owner's side of the protocol (DESIGN.md 3.2–3.4): deposit, send, receive and withdraw against an SE,
// with every check an owner must make before trusting a coin. Storage, key derivation and the CLI build on
// these flows; they hold keys only in the objects they return.
import { createHash } from "node:crypto";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import * as bitcoin from "bitcoinjs-lib";
import type { PcrPolicy } from "../attestation/pcr-policy.ts";
import { decodeReceipt } from "../attestation/receipt.ts";
import { decodeTransferKeyStatement } from "../attestation/statements.ts";
import { type VerificationResult, verifyAttestation } from "../attestation/verify.ts";
import type { ChainBackend } from "../chain/backend.ts";
import { BackupMode, type Outpoint, SignPurpose, StatechainStatus } from "../proto/gen/common.ts";
import { type GetInfoResponse, TransferMessage } from "../proto/gen/statechain.ts";
import {
  type PartyTwoKey,
  p2KeyGenFinish,
  p2KeyGenShare,
  p2SignCommit,
  p2SignFinish,
  p2SignPartial,
  type RingPedersenKey,
} from "../protocol/ecdsa2p/index.ts";
import { decrypt as eciesDecrypt, encrypt as eciesEncrypt } from "../protocol/ecies.ts";
import { N, parsePoint, parseScalar, pointBytes, scalarBytes } from "../protocol/encoding.ts";
import { check } from "../protocol/errors.ts";
import { outpointString } from "../protocol/outpoint.ts";
import { solvePow } from "../protocol/pow.ts";
import type { Rng } from "../protocol/rng.ts";
import { verifySmtProof } from "../protocol/smt/index.ts";
import {
  signTransfer,
  signWithdraw,
  statechainIdBytes,
  statechainKey,
  verifyChain,
  verifyStatechainTx,
} from "../protocol/statechain.ts";
import {
  buildBackupTx,
  buildFundingTx,
  buildKickoffTx,
  buildWithdrawalTx,
  type WalletUtxo,
} from "../protocol/tx/build.ts";
import { parseTx, txidOf, txidToHex } from "../protocol/tx/parse.ts";
import { p2wpkhScript } from "../protocol/tx/script.ts";
import {
  bip143Digest,
  checkP2wpkhWitness,
  finalizeP2wpkhInput,
  type OwnInput,
  signP2wpkhInputs,
} from "../protocol/tx/sign.ts";
import { refuse, type SeClient } from "./se-client.ts";

export interface AttestationTrust {
  /** Trust the pinned AWS Nitro root (default true). */
  aws?: boolean;
  /** A simulator root the owner chose to trust; verdicts then say SIMULATOR. */
  simulatorRootPem?: string;
  pcrPolicy?: PcrPolicy;
  allowDebug?: boolean;
}

export interface OwnerContext {
  se: SeClient;
  chain: ChainBackend;
  network: bitcoin.Network;
  rng: Rng;
  now: () => number;
  /** The owner's ring-Pedersen parameters (generated once per wallet). */
  ringPedersen: RingPedersenKey;
  trust: AttestationTrust;
  feeRateSatVb: number;
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
  key: PartyTwoKey;
  fundingTx: Buffer;
  /** This owner's backup, fully signed. */
  backupTx: Buffer;
  /** The earlier owners' backups, oldest first. */
  backupHistory: Buffer[];
  kickoffTx?: Buffer;
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

/** Runs the two signing rounds for `raw` and returns it with the co-signed input finalised. */
export async function coSign(
  ctx: OwnerContext,
  coin: Pick<OwnedCoin, "statechainId" | "sharedPublicKey" | "key" | "proofSecret">,
  purpose: SignPurpose,
  raw: Uint8Array,
  spendAmountSat: bigint,
): Promise<Buffer> {
  const digest = bip143Digest(raw, 0, coin.sharedPublicKey, spendAmountSat);
  const sessionId = Buffer.from(ctx.rng(16));
  const { state, msg } = p2SignCommit(coin.key, { sessionId, digest, rng: ctx.rng });
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
  refuse(
    Buffer.from(first.digest).equals(Buffer.from(digest)),
    "DIGEST_MISMATCH",
    "the SE computed a different digest for this transaction",
  );
  const partial = p2SignPartial(coin.key, state, first.seNonce!, { rng: ctx.rng });
  const second = await ctx.se.call(
    "signSecond",
    { statechainId: coin.statechainId, sessionId, ownerPartial: partial, auth: undefined },
    coin.proofSecret,
  );
  const sig = p2SignFinish(coin.key, state, second.signature!);
  return Buffer.from(finalizeP2wpkhInput(raw, 0, sig.compact, coin.sharedPublicKey, spendAmountSat));
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
}

export async function deposit(ctx: OwnerContext, opts: DepositOptions): Promise<OwnedCoin> {
  const info = await ctx.se.call("getInfo", {});
  checkNetwork(ctx, info);
  const c1 = Buffer.from(opts.proofSecret ?? randomSecret(ctx.rng));
  const b1 = Buffer.from(opts.backupSecret ?? randomSecret(ctx.rng));
  const C1 = pub(c1);
  let guard: { $case: "pow"; value: { challenge: Buffer; solution: Buffer } } | undefined;
  if (info.depositGuard === "pow") {
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
  const init = await ctx.se.call("depositInit", { proofKey: C1, guard, auth: undefined }, c1);
  progress(ctx, "keygen");
  const { state, msg } = p2KeyGenShare({
    sessionId: init.depositId,
    commit: init.keygenCommit,
    ringPedersen: ctx.ringPedersen,
    rng: ctx.rng,
  });
  const kg = await ctx.se.call(
    "depositKeyGen",
    { depositId: init.depositId, ownerShare: msg, auth: undefined },
    c1,
  );
  const key = p2KeyGenFinish(state, kg.seShare!);
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
  const tip = await ctx.chain.tipHeight();
  if (mode === "absolute") {
    refuse(
      bound.initialLock > tip + info.lockSafetyMargin && bound.initialLock <= tip + info.initLock + 6,
      "INITIAL_LOCK",
      `the SE set h0 = ${bound.initialLock}, not about tip ${tip} + ${info.initLock}`,
    );
  }
  const coin: OwnedCoin = {
    statechainId: id,
    amountSat: opts.amountSat,
    sharedPublicKey: P,
    ownerIndex: 1,
    initialLock: bound.initialLock,
    backupMode: mode,
    interval: info.locktimeInterval,
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
    lock: lockFor(bound.initialLock, info.locktimeInterval, 1),
    feeRateSatVb: ctx.feeRateSatVb,
  });
  coin.backupTx = await coSign(ctx, coin, SignPurpose.SIGN_PURPOSE_BACKUP, backup.raw, spendAmount);
  progress(ctx, "broadcast", { txid: funding.txidHex });
  await ctx.chain.broadcast(fundingTx);
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
    progress(ctx, "confirmations", { have: r.confirmations, need: r.requiredConfirmations });
    if (r.status === StatechainStatus.STATECHAIN_STATUS_ACTIVE) return;
    check(ctx.now() < deadline, "DEPOSIT_TIMEOUT", "the deposit did not confirm in time", "precondition");
    if (opts.onWait) await opts.onWait();
    else await new Promise((res) => setTimeout(res, opts.pollMs ?? 5000));
  }
}

function checkNetwork(ctx: OwnerContext, info: GetInfoResponse): void {
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

function backupInput(coin: Pick<OwnedCoin, "backupMode" | "kickoffTx" | "statechainId" | "amountSat">) {
  if (coin.backupMode === "kickoff" && coin.kickoffTx?.length) {
    const k = parseTx(coin.kickoffTx, "kick-off");
    return { spend: { txid: txidOf(k), vout: 0 }, amount: k.outs[0]!.value };
  }
  return { spend: { txid: coin.statechainId.txid, vout: coin.statechainId.vout }, amount: coin.amountSat };
}

// -------------------------------------------------------------------------------------------------------------
// transfer: receiver

export interface IncomingTransfer {
  messageId: Buffer;
  statechainId: Outpoint;
  message: TransferMessage;
}

/** Reads and decrypts the transfer messages addressed to `id`'s proof key. */
export async function fetchIncoming(ctx: OwnerContext, id: ReceiverIdentity): Promise<IncomingTransfer[]> {
  const C2 = pub(id.proofSecret);
  const box = await ctx.se.call("mailboxGet", { receiverProofKey: C2, auth: undefined }, id.proofSecret);
  const out: IncomingTransfer[] = [];
  for (const item of box.items) {
    const plain = eciesDecrypt(id.proofSecret, item.encryptedMessage, "transfer message");
    let message: TransferMessage;
    try {
      message = TransferMessage.decode(plain);
    } catch {
      continue;
    }
    out.push({ messageId: item.messageId, statechainId: item.statechainId!, message });
  }
  return out;
}

/**
 * Checks an incoming coin as DESIGN.md 3.3 step 6 requires, completes the key update (steps 7–9) and returns
 * the coin. Any failed check refuses the coin with a ProtocolError naming it; nothing is sent to the SE before
 * the step-6 checks pass.
 */
export async function receive(
  ctx: OwnerContext,
  id: ReceiverIdentity,
  incoming: IncomingTransfer,
): Promise<OwnedCoin> {
  const C2 = pub(id.proofSecret);
  const B2 = pub(id.backupSecret);
  const m = incoming.message;
  const sid = incoming.statechainId;
  refuse(
    m.statechainId &&
      Buffer.from(m.statechainId.txid).equals(Buffer.from(sid.txid)) &&
      m.statechainId.vout === sid.vout,
    "MESSAGE_STATECHAIN",
    "the transfer message names another statechain",
  );
  const info = await ctx.se.call("getInfo", {});
  checkNetwork(ctx, info);
  const sc = await ctx.se.call("getStatechain", { statechainId: sid });
  refuse(
    sc.status === StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING,
    "STATECHAIN_STATE",
    `the statechain is not awaiting a transfer (status ${sc.status})`,
  );
  const P = Buffer.from(sc.sharedPublicKey);
  const amount = sc.amountSat;
  refuse(amount === m.amountSat, "AMOUNT", `the sender says ${m.amountSat} sat, the SE ${amount} sat`);

  // The funding output: exists, unspent, pays P2WPKH(P) with the amount, confirmed deeply enough.
  const funding = parseTx(m.fundingTx, "funding transaction");
  refuse(
    Buffer.from(txidOf(funding)).equals(Buffer.from(sid.txid)),
    "FUNDING_TX",
    "the funding transaction is not the statechain's",
  );
  const out = funding.outs[sid.vout];
  refuse(
    out && Buffer.from(out.script).equals(Buffer.from(p2wpkhScript(P))) && out.value === amount,
    "FUNDING_OUTPUT",
    "the funding output does not pay the shared key the stated amount",
  );
  const fundingTxid = txidToHex(sid.txid);
  const utxo = await ctx.chain.getUtxo(fundingTxid, sid.vout);
  refuse(utxo, "FUNDING_SPENT", `the coin ${outpointString(sid)} is not an unspent output on chain`);
  refuse(
    utxo.confirmations >= info.depositConfirmations,
    "FUNDING_UNCONFIRMED",
    `the funding has ${utxo.confirmations} confirmations, ${info.depositConfirmations} required`,
  );

  // The statechain: a valid chain from the deposit to the sender, extended by the sender's SCTx to us.
  const chain = verifyChain(sc.depositProofKey, sc.chain);
  refuse(!chain.closed, "STATECHAIN_CLOSED", "the statechain is closed");
  refuse(
    Buffer.from(chain.currentState).equals(Buffer.from(sc.stateHash)),
    "STATE_HASH",
    "the SE's state hash does not match its statechain",
  );
  const sctx = m.statechainTx;
  refuse(sctx, "SCTX_MISSING", "the transfer message has no statechain transaction");
  verifyStatechainTx(sctx, chain.currentKey, chain.currentState);
  refuse(
    Buffer.from(sctx.nextProofKey).equals(C2),
    "SCTX_RECEIVER",
    "the statechain transaction transfers to another proof key",
  );
  const newIndex = sc.ownerIndex + 1;
  refuse(
    sc.chain.length === sc.ownerIndex - 1,
    "OWNER_INDEX",
    "the statechain length does not match the owner index",
  );

  // Publication: the SMT holds the current state; a published root's proof and Mainstay proof verify.
  const proof = await ctx.se.call("getSmtProof", { statechainId: sid });
  const smtKey = statechainKey(sid);
  refuse(
    Buffer.from(proof.currentLeaf).equals(Buffer.from(sc.stateHash)),
    "SMT_LEAF",
    "the SE's tree does not hold the statechain's current state",
  );
  verifySmtProof(proof.currentRoot, smtKey, proof.currentLeaf, proof.currentProof!);
  if (proof.mainstay && proof.leaf.length > 0) {
    verifySmtProof(proof.root, smtKey, proof.leaf, proof.proof!);
    refuse(
      chain.states.some((s) => Buffer.from(s).equals(Buffer.from(proof.leaf))),
      "SMT_PUBLISHED_LEAF",
      "the published leaf is not a state of this statechain",
    );
  }

  // Backups: mine pays B2 with the next lock, is signed under P; every earlier one unlocks later than mine.
  const mode = sc.backupMode === BackupMode.BACKUP_MODE_KICKOFF ? "kickoff" : "absolute";
  const kickoffTx = m.kickoffTx.length > 0 ? Buffer.from(m.kickoffTx) : undefined;
  if (mode === "kickoff")
    refuse(kickoffTx, "KICKOFF_MISSING", "a kick-off mode coin came without its kick-off transaction");
  const { spend, amount: spendAmount } = backupInput({
    backupMode: mode,
    kickoffTx,
    statechainId: sid,
    amountSat: amount,
  });
  const interval = info.locktimeInterval;
  const checkBackup = (raw: Uint8Array, owner: number, payee?: Uint8Array) => {
    const tx = parseTx(raw, `backup of owner ${owner}`);
    refuse(
      tx.ins.length === 1 &&
        Buffer.from(tx.ins[0]!.hash).equals(Buffer.from(spend.txid)) &&
        tx.ins[0]!.index === spend.vout,
      "BACKUP_INPUT",
      `the backup of owner ${owner} does not spend the coin`,
    );
    const lock = lockFor(sc.initialLock, interval, owner);
    const got = mode === "absolute" ? tx.locktime : tx.ins[0]!.sequence;
    refuse(got === lock, "BACKUP_LOCK", `the backup of owner ${owner} has lock ${got}, expected ${lock}`);
    if (payee)
      refuse(
        tx.outs.length === 1 && Buffer.from(tx.outs[0]!.script).equals(Buffer.from(p2wpkhScript(payee))),
        "BACKUP_PAYEE",
        "my backup does not pay my backup key",
      );
    checkP2wpkhWitness(tx, 0, P, spendAmount);
    return lock;
  };
  const myLock = checkBackup(m.backupTx, newIndex, B2);
  refuse(
    m.backupHistory.length === sc.ownerIndex,
    "BACKUP_HISTORY",
    `expected ${sc.ownerIndex} earlier backups, got ${m.backupHistory.length}`,
  );
  m.backupHistory.forEach((raw, i) => {
    const lock = checkBackup(raw, i + 1);
    refuse(
      lock > myLock,
      "BACKUP_ORDER",
      `owner ${i + 1}'s backup unlocks at ${lock}, not after mine (${myLock})`,
    );
  });
  const tip = await ctx.chain.tipHeight();
  if (mode === "absolute")
    refuse(
      myLock > tip + info.lockSafetyMargin,
      "BACKUP_TOO_SOON",
      `my backup unlocks at ${myLock}, too close to the tip ${tip}`,
    );
  const t1 = parseScalar(m.t1, "t1");

  // Step 7: an attested transfer key from the enclave, then t2 = t1·o2⁻¹ encrypted to it.
  const nonce1 = Buffer.from(ctx.rng(32));
  const tk = await ctx.se.call(
    "transferReceiverInit",
    { statechainId: sid, receiverProofKey: C2, nonce: nonce1, auth: undefined },
    id.proofSecret,
  );
  const tkVerdict = verifyAttestation(tk.attestationDocument, {
    roots: { aws: ctx.trust.aws ?? true, simulatorRootPem: ctx.trust.simulatorRootPem },
    pcrPolicy: ctx.trust.pcrPolicy,
    allowDebug: ctx.trust.allowDebug,
    expectedNonce: nonce1,
    expectedUserData: createHash("sha256").update(tk.transferContext).digest(),
  });
  refuse(
    tkVerdict.valid,
    "TRANSFER_KEY_ATTESTATION",
    `the transfer key's attestation fails: ${tkVerdict.failures.map((f) => f.check).join(", ")}`,
  );
  const context = decodeTransferKeyStatement(tk.transferContext);
  refuse(
    Buffer.from(context.statechain).equals(Buffer.from(statechainIdBytes(sid))) &&
      context.epoch === newIndex &&
      Buffer.from(context.receiver).equals(C2),
    "TRANSFER_KEY_CONTEXT",
    "the attested transfer key is bound to another coin, owner or receiver",
  );
  const transferKey = tkVerdict.document?.publicKey;
  refuse(transferKey && transferKey.length === 33, "TRANSFER_KEY", "the attestation carries no transfer key");
  const o2 = parseScalar(randomSecret(ctx.rng), "o2");
  const t2 = scalarBytes((t1 * invert(o2)) % N);
  const encryptedT2 = Buffer.from(eciesEncrypt(transferKey, t2));
  t2.fill(0);
  const keygenSessionId = Buffer.from(ctx.rng(16));
  const { state, msg } = p2KeyGenShare({
    sessionId: keygenSessionId,
    ringPedersen: ctx.ringPedersen,
    rng: ctx.rng,
    share: scalarBytes(o2),
  });
  const nonce2 = Buffer.from(ctx.rng(32));
  const upd = await ctx.se.call(
    "transferReceiverKeyUpdate",
    {
      statechainId: sid,
      receiverProofKey: C2,
      ownerShare: msg,
      encryptedT2,
      nonce: nonce2,
      auth: undefined,
      keygenSessionId,
    },
    id.proofSecret,
  );

  // Step 9: the keygen proofs and o2·S2 = P, then the deletion attestation and its receipt.
  const key = p2KeyGenFinish(state, upd.seShare!, { expectedSharedKey: P });
  const rec = upd.keyUpdate!;
  const verdict = verifyAttestation(rec.attestationDocument, {
    roots: { aws: ctx.trust.aws ?? true, simulatorRootPem: ctx.trust.simulatorRootPem },
    pcrPolicy: ctx.trust.pcrPolicy,
    allowDebug: ctx.trust.allowDebug,
    expectedNonce: nonce2,
    receipt: rec.receipt,
  });
  refuse(
    verdict.valid,
    "DELETION_ATTESTATION",
    `the deletion attestation fails: ${verdict.failures.map((f) => `${f.check} (${f.message})`).join(", ")}`,
  );
  const receipt = decodeReceipt(rec.receipt);
  refuse(
    receipt.type === "key-update" &&
      Buffer.from(receipt.statechain).equals(Buffer.from(statechainIdBytes(sid))) &&
      receipt.epoch === newIndex &&
      receipt.S2 !== null &&
      Buffer.from(receipt.S2).equals(Buffer.from(upd.seShare!.publicShare)),
    "RECEIPT",
    "the deletion receipt does not describe this key update",
  );
  return {
    statechainId: sid,
    amountSat: amount,
    sharedPublicKey: P,
    ownerIndex: newIndex,
    initialLock: sc.initialLock,
    backupMode: mode,
    interval,
    proofSecret: Buffer.from(id.proofSecret),
    backupSecret: Buffer.from(id.backupSecret),
    key,
    fundingTx: Buffer.from(m.fundingTx),
    backupTx: Buffer.from(m.backupTx),
    backupHistory: m.backupHistory.map((b) => Buffer.from(b)),
    kickoffTx,
    attestations: [tkVerdict, verdict],
  };
}

function invert(x: bigint): bigint {
  return secp256k1.Point.Fn.inv(x);
}

// -------------------------------------------------------------------------------------------------------------
// withdrawal

/** Withdraws `coin` to `destination` (a scriptPubKey); resolves with the withdrawal's txid once broadcast. */
export async function withdraw(
  ctx: OwnerContext,
  coin: OwnedCoin,
  destination: Uint8Array,
): Promise<{ txid: string; tx: Buffer }> {
  const sc = await ctx.se.call("getStatechain", { statechainId: coin.statechainId });
  const chain = verifyChain(sc.depositProofKey, sc.chain);
  refuse(
    Buffer.from(chain.currentKey).equals(pub(coin.proofSecret)),
    "NOT_OWNER",
    "the SE's statechain says this wallet is not the current owner",
  );
  const sctx = signWithdraw(coin.proofSecret, chain.currentState, destination, ctx.rng);
  const w = await ctx.se.call(
    "withdrawInit",
    { statechainId: coin.statechainId, statechainTx: sctx, auth: undefined },
    coin.proofSecret,
  );
  const seFee =
    w.feeSat > 0n
      ? { script: bitcoin.address.toOutputScript(w.feeAddress, ctx.network), amountSat: w.feeSat }
      : undefined;
  const { spend, amount } = backupInput(coin);
  const tx = buildWithdrawalTx({
    spend,
    spendAmountSat: amount,
    withdrawScript: destination,
    seFee,
    feeRateSatVb: ctx.feeRateSatVb,
  });
  const signed = await coSign(ctx, coin, SignPurpose.SIGN_PURPOSE_WITHDRAWAL, tx.raw, amount);
  await ctx.se.call(
    "withdrawConfirm",
    { statechainId: coin.statechainId, withdrawalTx: signed, auth: undefined },
    coin.proofSecret,
  );
  return { txid: tx.txidHex, tx: signed };
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
    progress(ctx, "confirmations", { have: r.confirmations, need: r.requiredConfirmations });
    if (r.status === StatechainStatus.STATECHAIN_STATUS_CLOSED) return;
    check(ctx.now() < deadline, "WITHDRAW_TIMEOUT", "the withdrawal did not confirm in time", "precondition");
    if (opts.onWait) await opts.onWait();
    else await new Promise((res) => setTimeout(res, opts.pollMs ?? 5000));
  }
}
