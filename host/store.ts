// The host's SQLite store: public data and ciphertexts only (no share, no secret key ever reaches the host).
// Every protocol step writes its rows in one transaction, together with the idempotency record of the request,
// so a host killed at any point restarts with either all of a step or none of it.

import type { Db, Migration, Queryable } from "../common/sqlite.ts";
import { StatechainStatus } from "../proto/gen/common.ts";

export const HOST_MIGRATIONS: Migration[] = [
  {
    id: "host-001-core",
    sql: `
      CREATE TABLE deposits (
        deposit_id BLOB PRIMARY KEY,
        proof_key BLOB NOT NULL,
        shared_public_key BLOB,
        statechain_id BLOB UNIQUE,
        enclave_instance BLOB NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE TABLE statechains (
        statechain_id BLOB PRIMARY KEY,
        deposit_id BLOB NOT NULL REFERENCES deposits(deposit_id),
        status INTEGER NOT NULL,
        amount_sat INTEGER NOT NULL,
        shared_public_key BLOB NOT NULL,
        owner_index INTEGER NOT NULL,
        deposit_proof_key BLOB NOT NULL,
        proof_key BLOB NOT NULL,
        state_hash BLOB NOT NULL,
        backup_mode INTEGER NOT NULL,
        initial_lock INTEGER NOT NULL,
        funding_tx BLOB NOT NULL,
        enclave_instance BLOB NOT NULL,
        smt_leaf BLOB,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE INDEX statechains_status ON statechains(status);
      CREATE TABLE statechain_txs (
        statechain_id BLOB NOT NULL REFERENCES statechains(statechain_id),
        seq INTEGER NOT NULL,
        tx BLOB NOT NULL,
        state_after BLOB NOT NULL,
        PRIMARY KEY (statechain_id, seq)
      );
      CREATE TABLE key_updates (
        statechain_id BLOB NOT NULL REFERENCES statechains(statechain_id),
        owner_index INTEGER NOT NULL,
        record BLOB NOT NULL,
        PRIMARY KEY (statechain_id, owner_index)
      );
      CREATE TABLE transfers (
        statechain_id BLOB NOT NULL REFERENCES statechains(statechain_id),
        new_owner_index INTEGER NOT NULL,
        receiver_proof_key BLOB NOT NULL,
        receiver_backup_key BLOB NOT NULL,
        encrypted_x1 BLOB NOT NULL,
        backup_lock INTEGER NOT NULL,
        statechain_tx BLOB,
        completed_at INTEGER,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (statechain_id, new_owner_index)
      );
      CREATE TABLE mailbox (
        message_id BLOB PRIMARY KEY,
        receiver_proof_key BLOB NOT NULL,
        statechain_id BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX mailbox_receiver ON mailbox(receiver_proof_key, created_at);
      CREATE TABLE sign_sessions (
        session_id BLOB PRIMARY KEY,
        statechain_id BLOB NOT NULL,
        purpose INTEGER NOT NULL,
        tx BLOB NOT NULL,
        input_index INTEGER NOT NULL,
        owner_index INTEGER NOT NULL,
        signature BLOB,
        created_at INTEGER NOT NULL
      );
      CREATE TABLE backups (
        statechain_id BLOB NOT NULL,
        owner_index INTEGER NOT NULL,
        purpose INTEGER NOT NULL,
        signed_tx BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (statechain_id, owner_index, purpose)
      );
      CREATE TABLE withdrawals (
        statechain_id BLOB PRIMARY KEY REFERENCES statechains(statechain_id),
        statechain_tx BLOB NOT NULL,
        signed_tx BLOB,
        txid TEXT,
        closed_at INTEGER,
        erasure BLOB
      );
      CREATE TABLE auth_nonces (
        proof_key BLOB NOT NULL,
        nonce BLOB NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (proof_key, nonce)
      );
      CREATE INDEX auth_nonces_expiry ON auth_nonces(expires_at);
      CREATE TABLE idempotency (
        request_hash BLOB PRIMARY KEY,
        method TEXT NOT NULL,
        response BLOB NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE TABLE pow_used (
        challenge BLOB PRIMARY KEY,
        expires_at INTEGER NOT NULL
      );
      CREATE TABLE enclave_instances (
        instance_id BLOB PRIMARY KEY,
        first_seen INTEGER NOT NULL
      );
    `,
  },
  {
    // A prepaid deposit token pays for one deposit: it is spent in the DepositInit step that uses it.
    id: "host-002-deposit-tokens",
    sql: `
      CREATE TABLE deposit_tokens_used (
        token_hash BLOB PRIMARY KEY,
        used_at INTEGER NOT NULL
      );
    `,
  },
  {
    // The enclave's answer to a key update (S2, c_key, proofs: public), so the new owner can fetch it again
    // after the request's window (GetKeyUpdateResult) and a host that crashed before writing it can recover it.
    id: "host-003-key-update-share",
    sql: "ALTER TABLE key_updates ADD COLUMN se_share BLOB;",
  },
  {
    // Who set a deposit up (address, no port): unfunded deposits are capped per peer (audit #19.2).
    id: "host-004-deposit-peer",
    sql: `
      ALTER TABLE deposits ADD COLUMN peer TEXT;
      CREATE INDEX deposits_unfunded ON deposits (created_at) WHERE statechain_id IS NULL;
    `,
  },
  {
    // The owner finishes each signature (DESIGN.md 3.1): the host keeps the digest the enclave computed, to
    // check the signature handed over (SignComplete) under P, and when the enclave released c3.
    id: "host-005-sign-complete",
    sql: `
      ALTER TABLE sign_sessions ADD COLUMN digest BLOB;
      ALTER TABLE sign_sessions ADD COLUMN released_at INTEGER;
    `,
  },
  {
    // What the funding watch (host/funding-watch.ts, #19.8) last found of each coin's funding transaction: a
    // FundingState, its words when the funding is lost, and the height from which it was seen in neither chain
    // nor mempool (the grace before MISSING counts from there).
    id: "host-006-funding-watch",
    sql: `
      ALTER TABLE statechains ADD COLUMN funding_state INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE statechains ADD COLUMN funding_problem TEXT;
      ALTER TABLE statechains ADD COLUMN funding_missing_since INTEGER;
    `,
  },
  {
    // The transfers under way to one receiver hold room in its mailbox (#19.5): looked up at every
    // TransferSenderInit and TransferSend.
    id: "host-007-transfers-receiver",
    sql: "CREATE INDEX transfers_receiver ON transfers (receiver_proof_key) WHERE completed_at IS NULL;",
  },
  {
    // Recovery (issue #22) finds a proof key's coins: as depositor, and as the receiver of any transfer.
    id: "host-008-recovery",
    sql: `
      CREATE INDEX statechains_deposit_key ON statechains (deposit_proof_key);
      CREATE INDEX transfers_receiver_all ON transfers (receiver_proof_key);
    `,
  },
];

