// Read-only views of a running SE's database (<dataDir>/host.sqlite, WAL): snapshots of the host-owned tables
// to prove that a refused call changed nothing, and plain queries for assertions.
import assert from "node:assert/strict";
import path from "node:path";
import sqlite3 from "sqlite3";

/** Every table a protocol step writes; a refused call must leave all of them as they were. */
export const GUARDED_TABLES = [
  "deposits",
  "statechains",
  "statechain_txs",
  "key_updates",
  "transfers",
  "mailbox",
  "sign_sessions",
  "backups",
  "withdrawals",
  "idempotency",
  "auth_nonces",
  "pow_used",
  "deposit_tokens_used",
] as const;

function open(dataDir: string): Promise<sqlite3.Database> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(path.join(dataDir, "host.sqlite"), sqlite3.OPEN_READONLY, (err) =>
      err ? reject(err) : resolve(db),
    );
  });
}

export async function queryDb<T = Record<string, unknown>>(
  dataDir: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const db = await open(dataDir);
  try {
    return await new Promise<T[]>((resolve, reject) =>
      db.all(sql, params, (err, rows) => (err ? reject(err) : resolve(rows as T[]))),
    );
  } finally {
    await new Promise<void>((resolve) => db.close(() => resolve()));
  }
}

const show = (v: unknown) => (Buffer.isBuffer(v) ? `0x${v.toString("hex")}` : v);

/** Bookkeeping the host brings up to date after a step has answered (statechains.smt_leaf follows the SMT),
 * not protocol state a refused request could change. */
const DERIVED_COLUMNS = new Set(["smt_leaf"]);

/** Each table's rows as JSON text with blobs in hex, sorted (tables WITHOUT ROWID have no rowid to order by). */
export async function snapshotDb(
  dataDir: string,
  tables: readonly string[] = GUARDED_TABLES,
): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const t of tables) {
    const rows = await queryDb(dataDir, `SELECT * FROM ${t}`);
    out[t] = rows
      .map((r) =>
        JSON.stringify(
          Object.fromEntries(
            Object.entries(r)
              .filter(([k]) => !DERIVED_COLUMNS.has(k))
              .map(([k, v]) => [k, show(v)]),
          ),
        ),
      )
      .sort();
  }
  return out;
}

/** Runs `fn` (which expects a refusal) and asserts that no guarded row was added, changed or removed. */
export async function assertNoDbChange(
  dataDir: string,
  what: string,
  fn: () => Promise<unknown>,
): Promise<void> {
  const before = await snapshotDb(dataDir);
  await fn();
  const after = await snapshotDb(dataDir);
  for (const t of Object.keys(before)) {
    assert.deepEqual(after[t], before[t], `${what}: table ${t} changed`);
  }
}
