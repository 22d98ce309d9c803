// Periodic pruning of host rows nothing can use any more (audit #19.13). Runs at start and every
// prune.intervalMs; each pass is one transaction; it logs row counts only.
//
// What goes, and why nothing still needed does:
// - auth_nonces, pow_used: past their own expiry (a request signed that long ago is refused as stale anyway).
// - deposits never bound to a funding output, older than deposit.unfundedTtlMs: the enclave forgets them after
//   the same time, so the row can never be used again. Funded deposits are referenced by their statechain: kept.
// - idempotency answers older than prune.answerRetentionMs (at least twice the request signature window, the
//   time a request's nonce is remembered): a retry of an older request is refused as stale by its timestamp
//   before any answer would be looked up, so only a request the SE could no longer accept loses its answer.
//   The key update's answer the new owner may need later lives in key_updates (GetKeyUpdateResult): kept.
// - sign_sessions older than prune.answerRetentionMs: only SignSecond reads them, and the enclave forgets a
//   signing session after 10 minutes (and on any change of the coin's state), so an older one cannot complete.
//   The signed results live elsewhere (backups, withdrawals): kept.
// - mailbox messages older than prune.answerRetentionMs that belong to no open transfer: a transfer redirected
//   to another receiver, or a coin closed. A message of an incomplete transfer of a coin in TRANSFER_PENDING or
//   EXIT_BY_BACKUP (its receiver may hold the coin's first valid backup) is kept however old; completion and
//   withdrawal already delete theirs.
import { StatechainStatus } from "../proto/gen/common.ts";
import type { Logger } from "./log.ts";
import type { Store } from "./store.ts";

export interface PruneLimits {
  unfundedTtlMs: number;
  answerRetentionMs: number;
}

export type PruneCounts = Record<
  "authNonces" | "powUsed" | "deposits" | "idempotency" | "signSessions" | "mailbox",
  number
>;

export async function pruneOnce(store: Store, now: number, limits: PruneLimits): Promise<PruneCounts> {
  const answersBefore = now - limits.answerRetentionMs;
  return store.db.transaction(async (q) => ({
    authNonces: (await q.run("DELETE FROM auth_nonces WHERE expires_at < ?", [now])).changes,
    powUsed: (await q.run("DELETE FROM pow_used WHERE expires_at < ?", [now])).changes,
    deposits: (
      await q.run("DELETE FROM deposits WHERE statechain_id IS NULL AND created_at < ?", [
        now - limits.unfundedTtlMs,
      ])
    ).changes,
    idempotency: (await q.run("DELETE FROM idempotency WHERE created_at < ?", [answersBefore])).changes,
    signSessions: (await q.run("DELETE FROM sign_sessions WHERE created_at < ?", [answersBefore])).changes,
    mailbox: (
      await q.run(
        `DELETE FROM mailbox WHERE created_at < ? AND NOT EXISTS (
           SELECT 1 FROM transfers t JOIN statechains s ON s.statechain_id = t.statechain_id
            WHERE t.statechain_id = mailbox.statechain_id AND t.receiver_proof_key = mailbox.receiver_proof_key
              AND t.completed_at IS NULL AND s.status IN (?, ?))`,
        [
          answersBefore,
          StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING,
          StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP,
        ],
      )
    ).changes,
  }));
}

/** Prunes now and then every `intervalMs`; returns the stop function. A failed pass is logged and retried. */
export function startPruner(
  store: Store,
  limits: PruneLimits & { intervalMs: number },
  log: Logger,
  clock: () => number = Date.now,
): { stop(): void; done: Promise<void> } {
  let running: Promise<void> = Promise.resolve();
  const pass = () => {
    running = running.then(async () => {
      try {
        const counts = await pruneOnce(store, clock(), limits);
        const total = Object.values(counts).reduce((a, b) => a + b, 0);
        if (total > 0) log.info(counts, "pruned expired rows");
      } catch (err) {
        log.warn({ err: (err as Error).message }, "pruning failed; retried at the next interval");
      }
    });
  };
  pass();
  const timer = setInterval(pass, limits.intervalMs);
  timer.unref();
  return {
    stop: () => clearInterval(timer),
    get done() {
      return running;
    },
  };
}
