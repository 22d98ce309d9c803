// SQLite access for the host and the wallet (sqlite3, WAL): one module both roles may import, so the owner's code
// does not depend on the operator's (issue #22). One connection; every statement and every transaction goes through
// one queue, so a transaction's statements never interleave with another caller's. Modules register their own
// migrations (unique ids, applied once and in order, each in its own transaction).
import sqlite3 from "sqlite3";

export interface Migration {
  /** Unique and stable, e.g. "host-001-statechains" or "smt-001-nodes". */
  id: string;
  sql: string;
}

export type Param = string | number | bigint | Buffer | Uint8Array | null;

export interface Queryable {
  run(sql: string, params?: Param[]): Promise<{ changes: number; lastID: number }>;
  get<T>(sql: string, params?: Param[]): Promise<T | undefined>;
  all<T>(sql: string, params?: Param[]): Promise<T[]>;
  exec(sql: string): Promise<void>;
}

function norm(params: Param[] = []): unknown[] {
  return params.map((p) => (p instanceof Uint8Array && !Buffer.isBuffer(p) ? Buffer.from(p) : p));
}

function raw(db: sqlite3.Database): Queryable {
  return {
    run: (sql, params) =>
      new Promise((resolve, reject) =>
        db.run(sql, norm(params), function (this: sqlite3.RunResult, err: Error | null) {
          if (err) reject(err);
          else resolve({ changes: this.changes, lastID: this.lastID });
        }),
      ),
    get: <T>(sql: string, params?: Param[]) =>
      new Promise<T | undefined>((resolve, reject) =>
        db.get(sql, norm(params), (err: Error | null, row: T) => (err ? reject(err) : resolve(row))),
      ),
    all: <T>(sql: string, params?: Param[]) =>
      new Promise<T[]>((resolve, reject) =>
        db.all(sql, norm(params), (err: Error | null, rows: T[]) => (err ? reject(err) : resolve(rows))),
      ),
    exec: (sql) => new Promise((resolve, reject) => db.exec(sql, (err) => (err ? reject(err) : resolve()))),
  };
}

export class Db implements Queryable {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly q: Queryable;

  private constructor(private readonly db: sqlite3.Database) {
    this.q = raw(db);
  }

  static async open(file: string, migrations: Migration[] = []): Promise<Db> {
    const handle = await new Promise<sqlite3.Database>((resolve, reject) => {
      const d = new sqlite3.Database(file, (err) => (err ? reject(err) : resolve(d)));
    });
    const db = new Db(handle);
    await db.q.exec(
      "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
    );
    await db.migrate(migrations);
    return db;
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  async migrate(migrations: Migration[]): Promise<void> {
    const ids = new Set<string>();
    for (const m of migrations) {
      if (ids.has(m.id)) throw new Error(`duplicate migration id ${m.id}`);
      ids.add(m.id);
    }
    await this.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
    );
    for (const m of migrations) {
      await this.transaction(async (tx) => {
        if (await tx.get("SELECT id FROM schema_migrations WHERE id = ?", [m.id])) return;
        await tx.exec(m.sql);
        await tx.run("INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)", [m.id, Date.now()]);
      });
    }
  }

  run(sql: string, params?: Param[]) {
    return this.enqueue(() => this.q.run(sql, params));
  }
  get<T>(sql: string, params?: Param[]) {
    return this.enqueue(() => this.q.get<T>(sql, params));
  }
  all<T>(sql: string, params?: Param[]) {
    return this.enqueue(() => this.q.all<T>(sql, params));
  }
  exec(sql: string) {
    return this.enqueue(() => this.q.exec(sql));
  }

  /** Runs `fn` inside BEGIN IMMEDIATE … COMMIT; any throw rolls everything back. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.enqueue(async () => {
      await this.q.exec("BEGIN IMMEDIATE");
      try {
        const out = await fn(this.q);
        await this.q.exec("COMMIT");
        return out;
      } catch (err) {
        await this.q.exec("ROLLBACK").catch(() => undefined);
        throw err;
      }
    });
  }

  close(): Promise<void> {
    return this.enqueue(
      () => new Promise<void>((resolve, reject) => this.db.close((err) => (err ? reject(err) : resolve()))),
    );
  }
}