export interface StatechainRow {
  statechain_id: Buffer;
  deposit_id: Buffer;
  status: number;
  amount_sat: number;
  shared_public_key: Buffer;
  owner_index: number;
  deposit_proof_key: Buffer;
  proof_key: Buffer;
  state_hash: Buffer;
  backup_mode: number;
  initial_lock: number;
  funding_tx: Buffer;
  enclave_instance: Buffer;
  /** The leaf last written to the SMT; differs from state_hash until the tree caught up. */
  smt_leaf: Buffer | null;
  created_at: number;
  updated_at: number;
  /** FundingState: what the funding watch last found (0 until its first look). */
  funding_state: number;
  /** Why the funding is lost, in words (DOUBLE_SPENT, MISSING); null otherwise. */
  funding_problem: string | null;
  /** The height from which the funding was in neither chain nor mempool; null while it is seen. */
  funding_missing_since: number | null;
}

export interface DepositRow {
  deposit_id: Buffer;
  proof_key: Buffer;
  shared_public_key: Buffer | null;
  statechain_id: Buffer | null;
  enclave_instance: Buffer;
  created_at: number;
}

export interface TransferRow {
  statechain_id: Buffer;
  new_owner_index: number;
  receiver_proof_key: Buffer;
  receiver_backup_key: Buffer;
  encrypted_x1: Buffer;
  backup_lock: number;
  statechain_tx: Buffer | null;
  completed_at: number | null;
  created_at: number;
}

export interface SignSessionRow {
  session_id: Buffer;
  statechain_id: Buffer;
  purpose: number;
  tx: Buffer;
  input_index: number;
  owner_index: number;
  signature: Buffer | null;
  created_at: number;
  digest: Buffer | null;
  released_at: number | null;
}

export interface WithdrawalRow {
  statechain_id: Buffer;
  statechain_tx: Buffer;
  signed_tx: Buffer | null;
  txid: string | null;
  closed_at: number | null;
  erasure: Buffer | null;
}

/** Typed queries over the host database. Methods taking `q` run inside the caller's transaction. */
export class Store {
  constructor(readonly db: Db) {}

  deposit(id: Uint8Array, q: Queryable = this.db) {
    return q.get<DepositRow>("SELECT * FROM deposits WHERE deposit_id = ?", [id]);
  }

  statechain(id: Uint8Array, q: Queryable = this.db) {
    return q.get<StatechainRow>("SELECT * FROM statechains WHERE statechain_id = ?", [id]);
  }

  statechainsByStatus(statuses: number[], q: Queryable = this.db) {
    return q.all<StatechainRow>(
      `SELECT * FROM statechains WHERE status IN (${statuses.map(() => "?").join(",")}) ORDER BY created_at`,
      statuses,
    );
  }

  chainTxs(id: Uint8Array, q: Queryable = this.db) {
    return q.all<{ seq: number; tx: Buffer; state_after: Buffer }>(
      "SELECT seq, tx, state_after FROM statechain_txs WHERE statechain_id = ? ORDER BY seq",
      [id],
    );
  }

  keyUpdates(id: Uint8Array, q: Queryable = this.db) {
    return q.all<{ owner_index: number; record: Buffer }>(
      "SELECT owner_index, record FROM key_updates WHERE statechain_id = ? ORDER BY owner_index",
      [id],
    );
  }

