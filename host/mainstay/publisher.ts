// Publishes the SMT root to Mainstay on a cadence and answers proof requests (GetSmtProof).
//
// Each round (tick): if the tree's root changed since the last send, send it; then ask Mainstay about every
// root sent but not yet attested, and record those a confirmed attestation carries, after checking the slot
// proof (and, given a chain backend and the service's key, that the attestation transaction commits to the
// slot-tree root). Publications live in SQLite, so proofs against the latest attested root survive restarts
// (the tree's content-addressed nodes keep that root provable). While Mainstay is unreachable, rounds back
// off exponentially with jitter; nothing else waits for them.
import { sha256 } from "@noble/hashes/sha2.js";
import type { ChainBackend } from "../../chain/backend.ts";
import type { Db, Migration } from "../../common/sqlite.ts";
import { GetSmtProofResponse, type MainstayProof } from "../../proto/gen/statechain.ts";
import {
  type MainstayKeyParams,
  parseSlotProofJson,
  type SlotProof,
  slotProofToJson,
  toDisplayHex,
  verifyAttestationTx,
  verifySlotProof,
} from "../../protocol/mainstay.ts";
import { EMPTY, encodeSmtProof, type SmtProofData } from "../../protocol/smt/index.ts";
import type { Logger } from "../log.ts";
import { backoffDelay, type MainstayApi } from "./client.ts";

export const MAINSTAY_MIGRATIONS: Migration[] = [
  {
    id: "mainstay-001-publications",
    sql: `
      CREATE TABLE mainstay_publications (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        root BLOB NOT NULL,
        position INTEGER NOT NULL,
        sent_at INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('sent', 'attested', 'superseded')),
        txid BLOB,
        merkle_root BLOB,
        slot_proof TEXT,
        attested_at INTEGER
      );
      CREATE INDEX mainstay_publications_status ON mainstay_publications (status, id);
    `,
  },
];

/** The tree as the publisher sees it (SparseMerkleTree fits). */
export interface RootProvider {
  readonly root: Uint8Array;
  prove(key: Uint8Array, root?: Uint8Array): Promise<{ leaf: Uint8Array | null; proof: SmtProofData }>;
}

export interface PublisherOptions {
  tree: RootProvider;
  client: MainstayApi;
  db: Db;
  /** Cadence of rounds while all is well. */
  intervalMs: number;
  /** Ceiling of the backoff while Mainstay fails. */
  maxBackoffMs?: number;
  /** For confirmations in proofs, and (with keyParams) to check attestation transactions before recording. */
  chain?: ChainBackend;
  keyParams?: MainstayKeyParams;
  /** Roots not yet attested that one round asks about. */
  pollLimit?: number;
  now?: () => number;
  log?: Pick<Logger, "info" | "warn">;
}

export interface Publication {
  id: number;
  root: Uint8Array;
  position: number;
  sentAt: number;
  status: "sent" | "attested" | "superseded";
  /** Set once attested. */
  txid?: Uint8Array;
  slotProof?: SlotProof;
  attestedAt?: number;
}

interface Row {
  id: number;
  root: Buffer;
  position: number;
  sent_at: number;
  status: Publication["status"];
  txid: Buffer | null;
  merkle_root: Buffer | null;
  slot_proof: string | null;
  attested_at: number | null;
}

