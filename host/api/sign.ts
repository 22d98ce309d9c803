// Co-signing rounds (backup, kick-off, withdrawal). The enclave parses the transaction, applies its policy and
// computes the digest; it releases c3, the owner finishes the signature (DESIGN.md 3.1) and hands it over; the
// host checks it under P, assembles the signed transaction and keeps backups for the watchtower.
import * as bitcoin from "bitcoinjs-lib";
import { SignPurpose, StatechainStatus } from "../../proto/gen/common.ts";
import {
  type SignCompleteRequest,
  SignCompleteResponse,
  SignFirstRequest,
  SignFirstResponse,
  SignSecondRequest,
  SignSecondResponse,
} from "../../proto/gen/statechain.ts";
import { unary } from "../../proto/unary.ts";
import { verifyEcdsa } from "../../protocol/ecdsa2p/verify.ts";
import { check } from "../../protocol/errors.ts";
import type { CallContext } from "../rpc.ts";
import type { ApiDeps } from "./deps.ts";
import { requireFunding, requireStatechain, requireStatus } from "./lookup.ts";
import { authorizeOwner, commit } from "./step.ts";

const SIGNABLE = [
  StatechainStatus.STATECHAIN_STATUS_AWAITING_CONFIRMATION,
  StatechainStatus.STATECHAIN_STATUS_ACTIVE,
  StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING,
  StatechainStatus.STATECHAIN_STATUS_WITHDRAWING,
];

function parseTx(raw: Uint8Array): bitcoin.Transaction {
  try {
    return bitcoin.Transaction.fromBuffer(raw);
  } catch {
    return check(false, "TX_PARSE", "transaction to co-sign does not parse") as never;
  }
}

/** The signed transaction: witness [DER signature ‖ SIGHASH_ALL, P] on the co-signed input. */
export function finalizeP2wpkh(
  raw: Uint8Array,
  inputIndex: number,
  sig64: Uint8Array,
  sharedKey: Uint8Array,
): Buffer {
  const tx = bitcoin.Transaction.fromBuffer(raw);
  tx.setWitness(inputIndex, [
    bitcoin.script.signature.encode(sig64, bitcoin.Transaction.SIGHASH_ALL),
    sharedKey,
  ]);
  return Buffer.from(tx.toBuffer());
}

/**
 * Kick-off mode: the height at which the coin's co-signed kick-off confirmed (0 if it has not, or there is none),
 * for the enclave's "kick-off height + relative lock > tip + margin" (DESIGN.md 3.5).
 */
async function kickoffConfirmedAt(deps: ApiDeps, idBytes: Buffer): Promise<number> {
  const k = await deps.store.db.get<{ signed_tx: Buffer }>(
    "SELECT signed_tx FROM backups WHERE statechain_id = ? AND owner_index = 1 AND purpose = ?",
    [idBytes, SignPurpose.SIGN_PURPOSE_KICKOFF],
  );
  if (!k?.signed_tx) return 0;
  const txid = bitcoin.Transaction.fromBuffer(k.signed_tx).getId();
  const st = await deps.chain.getTxStatus(txid);
  return st && st.confirmations > 0 && st.blockHeight ? st.blockHeight : 0;
}

