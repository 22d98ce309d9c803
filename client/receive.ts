// The receiver's side of a transfer (DESIGN.md 3.3 steps 6–9), in steps: read the mailbox, check everything
// about the coin before saying anything to the SE (step 6), get an attested transfer key (step 7), prepare and
// sign the key update, then send it and check the SE's keygen proofs, o2·S2 = P, the deletion attestation and
// its receipt (step 9). Each refusal is a ProtocolError naming the failed check.
export interface IncomingTransfer {
  messageId: Buffer;
  statechainId: Outpoint;
  message: TransferMessage;
  /** The mailbox ciphertext as received (kept to resume an interrupted key update). */
  ciphertext: Buffer;
}

import { createHash } from "node:crypto";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { decodeDocument } from "../attestation/document.ts";
import {
  type DeletionReceipt,
  decodeReceipt,
  erasedShareCommitment,
  receiptHash,
  ZERO_HASH,
} from "../attestation/receipt.ts";
import { decodeTransferKeyStatement } from "../attestation/statements.ts";
import { type VerificationResult, verifyAttestation } from "../attestation/verify.ts";
import { BackupMode, type Outpoint, StatechainStatus, statechainStatusToJSON } from "../proto/gen/common.ts";
import { type MailboxItem, TransferMessage } from "../proto/gen/statechain.ts";
import {
  type HolderKey,
  holderKeyUpdate,
  holderKeyUpdateFinish,
  holderKeyUpdateResume,
} from "../protocol/ecdsa2p/holder.ts";
import type { PaillierKey } from "../protocol/ecdsa2p/paillier.ts";
import type { VerifiedRingPedersen } from "../protocol/ecdsa2p/ring-pedersen.ts";
import { decrypt as eciesDecrypt, encrypt as eciesEncrypt } from "../protocol/ecies.ts";
import { N, parseScalar, scalarBytes } from "../protocol/encoding.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { toDisplayHex, verifyMainstayProof } from "../protocol/mainstay.ts";
import { outpointString } from "../protocol/outpoint.ts";
import { verifySmtProof } from "../protocol/smt/index.ts";
import { statechainIdBytes, statechainKey, verifyChain, verifyStatechainTx } from "../protocol/statechain.ts";
import { parseTx, txidOf, txidToHex } from "../protocol/tx/parse.ts";
import { ANCHOR_SCRIPT, p2wpkhScript } from "../protocol/tx/script.ts";
import { checkP2wpkhWitness } from "../protocol/tx/sign.ts";
import { estimateVsize } from "../protocol/tx/size.ts";
import {
  AttestationRefusedError,
  attestationOptions,
  DEFAULT_MAX_BACKUP_FEE_RATE,
  enclaveIdentity,
  minConfirmations,
} from "./attested-policy.ts";
import {
  backupInput,
  checkNetwork,
  lockFor,
  type OwnedCoin,
  type OwnerContext,
  pub,
  type ReceiverIdentity,
  randomSecret,
  withFreshPaillierKey,
} from "./owner.ts";
import { refuse, SeError, type SeRequest, type SeResponse } from "./se-client.ts";

/** A mailbox item this wallet could not read: refused with a reason, like a coin that fails a check. */
export interface UnreadableTransfer {
  messageId: Buffer;
  statechainId: Outpoint | undefined;
  code: string;
  reason: string;
}

/** Reads and decrypts the transfer messages addressed to `id`'s proof key. */
export async function fetchIncoming(ctx: OwnerContext, id: ReceiverIdentity): Promise<IncomingTransfer[]> {
  return (await fetchMailbox(ctx, id)).incoming;
}

/** Proof keys one MailboxGetBatch carries at most (the SE's bound). */
export const MAILBOX_BATCH_MAX = 64;

export interface Mailbox {
  incoming: IncomingTransfer[];
  unreadable: UnreadableTransfer[];
}

/**
 * The mailboxes of `ids`, `MAILBOX_BATCH_MAX` keys to a signed MailboxGetBatch request (#19.7), each key signing
 * its own entry. `discard[i]` lists message ids of mailbox i to delete first (ones found unreadable before). An
 * SE without MailboxGetBatch is read one MailboxGet at a time.
 */
export async function fetchMailboxes(
  ctx: OwnerContext,
  ids: readonly ReceiverIdentity[],
  discard: readonly (readonly Uint8Array[])[] = [],
): Promise<Mailbox[]> {
  const out: Mailbox[] = [];
  for (let at = 0; at < ids.length; at += MAILBOX_BATCH_MAX) {
    const chunk = ids.slice(at, at + MAILBOX_BATCH_MAX);
    const entry = (id: ReceiverIdentity, i: number) => ({
      receiverProofKey: pub(id.proofSecret),
      auth: undefined,
      discardMessageIds: (discard[at + i] ?? []).map((x) => Buffer.from(x)),
    });
    let boxes: { items: MailboxItem[] }[];
    try {
      const res = await ctx.se.call("mailboxGetBatch", {
        mailboxes: chunk.map((id, i) => ctx.se.signMailboxEntry(entry(id, i), id.proofSecret)),
      });
      boxes = res.mailboxes;
    } catch (e) {
      if (!(e instanceof SeError && e.code === 12)) throw e; // UNIMPLEMENTED: an SE from before the batch
      boxes = [];
      for (const [i, id] of chunk.entries())
        boxes.push(await ctx.se.call("mailboxGet", entry(id, i), id.proofSecret));
    }
    for (const [i, id] of chunk.entries()) out.push(openMailbox(id, boxes[i]?.items ?? []));
  }
  return out;
}

/** The mailbox of `id`: the messages that decrypt and decode, and those that do not, with the reason. */
export async function fetchMailbox(ctx: OwnerContext, id: ReceiverIdentity): Promise<Mailbox> {
  const C2 = pub(id.proofSecret);
  const box = await ctx.se.call(
    "mailboxGet",
    { receiverProofKey: C2, auth: undefined, discardMessageIds: [] },
    id.proofSecret,
  );
  return openMailbox(id, box.items);
}

