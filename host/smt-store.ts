// The sparse Merkle tree's nodes in the host's SQLite database. Content-addressed (hash = SHA-256(body)) and
// insert-only, so every root ever committed, in particular every root published to Mainstay, keeps answering
// proofs. Node bodies are immutable, which makes the read cache trivially coherent; every body read from disk
// is checked against its hash, so a corrupted row fails loudly instead of yielding a wrong proof.

import type { Db, Migration } from "../common/sqlite.ts";
import { sha256 } from "../protocol/smt/hash.ts";
import type { NewNode, NodeStore } from "../protocol/smt/store.ts";
import { SparseMerkleTree } from "../protocol/smt/tree.ts";

export const SMT_MIGRATIONS: Migration[] = [
  {
    id: "smt-001-nodes",
    sql: `
      CREATE TABLE smt_nodes (hash BLOB PRIMARY KEY, body BLOB NOT NULL) WITHOUT ROWID;
      CREATE TABLE smt_root (id INTEGER PRIMARY KEY CHECK (id = 1), root BLOB NOT NULL, updated_at INTEGER NOT NULL);
    `,
  },
];

const INSERT_ROWS = 400;

export class SqliteNodeStore implements NodeStore {
  private readonly cache = new Map<string, Uint8Array>();

  constructor(
    private readonly db: Db,
    private readonly opts: { cacheNodes?: number; now?: () => number } = {},
  ) {}

  private remember(key: string, body: Uint8Array): void {
    const limit = this.opts.cacheNodes ?? 200_000;
    if (limit <= 0) return;
    this.cache.delete(key);
    this.cache.set(key, body);
    if (this.cache.size > limit) this.cache.delete(this.cache.keys().next().value!);
  }

  async get(hash: Uint8Array): Promise<Uint8Array | undefined> {
    const key = Buffer.from(hash).toString("hex");
    const hit = this.cache.get(key);
    if (hit) {
      this.remember(key, hit);
      return hit;
    }
    const row = await this.db.get<{ body: Buffer }>("SELECT body FROM smt_nodes WHERE hash = ?", [hash]);
    if (!row) return undefined;
    const body = new Uint8Array(row.body);
    if (Buffer.compare(Buffer.from(sha256(body)), Buffer.from(hash)) !== 0)
      throw new Error(`smt_nodes row ${key} does not hash to its key: the database is corrupted`);
    this.remember(key, body);
    return body;
  }

  async commit(nodes: Iterable<NewNode>, root: Uint8Array): Promise<void> {
    const now = (this.opts.now ?? Date.now)();
    const all = [...nodes];
    await this.db.transaction(async (tx) => {
      for (let i = 0; i < all.length; i += INSERT_ROWS) {
        const chunk = all.slice(i, i + INSERT_ROWS);
        await tx.run(
          `INSERT OR IGNORE INTO smt_nodes (hash, body) VALUES ${chunk.map(() => "(?, ?)").join(", ")}`,
          chunk.flatMap((n) => [n.hash, n.body]),
        );
      }
      await tx.run(
        "INSERT INTO smt_root (id, root, updated_at) VALUES (1, ?, ?) " +
          "ON CONFLICT (id) DO UPDATE SET root = excluded.root, updated_at = excluded.updated_at",
        [root, now],
      );
    });
    for (const n of all) this.remember(Buffer.from(n.hash).toString("hex"), Uint8Array.from(n.body));
  }

  async currentRoot(): Promise<Uint8Array | undefined> {
    const row = await this.db.get<{ root: Buffer }>("SELECT root FROM smt_root WHERE id = 1");
    return row ? new Uint8Array(row.root) : undefined;
  }

  async nodeCount(): Promise<number> {
    return (await this.db.get<{ n: number }>("SELECT count(*) AS n FROM smt_nodes"))!.n;
  }
}

/** Applies the SMT migrations (idempotent) and opens the tree at its last committed root. */
export async function openSqliteSmt(
  db: Db,
  opts?: { cacheNodes?: number; now?: () => number },
): Promise<{ tree: SparseMerkleTree; store: SqliteNodeStore }> {
  await db.migrate(SMT_MIGRATIONS);
  const store = new SqliteNodeStore(db, opts);
  return { tree: await SparseMerkleTree.open(store), store };
}
