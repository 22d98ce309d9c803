// Withdrawal (DESIGN.md 3.4): the owner's WITHDRAW statechain transaction, then co-signing (sign.ts), then
// confirmation, after which the enclave erases the share and the statechain is closed in the SMT. "Confirmed"
// here means buried (policy withdrawBurialDepth, #19.4): until then a reorg can take the withdrawal out of the
// chain, so the share, the watchtower entry and the watching stay, and confirming again rebroadcasts it.
import * as bitcoin from "bitcoinjs-lib";
import { ChainError } from "../../chain/backend.ts";
import type { Queryable } from "../../common/sqlite.ts";
import { KeyUpdateRecord, StatechainStatus, StatechainTx, StatechainTxKind } from "../../proto/gen/common.ts";
import {
  WithdrawConfirmRequest,
  WithdrawConfirmResponse,
  WithdrawInitRequest,
  WithdrawInitResponse,
} from "../../proto/gen/statechain.ts";
import { unary } from "../../proto/unary.ts";
import { check } from "../../protocol/errors.ts";
import { nextState, verifyStatechainTx } from "../../protocol/statechain.ts";
import { networkOf } from "../network.ts";
import type { CallContext } from "../rpc.ts";
import type { ApiDeps } from "./deps.ts";
import { requireFunding, requireStatechain, requireStatus } from "./lookup.ts";
import { afterCommit, authorizeOwner, commit } from "./step.ts";

/** Longest scriptPubKey accepted as a withdrawal destination (P2WSH / P2TR are 34 bytes). */
const MAX_WITHDRAW_SCRIPT = 64;

export function withdrawHandlers(deps: ApiDeps) {
  const { store, enclave, cfg } = deps;
  return {
    async withdrawInit(req: WithdrawInitRequest, ctx: CallContext): Promise<WithdrawInitResponse> {
      const { row, idBytes } = await requireStatechain(deps, req.statechainId);
      // A pending transfer does not stop the owner: the enclave abandons it (erasing x1), so a sender whose
      // receiver vanished after the hand-over can still take the coin out.
      requireStatus(
        row,
        [
          StatechainStatus.STATECHAIN_STATUS_ACTIVE,
          StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING,
          StatechainStatus.STATECHAIN_STATUS_WITHDRAWING,
        ],
        "withdraw",
      );
      requireFunding(row, "withdraw");
      const sctx = req.statechainTx;
      check(
        sctx && sctx.kind === StatechainTxKind.STATECHAIN_TX_KIND_WITHDRAW,
        "SCTX_KIND",
        "statechain transaction must be a WITHDRAW",
      );
      check(
        sctx.withdrawScript.length > 0 && sctx.withdrawScript.length <= MAX_WITHDRAW_SCRIPT,
        "WITHDRAW_SCRIPT",
        `withdrawal script must be 1 to ${MAX_WITHDRAW_SCRIPT} bytes`,
      );
      verifyStatechainTx(sctx, row.proof_key, row.state_hash);
      const existing = await store.withdrawal(idBytes);
      check(
        !existing ||
          Buffer.from(existing.statechain_tx).equals(Buffer.from(StatechainTx.encode(sctx).finish())),
        "WITHDRAW_STARTED",
        "a different withdrawal is already under way for this statechain",
        "precondition",
      );
      const auth = await authorizeOwner(deps, WithdrawInitRequest, req, row, ctx);
      const res = await unary(enclave, enclave.withdrawInit, { signedRequest: ctx.requestBytes });
      // The enclave names the fee output by script; owners are shown an address.
      const feeAddress = res.feeAddress
        ? bitcoin.address.fromOutputScript(Buffer.from(res.feeAddress, "hex"), networkOf(cfg))
        : "";
      const response: WithdrawInitResponse = { feeSat: res.feeSat, feeAddress };
      return commit(deps, ctx, auth, WithdrawInitResponse, response, (q) =>
        writeWithdrawalStart(q, idBytes, sctx, ctx.now),
      );
    },

    async withdrawConfirm(req: WithdrawConfirmRequest, ctx: CallContext): Promise<WithdrawConfirmResponse> {
      const { row, idBytes, id } = await requireStatechain(deps, req.statechainId);
      // Not withdrawConfirmations: closing erases the share and drops the watchtower entry, which a reorg cannot
      // give back. The burial depth is at least withdrawConfirmations.
      const required = cfg.protocol.withdrawBurialDepth;
      const auth = await authorizeOwner(deps, WithdrawConfirmRequest, req, row, ctx);
      if (row.status === StatechainStatus.STATECHAIN_STATUS_CLOSED) {
        return commit(deps, ctx, auth, WithdrawConfirmResponse, {
          status: row.status,
          confirmations: required,
          requiredConfirmations: required,
        });
      }
      requireStatus(row, [StatechainStatus.STATECHAIN_STATUS_WITHDRAWING], "confirm a withdrawal");
      const w = await store.withdrawal(idBytes);
      check(
        w?.txid && w.signed_tx,
        "WITHDRAW_UNSIGNED",
        "the withdrawal transaction has not been co-signed yet",
        "precondition",
      );
      if (req.withdrawalTx.length > 0) {
        let txid: string;
        try {
          txid = bitcoin.Transaction.fromBuffer(req.withdrawalTx).getId();
        } catch {
          return check(false, "TX_PARSE", "withdrawal transaction does not parse") as never;
        }
        check(txid === w.txid, "WITHDRAW_TXID", "this is not the withdrawal transaction the SE co-signed");
      }
      // Not in the chain or mempool (never sent, dropped, or taken out by a reorg): send it (again).
      let st = await deps.chain.getTxStatus(w.txid);
      if (!st) {
        try {
          await deps.chain.broadcast(w.signed_tx);
        } catch (err) {
          if (!(err instanceof ChainError && err.code === "already-known")) throw err;
        }
        st = await deps.chain.getTxStatus(w.txid);
      }
      const confirmations = st?.confirmations ?? 0;
      if (confirmations < required) {
        return commit(deps, ctx, auth, WithdrawConfirmResponse, {
          status: row.status,
          confirmations,
          requiredConfirmations: required,
        });
      }
      const res = await unary(enclave, enclave.closeStatechain, {
        statechainId: id,
        withdrawalTxid: Buffer.from(w.txid, "hex").reverse(),
      });
      const response: WithdrawConfirmResponse = {
        status: StatechainStatus.STATECHAIN_STATUS_CLOSED,
        confirmations,
        requiredConfirmations: required,
      };
      const out = await commit(deps, ctx, auth, WithdrawConfirmResponse, response, (q) =>
        writeClose(q, {
          idBytes,
          ownerIndex: row.owner_index,
          statechainTx: w.statechain_tx,
          erasure: res.erasure,
          now: ctx.now,
        }),
      );
      afterCommit(deps, "withdrawal closed", async () => {
        await deps.tree.sync();
        await deps.watcher.remove(idBytes);
      });
      return out;
    },
  };
}