function openMailbox(id: ReceiverIdentity, items: readonly MailboxItem[]): Mailbox {
  const incoming: IncomingTransfer[] = [];
  const unreadable: UnreadableTransfer[] = [];
  for (const item of items) {
    try {
      incoming.push(openTransfer(id, item.messageId, item.statechainId, item.encryptedMessage));
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      unreadable.push({
        messageId: item.messageId,
        statechainId: item.statechainId,
        code: e.code,
        reason: e.message,
      });
    }
  }
  return { incoming, unreadable };
}

/** Decrypts and decodes one transfer message (MESSAGE_DECRYPT / MESSAGE_DECODE when it cannot). */
export function openTransfer(
  id: ReceiverIdentity,
  messageId: Uint8Array,
  statechainId: Outpoint | undefined,
  ciphertext: Uint8Array,
): IncomingTransfer {
  refuse(statechainId, "MESSAGE_STATECHAIN", "the mailbox item names no statechain");
  let plain: Uint8Array;
  try {
    plain = eciesDecrypt(id.proofSecret, ciphertext, "transfer message");
  } catch {
    throw new ProtocolError(
      "MESSAGE_DECRYPT",
      "the transfer message does not decrypt under this wallet's proof key (altered or not for us)",
      "precondition",
    );
  }
  let message: TransferMessage;
  try {
    message = TransferMessage.decode(plain);
  } catch {
    throw new ProtocolError("MESSAGE_DECODE", "the transfer message is not well formed", "precondition");
  } finally {
    plain.fill(0);
  }
  return {
    messageId: Buffer.from(messageId),
    statechainId,
    message,
    ciphertext: Buffer.from(ciphertext),
  };
}

/** What step 6 established about an incoming coin; everything later steps and storage need. */
export interface CheckedTransfer {
  incoming: IncomingTransfer;
  statechainId: Outpoint;
  sharedPublicKey: Buffer;
  amountSat: bigint;
  backupMode: "absolute" | "kickoff";
  initialLock: number;
  interval: number;
  newIndex: number;
  myLock: number;
  kickoffTx: Buffer | undefined;
  /** The enclave instance that holds the coin, from its attested identity (never the host's word). */
  enclaveInstance: Buffer;
  /** SHA-256 of the attested policy the checks above used. */
  policyHash: Buffer;
  /** From the attested transfer-key statement (step 7): what the key update's evidence must match. */
  attested?: { transferKey: Buffer; erasedShare: Buffer };
  /** Whether its state is provably published (DESIGN.md 3.7); "unpublished" only with allowUnpublished. */
  publication: Publication;
  /**
   * Set when the SE says the coin is exit-by-backup (its enclave lost the key, e.g. it restarted) while this
   * transfer was under way: every check above passed, so the backup handed over (fully signed under P, paying my
   * backup key, with the next lock, earlier than every other) is the coin's first valid exit, and the SE can
   * co-sign nothing that comes before it. The receiver keeps the coin exit-only with that backup.
   */
  cut?: true;
  /**
   * The coin's deletion receipts so far (owners 2…n, as the SE serves them), the last one's attestation
   * verified: the key update must extend this chain. Empty before the coin's first transfer; absent from a key
   * update a wallet saved before it kept them (resumed, its link to them is not checked).
   */
  receipts?: Buffer[];
}

export { AttestationRefusedError, certificateCache } from "./attested-policy.ts";

/**
 * DESIGN.md 3.3 step 6: every check a receiver makes before it says anything to the SE about the coin. Only
 * read-only calls (GetInfo, GetStatechain, GetSmtProof) and the chain. Throws a ProtocolError naming the failed
 * check.
 */
