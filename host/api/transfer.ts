// Transfer (DESIGN.md 3.3): the sender's init and hand-over, the receiver's mailbox, attested transfer key and
// key update. The host carries ciphertexts and public data; the enclave checks every signature that matters.
import { randomBytes } from "node:crypto";
import type { Queryable } from "../../common/sqlite.ts";
import {
  KeyUpdateRecord,
  SignPurpose,
  StatechainStatus,
  StatechainTx,
  StatechainTxKind,
} from "../../proto/gen/common.ts";
import { SignerKeyGenShare } from "../../proto/gen/ecdsa2p.ts";
import {
  GetKeyUpdateResultRequest,
  type GetKeyUpdateResultResponse,
  type MailboxGetBatchRequest,
  type MailboxGetBatchResponse,
  MailboxGetRequest,
  type MailboxGetResponse,
  TransferReceiverInitRequest,
  TransferReceiverInitResponse,
  TransferReceiverKeyUpdateRequest,
  TransferReceiverKeyUpdateResponse,
  TransferSenderInitRequest,
  TransferSenderInitResponse,
  TransferSendRequest,
  TransferSendResponse,
} from "../../proto/gen/statechain.ts";
import { unary } from "../../proto/unary.ts";
import { DEFAULT_WINDOW_MS } from "../../protocol/auth.ts";
import { ECIES_OVERHEAD } from "../../protocol/ecies.ts";
import { parsePoint } from "../../protocol/encoding.ts";
import { check } from "../../protocol/errors.ts";
import { outpointFromBytes } from "../../protocol/outpoint.ts";
import { verifyStatechainTx } from "../../protocol/statechain.ts";
import type { CallContext } from "../rpc.ts";
import type { ApiDeps } from "./deps.ts";
import { requireFunding, requireStatechain, requireStatus } from "./lookup.ts";
import { afterCommit, authorize, authorizeOwner, commit, consumeNonce } from "./step.ts";

const ATTESTATION_NONCE = { min: 16, max: 64 };
const MAILBOX_PAGE = 32;
/** Proof keys one MailboxGetBatch reads at most (#19.7). */
export const MAILBOX_BATCH_MAX = 64;
/** Message ids one mailbox read may discard at most. */
const MAILBOX_DISCARD_MAX = 32;
/** Ciphertext bytes one batch answer carries at most (the rest waits for the next read). */
const MAILBOX_BATCH_BYTES = 8 << 20;

/**
 * The largest signed backup the enclave co-signs: one P2WPKH input (no scriptSig) and one P2WPKH output
 * (DESIGN.md §3.6, protocol/tx/policy.ts checkBackupTx), witness [DER signature of at most 72 bytes + sighash
 * byte, 33-byte key]: 4 version + 2 marker + 1 + 41 input + 1 + 31 output + 109 witness + 4 locktime.
 */
export const BACKUP_TX_MAX_BYTES = 193;
/** Bytes the estimate leaves for the SE endpoint the sender names in its message (a host:port or a URL). */
export const ENDPOINT_ALLOWANCE = 255;
/** TransferMessage.statechain_tx at most: kind, previous state (32), next proof key (33), signature (64). */
const STATECHAIN_TX_MAX_BYTES = 2 + 34 + 35 + 66;

const varintLen = (n: number) => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5);
/** A length-delimited protobuf field of `n` bytes. */
const field = (n: number) => 1 + varintLen(n) + n;

/**
 * At most how many bytes an honest sender's encrypted hand-over for a coin has (client/owner.ts send: a
 * TransferMessage under ECIES), known at TransferSenderInit from what the host stores: the new owner's backup
 * and the n = newOwnerIndex − 1 earlier owners' backups (each at most BACKUP_TX_MAX_BYTES), the funding and
 * kick-off transactions as bound and co-signed, t1, the SCTx, the statechain id and amount, and an endpoint of
 * at most ENDPOINT_ALLOWANCE bytes.
 */
export function transferMessageBound(p: {
  newOwnerIndex: number;
  fundingTxBytes: number;
  kickoffTxBytes: number;
}): number {
  const plain =
    field(34 + 6) + // statechain id: txid (32) and vout (varint, at most 5)
    field(32) + // t1
    p.newOwnerIndex * field(BACKUP_TX_MAX_BYTES) + // the receiver's backup and the history before it
    (p.kickoffTxBytes > 0 ? field(p.kickoffTxBytes) : 0) +
    field(STATECHAIN_TX_MAX_BYTES) +
    field(p.fundingTxBytes) +
    11 + // amount: tag and a varint of at most 10 bytes
    field(ENDPOINT_ALLOWANCE);
  return ECIES_OVERHEAD + plain;
}