/**
 * The rows of an accepted withdrawal, in the caller's transaction: the WITHDRAW statement, the coin withdrawing,
 * the abandoned transfer's row and hand-over message gone (also written at start-up from the enclave's record
 * of a withdrawal this host was stopped before writing: host/enclave-agreement.ts).
 */
export async function writeWithdrawalStart(
  q: Queryable,
  idBytes: Buffer,
  sctx: StatechainTx,
  now: number,
): Promise<void> {
  await q.run("DELETE FROM mailbox WHERE statechain_id = ?", [idBytes]);
  await q.run("DELETE FROM transfers WHERE statechain_id = ? AND completed_at IS NULL", [idBytes]);
  await q.run("INSERT OR IGNORE INTO withdrawals (statechain_id, statechain_tx) VALUES (?, ?)", [
    idBytes,
    Buffer.from(StatechainTx.encode(sctx).finish()),
  ]);
  await q.run("UPDATE statechains SET status = ?, updated_at = ? WHERE statechain_id = ?", [
    StatechainStatus.STATECHAIN_STATUS_WITHDRAWING,
    now,
    idBytes,
  ]);
}

/** The rows of a closed coin (the enclave erased its share), in the caller's transaction; also from start-up. */
export async function writeClose(
  q: Queryable,
  c: {
    idBytes: Buffer;
    ownerIndex: number;
    /** The withdrawals row's WITHDRAW statement (encoded). */
    statechainTx: Buffer;
    erasure: KeyUpdateRecord | undefined;
    now: number;
  },
): Promise<void> {
  const closing = Buffer.from(nextState(StatechainTx.decode(c.statechainTx)));
  await q.run(
    "INSERT OR IGNORE INTO statechain_txs (statechain_id, seq, tx, state_after) VALUES (?, ?, ?, ?)",
    [c.idBytes, c.ownerIndex, c.statechainTx, closing],
  );
  await q.run("UPDATE withdrawals SET closed_at = ?, erasure = ? WHERE statechain_id = ?", [
    c.now,
    c.erasure ? Buffer.from(KeyUpdateRecord.encode(c.erasure).finish()) : null,
    c.idBytes,
  ]);
  await q.run("UPDATE statechains SET status = ?, state_hash = ?, updated_at = ? WHERE statechain_id = ?", [
    StatechainStatus.STATECHAIN_STATUS_CLOSED,
    closing,
    c.now,
    c.idBytes,
  ]);
}