  /** The co-signed backups (and kick-off) of a coin, by owner index. */
  backups(id: Uint8Array, q: Queryable = this.db) {
    return q.all<{ owner_index: number; purpose: number; signed_tx: Buffer }>(
      "SELECT owner_index, purpose, signed_tx FROM backups WHERE statechain_id = ? ORDER BY owner_index, purpose",
      [id],
    );
  }

  pendingTransfer(id: Uint8Array, q: Queryable = this.db) {
    return q.get<TransferRow>(
      "SELECT * FROM transfers WHERE statechain_id = ? AND completed_at IS NULL ORDER BY new_owner_index DESC LIMIT 1",
      [id],
    );
  }

  signSession(sessionId: Uint8Array, q: Queryable = this.db) {
    return q.get<SignSessionRow>("SELECT * FROM sign_sessions WHERE session_id = ?", [sessionId]);
  }

  withdrawal(id: Uint8Array, q: Queryable = this.db) {
    return q.get<WithdrawalRow>("SELECT * FROM withdrawals WHERE statechain_id = ?", [id]);
  }

  mailbox(receiver: Uint8Array, limit: number, q: Queryable = this.db) {
    return q.all<{ message_id: Buffer; statechain_id: Buffer; ciphertext: Buffer; created_at: number }>(
      "SELECT message_id, statechain_id, ciphertext, created_at FROM mailbox WHERE receiver_proof_key = ? ORDER BY created_at LIMIT ?",
      [receiver, limit],
    );
  }

  /** Messages and bytes waiting for `receiver`, leaving out the message about `except` (one it replaces). */
  async mailboxUsage(
    receiver: Uint8Array,
    except: Uint8Array = Buffer.alloc(0),
    q: Queryable = this.db,
  ): Promise<{ count: number; bytes: number }> {
    const row = await q.get<{ count: number; bytes: number | null }>(
      "SELECT COUNT(*) AS count, SUM(LENGTH(ciphertext)) AS bytes FROM mailbox WHERE receiver_proof_key = ? AND statechain_id != ?",
      [receiver, except],
    );
    return { count: row?.count ?? 0, bytes: row?.bytes ?? 0 };
  }

  /**
   * The transfers to `receiver` (other than `except`'s) started and not handed over yet, of coins still pending:
   * each holds a place and room for its message in the receiver's mailbox. With what bounds that message's size:
   * the new owner's index (the backups it carries), the funding and kick-off transactions' sizes.
   */
  pendingHandOvers(receiver: Uint8Array, except: Uint8Array, q: Queryable = this.db) {
    return q.all<{ new_owner_index: number; funding_bytes: number; kickoff_bytes: number | null }>(
      `SELECT t.new_owner_index, LENGTH(s.funding_tx) AS funding_bytes,
              (SELECT LENGTH(k.signed_tx) FROM backups k
                WHERE k.statechain_id = t.statechain_id AND k.owner_index = 1 AND k.purpose = 2) AS kickoff_bytes
         FROM transfers t JOIN statechains s ON s.statechain_id = t.statechain_id
        WHERE t.receiver_proof_key = ? AND t.statechain_id != ? AND t.completed_at IS NULL
          AND t.statechain_tx IS NULL AND s.status = ?`,
      [receiver, except, StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING],
    );
  }

  idempotent(hash: Uint8Array, q: Queryable = this.db) {
    return q.get<{ method: string; response: Buffer }>(
      "SELECT method, response FROM idempotency WHERE request_hash = ?",
      [hash],
    );
  }

  saveIdempotent(hash: Uint8Array, method: string, response: Uint8Array, now: number, q: Queryable) {
    return q.run(
      "INSERT OR IGNORE INTO idempotency (request_hash, method, response, created_at) VALUES (?, ?, ?, ?)",
      [hash, method, response, now],
    );
  }

  /** Records a nonce for a key; false when it was already used (a replay). */
  async useNonce(key: Uint8Array, nonce: Uint8Array, expiresAt: number, q: Queryable): Promise<boolean> {
    const r = await q.run(
      "INSERT OR IGNORE INTO auth_nonces (proof_key, nonce, expires_at) VALUES (?, ?, ?)",
      [key, nonce, expiresAt],
    );
    return r.changes === 1;
  }

  /** Deposits set up within `ttlMs` and not bound to a funding output: overall, and from `peer`. */
  async unfundedDeposits(now: number, ttlMs: number, peer: string): Promise<{ all: number; peer: number }> {
    const r = await this.db.get<{ all_n: number; peer_n: number }>(
      `SELECT COUNT(*) AS all_n, COALESCE(SUM(peer = ?), 0) AS peer_n FROM deposits
        WHERE statechain_id IS NULL AND created_at >= ?`,
      [peer, now - ttlMs],
    );
    return { all: r?.all_n ?? 0, peer: r?.peer_n ?? 0 };
  }

  async countByStatus(): Promise<Map<number, number>> {
    const rows = await this.db.all<{ status: number; n: number }>(
      "SELECT status, COUNT(*) AS n FROM statechains GROUP BY status",
    );
    return new Map(rows.map((r) => [r.status, r.n]));
  }
}
