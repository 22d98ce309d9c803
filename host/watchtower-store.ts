// SQLite persistence for the watchtower: one row per statechain holding the newest owner's exit transactions
// and where the exit stands, so a restarted host carries on where it stopped.
import type { Db, Migration, Param } from "../common/sqlite.ts";

export const WATCHTOWER_MIGRATIONS: Migration[] = [
  {
    id: "watchtower-001-entries",
    sql: `CREATE TABLE watchtower_entries (
      statechain_id TEXT PRIMARY KEY,
      owner_index INTEGER NOT NULL CHECK (owner_index >= 1),
      mode TEXT NOT NULL CHECK (mode IN ('absolute', 'kickoff')),
      lock INTEGER NOT NULL,
      amount_sat TEXT NOT NULL,
      backup_tx BLOB NOT NULL,
      backup_txid TEXT NOT NULL,
      kickoff_tx BLOB,
      kickoff_txid TEXT,
      kickoff_at INTEGER,
      state TEXT NOT NULL,
      kickoff_height INTEGER,
      cpfp_txid TEXT,
      broadcast_height INTEGER,
      confirmed_height INTEGER,
      last_error TEXT,
      attempts INTEGER NOT NULL DEFAULT 0,
      updated_at INTEGER NOT NULL
    );
    CREATE INDEX watchtower_entries_state ON watchtower_entries (state);`,
  },
];

/**
 * waiting            nothing broadcast yet (lock not reached, or the kick-off not due)
 * kickoff-broadcast  the kick-off is in the mempool (sent by us or anyone)
 * kickoff-confirmed  the kick-off confirmed; the backup waits out its relative lock
 * backup-broadcast   the backup is in the mempool
 * confirmed          the backup confirmed: done
 * conflict           the coin (or the kick-off's output) was spent by another transaction, e.g. a withdrawal;
 *                    re-checked every block in case that spend leaves the mempool
 */
export type WatchtowerState =
  | "waiting"
  | "kickoff-broadcast"
  | "kickoff-confirmed"
  | "backup-broadcast"
  | "confirmed"
  | "conflict";

export interface WatchtowerRow {
  statechainId: string;
  ownerIndex: number;
  mode: "absolute" | "kickoff";
  lock: number;
  amountSat: bigint;
  backupTx: Uint8Array;
  backupTxid: string;
  kickoffTx?: Uint8Array;
  kickoffTxid?: string;
  kickoffAt?: number;
  state: WatchtowerState;
  kickoffHeight?: number;
  cpfpTxid?: string;
  broadcastHeight?: number;
  confirmedHeight?: number;
  lastError?: string;
  attempts: number;
  updatedAt: number;
}

interface SqlRow {
  statechain_id: string;
  owner_index: number;
  mode: "absolute" | "kickoff";
  lock: number;
  amount_sat: string;
  backup_tx: Buffer;
  backup_txid: string;
  kickoff_tx: Buffer | null;
  kickoff_txid: string | null;
  kickoff_at: number | null;
  state: WatchtowerState;
  kickoff_height: number | null;
  cpfp_txid: string | null;
  broadcast_height: number | null;
  confirmed_height: number | null;
  last_error: string | null;
  attempts: number;
  updated_at: number;
}

const opt = <T>(v: T | null): T | undefined => (v === null ? undefined : v);

function fromSql(r: SqlRow): WatchtowerRow {
  return {
    statechainId: r.statechain_id,
    ownerIndex: r.owner_index,
    mode: r.mode,
    lock: r.lock,
    amountSat: BigInt(r.amount_sat),
    backupTx: new Uint8Array(r.backup_tx),
    backupTxid: r.backup_txid,
    kickoffTx: r.kickoff_tx ? new Uint8Array(r.kickoff_tx) : undefined,
    kickoffTxid: opt(r.kickoff_txid),
    kickoffAt: opt(r.kickoff_at),
    state: r.state,
    kickoffHeight: opt(r.kickoff_height),
    cpfpTxid: opt(r.cpfp_txid),
    broadcastHeight: opt(r.broadcast_height),
    confirmedHeight: opt(r.confirmed_height),
    lastError: opt(r.last_error),
    attempts: r.attempts,
    updatedAt: r.updated_at,
  };
}

const COLUMNS = [
  "statechain_id",
  "owner_index",
  "mode",
  "lock",
  "amount_sat",
  "backup_tx",
  "backup_txid",
  "kickoff_tx",
  "kickoff_txid",
  "kickoff_at",
  "state",
  "kickoff_height",
  "cpfp_txid",
  "broadcast_height",
  "confirmed_height",
  "last_error",
  "attempts",
  "updated_at",
] as const;

function toParams(r: WatchtowerRow): Param[] {
  return [
    r.statechainId,
    r.ownerIndex,
    r.mode,
    r.lock,
    r.amountSat.toString(),
    r.backupTx,
    r.backupTxid,
    r.kickoffTx ?? null,
    r.kickoffTxid ?? null,
    r.kickoffAt ?? null,
    r.state,
    r.kickoffHeight ?? null,
    r.cpfpTxid ?? null,
    r.broadcastHeight ?? null,
    r.confirmedHeight ?? null,
    r.lastError ?? null,
    r.attempts,
    r.updatedAt,
  ];
}

export class WatchtowerStore {
  constructor(private readonly db: Db) {}

  async get(statechainId: string): Promise<WatchtowerRow | undefined> {
    const r = await this.db.get<SqlRow>("SELECT * FROM watchtower_entries WHERE statechain_id = ?", [
      statechainId,
    ]);
    return r ? fromSql(r) : undefined;
  }

  /** Entries still being watched (everything but confirmed exits). */
  async active(): Promise<WatchtowerRow[]> {
    const rows = await this.db.all<SqlRow>(
      "SELECT * FROM watchtower_entries WHERE state != 'confirmed' ORDER BY statechain_id",
    );
    return rows.map(fromSql);
  }

  async put(row: WatchtowerRow): Promise<void> {
    const placeholders = COLUMNS.map(() => "?").join(", ");
    await this.db.run(
      `INSERT OR REPLACE INTO watchtower_entries (${COLUMNS.join(", ")}) VALUES (${placeholders})`,
      toParams(row),
    );
  }

  /** Saves progress on `row` only if it still holds the same backup (a concurrent register() wins). */
  async update(row: WatchtowerRow): Promise<boolean> {
    const sets = COLUMNS.slice(1)
      .map((c) => `${c} = ?`)
      .join(", ");
    const { changes } = await this.db.run(
      `UPDATE watchtower_entries SET ${sets} WHERE statechain_id = ? AND backup_txid = ?`,
      [...toParams(row).slice(1), row.statechainId, row.backupTxid],
    );
    return changes === 1;
  }

  async delete(statechainId: string): Promise<boolean> {
    const { changes } = await this.db.run("DELETE FROM watchtower_entries WHERE statechain_id = ?", [
      statechainId,
    ]);
    return changes === 1;
  }
}