export function transferHandlers(deps: ApiDeps) {
  const { store, enclave, cfg } = deps;
  /**
   * The receiver's mailbox has room for one more message of `size` bytes: at most mailboxMaxItems messages and
   * mailboxMaxBytes bytes in all, per receiver. `usage` counts the messages waiting and the room held by the
   * transfers under way to it (leaving out the coin at hand, whose message this one is or replaces).
   */
  const checkMailboxRoom = (usage: { count: number; bytes: number }, size: number, sizeWords: string) => {
    const { mailboxMaxItems: items, mailboxMaxBytes: bytes } = cfg.limits;
    check(
      usage.count < items,
      "MAILBOX_FULL",
      `the receiver's mailbox is full (${usage.count} of ${items} messages waiting or being sent): the receiver must collect its transfers (wallet receive) before it can be sent more`,
      "exhausted",
    );
    check(
      usage.bytes + size <= bytes,
      "MAILBOX_FULL",
      `the receiver's mailbox has no room for this message (${usage.bytes} of ${bytes} bytes used by messages waiting or held for transfers under way, ${sizeWords} ${size}): the receiver must collect its transfers (wallet receive) before it can be sent more`,
      "exhausted",
    );
  };
  const maxMessage = Math.min(cfg.limits.mailboxMaxMessageBytes, cfg.limits.mailboxMaxBytes);
  /** The room a hand-over holds from TransferSenderInit to TransferSend: its message's bound, at most a message. */
  const heldFor = (h: { new_owner_index: number; funding_bytes: number; kickoff_bytes: number | null }) =>
    Math.min(
      maxMessage,
      transferMessageBound({
        newOwnerIndex: h.new_owner_index,
        fundingTxBytes: h.funding_bytes,
        kickoffTxBytes: h.kickoff_bytes ?? 0,
      }),
    );
  /** Messages waiting for `receiver` and transfers to it not handed over yet, except the coin `idBytes`'s. */
  const mailboxTaken = async (receiver: Uint8Array, idBytes: Uint8Array, q?: Queryable) => {
    const [usage, pending] = await Promise.all([
      store.mailboxUsage(receiver, idBytes, q),
      store.pendingHandOvers(receiver, idBytes, q),
    ]);
    return {
      count: usage.count + pending.length,
      bytes: usage.bytes + pending.reduce((sum, h) => sum + heldFor(h), 0),
    };
  };
  /** A mailbox read's key and signature (under the called method's path), and its discard list's bounds. */
  const authorizeRead = async (req: MailboxGetRequest, ctx: CallContext) => {
    parsePoint(req.receiverProofKey, "receiver proof key");
    check(
      req.discardMessageIds.length <= MAILBOX_DISCARD_MAX,
      "MAILBOX_DISCARD",
      `a mailbox read discards at most ${MAILBOX_DISCARD_MAX} messages`,
    );
    return authorize(deps, MailboxGetRequest, req, req.receiverProofKey, ctx);
  };
  /** Deletes the messages the receiver discards (its own only), then reads up to `budget` ciphertext bytes. */
  const readMailbox = async (
    req: MailboxGetRequest,
    _ctx: CallContext,
    budget: number,
  ): Promise<MailboxGetResponse> => {
    for (const id of req.discardMessageIds)
      await store.db.run("DELETE FROM mailbox WHERE message_id = ? AND receiver_proof_key = ?", [
        id,
        req.receiverProofKey,
      ]);
    const rows = await store.mailbox(req.receiverProofKey, MAILBOX_PAGE);
    const items: MailboxGetResponse["items"] = [];
    for (const r of rows) {
      if (r.ciphertext.length > budget) break;
      budget -= r.ciphertext.length;
      items.push({
        messageId: r.message_id,
        statechainId: outpointFromBytes(r.statechain_id),
        encryptedMessage: r.ciphertext,
        createdAtMs: BigInt(r.created_at),
      });
    }
    return { items };
  };
  return {
    async transferSenderInit(
      req: TransferSenderInitRequest,
      ctx: CallContext,
    ): Promise<TransferSenderInitResponse> {
      const { row, idBytes } = await requireStatechain(deps, req.statechainId);
      requireStatus(
        row,
        [StatechainStatus.STATECHAIN_STATUS_ACTIVE, StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING],
        "start a transfer",
      );
      requireFunding(row, "start a transfer");
      parsePoint(req.receiverProofKey, "receiver proof key");
      parsePoint(req.receiverBackupKey, "receiver backup key");
      check(
        !Buffer.from(req.receiverProofKey).equals(row.proof_key),
        "SELF_TRANSFER",
        "the receiver proof key is the current owner's",
      );
      const auth = await authorizeOwner(deps, TransferSenderInitRequest, req, row, ctx);
      // Room for the hand-over is checked before the coin is committed to this receiver (#19.5): its waiting
      // messages and the transfers to it not yet handed over each hold a place and room for their message, and
      // this coin's message needs at most its bound (what TransferSend then finds free, unless a sender's
      // message outgrows its own bound).
      const kickoff = await store.db.get<{ n: number }>(
        "SELECT LENGTH(signed_tx) AS n FROM backups WHERE statechain_id = ? AND owner_index = 1 AND purpose = ?",
        [idBytes, SignPurpose.SIGN_PURPOSE_KICKOFF],
      );
      const need = heldFor({
        new_owner_index: row.owner_index + 1,
        funding_bytes: row.funding_tx.length,
        kickoff_bytes: kickoff?.n ?? null,
      });
      checkMailboxRoom(
        await mailboxTaken(req.receiverProofKey, idBytes),
        need,
        "this coin's transfer message needs up to",
      );
      const res = await unary(enclave, enclave.transferInit, { signedRequest: ctx.requestBytes });
      const response: TransferSenderInitResponse = {
        encryptedX1: res.encryptedX1,
        newOwnerIndex: res.newOwnerIndex,
        backupLock: res.backupLock,
      };
      return commit(deps, ctx, auth, TransferSenderInitResponse, response, async (q) => {
        // A redirect to another receiver replaces the row; it cannot follow a hand-over (TransferSend needs the
        // receiver's backup, and the enclave refuses a redirect once that backup is co-signed).
        await q.run(
          `INSERT INTO transfers (statechain_id, new_owner_index, receiver_proof_key, receiver_backup_key, encrypted_x1, backup_lock, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (statechain_id, new_owner_index) DO UPDATE SET receiver_proof_key = excluded.receiver_proof_key,
             receiver_backup_key = excluded.receiver_backup_key, encrypted_x1 = excluded.encrypted_x1, backup_lock = excluded.backup_lock`,
          [
            idBytes,
            res.newOwnerIndex,
            req.receiverProofKey,
            req.receiverBackupKey,
            res.encryptedX1,
            res.backupLock,
            ctx.now,
          ],
        );
        await q.run("UPDATE statechains SET status = ?, updated_at = ? WHERE statechain_id = ?", [
          StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING,
          ctx.now,
          idBytes,
        ]);
      });
    },

    async transferSend(req: TransferSendRequest, ctx: CallContext): Promise<TransferSendResponse> {
      const { row, idBytes } = await requireStatechain(deps, req.statechainId);
      requireStatus(row, [StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING], "hand over the coin");
      requireFunding(row, "hand over the coin");
      const pending = await store.pendingTransfer(idBytes);
      check(
        pending,
        "NO_TRANSFER",
        "no transfer is pending for this statechain; call TransferSenderInit first",
        "precondition",
      );
      const sctx = req.statechainTx;
      check(
        sctx && sctx.kind === StatechainTxKind.STATECHAIN_TX_KIND_TRANSFER,
        "SCTX_KIND",
        "statechain transaction must be a TRANSFER",
      );
      check(
        Buffer.from(sctx.nextProofKey).equals(pending.receiver_proof_key),
        "SCTX_RECEIVER",
        "statechain transaction does not transfer to the pending receiver's proof key",
      );
      verifyStatechainTx(sctx, row.proof_key, row.state_hash);
      // DESIGN.md 3.3 steps 4-5: the receiver's backup is co-signed before the coin is handed over (the
      // message carries it, and the enclave's key update requires it).
      const backup = await store.db.get(
        "SELECT 1 AS x FROM backups WHERE statechain_id = ? AND owner_index = ? AND purpose = ?",
        [idBytes, pending.new_owner_index, SignPurpose.SIGN_PURPOSE_BACKUP],
      );
      check(
        backup,
        "BACKUP_MISSING",
        "co-sign the receiver's backup transaction (SignFirst, SignSecond, SignComplete) before handing the coin over",
        "precondition",
      );
      const ct = req.encryptedMessage;
      check(
        ct.length > 0 && ct.length <= maxMessage,
        "MAILBOX_SIZE",
        `transfer message must be 1 to ${maxMessage} bytes`,
        ct.length > 0 ? "exhausted" : "invalid",
      );
      const receiver = pending.receiver_proof_key;
      // The room other transfers to this receiver hold counts: a message larger than its sender's init held
      // takes only what nobody holds.
      checkMailboxRoom(await mailboxTaken(receiver, idBytes), ct.length, "the message has");
      const auth = await authorizeOwner(deps, TransferSendRequest, req, row, ctx);
      const messageId = randomBytes(16);
      return commit(deps, ctx, auth, TransferSendResponse, { messageId }, async (q) => {
        await q.run(
          "UPDATE transfers SET statechain_tx = ? WHERE statechain_id = ? AND new_owner_index = ?",
          [Buffer.from(StatechainTx.encode(sctx).finish()), idBytes, pending.new_owner_index],
        );
        await q.run("DELETE FROM mailbox WHERE statechain_id = ? AND receiver_proof_key = ?", [
          idBytes,
          pending.receiver_proof_key,
        ]);
        // Again inside the transaction: two senders racing to one receiver cannot both take its last room.
        checkMailboxRoom(await mailboxTaken(receiver, idBytes, q), ct.length, "the message has");
        await q.run(
          "INSERT INTO mailbox (message_id, receiver_proof_key, statechain_id, ciphertext, created_at) VALUES (?, ?, ?, ?, ?)",
          [messageId, pending.receiver_proof_key, idBytes, ct, ctx.now],
        );
      });
    },

    async mailboxGet(req: MailboxGetRequest, ctx: CallContext): Promise<MailboxGetResponse> {
      const auth = await authorizeRead(req, ctx);
      await consumeNonce(deps, ctx, auth);
      return readMailbox(req, ctx, Number.POSITIVE_INFINITY);
    },

    /**
     * Several mailboxes in one request (#19.7). Every entry is signed by its own proof key, so a batch reads
     * only mailboxes whose keys the caller holds; all signatures are checked before anything is read or used.
     */
    async mailboxGetBatch(req: MailboxGetBatchRequest, ctx: CallContext): Promise<MailboxGetBatchResponse> {
      const n = req.mailboxes.length;
      check(
        n >= 1 && n <= MAILBOX_BATCH_MAX,
        "MAILBOX_BATCH_SIZE",
        `a mailbox batch reads 1 to ${MAILBOX_BATCH_MAX} proof keys, not ${n}`,
        n > MAILBOX_BATCH_MAX ? "exhausted" : "invalid",
      );
      const keys = new Set(req.mailboxes.map((m) => Buffer.from(m.receiverProofKey).toString("hex")));
      check(keys.size === n, "MAILBOX_BATCH_DUPLICATE", "a mailbox batch names a proof key twice");
      const auths: Awaited<ReturnType<typeof authorizeRead>>[] = [];
      for (const [i, entry] of req.mailboxes.entries()) {
        try {
          auths.push(await authorizeRead(entry, ctx));
        } catch (e) {
          if (e instanceof Error) e.message = `mailbox entry ${i}: ${e.message}`;
          throw e;
        }
      }
      await store.db.transaction(async (q) => {
        for (const auth of auths) {
          const fresh = await store.useNonce(auth.key, auth.nonce, ctx.now + 2 * DEFAULT_WINDOW_MS, q);
          check(
            fresh,
            "AUTH_REPLAY",
            "this request was already used (nonce replay); sign a fresh one",
            "unauthenticated",
          );
        }
      });
      let budget = MAILBOX_BATCH_BYTES;
      const mailboxes: MailboxGetResponse[] = [];
      for (const entry of req.mailboxes) {
        const box = await readMailbox(entry, ctx, budget);
        for (const item of box.items) budget -= item.encryptedMessage.length;
        mailboxes.push(box);
      }
      return { mailboxes };
    },

    async transferReceiverInit(
      req: TransferReceiverInitRequest,
      ctx: CallContext,
    ): Promise<TransferReceiverInitResponse> {
      const { row, idBytes } = await requireStatechain(deps, req.statechainId);
      requireStatus(row, [StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING], "receive the coin");
      requireFunding(row, "receive the coin");
      const pending = await store.pendingTransfer(idBytes);
      check(
        pending && Buffer.from(req.receiverProofKey).equals(pending.receiver_proof_key),
        "NOT_RECEIVER",
        "no transfer to this proof key is pending for this statechain",
        "precondition",
      );
      check(pending.statechain_tx, "NOT_SENT", "the sender has not handed over the coin yet", "precondition");
      check(
        req.nonce.length >= ATTESTATION_NONCE.min && req.nonce.length <= ATTESTATION_NONCE.max,
        "ATTESTATION_NONCE",
        `attestation nonce must be ${ATTESTATION_NONCE.min} to ${ATTESTATION_NONCE.max} bytes`,
      );
      const auth = await authorize(deps, TransferReceiverInitRequest, req, pending.receiver_proof_key, ctx);
      const res = await unary(enclave, enclave.transferKey, { signedRequest: ctx.requestBytes });
      return commit(deps, ctx, auth, TransferReceiverInitResponse, {
        attestationDocument: res.attestationDocument,
        transferContext: res.transferContext,
      });
    },

    async transferReceiverKeyUpdate(
      req: TransferReceiverKeyUpdateRequest,
      ctx: CallContext,
    ): Promise<TransferReceiverKeyUpdateResponse> {
      const { row, idBytes } = await requireStatechain(deps, req.statechainId);
      if (
        row.status === StatechainStatus.STATECHAIN_STATUS_ACTIVE &&
        Buffer.from(req.receiverProofKey).equals(row.proof_key)
      ) {
        // The receiver's retry of a key update this host wrote at start-up from the enclave's answer (it was
        // killed before answering): the same answer, as for any committed step.
        const auth = await authorize(deps, TransferReceiverKeyUpdateRequest, req, row.proof_key, ctx);
        const stored = await storedKeyUpdate(deps, idBytes, row.owner_index);
        check(stored, "KEY_UPDATE_DONE", "this key update is already complete", "precondition");
        await consumeNonce(deps, ctx, auth);
        return stored;
      }
      requireStatus(row, [StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING], "update the key");
      requireFunding(row, "update the key");
      const pending = await store.pendingTransfer(idBytes);
      check(
        pending && Buffer.from(req.receiverProofKey).equals(pending.receiver_proof_key),
        "NOT_RECEIVER",
        "no transfer to this proof key is pending for this statechain",
        "precondition",
      );
      check(pending.statechain_tx, "NOT_SENT", "the sender has not handed over the coin yet", "precondition");
      check(req.ownerShare, "MISSING_OWNER_SHARE", "owner share is missing");
      check(
        req.encryptedT2.length > 0 && req.encryptedT2.length <= 256,
        "ENCRYPTED_T2",
        "encrypted t2 must be 1 to 256 bytes",
      );
      check(
        req.nonce.length >= ATTESTATION_NONCE.min && req.nonce.length <= ATTESTATION_NONCE.max,
        "ATTESTATION_NONCE",
        `attestation nonce must be ${ATTESTATION_NONCE.min} to ${ATTESTATION_NONCE.max} bytes`,
      );
      const auth = await authorize(
        deps,
        TransferReceiverKeyUpdateRequest,
        req,
        pending.receiver_proof_key,
        ctx,
      );
      const sctx = StatechainTx.decode(pending.statechain_tx);
      const res = await unary(
        enclave,
        enclave.keyUpdate,
        { signedRequest: ctx.requestBytes, statechainTx: sctx },
        { deadlineMs: 60_000 },
      );
      check(
        res.keyUpdate && res.stateHash.length === 32,
        "ENCLAVE_KEY_UPDATE",
        "enclave returned an incomplete key update",
        "internal",
      );
      const response: TransferReceiverKeyUpdateResponse = { seShare: res.seShare, keyUpdate: res.keyUpdate };
      const done: CompletedKeyUpdate = {
        idBytes,
        oldOwnerIndex: row.owner_index,
        pending,
        result: res,
        now: ctx.now,
      };
      const out = await commit(deps, ctx, auth, TransferReceiverKeyUpdateResponse, response, (q) =>
        writeKeyUpdate(q, done),
      );
      afterCommit(deps, "key update", () => followKeyUpdate(deps, done));
      return out;
    },

    async getKeyUpdateResult(
      req: GetKeyUpdateResultRequest,
      ctx: CallContext,
    ): Promise<GetKeyUpdateResultResponse> {
      const { row, idBytes } = await requireStatechain(deps, req.statechainId);
      check(
        Buffer.from(req.proofKey).equals(row.proof_key),
        "NOT_OWNER",
        "only the coin's current owner may fetch the key update that made it the owner",
        "unauthenticated",
      );
      const auth = await authorize(deps, GetKeyUpdateResultRequest, req, row.proof_key, ctx);
      const result = await storedKeyUpdate(deps, idBytes, row.owner_index);
      check(
        result,
        "NO_KEY_UPDATE",
        "the SE keeps no key update answer for this owner (the coin was deposited by it, or the record predates them)",
        "not_found",
      );
      await consumeNonce(deps, ctx, auth);
      return { result };
    },
  };
}

