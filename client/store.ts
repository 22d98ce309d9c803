// The wallet file: one SQLite database. Public data in the clear (coins, statechain ids, amounts, backup
// transactions, lock heights, attestation verdicts, settings); every secret sealed under the passphrase key
// (secret-box.ts): the mnemonic, each coin's two-party share o with its Paillier primes, a pending receive's o2
// with its, and each per-coin Paillier key's p and q made ahead. Derived keys (proof, backup, funding) are never
// stored: they come from the seed when needed.
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readSync, statSync } from "node:fs";
import path from "node:path";
import sqlite3 from "sqlite3";
import { Db, type Migration, type Queryable } from "../common/sqlite.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { deriveKey, type KdfParams, newKdfParams, open, seal, WalletLockedError } from "./secret-box.ts";

export const WALLET_FORMAT = 1;

/** SQLite's application_id of a wallet file ("SCWL"): set when it is created (#19.12). */
export const WALLET_APPLICATION_ID = 0x5343574c;

const MIGRATIONS: Migration[] = [
  {
    id: "wallet-001",
    sql: `
      CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
      CREATE TABLE sealed (name TEXT PRIMARY KEY, blob BLOB NOT NULL);
      CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      -- One slot = the proof key and the backup key at the same index (roles 0 and 1).
      CREATE TABLE key_slots (
        idx INTEGER PRIMARY KEY,
        purpose TEXT NOT NULL,            -- 'receive' | 'deposit'
        proof_key BLOB NOT NULL,
        backup_key BLOB NOT NULL,
        used INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
      );
      CREATE TABLE funding_keys (
        idx INTEGER PRIMARY KEY,
        purpose TEXT NOT NULL,            -- 'receive' | 'change'
        public_key BLOB NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE TABLE coins (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        statechain_id BLOB NOT NULL UNIQUE,
        status TEXT NOT NULL,
        origin TEXT NOT NULL,             -- 'deposit' | 'received'
        se_endpoint TEXT NOT NULL,
        amount_sat INTEGER NOT NULL,
        shared_public_key BLOB NOT NULL,
        owner_index INTEGER NOT NULL,
        initial_lock INTEGER NOT NULL,
        backup_mode TEXT NOT NULL,
        lock_interval INTEGER NOT NULL,
        key_idx INTEGER NOT NULL,
        key_public BLOB NOT NULL,
        share_sealed BLOB NOT NULL,
        funding_tx BLOB NOT NULL,
        backup_tx BLOB NOT NULL,
        backup_history BLOB NOT NULL,
        kickoff_tx BLOB,
        attestations TEXT NOT NULL,
        withdrawal_tx BLOB,
        exit_state TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE TABLE pending_receives (
        statechain_id BLOB PRIMARY KEY,
        key_idx INTEGER NOT NULL,
        message_id BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        checked TEXT NOT NULL,
        request BLOB NOT NULL,
        share_sealed BLOB NOT NULL,
        keygen_session BLOB NOT NULL,
        nonce BLOB NOT NULL,
        transfer_key_verdict TEXT,
        created_at INTEGER NOT NULL
      );
    `,
  },
  // What the SE said about each coin the last time the wallet asked (`wallet coins`, `wallet info`): its status
  // by name ("ACTIVE", "EXIT_BY_BACKUP", …) or "UNKNOWN" when it has no such coin (e.g. a simulator restarted
  // with --fresh). A coin unknown to its SE is shown as such and left out of the balance.
  {
    id: "wallet-002-se-view",
    sql: `
      ALTER TABLE coins ADD COLUMN se_view TEXT;
      ALTER TABLE coins ADD COLUMN se_view_at INTEGER;
    `,
  },
  {
    // Per-coin owner Paillier keys (client/paillier-keys.ts), one row per key path: N and Π^mod in the clear,
    // p and q sealed under the passphrase key. Only a cache: each key is derived from the seed and its path.
    id: "wallet-003-paillier_keys",
    sql: `
      CREATE TABLE paillier_keys (
        path TEXT PRIMARY KEY,            -- m/8338'/<coin>'/<account>'/3'/<slot>'/<keygen>'
        n BLOB NOT NULL,
        key_id BLOB NOT NULL,
        secret_sealed BLOB NOT NULL,      -- sealed (label paillier/<path>/pq): u32 len ‖ p ‖ u32 len ‖ q
        modulus_proof BLOB,               -- PaillierBlumProof (protobuf), bound to key_id
        created_at INTEGER NOT NULL
      );
    `,
  },
  {
    // Marks the file as a wallet in SQLite's header, so a file is known for one before it is opened to write.
    id: "wallet-004-application-id",
    sql: `PRAGMA application_id = ${WALLET_APPLICATION_ID};`,
  },
  {
    // The receive address a coin is being sent to, recorded before TransferSenderInit (#19.9): an interrupted
    // send names its receiver, and a retry elsewhere says to whom the coin is committed.
    id: "wallet-005-coin-receiver",
    sql: "ALTER TABLE coins ADD COLUMN receiver_address TEXT; ALTER TABLE coins ADD COLUMN receiver_since INTEGER;",
  },
  {
    // How many keygens each slot has started (#21): keygen k uses the Paillier key at .../3'/<slot>'/<k>'. The
    // count moves on before a key is handed to a keygen, so no two keygens of one wallet ever share N, whatever
    // crash or refusal comes between.
    id: "wallet-006-slot-keygens",
    sql: "ALTER TABLE key_slots ADD COLUMN keygens INTEGER NOT NULL DEFAULT 0;",
  },
  {
    // What the SE said of the coin's funding transaction the last time the wallet asked (#19.8): the
    // FundingState by name ("OK", "DOUBLE_SPENT", "MISSING") and, when lost, the SE's words for it.
    id: "wallet-007-se-funding",
    sql: "ALTER TABLE coins ADD COLUMN se_funding TEXT; ALTER TABLE coins ADD COLUMN se_funding_problem TEXT;",
  },
];

