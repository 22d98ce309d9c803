// Deposit (DESIGN.md 3.2): challenge, init + keygen with the enclave, binding the funding output, confirmation.
import { createHash } from "node:crypto";
import * as bitcoin from "bitcoinjs-lib";
import { StatechainStatus } from "../../proto/gen/common.ts";
import {
  DepositConfirmRequest,
  DepositConfirmResponse,
  DepositFundRequest,
  DepositFundResponse,
  DepositInitRequest,
  DepositInitResponse,
  DepositKeyGenRequest,
  DepositKeyGenResponse,
  type GetDepositChallengeResponse,
} from "../../proto/gen/statechain.ts";
import { unary } from "../../proto/unary.ts";
import { parsePoint } from "../../protocol/encoding.ts";
import { check } from "../../protocol/errors.ts";
import { checkOutpoint, outpointBytes } from "../../protocol/outpoint.ts";
import { initialState } from "../../protocol/statechain.ts";
import { MAX_FUNDING_TX_BYTES } from "../../protocol/tx/build.ts";
import type { CallContext } from "../rpc.ts";
import type { ApiDeps } from "./deps.ts";
import { requireStatechain } from "./lookup.ts";
import { afterCommit, authorize, commit } from "./step.ts";

const ENCLAVE_DEADLINE_MS = 60_000;