/** The answer the key update that made owner `ownerIndex` gave, as written with it. */
async function storedKeyUpdate(
  deps: Pick<ApiDeps, "store">,
  idBytes: Buffer,
  ownerIndex: number,
): Promise<TransferReceiverKeyUpdateResponse | undefined> {
  const k = await deps.store.db.get<{ record: Buffer; se_share: Buffer | null }>(
    "SELECT record, se_share FROM key_updates WHERE statechain_id = ? AND owner_index = ?",
    [idBytes, ownerIndex],
  );
  if (!k?.se_share) return undefined;
  return { seShare: SignerKeyGenShare.decode(k.se_share), keyUpdate: KeyUpdateRecord.decode(k.record) };
}

/** A key update the enclave made: what the host writes for it, from the handler or from start-up recovery. */
export interface CompletedKeyUpdate {
  idBytes: Buffer;
  oldOwnerIndex: number;
  pending: { new_owner_index: number; receiver_proof_key: Buffer; statechain_tx: Buffer | null };
  result: { seShare?: SignerKeyGenShare; keyUpdate?: KeyUpdateRecord; stateHash: Uint8Array };
  now: number;
}

/** The rows of a completed key update, in the caller's transaction. */
export async function writeKeyUpdate(q: Queryable, k: CompletedKeyUpdate): Promise<void> {
  const { idBytes, pending } = k;
  await q.run(
    "INSERT OR IGNORE INTO statechain_txs (statechain_id, seq, tx, state_after) VALUES (?, ?, ?, ?)",
    [idBytes, k.oldOwnerIndex, pending.statechain_tx, k.result.stateHash],
  );
  await q.run(
    "INSERT OR REPLACE INTO key_updates (statechain_id, owner_index, record, se_share) VALUES (?, ?, ?, ?)",
    [
      idBytes,
      pending.new_owner_index,
      Buffer.from(KeyUpdateRecord.encode(k.result.keyUpdate!).finish()),
      Buffer.from(SignerKeyGenShare.encode(k.result.seShare!).finish()),
    ],
  );
  await q.run("UPDATE transfers SET completed_at = ? WHERE statechain_id = ? AND new_owner_index = ?", [
    k.now,
    idBytes,
    pending.new_owner_index,
  ]);
  await q.run(
    "UPDATE statechains SET owner_index = ?, proof_key = ?, state_hash = ?, status = ?, updated_at = ? WHERE statechain_id = ?",
    [
      pending.new_owner_index,
      pending.receiver_proof_key,
      k.result.stateHash,
      StatechainStatus.STATECHAIN_STATUS_ACTIVE,
      k.now,
      idBytes,
    ],
  );
  await q.run("DELETE FROM mailbox WHERE statechain_id = ? AND receiver_proof_key = ?", [
    idBytes,
    pending.receiver_proof_key,
  ]);
}

/** After the commit: the SMT gets the new state, the watchtower the new owner's backup. */
export async function followKeyUpdate(
  deps: Pick<ApiDeps, "store" | "tree" | "watcher">,
  k: CompletedKeyUpdate,
) {
  const backup = await deps.store.db.get<{ signed_tx: Buffer }>(
    "SELECT signed_tx FROM backups WHERE statechain_id = ? AND owner_index = ? AND purpose = 1",
    [k.idBytes, k.pending.new_owner_index],
  );
  const kickoff = await deps.store.db.get<{ signed_tx: Buffer }>(
    "SELECT signed_tx FROM backups WHERE statechain_id = ? AND owner_index = 1 AND purpose = 2",
    [k.idBytes],
  );
  await deps.tree.sync();
  if (backup) {
    await deps.watcher.register({
      statechainId: k.idBytes,
      ownerIndex: k.pending.new_owner_index,
      backupTx: backup.signed_tx,
      kickoffTx: kickoff?.signed_tx,
    });
  }
}