function fromRow(r: Row): Publication {
  const p: Publication = {
    id: r.id,
    root: new Uint8Array(r.root),
    position: r.position,
    sentAt: r.sent_at,
    status: r.status,
  };
  if (r.txid) p.txid = new Uint8Array(r.txid);
  if (r.slot_proof) p.slotProof = parseSlotProofJson(JSON.parse(r.slot_proof));
  if (r.attested_at !== null) p.attestedAt = r.attested_at;
  return p;
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

export interface TickResult {
  /** The root sent this round, if one was. */
  sent?: Uint8Array;
  /** Publications found attested this round. */
  attested: number;
  /** The first failure of the round (the round still did what it could). */
  error?: Error;
}

export class MainstayPublisher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();
  private failures = 0;
  private stopped = true;

  private constructor(private readonly opts: PublisherOptions) {}

  static async open(opts: PublisherOptions): Promise<MainstayPublisher> {
    await opts.db.migrate(MAINSTAY_MIGRATIONS);
    return new MainstayPublisher(opts);
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /** Delay before the next round: the cadence, or the backoff after failures. */
  get nextDelayMs(): number {
    if (this.failures === 0) return this.opts.intervalMs;
    return backoffDelay(this.failures - 1, this.opts.intervalMs, this.opts.maxBackoffMs ?? 10 * 60_000);
  }

  /** Runs rounds in the background until stop(); the first one right away. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.tick().then(() => this.schedule(this.nextDelayMs));
    }, ms);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  /** One round. Never throws: failures are returned, logged, and make the next round wait longer. */
  tick(): Promise<TickResult> {
    const run = this.running.then(() => this.round());
    this.running = run.catch(() => undefined);
    return run;
  }

  private async round(): Promise<TickResult> {
    const result: TickResult = { attested: 0 };
    try {
      result.sent = await this.sendIfChanged();
    } catch (err) {
      result.error = err as Error;
    }
    try {
      result.attested = await this.pollPending();
    } catch (err) {
      result.error ??= err as Error;
    }
    if (result.error) {
      this.failures += 1;
      this.opts.log?.warn(
        { err: result.error.message, failures: this.failures, retryInMs: this.nextDelayMs },
        "Mainstay publication round failed; will retry",
      );
    } else {
      this.failures = 0;
    }
    return result;
  }

  private async sendIfChanged(): Promise<Uint8Array | undefined> {
    const root = Uint8Array.from(this.opts.tree.root);
    if (same(root, EMPTY)) return undefined; // nothing to publish yet
    const last = await this.opts.db.get<{ root: Buffer }>(
      "SELECT root FROM mainstay_publications ORDER BY id DESC LIMIT 1",
    );
    if (last && same(last.root, root)) return undefined;
    await this.opts.client.send(root);
    await this.opts.db.run(
      "INSERT INTO mainstay_publications (root, position, sent_at, status) VALUES (?, ?, ?, 'sent')",
      [root, this.opts.client.position, this.now()],
    );
    this.opts.log?.info({ root: Buffer.from(root).toString("hex") }, "SMT root sent to Mainstay");
    return root;
  }

  /** Asks Mainstay about sent roots, newest first; records confirmed attestations. */
  private async pollPending(): Promise<number> {
    const pending = await this.opts.db.all<Row>(
      "SELECT * FROM mainstay_publications WHERE status = 'sent' ORDER BY id DESC LIMIT ?",
      [this.opts.pollLimit ?? 20],
    );
    let attested = 0;
    let error: Error | undefined;
    for (const row of pending) {
      try {
        if (await this.checkAttested(fromRow(row))) attested += 1;
      } catch (err) {
        error ??= err as Error;
      }
    }
    // Mainstay keeps one commitment per slot: once a newer root is attested, older unattested ones never will be.
    await this.opts.db.run(
      "UPDATE mainstay_publications SET status = 'superseded' WHERE status = 'sent' AND id < " +
        "(SELECT coalesce(max(id), 0) FROM mainstay_publications WHERE status = 'attested')",
    );
    if (error) throw error;
    return attested;
  }

  private async checkAttested(p: Publication): Promise<boolean> {
    const found = await this.opts.client.commitmentProof(p.root);
    if (!found?.confirmed) return false;
    const { proof, txid } = found;
    if (!same(proof.commitment, p.root) || proof.position !== p.position)
      throw new Error(`Mainstay answered for another commitment or slot than root ${toDisplayHex(p.root)}`);
    verifySlotProof(proof, { position: p.position });
    const { chain, keyParams } = this.opts;
    if (chain && keyParams) {
      const tx = await chain.getTx(toDisplayHex(txid));
      if (!tx) return false; // our chain view has not seen it yet: ask again next round
      verifyAttestationTx(tx.raw, proof.merkleRoot, keyParams);
    }
    await this.opts.db.run(
      "UPDATE mainstay_publications SET status = 'attested', txid = ?, merkle_root = ?, slot_proof = ?, " +
        "attested_at = ? WHERE id = ?",
      [txid, proof.merkleRoot, JSON.stringify(slotProofToJson(proof)), this.now(), p.id],
    );
    this.opts.log?.info(
      { root: Buffer.from(p.root).toString("hex"), txid: toDisplayHex(txid) },
      "SMT root attested by Mainstay",
    );
    return true;
  }

  /** The newest attested publication, and the newest sent one (which may be the same). */
  async latest(): Promise<{ attested?: Publication; sent?: Publication }> {
    const a = await this.opts.db.get<Row>(
      "SELECT * FROM mainstay_publications WHERE status = 'attested' ORDER BY id DESC LIMIT 1",
    );
    const s = await this.opts.db.get<Row>("SELECT * FROM mainstay_publications ORDER BY id DESC LIMIT 1");
    return { attested: a && fromRow(a), sent: s && fromRow(s) };
  }

  private async mainstayProof(p: Publication): Promise<MainstayProof> {
    const proof = p.slotProof!;
    const status = this.opts.chain ? await this.opts.chain.getTxStatus(toDisplayHex(p.txid!)) : undefined;
    return {
      commitment: Buffer.from(proof.commitment),
      merkleRoot: Buffer.from(proof.merkleRoot),
      ops: proof.ops.map((op) => ({ append: op.append, commitment: Buffer.from(op.commitment) })),
      txid: Buffer.from(p.txid!),
      position: p.position,
      blockHeight: status?.blockHeight ?? 0,
      confirmations: status?.confirmations ?? 0,
    };
  }

  /**
   * GetSmtProof for the statechain with these 36 id bytes: the proof against the latest attested root with its
   * Mainstay proof (or, before any attestation, against the latest sent root), and the proof against the
   * current root.
   */
  async proofFor(statechainIdBytes: Uint8Array): Promise<GetSmtProofResponse> {
    if (statechainIdBytes.length !== 36)
      throw new Error(`statechain id must be 36 bytes, got ${statechainIdBytes.length}`);
    const key = sha256(statechainIdBytes);
    const currentRoot = Uint8Array.from(this.opts.tree.root);
    const current = await this.opts.tree.prove(key, currentRoot);
    const { attested, sent } = await this.latest();
    const published = attested ?? sent;
    const response = GetSmtProofResponse.fromPartial({
      key: Buffer.from(key),
      currentRoot: Buffer.from(currentRoot),
      currentLeaf: Buffer.from(current.leaf ?? []),
      currentProof: encodeSmtProof(current.proof),
    });
    if (published) {
      const p = await this.opts.tree.prove(key, published.root);
      response.root = Buffer.from(published.root);
      response.leaf = Buffer.from(p.leaf ?? []);
      response.proof = encodeSmtProof(p.proof);
    }
    if (attested) response.mainstay = await this.mainstayProof(attested);
    return response;
  }
}