export function depositHandlers(deps: ApiDeps) {
  const { store, enclave, cfg } = deps;

  return {
    async getDepositChallenge(_req: unknown, ctx: CallContext): Promise<GetDepositChallengeResponse> {
      check(
        cfg.deposit.guard === "pow",
        "NO_POW",
        "this SE guards deposits with prepaid tokens, not proof of work",
        "precondition",
      );
      // One more bit of work for each doubling of the deposits being set up beyond 8: a flood pays for the
      // enclave's key generation it causes, an honest depositor on a quiet SE pays the base (audit #19.2).
      const open = await store.unfundedDeposits(ctx.now, cfg.deposit.unfundedTtlMs, ctx.peer);
      const extra = Math.max(0, Math.ceil(Math.log2((open.all + 1) / 8)));
      const { challenge, expiresAt, bits } = deps.pow.issue(ctx.now, deps.pow.bits + extra);
      return { challenge, difficultyBits: bits, expiresAtMs: BigInt(expiresAt) };
    },

    async depositInit(req: DepositInitRequest, ctx: CallContext): Promise<DepositInitResponse> {
      parsePoint(req.proofKey, "proof key");
      const open = await store.unfundedDeposits(ctx.now, cfg.deposit.unfundedTtlMs, ctx.peer);
      check(
        open.peer < cfg.deposit.maxUnfundedPerPeer,
        "DEPOSITS_PER_PEER",
        `this address has ${open.peer} deposits set up and not yet funded (at most ${cfg.deposit.maxUnfundedPerPeer}): fund or abandon them, or wait ${Math.round(cfg.deposit.unfundedTtlMs / 60_000)} minutes`,
        "exhausted",
      );
      check(
        open.all < cfg.deposit.maxUnfunded,
        "DEPOSITS_BUSY",
        "the SE has too many deposits being set up right now; try again in a few minutes",
        "exhausted",
      );
      let powUsed: { challenge: Buffer; expiresAt: number } | undefined;
      let tokenUsed: Buffer | undefined;
      if (cfg.deposit.guard === "pow") {
        check(
          req.guard?.$case === "pow",
          "POW_MISSING",
          "DepositInit needs a proof of work (GetDepositChallenge)",
          "unauthenticated",
        );
        const { challenge, solution } = req.guard.value;
        const expiresAt = deps.pow.verify(challenge, req.proofKey, solution, ctx.now);
        const used = await store.db.get("SELECT 1 AS x FROM pow_used WHERE challenge = ?", [challenge]);
        check(
          !used,
          "POW_REPLAY",
          "this proof-of-work challenge was already used; ask for a new one",
          "unauthenticated",
        );
        powUsed = { challenge, expiresAt };
      } else {
        check(
          req.guard?.$case === "token",
          "TOKEN_MISSING",
          "DepositInit needs a prepaid deposit token",
          "unauthenticated",
        );
        const h = createHash("sha256").update(req.guard.value).digest();
        check(
          deps.depositTokenHashes.has(h.toString("hex")),
          "TOKEN_UNKNOWN",
          "deposit token is not valid",
          "unauthenticated",
        );
        const spent = await store.db.get("SELECT 1 AS x FROM deposit_tokens_used WHERE token_hash = ?", [h]);
        check(!spent, "TOKEN_SPENT", "this deposit token was already used for a deposit", "unauthenticated");
        tokenUsed = h;
      }
      const auth = await authorize(deps, DepositInitRequest, req, req.proofKey, ctx);
      const res = await unary(
        enclave,
        enclave.keyGenInit,
        { signedRequest: ctx.requestBytes },
        { deadlineMs: ENCLAVE_DEADLINE_MS },
      );
      const instance = Buffer.from(deps.monitor.snapshot().enclave.instanceId, "hex");
      return commit(
        deps,
        ctx,
        auth,
        DepositInitResponse,
        { depositId: res.depositId, seShare: res.seShare },
        async (q) => {
          if (powUsed) {
            const r = await q.run("INSERT OR IGNORE INTO pow_used (challenge, expires_at) VALUES (?, ?)", [
              powUsed.challenge,
              powUsed.expiresAt,
            ]);
            check(
              r.changes === 1,
              "POW_REPLAY",
              "this proof-of-work challenge was already used; ask for a new one",
              "unauthenticated",
            );
          }
          if (tokenUsed) {
            const r = await q.run(
              "INSERT OR IGNORE INTO deposit_tokens_used (token_hash, used_at) VALUES (?, ?)",
              [tokenUsed, ctx.now],
            );
            check(
              r.changes === 1,
              "TOKEN_SPENT",
              "this deposit token was already used for a deposit",
              "unauthenticated",
            );
          }
          await q.run(
            "INSERT INTO deposits (deposit_id, proof_key, enclave_instance, created_at, peer) VALUES (?, ?, ?, ?, ?)",
            [res.depositId, req.proofKey, instance, ctx.now, ctx.peer],
          );
        },
      );
    },

    async depositKeyGen(req: DepositKeyGenRequest, ctx: CallContext): Promise<DepositKeyGenResponse> {
      check(req.depositId.length === 16, "INVALID_DEPOSIT_ID", "deposit id must be 16 bytes");
      const dep = await store.deposit(req.depositId);
      check(dep, "UNKNOWN_DEPOSIT", "no deposit with this id", "not_found");
      check(
        !dep.shared_public_key,
        "KEYGEN_DONE",
        "key generation for this deposit is already complete",
        "precondition",
      );
      check(req.ownerShare, "MISSING_OWNER_SHARE", "owner share is missing");
      const auth = await authorize(deps, DepositKeyGenRequest, req, dep.proof_key, ctx);
      const res = await unary(
        enclave,
        enclave.keyGenFinish,
        { signedRequest: ctx.requestBytes },
        { deadlineMs: ENCLAVE_DEADLINE_MS },
      );
      const out: DepositKeyGenResponse = { sharedPublicKey: res.sharedPublicKey };
      return commit(deps, ctx, auth, DepositKeyGenResponse, out, async (q) => {
        await q.run("UPDATE deposits SET shared_public_key = ? WHERE deposit_id = ?", [
          res.sharedPublicKey,
          req.depositId,
        ]);
      });
    },

    async depositFund(req: DepositFundRequest, ctx: CallContext): Promise<DepositFundResponse> {
      check(req.depositId.length === 16, "INVALID_DEPOSIT_ID", "deposit id must be 16 bytes");
      const dep = await store.deposit(req.depositId);
      check(dep, "UNKNOWN_DEPOSIT", "no deposit with this id", "not_found");
      check(
        dep.shared_public_key,
        "KEYGEN_PENDING",
        "finish key generation before binding the funding transaction",
        "precondition",
      );
      check(
        !dep.statechain_id,
        "ALREADY_FUNDED",
        "this deposit is already bound to a funding output",
        "precondition",
      );
      // Every transfer message carries the funding transaction: a coin funded by a larger one could never be
      // handed over through the mailbox (#19.5), so it is refused before it is bound.
      check(
        req.fundingTx.length <= MAX_FUNDING_TX_BYTES,
        "FUNDING_TX_SIZE",
        `the funding transaction has ${req.fundingTx.length} bytes, more than ${MAX_FUNDING_TX_BYTES}: every transfer of the coin carries it, so it could never be sent; fund the deposit from fewer inputs`,
      );
      let tx: bitcoin.Transaction;
      try {
        tx = bitcoin.Transaction.fromBuffer(req.fundingTx);
      } catch {
        return check(false, "FUNDING_TX_PARSE", "funding transaction does not parse") as never;
      }
      const out = tx.outs[req.vout];
      check(out, "FUNDING_VOUT", `funding transaction has no output ${req.vout}`);
      const expected = bitcoin.payments.p2wpkh({ pubkey: dep.shared_public_key }).output!;
      check(
        Buffer.from(out.script).equals(Buffer.from(expected)),
        "FUNDING_SCRIPT",
        `funding output ${req.vout} does not pay P2WPKH of the shared key`,
      );
      const amount = out.value;
      const p = cfg.protocol;
      check(
        amount >= BigInt(p.minDepositSat) && amount <= BigInt(p.maxDepositSat),
        "DEPOSIT_AMOUNT",
        `deposit amount ${amount} sat is outside [${p.minDepositSat}, ${p.maxDepositSat}]`,
      );
      const auth = await authorize(deps, DepositFundRequest, req, dep.proof_key, ctx);
      const tip = await deps.chain.tipHeight();
      const res = await unary(
        enclave,
        enclave.bindFunding,
        { signedRequest: ctx.requestBytes, chainTip: tip },
        { deadlineMs: ENCLAVE_DEADLINE_MS },
      );
      const id = checkOutpoint(res.statechainId);
      const idBytes = outpointBytes(id);
      const response: DepositFundResponse = {
        statechainId: id,
        amountSat: res.amountSat,
        initialLock: res.initialLock,
        backupMode: res.backupMode,
      };
      return commit(deps, ctx, auth, DepositFundResponse, response, async (q) => {
        await q.run("UPDATE deposits SET statechain_id = ? WHERE deposit_id = ?", [idBytes, req.depositId]);
        await q.run(
          `INSERT INTO statechains (statechain_id, deposit_id, status, amount_sat, shared_public_key, owner_index,
             deposit_proof_key, proof_key, state_hash, backup_mode, initial_lock, funding_tx, enclave_instance, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [
            idBytes,
            req.depositId,
            StatechainStatus.STATECHAIN_STATUS_AWAITING_CONFIRMATION,
            Number(res.amountSat),
            dep.shared_public_key,
            dep.proof_key,
            dep.proof_key,
            Buffer.from(initialState(dep.proof_key)),
            res.backupMode,
            res.initialLock,
            req.fundingTx,
            dep.enclave_instance,
            ctx.now,
            ctx.now,
          ],
        );
      });
    },

    async depositConfirm(req: DepositConfirmRequest, ctx: CallContext): Promise<DepositConfirmResponse> {
      const { row, idBytes, id } = await requireStatechain(deps, req.statechainId);
      const auth = await authorize(deps, DepositConfirmRequest, req, row.proof_key, ctx);
      const required = cfg.protocol.depositConfirmations;
      if (row.status !== StatechainStatus.STATECHAIN_STATUS_AWAITING_CONFIRMATION) {
        return commit(deps, ctx, auth, DepositConfirmResponse, {
          status: row.status,
          confirmations: 0,
          requiredConfirmations: required,
        });
      }
      const txid = Buffer.from(id.txid).reverse().toString("hex");
      const st = await deps.chain.getTxStatus(txid);
      const confirmations = st?.confirmations ?? 0;
      if (confirmations < required || !st) {
        return commit(deps, ctx, auth, DepositConfirmResponse, {
          status: row.status,
          confirmations,
          requiredConfirmations: required,
        });
      }
      const utxo = await deps.chain.getUtxo(txid, id.vout);
      check(utxo, "FUNDING_SPENT", "the funding output is already spent", "precondition");
      check(
        utxo.valueSat === BigInt(row.amount_sat),
        "FUNDING_AMOUNT",
        "the confirmed funding output does not carry the bound amount",
        "precondition",
      );
      const backup = await store.db.get<{ signed_tx: Buffer }>(
        "SELECT signed_tx FROM backups WHERE statechain_id = ? AND owner_index = 1 AND purpose = 1",
        [idBytes],
      );
      check(
        backup,
        "BACKUP_MISSING",
        "co-sign the backup transaction before the deposit can become active",
        "precondition",
      );
      const kickoff = await store.db.get<{ signed_tx: Buffer }>(
        "SELECT signed_tx FROM backups WHERE statechain_id = ? AND owner_index = 1 AND purpose = 2",
        [idBytes],
      );
      const response: DepositConfirmResponse = {
        status: StatechainStatus.STATECHAIN_STATUS_ACTIVE,
        confirmations,
        requiredConfirmations: required,
      };
      const out = await commit(deps, ctx, auth, DepositConfirmResponse, response, async (q) => {
        await q.run(
          "UPDATE statechains SET status = ?, updated_at = ? WHERE statechain_id = ? AND status = ?",
          [
            StatechainStatus.STATECHAIN_STATUS_ACTIVE,
            ctx.now,
            idBytes,
            StatechainStatus.STATECHAIN_STATUS_AWAITING_CONFIRMATION,
          ],
        );
      });
      afterCommit(deps, "deposit confirmed", async () => {
        await deps.tree.sync();
        await deps.watcher.register({
          statechainId: idBytes,
          ownerIndex: 1,
          backupTx: backup.signed_tx,
          kickoffTx: kickoff?.signed_tx,
        });
      });
      return out;
    },
  };
}