export async function checkTransfer(
  ctx: OwnerContext,
  id: ReceiverIdentity,
  incoming: IncomingTransfer,
): Promise<CheckedTransfer> {
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
  // The reads are independent: issued together (one round trip of waiting instead of six), checked in order.
  const reads = {
    // Fresh (a restarted enclave is a new instance), and kept for the key update: its ring-Pedersen parameters.
    policy: enclaveIdentity(ctx, { fresh: true }),
    info: ctx.se.call("getInfo", {}),
    statechain: ctx.se.call("getStatechain", { statechainId: sid }),
    utxo: ctx.chain.getUtxo(txidToHex(sid.txid), sid.vout),
    smtProof: ctx.se.call("getSmtProof", { statechainId: sid }),
    tip: ctx.chain.tipHeight(),
  };
  for (const r of Object.values(reads)) r.catch(() => {}); // a refusal below leaves the later reads unawaited
  const info = await reads.info;
  checkNetwork(ctx, info);
  // Confirmations, locks and fee ceilings as the enclave attests them (audit #18.5), not as GetInfo says.
  const policy = await reads.policy;
  const sc = await reads.statechain;
  // A transfer cut after my backup was co-signed (the enclave restarted and lost the coin's key): the SE can
  // finish nothing, but the backup handed over, checked below like any, is the coin's first valid exit, and mine.
  const cut = sc.status === StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP;
  refuse(
    sc.status === StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING || cut,
    "STATECHAIN_STATE",
    `the SE says the coin is not awaiting a transfer: ${notPending(sc.status)}`,
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
  const utxo = await reads.utxo;
  // In kick-off mode a kick-off on chain spends the funding output: the coin is then the kick-off's output 0,
  // checked below with the kick-off itself (and the relative locks it started).
  const spentByKickoff = !utxo && sc.backupMode === BackupMode.BACKUP_MODE_KICKOFF && m.kickoffTx.length > 0;
  // A cut transfer's backup may be out already (the SE's watchtower broadcasts it at its lock): then it spent
  // the coin, for me.
  const myBackupOut = cut && !utxo ? await backupKnown(ctx, m.backupTx) : false;
  refuse(
    utxo || spentByKickoff || myBackupOut,
    "FUNDING_SPENT",
    `the coin ${outpointString(sid)} is not an unspent output on chain`,
  );
  const confirmations = utxo
    ? utxo.confirmations
    : ((await ctx.chain.getTxStatus(txidToHex(sid.txid)))?.confirmations ?? 0);
  const needed = Math.max(policy.depositConfirmations, minConfirmations(ctx));
  refuse(
    confirmations >= needed,
    "FUNDING_UNCONFIRMED",
    `the funding has ${confirmations} confirmations, ${needed} required`,
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
  try {
    verifyStatechainTx(sctx, chain.currentKey, chain.currentState);
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    throw new ProtocolError(e.code, `the sender's statechain transaction: ${e.message}`, "precondition");
  }
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

  // The coin's receipts so far: the last one attested, so the key update can be checked to follow it.
  const receipts = coinReceipts(ctx, sid, sc);

  // Publication: the SMT holds the current state; a published root's proof and Mainstay proof verify.
  const publication = await checkPublication(ctx, sid, await reads.smtProof, sc.stateHash, chain.states);

  // Backups: mine pays B2 with the next lock, is signed under P; every earlier one unlocks later than mine.
  const mode = sc.backupMode === BackupMode.BACKUP_MODE_KICKOFF ? "kickoff" : "absolute";
  refuse(
    mode === policy.backupMode,
    "BACKUP_MODE",
    `the SE says ${mode} backups, its enclave attests ${policy.backupMode}`,
  );
  const kickoffTx = m.kickoffTx.length > 0 ? Buffer.from(m.kickoffTx) : undefined;
  if (mode === "kickoff") {
    refuse(kickoffTx, "KICKOFF_MISSING", "a kick-off mode coin came without its kick-off transaction");
    checkKickoff(kickoffTx, sid, P, amount);
  } else refuse(!kickoffTx, "KICKOFF_UNEXPECTED", "an absolute-mode coin came with a kick-off transaction");
  const interval = policy.locktimeInterval;
  const history = [...m.backupHistory, m.backupTx];
  refuse(
    m.backupHistory.length === sc.ownerIndex,
    "BACKUP_HISTORY",
    `expected ${sc.ownerIndex} earlier backups, got ${m.backupHistory.length}`,
  );
  const locks = checkBackups(history, {
    mode,
    statechainId: sid,
    amountSat: amount,
    kickoffTx,
    sharedPublicKey: P,
    initialLock: sc.initialLock,
    interval,
    lastPayee: B2,
  });
  const myLock = locks[locks.length - 1]!;
  const tip = await reads.tip;
  // Time left to use the coin matters only while the SE can co-sign it: a cut coin only leaves, the sooner the
  // better.
  if (mode === "absolute")
    refuse(
      cut || myLock > tip + policy.lockSafetyMargin,
      "BACKUP_TOO_SOON",
      `my backup unlocks at ${myLock}, too close to the tip ${tip}`,
    );
  else {
    const kickoffTxid = txidToHex(txidOf(parseTx(kickoffTx!)));
    const k = await ctx.chain.getTxStatus(kickoffTxid);
    if (!utxo)
      refuse(
        myBackupOut || (await ctx.chain.getUtxo(kickoffTxid, 0)),
        "FUNDING_SPENT",
        `the coin ${outpointString(sid)} is spent, and not by its kick-off ${kickoffTxid} (or the kick-off's output is spent too)`,
      );
    // A kick-off already on chain started every relative lock: mine must still mature after the tip + margin.
    if (!cut && k && k.confirmations > 0) {
      const height = tip - k.confirmations + 1;
      refuse(
        height + myLock > tip + policy.lockSafetyMargin,
        "BACKUP_TOO_SOON",
        `the kick-off confirmed at ${height}: my backup matures at ${height + myLock}, too close to the tip ${tip}`,
      );
    }
  }
  // Fees the sender chose for me (audit #18.4): never above my ceiling or the enclave's.
  const maxRate = Math.min(
    ctx.maxBackupFeeRateSatVb ?? DEFAULT_MAX_BACKUP_FEE_RATE,
    policy.maxBackupFeeRateSatVb,
  );
  const spent = backupInput({ backupMode: mode, kickoffTx, statechainId: sid, amountSat: amount });
  checkHandedFee(m.backupTx, spent.amount, maxRate, "my backup");
  if (kickoffTx) checkHandedFee(kickoffTx, amount, maxRate, "the kick-off");
  parseScalar(m.t1, "t1");
  return {
    incoming,
    statechainId: sid,
    sharedPublicKey: P,
    amountSat: amount,
    backupMode: mode,
    initialLock: sc.initialLock,
    interval,
    newIndex,
    myLock,
    kickoffTx,
    enclaveInstance: policy.instance,
    policyHash: policy.policyHash,
    publication,
    receipts,
    ...(cut ? { cut } : {}),
  };
}

/** Whether the chain (a block or the mempool) has the transaction `raw`; false for one that does not parse. */
async function backupKnown(ctx: OwnerContext, raw: Uint8Array): Promise<boolean> {
  let txid: string;
  try {
    txid = txidToHex(txidOf(parseTx(raw, "my backup")));
  } catch {
    return false; // refused below by the backup checks
  }
  return (await ctx.chain.getTxStatus(txid)) !== undefined;
}

/**
 * The coin's key-update records as the SE serves them: exactly one per owner 2…n, in order. The last one (owner
 * n's, the receipt the coming key update follows) must be attested by an enclave the wallet trusts (judged at the
 * document's own time) and describe that key update: its S2 is the share the enclave must now erase. Earlier
 * ones are kept as served: they only help tell a fork (RECEIPT_CHAIN).
 */
function coinReceipts(ctx: OwnerContext, sid: Outpoint, sc: SeResponse<"getStatechain">): Buffer[] {
  const records = sc.keyUpdates;
  const n = sc.ownerIndex;
  refuse(
    records.length === n - 1 && records.every((r, i) => r.ownerIndex === i + 2),
    "RECEIPT_CHAIN",
    `the SE serves key updates to owners [${records.map((r) => r.ownerIndex).join(", ")}] of a coin at owner ${n}: expected one to each of owners 2…${n}`,
  );
  const last = records[records.length - 1];
  if (!last) return [];
  let at = ctx.now();
  try {
    at = decodeDocument(last.attestationDocument).timestamp;
  } catch {
    // a structure failure is reported by verifyAttestation
  }
  const verdict = verifyAttestation(last.attestationDocument, {
    ...attestationOptions(ctx),
    at,
    receipt: last.receipt,
  });
  if (!verdict.valid)
    throw new AttestationRefusedError(
      "RECEIPT_CHAIN",
      `the deletion attestation of the coin's key update to owner ${n}`,
      verdict,
    );
  const r = decodeReceipt(last.receipt);
  refuse(
    r.type === "key-update" &&
      Buffer.from(r.statechain).equals(Buffer.from(statechainIdBytes(sid))) &&
      r.epoch === n &&
      r.S2 !== null,
    "RECEIPT_CHAIN",
    `the last deletion receipt the SE serves does not describe the coin's key update to owner ${n}`,
  );
  return records.map((k) => Buffer.from(k.receipt));
}

/**
 * `next` (this key update's receipt) extends the enclave's receipt chain past the coin's earlier receipts: its
 * `prev` is none of theirs (another receipt already follows each, so a second one is a fork), nor an earlier
 * receipt of the coin other than the last (the coin's later receipts already follow it), and it is not dated
 * before the last. Receipts chain per enclave instance across all its coins: other coins' receipts may sit
 * between the last one and `next`, so a missing direct link is no refusal.
 */
function checkReceiptLink(receipts: readonly Uint8Array[], next: DeletionReceipt): void {
  const last = receipts[receipts.length - 1];
  if (!last) return;
  const taken = receipts.flatMap((raw, i) => {
    const r = decodeReceipt(raw);
    const followed = isZero(r.prev) ? [] : [Buffer.from(r.prev)];
    return i < receipts.length - 1 ? [...followed, Buffer.from(receiptHash(raw))] : followed;
  });
  refuse(
    !taken.some((h) => h.equals(Buffer.from(next.prev))),
    "RECEIPT_CHAIN",
    "the deletion receipt follows a receipt that another of the coin's receipts already follows: the enclave's receipt chain forked",
  );
  refuse(
    next.time >= decodeReceipt(last).time,
    "RECEIPT_CHAIN",
    "the deletion receipt is dated before the coin's previous one",
  );
}

const isZero = (h: Uint8Array) => Buffer.from(h).equals(Buffer.from(ZERO_HASH));

/** A transaction handed to this wallet pays at most `maxRate` sat/vB (its output is what the wallet gets). */
function checkHandedFee(raw: Uint8Array, spendAmountSat: bigint, maxRate: number, what: string): void {
  const tx = parseTx(raw, what);
  const fee = spendAmountSat - tx.outs.reduce((a, o) => a + o.value, 0n);
  const vsize = estimateVsize(tx, ["p2wpkh"]);
  refuse(fee >= 0n, "FEE_INVALID", `${what} pays out more than it spends`);
  refuse(
    fee <= BigInt(Math.ceil(maxRate * vsize)),
    "FEE_TOO_HIGH",
    `${what} pays ${fee} sat in fees (${(Number(fee) / vsize).toFixed(1)} sat/vB), above this wallet's ceiling of ${maxRate} sat/vB: the sender would leave you less than the coin's value`,
  );
}

/**
 * Whether a coin's state is provably published: "published" when the SE's published SMT root holds a state of
 * the statechain and that root is attested in the trusted Mainstay slot by a transaction on chain under the
 * trusted service key; "unpublished" when the SE shows no such publication (accepted only with allowUnpublished).
 */
export type Publication = "published" | "unpublished";

/**
 * The SMT proof of the current state and the proof of publication: the proof under the published root, its leaf
 * being a state of this statechain, and the Mainstay proof of that root in the wallet's trusted slot, with the
 * attestation transaction from the chain under the trusted service key (both from the wallet's trust store, never
 * from the SE's GetInfo). A wrong proof is refused; a missing publication is refused too unless the wallet
 * accepts unpublished coins (`allowUnpublished`, for an SE that runs without Mainstay), which marks it.
 */
export async function checkPublication(
  ctx: Pick<OwnerContext, "chain" | "mainstayKey" | "mainstaySlot" | "allowUnpublished">,
  sid: Outpoint,
  proof: SeResponse<"getSmtProof">,
  stateHash: Uint8Array,
  states: readonly Uint8Array[],
): Promise<Publication> {
  const smtKey = statechainKey(sid);
  refuse(
    proof.currentProof && proof.currentRoot.length > 0,
    "SMT_PROOF_MISSING",
    "the SE sent no SMT proof of the coin's current state (a correct SE always does): the coin cannot be checked",
  );
  refuse(
    Buffer.from(proof.currentLeaf).equals(Buffer.from(stateHash)),
    "SMT_LEAF",
    proof.currentLeaf.length === 0
      ? "the SE's tree does not hold the statechain at all"
      : "the SE's tree does not hold the statechain's current state (a proof of an earlier state?)",
  );
  smtProof("the SMT proof of the current state", () =>
    verifySmtProof(proof.currentRoot, smtKey, proof.currentLeaf, proof.currentProof!),
  );
  const unpublished = (why: string): Publication => {
    refuse(
      ctx.allowUnpublished,
      "UNPUBLISHED",
      `the coin's state is not provably published: ${why}. Wait for the SE's next Mainstay commitment and receive again; only for an SE that runs without Mainstay, accept unpublished coins explicitly (--allow-unpublished)`,
    );
    return "unpublished";
  };
  if (proof.leaf.length === 0)
    return unpublished("no published root of the SE's tree holds this statechain yet");
  refuse(
    proof.proof && proof.root.length > 0,
    "SMT_PROOF_MISSING",
    "the SE sent a published leaf without its SMT proof",
  );
  smtProof("the SMT proof under the published root", () =>
    verifySmtProof(proof.root, smtKey, proof.leaf, proof.proof!),
  );
  refuse(
    states.some((s) => Buffer.from(s).equals(Buffer.from(proof.leaf))),
    "SMT_PUBLISHED_LEAF",
    "the published leaf is not a state of this statechain",
  );
  const m = proof.mainstay;
  if (!m) return unpublished("the SE's published root carries no Mainstay proof (not attested yet)");
  refuse(
    ctx.mainstaySlot === undefined || m.position === ctx.mainstaySlot,
    "MAINSTAY_SLOT",
    `the SE's Mainstay proof is for slot ${m.position}, but this wallet trusts slot ${ctx.mainstaySlot} for this SE: refused (if the operator really moved to another slot, trust the SE again)`,
  );
  if (!ctx.mainstayKey || ctx.mainstaySlot === undefined) {
    verifyMainstayProof(m, proof.root); // what can be checked without them: the slot proof leads to its root
    return unpublished(
      "this wallet trusts no Mainstay slot and service key for this SE (recorded when it is trusted, or --mainstay-slot with --mainstay-key)",
    );
  }
  const attestationTx = (await ctx.chain.getTx(toDisplayHex(m.txid)))?.raw;
  refuse(
    attestationTx,
    "MAINSTAY_TX_MISSING",
    `the Mainstay attestation transaction ${toDisplayHex(m.txid)} is not on chain`,
  );
  verifyMainstayProof(m, proof.root, { attestationTx, params: ctx.mainstayKey });
  return "published";
}

/** Runs an SMT proof check, naming which proof failed. */
function smtProof(what: string, verify: () => void): void {
  try {
    verify();
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    throw new ProtocolError(e.code, `${what} does not verify: ${e.message}`, "precondition");
  }
}

/** The kick-off spends the statechain outpoint to [P2WPKH(P), anchor] and is validly signed under P. */
export function checkKickoff(raw: Uint8Array, sid: Outpoint, P: Uint8Array, amountSat: bigint): void {
  const tx = parseTx(raw, "kick-off transaction");
  refuse(
    tx.ins.length === 1 &&
      Buffer.from(tx.ins[0]!.hash).equals(Buffer.from(sid.txid)) &&
      tx.ins[0]!.index === sid.vout,
    "KICKOFF_INPUT",
    "the kick-off transaction does not spend the coin",
  );
  refuse(
    tx.outs.length === 2 &&
      Buffer.from(tx.outs[0]!.script).equals(Buffer.from(p2wpkhScript(P))) &&
      Buffer.from(tx.outs[1]!.script).equals(Buffer.from(ANCHOR_SCRIPT)),
    "KICKOFF_OUTPUTS",
    "the kick-off transaction does not pay the shared key and the anchor",
  );
  try {
    checkP2wpkhWitness(tx, 0, P, amountSat);
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    throw new ProtocolError("KICKOFF_SIGNATURE", `the kick-off is not validly signed under P: ${e.message}`);
  }
}

export interface BackupContext {
  mode: "absolute" | "kickoff";
  statechainId: Outpoint;
  amountSat: bigint;
  kickoffTx: Uint8Array | undefined;
  sharedPublicKey: Uint8Array;
  initialLock: number;
  interval: number;
  /** The last backup must pay this key (the holder's own backup key). */
  lastPayee?: Uint8Array;
}

/**
 * Checks a coin's backups, oldest first (owner 1 … owner n): each spends the coin (or the kick-off output) and
 * carries owner i's lock, the locks strictly decrease by the interval, the last one pays `lastPayee`, and every
 * one is validly signed under P. Returns the locks.
 */
export function checkBackups(backups: readonly Uint8Array[], c: BackupContext): number[] {
  const locks: number[] = [];
  backups.forEach((raw, i) => {
    const last = i === backups.length - 1;
    const lock = checkBackup(raw, i + 1, c, last ? c.lastPayee : undefined);
    if (locks.length > 0)
      refuse(
        lock < locks[locks.length - 1]!,
        "BACKUP_ORDER",
        `owner ${i + 1}'s backup unlocks at ${lock}, not before owner ${i}'s (${locks[locks.length - 1]})`,
      );
    locks.push(lock);
  });
  return locks;
}

/** One backup: spends the coin, carries owner `owner`'s lock, pays `payee` if given, signed under P. */
export function checkBackup(raw: Uint8Array, owner: number, c: BackupContext, payee?: Uint8Array): number {
  const { spend, amount } = backupInput({
    backupMode: c.mode,
    kickoffTx: c.kickoffTx,
    statechainId: c.statechainId,
    amountSat: c.amountSat,
  });
  const whose = payee ? "my backup" : `the backup of owner ${owner}`;
  const tx = parseTx(raw, whose);
  refuse(
    tx.ins.length === 1 &&
      Buffer.from(tx.ins[0]!.hash).equals(Buffer.from(spend.txid)) &&
      tx.ins[0]!.index === spend.vout,
    "BACKUP_INPUT",
    `${whose} does not spend the coin`,
  );
  const expected = lockFor(c.initialLock, c.interval, owner);
  const got = c.mode === "absolute" ? tx.locktime : tx.ins[0]!.sequence;
  refuse(
    got === expected,
    "BACKUP_LOCK",
    `${whose} has lock ${got}, expected ${expected} for owner ${owner}`,
  );
  if (payee)
    refuse(
      tx.outs.length === 1 && Buffer.from(tx.outs[0]!.script).equals(Buffer.from(p2wpkhScript(payee))),
      "BACKUP_PAYEE",
      "my backup does not pay my backup key",
    );
  try {
    checkP2wpkhWitness(tx, 0, c.sharedPublicKey, amount);
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    throw new ProtocolError(
      "BACKUP_SIGNATURE",
      `${whose} is not validly signed under the shared key: ${e.message}`,
      "precondition",
    );
  }
  return got;
}

/** Step 7, first half: a fresh transfer key from the enclave, attested for our nonce and bound to this coin. */
export async function attestedTransferKey(
  ctx: OwnerContext,
  id: ReceiverIdentity,
  checked: CheckedTransfer,
): Promise<{ transferKey: Buffer; verdict: VerificationResult }> {
  const C2 = pub(id.proofSecret);
  const sid = checked.statechainId;
  const nonce = Buffer.from(ctx.rng(32));
  const tk = await ctx.se.call(
    "transferReceiverInit",
    { statechainId: sid, receiverProofKey: C2, nonce, auth: undefined },
    id.proofSecret,
  );
  const verdict = verifyAttestation(tk.attestationDocument, {
    ...attestationOptions(ctx),
    expectedNonce: nonce,
    expectedUserData: createHash("sha256").update(tk.transferContext).digest(),
  });
  if (!verdict.valid)
    throw new AttestationRefusedError("TRANSFER_KEY_ATTESTATION", "the transfer key's attestation", verdict);
  const context = decodeTransferKeyStatement(tk.transferContext);
  refuse(
    Buffer.from(context.statechain).equals(Buffer.from(statechainIdBytes(sid))) &&
      context.epoch === checked.newIndex &&
      Buffer.from(context.receiver).equals(C2),
    "TRANSFER_KEY_CONTEXT",
    "the attested transfer key is bound to another coin, owner or receiver",
  );
  refuse(
    checked.enclaveInstance.length === 16 && Buffer.from(context.instance).equals(checked.enclaveInstance),
    "TRANSFER_KEY_INSTANCE",
    "the transfer key comes from another enclave instance than the one whose identity was attested",
  );
  refuse(
    Buffer.from(context.policy).equals(checked.policyHash),
    "TRANSFER_KEY_POLICY",
    "the transfer key was attested under another policy than the one the checks used",
  );
  // The one backup the enclave co-signed for me is mine, and it spends the one kick-off it recorded (#18.1, #18.2).
  const m = checked.incoming.message;
  refuse(
    Buffer.from(context.backup).equals(Buffer.from(txidOf(parseTx(m.backupTx, "my backup")))),
    "TRANSFER_KEY_BACKUP",
    "the enclave co-signed another backup for this transfer than the one the sender handed over",
  );
  const kickoffTxid = checked.kickoffTx ? Buffer.from(txidOf(parseTx(checked.kickoffTx))) : null;
  refuse(
    kickoffTxid === null
      ? context.kickoff === null
      : context.kickoff !== null && kickoffTxid.equals(Buffer.from(context.kickoff)),
    "TRANSFER_KEY_KICKOFF",
    "the enclave recorded another kick-off for this coin than the one the sender handed over",
  );
  // The share to erase is the one the enclave made at the coin's previous key update (its receipt's S2): any
  // other means the enclave holds a share it should not have (an old one restored, or a replaced key).
  const previous = checked.receipts?.[checked.receipts.length - 1];
  if (previous)
    refuse(
      Buffer.from(decodeReceipt(previous).S2!).equals(Buffer.from(context.share)),
      "RECEIPT_CHAIN",
      `the enclave is to erase another share than the one it made at the coin's key update to owner ${checked.newIndex - 1}`,
    );
  const transferKey = verdict.document?.publicKey;
  refuse(transferKey && transferKey.length === 33, "TRANSFER_KEY", "the attestation carries no transfer key");
  checked.attested = { transferKey: Buffer.from(transferKey), erasedShare: Buffer.from(context.share) };
  return { transferKey: Buffer.from(transferKey), verdict };
}

/** A signed key-update request, ready to send (and to re-send unchanged if the answer is lost). */
export interface PreparedKeyUpdate {
  request: SeRequest<"transferReceiverKeyUpdate">;
  /** o2, the receiver's new share (secret). */
  share: Buffer;
  /** The coin's Paillier key (the receiver's own, fresh): c_key2 = Enc(o2) in the request is under it. */
  paillier: PaillierKey;
  keygenSessionId: Buffer;
  nonce: Buffer;
  transferKeyVerdict: VerificationResult | undefined;
}

/**
 * Step 7, second half: o2, t2 = t1·o2⁻¹ encrypted to the attested transfer key, O2 with its proof, the
 * receiver's fresh Paillier key with Π^mod, Π^fac and c_key2 = Enc(o2) with Π^log* (against the enclave's
 * attested ring-Pedersen parameters), signed.
 */
export function prepareKeyUpdate(
  ctx: OwnerContext,
  id: ReceiverIdentity,
  checked: CheckedTransfer,
  transferKey: Uint8Array,
  keys: { paillier: PaillierKey; ringPedersen: VerifiedRingPedersen; share?: Uint8Array },
  transferKeyVerdict?: VerificationResult,
): PreparedKeyUpdate {
  const t1 = parseScalar(checked.incoming.message.t1, "t1");
  // o2 derived from the wallet's seed when it has one (a restore rebuilds it), else drawn.
  const o2 = parseScalar(keys.share ?? randomSecret(ctx.rng), "o2");
  keys.share?.fill(0);
  const t2 = scalarBytes((t1 * invert(o2)) % N);
  const encryptedT2 = Buffer.from(eciesEncrypt(transferKey, t2));
  t2.fill(0);
  const share = Buffer.from(scalarBytes(o2));
  const keygenSessionId = Buffer.from(ctx.rng(16));
  const { msg } = holderKeyUpdate({
    sessionId: keygenSessionId,
    share,
    sharedPublicKey: checked.sharedPublicKey,
    paillier: keys.paillier,
    ringPedersen: keys.ringPedersen,
    rng: ctx.rng,
  });
  const nonce = Buffer.from(ctx.rng(32));
  const request = ctx.se.sign(
    "transferReceiverKeyUpdate",
    {
      statechainId: checked.statechainId,
      receiverProofKey: pub(id.proofSecret),
      ownerShare: msg,
      encryptedT2,
      nonce,
      auth: undefined,
      keygenSessionId,
    },
    id.proofSecret,
  );
  return { request, share, paillier: keys.paillier, keygenSessionId, nonce, transferKeyVerdict };
}

/**
 * Steps 8–9: sends the prepared request, then checks the SE's keygen proofs and o2·S2 = P, the deletion
 * attestation (our nonce, user_data = SHA-256(receipt), PCR policy) and that the receipt describes this update.
 */
export async function finishKeyUpdate(
  ctx: OwnerContext,
  id: ReceiverIdentity,
  checked: CheckedTransfer,
  prepared: PreparedKeyUpdate,
  /** The SE's answer fetched afterwards (GetKeyUpdateResult) instead of sending the request again. */
  answered?: SeResponse<"transferReceiverKeyUpdate">,
): Promise<OwnedCoin> {
  const sid = checked.statechainId;
  // The wallet's trust first (a PCR policy): refused before the request goes out, and not as a failed check of
  // the SE's answer (audit #18.11).
  const trust = attestationOptions(ctx);
  let upd: SeResponse<"transferReceiverKeyUpdate">;
  try {
    upd = answered ?? (await ctx.se.call("transferReceiverKeyUpdate", prepared.request));
  } catch (e) {
    if (!(e instanceof SeError)) throw e;
    if (UNANSWERED.has(e.code))
      throw new ProtocolError(
        "KEY_UPDATE_UNANSWERED",
        `the key update got no answer (${e.message}); receiving again finishes or abandons it`,
        "precondition",
      );
    throw new ProtocolError(
      "KEY_UPDATE_REFUSED",
      `the SE refused the key update: ${e.message}`,
      "precondition",
    );
  }
  // From here the SE has moved the coin to us: a failed check refuses the coin for use with this SE, but the
  // coin is ours to exit by its backup (the caller keeps o2 and the backup for that).
  let key: HolderKey;
  let verdict: VerificationResult;
  try {
    const state = keyUpdateState(checked, prepared);
    key = holderKeyUpdateFinish(state, upd.seShare!);
    const rec = upd.keyUpdate;
    refuse(rec, "KEY_UPDATE_RECORD", "the SE returned no key update record");
    verdict = verifyAttestation(rec.attestationDocument, {
      ...trust,
      expectedNonce: prepared.nonce,
      receipt: rec.receipt,
    });
    if (!verdict.valid)
      throw new AttestationRefusedError("DELETION_ATTESTATION", "the deletion attestation", verdict);
    const receipt = decodeReceipt(rec.receipt);
    // The deletion is attested under the transfer key t2 was encrypted to, and erases the S attested then (#18.13).
    const a = checked.attested;
    refuse(a, "TRANSFER_KEY_STATEMENT", "the attested transfer-key statement of this transfer is missing");
    refuse(
      verdict.document?.publicKey && Buffer.from(verdict.document.publicKey).equals(a.transferKey),
      "DELETION_KEY",
      "the deletion attestation names another public key than the transfer key t2 was encrypted to",
    );
    refuse(
      Buffer.from(receipt.erased).equals(Buffer.from(erasedShareCommitment(a.erasedShare))),
      "RECEIPT_ERASED",
      "the deletion receipt erases another SE share than the one attested with the transfer key",
    );
    refuse(
      receipt.type === "key-update" &&
        Buffer.from(receipt.statechain).equals(Buffer.from(statechainIdBytes(sid))) &&
        receipt.epoch === checked.newIndex &&
        receipt.S2 !== null &&
        Buffer.from(receipt.S2).equals(Buffer.from(upd.seShare!.publicShare)),
      "RECEIPT",
      "the deletion receipt does not describe this key update",
    );
    checkReceiptLink(checked.receipts ?? [], receipt);
  } catch (e) {
    if (e instanceof ProtocolError) throw new RefusedAfterKeyUpdateError(e);
    throw e;
  }
  const m = checked.incoming.message;
  return {
    statechainId: sid,
    amountSat: checked.amountSat,
    sharedPublicKey: checked.sharedPublicKey,
    ownerIndex: checked.newIndex,
    initialLock: checked.initialLock,
    backupMode: checked.backupMode,
    interval: checked.interval,
    proofSecret: Buffer.from(id.proofSecret),
    backupSecret: Buffer.from(id.backupSecret),
    key,
    fundingTx: Buffer.from(m.fundingTx),
    backupTx: Buffer.from(m.backupTx),
    backupHistory: m.backupHistory.map((b) => Buffer.from(b)),
    kickoffTx: checked.kickoffTx,
    attestations: [...(prepared.transferKeyVerdict ? [prepared.transferKeyVerdict] : []), verdict],
  };
}

/**
 * The answer to a key update that made `id` the owner, fetched from the SE after the request's own window
 * closed (#19.1). It is checked exactly as a first answer: our nonce in the deletion attestation, o2·S2 = P.
 */
export async function fetchKeyUpdateAnswer(
  ctx: OwnerContext,
  id: ReceiverIdentity,
  statechainId: Outpoint,
): Promise<SeResponse<"transferReceiverKeyUpdate">> {
  const r = await ctx.se.call(
    "getKeyUpdateResult",
    { statechainId, proofKey: pub(id.proofSecret), auth: undefined },
    id.proofSecret,
  );
  refuse(r.result, "KEY_UPDATE_RECORD", "the SE returned no key update answer");
  return r.result;
}

/** gRPC's FAILED_PRECONDITION: how the SE refuses a step on a coin in the wrong state. */
const FAILED_PRECONDITION = 9;

/** gRPC statuses that leave it unknown whether the SE did the key update: CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE. */
const UNANSWERED = new Set([1, 4, 14]);

/**
 * A check failed after the SE completed the key update: the coin is refused for use with this SE, yet the SE
 * now names the receiver as its owner, whose backup is the newest: the way out is that backup.
 */
export class RefusedAfterKeyUpdateError extends ProtocolError {
  override name = "RefusedAfterKeyUpdateError";
  constructor(readonly inner: ProtocolError) {
    super(
      inner.code,
      `${inner.message} (the SE already moved the coin to this wallet: do not use it with this SE; its backup takes it out)`,
      "precondition",
    );
  }

  get failedChecks(): string[] {
    return this.inner instanceof AttestationRefusedError ? this.inner.failedChecks : [];
  }
}

/** How the SE answers for a coin it can no longer co-sign (host/api/lookup.ts, host/api/index.ts). */
export const EXIT_ONLY_ANSWER = /the enclave restarted and lost|exit by backup only/;

/**
 * The SE cannot complete this transfer (the coin is exit-by-backup: its enclave lost the key, e.g. it restarted)
 * but every check of the coin passed: the receiver's backup handed over is fully signed and valid, and has the
 * earliest lock of the coin's backups. The coin is the receiver's, to take out by that backup (exit only).
 */
export class TransferCutError extends ProtocolError {
  override name = "TransferCutError";
  constructor(readonly checked: CheckedTransfer) {
    super(
      "TRANSFER_CUT",
      `the SE cannot complete the transfer: ${notPending(StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP)}; the transfer was cut after this wallet's backup was co-signed, and that backup (lock ${checked.myLock}, checked) is the coin's first valid exit: the coin leaves by it`,
      "precondition",
    );
  }
}

/**
 * A step of the transfer after the checks was refused with `e`: when the SE now has the coin exit-by-backup, still
 * at the sender's owner index (it lost the key before any key update), the transfer was cut, and the checked
 * backup is the way out (TransferCutError). Any other error is thrown as it is.
 */
async function cutOr(ctx: OwnerContext, checked: CheckedTransfer, e: unknown): Promise<never> {
  const said =
    (e instanceof SeError && e.code === FAILED_PRECONDITION) ||
    (e instanceof ProtocolError && e.code === "KEY_UPDATE_REFUSED");
  if (!said || !EXIT_ONLY_ANSWER.test((e as Error).message)) throw e;
  const sc = await ctx.se
    .call("getStatechain", { statechainId: checked.statechainId })
    .catch(() => undefined);
  if (
    sc?.status === StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP &&
    sc.ownerIndex === checked.newIndex - 1
  )
    throw new TransferCutError({ ...checked, cut: true });
  throw e;
}

/** The owner's keygen state for a sent key update (rebuilt from o2 and the request, so a resumed update can finish). */
function keyUpdateState(checked: CheckedTransfer, prepared: PreparedKeyUpdate) {
  const sent = prepared.request.ownerShare;
  refuse(sent, "KEY_UPDATE_REQUEST", "the stored key update request carries no key share");
  return holderKeyUpdateResume({
    sessionId: prepared.keygenSessionId,
    share: prepared.share,
    sharedPublicKey: checked.sharedPublicKey,
    paillier: prepared.paillier,
    sent,
  });
}

export interface ReceiveHooks {
  /** Runs with the signed key-update request before it is sent: the place to persist it (and o2). */
  beforeKeyUpdate?: (checked: CheckedTransfer, prepared: PreparedKeyUpdate) => Promise<void>;
}

/**
 * Checks an incoming coin as DESIGN.md 3.3 step 6 requires, completes the key update (steps 7–9) and returns
 * the coin. Any failed check refuses the coin with a ProtocolError naming it; nothing is sent to the SE before
 * the step-6 checks pass, and no key update before the transfer key's attestation verifies.
 */
export async function receive(
  ctx: OwnerContext,
  id: ReceiverIdentity,
  incoming: IncomingTransfer,
  hooks: ReceiveHooks = {},
): Promise<OwnedCoin> {
  // The coin's own Paillier key (made ahead by a wallet, or now) while the transfer is checked; claimed only
  // once the checks passed, so a refused coin uses up none.
  return withFreshPaillierKey(ctx, async (paillier, handOver) => {
    const checked = await checkTransfer(ctx, id, incoming);
    if (checked.cut) throw new TransferCutError(checked);
    const { transferKey, verdict } = await attestedTransferKey(ctx, id, checked).catch((e: unknown) =>
      cutOr(ctx, checked, e),
    );
    // The instance whose identity checkTransfer just verified: the proofs are made against its parameters.
    const keys = { ...(await paillier()), ringPedersen: (await enclaveIdentity(ctx)).ringPedersen };
    const prepared = prepareKeyUpdate(ctx, id, checked, transferKey, keys, verdict);
    handOver(); // the prepared key update holds the key: an unanswered one is finished with it later
    await hooks.beforeKeyUpdate?.(checked, prepared);
    const coin = await finishKeyUpdate(ctx, id, checked, prepared).catch((e: unknown) =>
      cutOr(ctx, checked, e),
    );
    return { ...coin, publication: checked.publication };
  });
}

function invert(x: bigint): bigint {
  return secp256k1.Point.Fn.inv(x);
}

/** Why a coin the receiver was sent is not awaiting its transfer, in words. */
function notPending(st: StatechainStatus): string {
  switch (st) {
    case StatechainStatus.STATECHAIN_STATUS_ACTIVE:
      return "it is active with its owner (the transfer was not started, or someone else completed it)";
    case StatechainStatus.STATECHAIN_STATUS_WITHDRAWING:
    case StatechainStatus.STATECHAIN_STATUS_CLOSED:
      return "it is being withdrawn or was withdrawn";
    case StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP:
      return "the SE can no longer co-sign it (its enclave lost the key): it can only leave by a backup transaction";
    case StatechainStatus.STATECHAIN_STATUS_TAINTED:
      return "its key is tainted (a signature failed verification) and is never used again";
    default:
      return `it is in state ${statechainStatusToJSON(st)}`;
  }
}