const KEY_CHECK = Buffer.from("statechain wallet: the passphrase opens this wallet", "utf8");

export interface CoinRow {
  id: number;
  statechain_id: Buffer;
  status: string;
  origin: string;
  se_endpoint: string;
  amount_sat: number;
  shared_public_key: Buffer;
  owner_index: number;
  initial_lock: number;
  backup_mode: string;
  lock_interval: number;
  key_idx: number;
  key_public: Buffer;
  share_sealed: Buffer;
  funding_tx: Buffer;
  backup_tx: Buffer;
  backup_history: Buffer;
  kickoff_tx: Buffer | null;
  attestations: string;
  withdrawal_tx: Buffer | null;
  exit_state: string | null;
  /** The SE's status name the last time the wallet asked, or "UNKNOWN"; null before it first asked. */
  se_view: string | null;
  se_view_at: number | null;
  /** The SE's FundingState name the last time the wallet asked ("OK", "DOUBLE_SPENT", "MISSING"). */
  se_funding: string | null;
  /** The SE's words when the funding is lost. */
  se_funding_problem: string | null;
  created_at: number;
  updated_at: number;
  /** The receive address of the send started (or done), and since when (ms). */
  receiver_address: string | null;
  receiver_since: number | null;
}

export interface KeySlotRow {
  idx: number;
  purpose: string;
  proof_key: Buffer;
  backup_key: Buffer;
  used: number;
  created_at: number;
  /** Keygens started on this slot: the next one uses Paillier key path …/3'/<idx>'/<keygens>'. */
  keygens: number;
}

export interface PendingReceiveRow {
  statechain_id: Buffer;
  key_idx: number;
  message_id: Buffer;
  ciphertext: Buffer;
  checked: string;
  request: Buffer;
  share_sealed: Buffer;
  keygen_session: Buffer;
  nonce: Buffer;
  transfer_key_verdict: string | null;
  created_at: number;
}

export class WalletFileError extends ProtocolError {
  override name = "WalletFileError";
}

/** An open wallet file with its passphrase key. */
export class WalletStore {
  private constructor(
    readonly db: Db,
    readonly file: string,
    private readonly key: Buffer,
  ) {}

  /** Creates a new wallet file (refusing to overwrite one) and returns it open. */
  static async create(
    file: string,
    passphrase: string,
    opts: { scryptN?: number } = {},
  ): Promise<WalletStore> {
    if (existsSync(file))
      throw new WalletFileError(
        "WALLET_EXISTS",
        `${file} already exists; it is not overwritten`,
        "precondition",
      );
    mkdirSync(path.dirname(path.resolve(file)), { recursive: true, mode: 0o700 });
    const kdf = newKdfParams(opts.scryptN);
    const key = await deriveKey(passphrase, kdf);
    const db = await Db.open(file, MIGRATIONS);
    chmodSync(file, 0o600);
    const store = new WalletStore(db, file, key);
    await db.transaction(async (q) => {
      const put = (k: string, v: Buffer | string | number) =>
        q.run("INSERT INTO meta (key, value) VALUES (?, ?)", [k, typeof v === "number" ? String(v) : v]);
      await put("format", WALLET_FORMAT);
      await put("kdf", JSON.stringify({ alg: "scrypt", N: kdf.N, r: kdf.r, p: kdf.p }));
      await put("kdf_salt", Buffer.from(kdf.salt));
      await put("key_check", seal(key, KEY_CHECK, "key-check"));
      await put("created_at", Date.now());
    });
    return store;
  }