export function signHandlers(deps: ApiDeps) {
  const { store, enclave } = deps;
  /** The host's record of signing session `sessionId`, which must belong to the statechain `idBytes`. */
  const sessionOf = async (sessionId: Uint8Array, idBytes: Uint8Array) => {
    check(sessionId.length === 16, "INVALID_SESSION", "session id must be 16 bytes");
    const session = await store.signSession(sessionId);
    check(
      session && Buffer.from(session.statechain_id).equals(idBytes),
      "UNKNOWN_SESSION",
      "no signing session with this id for this statechain",
      "not_found",
    );
    return session;
  };

  return {
    async signFirst(req: SignFirstRequest, ctx: CallContext): Promise<SignFirstResponse> {
      const { row, idBytes } = await requireStatechain(deps, req.statechainId);
      requireStatus(row, SIGNABLE, "co-sign");
      requireFunding(row, "co-sign");
      check(
        [
          SignPurpose.SIGN_PURPOSE_BACKUP,
          SignPurpose.SIGN_PURPOSE_KICKOFF,
          SignPurpose.SIGN_PURPOSE_WITHDRAWAL,
        ].includes(req.purpose),
        "SIGN_PURPOSE",
        "sign purpose must be BACKUP, KICKOFF or WITHDRAWAL",
      );
      check(req.ownerCommit, "MISSING_OWNER_COMMIT", "owner nonce commitment is missing");
      const tx = parseTx(req.tx);
      check(req.inputIndex < tx.ins.length, "INPUT_INDEX", `transaction has no input ${req.inputIndex}`);
      const auth = await authorizeOwner(deps, SignFirstRequest, req, row, ctx);

      let ownerIndex = row.owner_index;
      if (req.purpose === SignPurpose.SIGN_PURPOSE_BACKUP) {
        const pending = await store.pendingTransfer(idBytes);
        const toReceiver =
          pending && bitcoin.payments.p2wpkh({ pubkey: pending.receiver_backup_key }).output!;
        if (pending && tx.outs.some((o) => Buffer.from(o.script).equals(Buffer.from(toReceiver!))))
          ownerIndex = pending.new_owner_index;
      }
      const tip = await deps.chain.tipHeight();
      const kickoffHeight =
        req.purpose === SignPurpose.SIGN_PURPOSE_BACKUP ? await kickoffConfirmedAt(deps, idBytes) : 0;
      const res = await unary(enclave, enclave.signFirst, {
        signedRequest: ctx.requestBytes,
        chainTip: tip,
        kickoffHeight,
      });
      const response: SignFirstResponse = {
        sessionId: res.sessionId,
        seNonce: res.seNonce,
        digest: res.digest,
      };
      return commit(deps, ctx, auth, SignFirstResponse, response, async (q) => {
        await q.run(
          `INSERT INTO sign_sessions (session_id, statechain_id, purpose, tx, input_index, owner_index, created_at, digest)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
          [res.sessionId, idBytes, req.purpose, req.tx, req.inputIndex, ownerIndex, ctx.now, res.digest],
        );
      });
    },

    async signSecond(req: SignSecondRequest, ctx: CallContext): Promise<SignSecondResponse> {
      const { row, idBytes } = await requireStatechain(deps, req.statechainId);
      const session = await sessionOf(req.sessionId, idBytes);
      check(
        !session.released_at,
        "SESSION_DONE",
        "the enclave's part of this session was released already",
        "precondition",
      );
      requireStatus(row, SIGNABLE, "co-sign");
      // Checked again as the enclave's part is released: the mark may have come since SignFirst.
      requireFunding(row, "co-sign");
      check(req.ownerNonce, "MISSING_OWNER_NONCE", "the owner's nonce opening is missing");
      const auth = await authorizeOwner(deps, SignSecondRequest, req, row, ctx);
      const res = await unary(enclave, enclave.signSecond, { signedRequest: ctx.requestBytes });
      const partial = res.sePartial;
      check(
        partial && partial.partialSignature.length > 0 && partial.statementSignature.length === 64,
        "ENCLAVE_PARTIAL",
        "enclave returned a malformed partial signature",
        "internal",
      );
      return commit(deps, ctx, auth, SignSecondResponse, { sePartial: partial }, async (q) => {
        await q.run("UPDATE sign_sessions SET released_at = ? WHERE session_id = ?", [
          ctx.now,
          req.sessionId,
        ]);
      });
    },

    /**
     * The owner's finished signature (DESIGN.md 3.1: the owner decrypts c3 and finishes). The host checks it
     * under P against the digest the enclave computed, then keeps the signed transaction: the backup for the
     * watchtower, the kick-off, the withdrawal. Needs no owner signature: only the holder of a valid
     * signature can send one, and anyone may (a receiver hands in its own backup's, from the sender's message).
     */
    async signComplete(req: SignCompleteRequest, ctx: CallContext): Promise<SignCompleteResponse> {
      const { row, idBytes } = await requireStatechain(deps, req.statechainId);
      // A coin the SE can no longer co-sign takes no new backup either: its way out is fixed (the newest kept).
      requireStatus(row, SIGNABLE, "complete a signature");
      const session = await sessionOf(req.sessionId, idBytes);
      check(
        session.released_at && session.digest,
        "SESSION_NOT_RELEASED",
        "the enclave has not released its part of this session yet (SignSecond)",
        "precondition",
      );
      check(req.signature.length === 64, "SIGNATURE_LENGTH", "the signature must be 64 bytes (r || s)");
      const sig = Buffer.from(req.signature);
      const ok = (() => {
        try {
          return verifyEcdsa(sig, session.digest, row.shared_public_key);
        } catch {
          return false;
        }
      })();
      check(
        ok,
        "SIGNATURE_INVALID",
        "the signature does not verify under the coin's key for this session's digest (or is not low-S)",
      );
      const signed = finalizeP2wpkh(session.tx, session.input_index, sig, row.shared_public_key);
      if (session.signature) return { signedTx: signed };
      return commit(deps, ctx, undefined, SignCompleteResponse, { signedTx: signed }, async (q) => {
        await q.run("UPDATE sign_sessions SET signature = ? WHERE session_id = ?", [sig, req.sessionId]);
        if (session.purpose === SignPurpose.SIGN_PURPOSE_WITHDRAWAL) {
          const txid = bitcoin.Transaction.fromBuffer(signed).getId();
          await q.run("UPDATE withdrawals SET signed_tx = ?, txid = ? WHERE statechain_id = ?", [
            signed,
            txid,
            idBytes,
          ]);
        } else {
          await q.run(
            `INSERT INTO backups (statechain_id, owner_index, purpose, signed_tx, created_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (statechain_id, owner_index, purpose) DO UPDATE SET signed_tx = excluded.signed_tx, created_at = excluded.created_at`,
            [idBytes, session.owner_index, session.purpose, signed, ctx.now],
          );
        }
      });
    },
  };
}