  /**
   * Opens an existing wallet. A wrong passphrase fails with WRONG_PASSPHRASE before anything is written (the
   * schema is only migrated once the passphrase is known to be right).
   */
  static async open(file: string, passphrase: string): Promise<WalletStore> {
    if (!existsSync(file))
      throw new WalletFileError(
        "NO_WALLET",
        `no wallet at ${file} (create one with \`wallet create\`, or pass --wallet)`,
        "not_found",
      );
    await checkWalletFile(file);
    const db = await Db.open(file, []);
    try {
      const meta = async (k: string) =>
        (
          await db.get<{ value: Buffer | string }>("SELECT value FROM meta WHERE key = ?", [k]).catch(() => {
            throw new WalletFileError("NOT_A_WALLET", `${file} is not a wallet file`, "invalid");
          })
        )?.value;
      const format = Number(await meta("format"));
      if (format !== WALLET_FORMAT)
        throw new WalletFileError(
          "WALLET_FORMAT",
          `${file} has wallet format ${format}, not ${WALLET_FORMAT}`,
        );
      const params = JSON.parse(String(await meta("kdf"))) as { N: number; r: number; p: number };
      const kdf: KdfParams = { ...params, salt: Buffer.from((await meta("kdf_salt")) as Buffer) };
      const key = await deriveKey(passphrase, kdf);
      try {
        open(key, (await meta("key_check")) as Buffer, "key-check");
      } catch (e) {
        if (e instanceof WalletLockedError)
          throw new WalletLockedError("the passphrase does not open this wallet");
        throw e;
      }
      await db.migrate(MIGRATIONS);
      return new WalletStore(db, file, key);
    } catch (e) {
      await db.close();
      throw e;
    }
  }

  seal(plaintext: Uint8Array, label: string): Buffer {
    return seal(this.key, plaintext, label);
  }

  open(blob: Uint8Array, label: string): Buffer {
    return open(this.key, blob, label);
  }

  async putSealed(name: string, plaintext: Uint8Array, q: Queryable = this.db): Promise<void> {
    await q.run("INSERT OR REPLACE INTO sealed (name, blob) VALUES (?, ?)", [
      name,
      this.seal(plaintext, name),
    ]);
  }

  async getSealed(name: string): Promise<Buffer | undefined> {
    const row = await this.db.get<{ blob: Buffer }>("SELECT blob FROM sealed WHERE name = ?", [name]);
    return row && this.open(row.blob, name);
  }

  async getMeta(key: string): Promise<string | undefined> {
    const row = await this.db.get<{ value: Buffer | string }>("SELECT value FROM meta WHERE key = ?", [key]);
    return row === undefined ? undefined : String(row.value);
  }

  async setMeta(key: string, value: string, q: Queryable = this.db): Promise<void> {
    await q.run("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value]);
  }

  async getConfig<T>(key: string): Promise<T | undefined> {
    const row = await this.db.get<{ value: string }>("SELECT value FROM config WHERE key = ?", [key]);
    return row ? (JSON.parse(row.value) as T) : undefined;
  }

  async setConfig(key: string, value: unknown): Promise<void> {
    if (value === undefined) await this.db.run("DELETE FROM config WHERE key = ?", [key]);
    else
      await this.db.run("INSERT OR REPLACE INTO config (key, value) VALUES (?, ?)", [
        key,
        JSON.stringify(value),
      ]);
  }

  async close(): Promise<void> {
    this.key.fill(0);
    await this.db.close();
  }
}

const SQLITE_HEADER = Buffer.from("SQLite format 3\0", "latin1");

/**
 * Refuses, before anything opens it to write, a file that is not a wallet (#19.12): an empty file (SQLite would
 * make it a database), a file that is not SQLite, and a database of another program (which would get this
 * wallet's migrations table). A wallet carries WALLET_APPLICATION_ID, or (made before it was set) the wallet's
 * meta table and first migration.
 */
export async function checkWalletFile(file: string): Promise<void> {
  const refuse = (why: string) =>
    new WalletFileError(
      "NOT_A_WALLET",
      `${file} is not a wallet file (${why}); it was left untouched. Pass --wallet with the path of your wallet, or create one with \`wallet create\` at a new path`,
      "invalid",
    );
  const st = statSync(file);
  if (!st.isFile()) throw refuse("not a regular file");
  if (st.size === 0) throw refuse("it is empty");
  const head = Buffer.alloc(SQLITE_HEADER.length);
  const fd = openSync(file, "r");
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  if (!head.equals(SQLITE_HEADER)) throw refuse("not an SQLite database");
  const ro = await new Promise<sqlite3.Database>((resolve, reject) => {
    const d = new sqlite3.Database(file, sqlite3.OPEN_READONLY, (err) => (err ? reject(err) : resolve(d)));
  });
  const get = <T>(sql: string) =>
    new Promise<T | undefined>((resolve) =>
      ro.get(sql, [], (err: Error | null, row: T) => resolve(err ? undefined : row)),
    );
  try {
    const app = await get<{ application_id: number }>("PRAGMA application_id");
    if (app?.application_id === WALLET_APPLICATION_ID) return;
    if (app?.application_id)
      throw refuse(`a database of another program, application id ${app.application_id}`);
    const format = await get<{ value: unknown }>("SELECT value FROM meta WHERE key = 'format'");
    const first = await get<{ id: string }>("SELECT id FROM schema_migrations WHERE id = 'wallet-001'");
    if (!format || !first) throw refuse("an SQLite database without the wallet's tables");
  } finally {
    await new Promise<void>((resolve) => ro.close(() => resolve()));
  }
}

/** Coin share labels bind a sealed share to its coin and key slot. */
export const shareLabel = (statechainHex: string, keyIdx: number) => `coin/${statechainHex}/${keyIdx}/share`;
export const pendingLabel = (statechainHex: string, keyIdx: number) =>
  `pending/${statechainHex}/${keyIdx}/o2`;
