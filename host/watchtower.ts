// The SE's watchtower (DESIGN.md §3.5): keeps the newest owner's backup (and kick-off) of each statechain and
// broadcasts it when its lock allows, for owners who are offline. Every block it re-derives each exit's state
// from the chain (so a restart, a reorg or someone else broadcasting the same transaction are all just "what
// the chain says now"), and persists it in SQLite.
//   absolute: the backup goes out once the tip reaches its nLockTime (the next block may include it);
//   kick-off: the kick-off goes out at `kickoffAt` (or whenever anyone else broadcasts it), with a CPFP child
//             on its anchor when its own fee is below the current estimate and a fee wallet is configured;
//             the backup goes out once the next block is `lock` blocks past the kick-off's confirmation.
// A transaction already in the mempool or chain counts as sent. When the coin (or the kick-off's output) is
// spent by anything else — a withdrawal, another backup — the entry is marked "conflict" (and re-checked).

import { secp256k1 } from "@noble/curves/secp256k1.js";
import { Transaction } from "bitcoinjs-lib";
import { type ChainBackend, ChainError, type TxStatus } from "../chain/backend.ts";
import type { Db } from "../common/sqlite.ts";
import { ProtocolError } from "../protocol/errors.ts";
import {
  ANCHOR_SCRIPT,
  ANCHOR_VALUE_SAT,
  buildCpfpChild,
  checkP2wpkhWitness,
  MAX_RELATIVE_LOCK,
  p2wpkhScript,
  parseTx,
  SEQUENCE_LOCKTIME_ONLY,
  sameBytes,
  signP2wpkhInputs,
  txidFromHex,
  txidToHex,
} from "../protocol/tx/index.ts";
import { BlockPasses } from "./block-passes.ts";
import {
  WATCHTOWER_MIGRATIONS,
  type WatchtowerRow,
  type WatchtowerState,
  WatchtowerStore,
} from "./watchtower-store.ts";

export type { WatchtowerState };
export { WATCHTOWER_MIGRATIONS };

/** The subset of pino's Logger the watchtower uses. */
export interface WatchtowerLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** A hot single-key P2WPKH wallet that pays for CPFP children. Its key is never logged. */
export interface FeeWallet {
  privateKey: Uint8Array;
  /** Where the child's change goes (default: the wallet's own P2WPKH script). */
  changeScript?: Uint8Array;
}

export interface WatchtowerOptions {
  db: Db;
  chain: ChainBackend;
  logger: WatchtowerLogger;
  feeWallet?: FeeWallet;
  /** Confirmation target for the fee estimate a kick-off must meet (default 2 blocks). */
  cpfpTargetBlocks?: number;
  now?: () => number;
}

export interface RegisterEntry {
  /** "txid:vout" of the funding output (display txid). */
  statechainId: string;
  ownerIndex: number;
  mode: "absolute" | "kickoff";
  /** Absolute: the backup's nLockTime (block height). Kick-off: its relative lock in blocks. */
  lock: number;
  /** The coin's amount: the funding output's value. */
  amountSat: bigint;
  /** P: every exit transaction must carry a valid signature under it. */
  sharedPublicKey: Uint8Array;
  /** Fully signed backup. */
  backupTx: Uint8Array;
  /** Kick-off mode: the fully signed kick-off. */
  kickoffTx?: Uint8Array;
  /** Kick-off mode: the height from which the watchtower broadcasts the kick-off itself (never, if absent:
   * it then only reacts when someone else broadcasts it). */
  kickoffAt?: number;
}

export interface WatchtowerStatus {
  statechainId: string;
  ownerIndex: number;
  mode: "absolute" | "kickoff";
  lock: number;
  state: WatchtowerState;
  backupTxid: string;
  kickoffTxid?: string;
  kickoffAt?: number;
  kickoffHeight?: number;
  /** First height at which the next block may include the backup (absolute: the lock; kick-off: once known). */
  broadcastFrom?: number;
  cpfpTxid?: string;
  broadcastHeight?: number;
  confirmedHeight?: number;
  lastError?: string;
  attempts: number;
}

export class WatchtowerError extends Error {
  override name = "WatchtowerError";
  constructor(
    readonly code: "INVALID_ENTRY" | "STALE_OWNER" | "EXIT_IN_PROGRESS",
    message: string,
  ) {
    super(message);
  }
}

function parseStatechainId(id: string): { txid: string; vout: number } {
  const m = /^([0-9a-f]{64}):(\d{1,10})$/.exec(id);
  if (!m || Number(m[2]) > 0xffffffff)
    throw new WatchtowerError("INVALID_ENTRY", `statechain id ${id.slice(0, 80)} is not "txid:vout"`);
  return { txid: m[1]!, vout: Number(m[2]) };
}

const outpointOf = (tx: Transaction) => ({ txid: txidToHex(tx.ins[0]!.hash), vout: tx.ins[0]!.index });

/** Checks the entry's transactions fit together and are fully signed; returns their txids. */
function validate(e: RegisterEntry): { backupTxid: string; kickoffTxid?: string } {
  const bad = (msg: string): never => {
    throw new WatchtowerError("INVALID_ENTRY", msg);
  };
  try {
    const coin = parseStatechainId(e.statechainId);
    if (!Number.isInteger(e.ownerIndex) || e.ownerIndex < 1) bad(`owner index ${e.ownerIndex} must be ≥ 1`);
    if (e.amountSat <= 0n) bad("amount must be positive");
    const backup = parseTx(e.backupTx, "backup");
    if (backup.ins.length !== 1) bad("backup must have exactly one input");
    const spent = outpointOf(backup);
    if (e.mode === "absolute") {
      if (e.kickoffTx) bad("an absolute-mode entry has no kick-off");
      if (spent.txid !== coin.txid || spent.vout !== coin.vout)
        bad("backup does not spend the statechain outpoint");
      if (backup.ins[0]!.sequence !== SEQUENCE_LOCKTIME_ONLY)
        bad("backup nSequence does not enable its locktime");
      if (backup.locktime !== e.lock) bad(`backup locktime ${backup.locktime} ≠ registered lock ${e.lock}`);
      checkP2wpkhWitness(backup, 0, e.sharedPublicKey, e.amountSat);
      return { backupTxid: backup.getId() };
    }
    if (e.mode !== "kickoff") bad(`unknown mode ${e.mode}`);
    if (!e.kickoffTx) return bad("a kick-off-mode entry needs its kick-off transaction");
    const kickoff = parseTx(e.kickoffTx, "kick-off");
    const kIn = kickoff.ins.length === 1 ? outpointOf(kickoff) : undefined;
    if (!kIn || kIn.txid !== coin.txid || kIn.vout !== coin.vout)
      bad("kick-off does not spend the statechain outpoint");
    const [out0, anchor] = kickoff.outs;
    if (
      kickoff.outs.length !== 2 ||
      !sameBytes(out0!.script, p2wpkhScript(e.sharedPublicKey)) ||
      !sameBytes(anchor!.script, ANCHOR_SCRIPT) ||
      anchor!.value !== ANCHOR_VALUE_SAT
    )
      bad("kick-off outputs are not [P2WPKH(P), anchor]");
    checkP2wpkhWitness(kickoff, 0, e.sharedPublicKey, e.amountSat);
    const kickoffTxid = kickoff.getId();
    if (spent.txid !== kickoffTxid || spent.vout !== 0) bad("backup does not spend kick-off output 0");
    if (!Number.isInteger(e.lock) || e.lock < 1 || e.lock > MAX_RELATIVE_LOCK)
      bad(`relative lock ${e.lock} is out of range`);
    if (backup.ins[0]!.sequence !== e.lock)
      bad(`backup relative lock ${backup.ins[0]!.sequence} ≠ registered lock ${e.lock}`);
    checkP2wpkhWitness(backup, 0, e.sharedPublicKey, out0!.value);
    return { backupTxid: backup.getId(), kickoffTxid };
  } catch (err) {
    if (err instanceof ProtocolError) throw new WatchtowerError("INVALID_ENTRY", err.message);
    throw err;
  }
}

const TERMINAL_EXIT: WatchtowerState[] = ["backup-broadcast", "confirmed"];

export class Watchtower {
  private readonly store: WatchtowerStore;
  private readonly log: WatchtowerLogger;
  private readonly now: () => number;
  private readonly blocks: BlockPasses;

  private constructor(private readonly opts: WatchtowerOptions) {
    this.blocks = new BlockPasses(opts.chain, () => this.tick());
    this.store = new WatchtowerStore(opts.db);
    this.log = opts.logger;
    this.now = opts.now ?? Date.now;
  }

  /** Applies the watchtower's migrations to `db` (idempotent) and returns a watchtower over it. */
  static async create(opts: WatchtowerOptions): Promise<Watchtower> {
    await opts.db.migrate(WATCHTOWER_MIGRATIONS);
    return new Watchtower(opts);
  }

  /**
   * Keeps `entry` as the statechain's exit. A newer owner replaces an older one; an older owner index than the
   * one kept is refused, and so is any replacement once a backup is already on its way.
   */
  async register(entry: RegisterEntry): Promise<WatchtowerStatus> {
    const { backupTxid, kickoffTxid } = validate(entry);
    const existing = await this.store.get(entry.statechainId);
    if (existing) {
      if (entry.ownerIndex < existing.ownerIndex)
        throw new WatchtowerError(
          "STALE_OWNER",
          `statechain ${entry.statechainId} already has owner ${existing.ownerIndex}'s backup; owner ${entry.ownerIndex} is older`,
        );
      if (existing.backupTxid === backupTxid) {
        const same = { ...existing, kickoffAt: entry.kickoffAt, updatedAt: this.now() };
        await this.store.put(same);
        return toStatus(same);
      }
      if (TERMINAL_EXIT.includes(existing.state))
        throw new WatchtowerError(
          "EXIT_IN_PROGRESS",
          `statechain ${entry.statechainId}: owner ${existing.ownerIndex}'s backup is already ${existing.state}`,
        );
    }
    const row: WatchtowerRow = {
      statechainId: entry.statechainId,
      ownerIndex: entry.ownerIndex,
      mode: entry.mode,
      lock: entry.lock,
      amountSat: entry.amountSat,
      backupTx: new Uint8Array(entry.backupTx),
      backupTxid,
      kickoffTx: entry.kickoffTx ? new Uint8Array(entry.kickoffTx) : undefined,
      kickoffTxid,
      kickoffAt: entry.kickoffAt,
      state: "waiting",
      // Progress on the same kick-off carries over to the new owner.
      kickoffHeight: existing?.kickoffTxid === kickoffTxid ? existing?.kickoffHeight : undefined,
      cpfpTxid: existing?.kickoffTxid === kickoffTxid ? existing?.cpfpTxid : undefined,
      attempts: 0,
      updatedAt: this.now(),
    };
    await this.store.put(row);
    this.log.info(
      {
        statechainId: row.statechainId,
        ownerIndex: row.ownerIndex,
        mode: row.mode,
        lock: row.lock,
        backupTxid,
      },
      "watchtower: backup registered",
    );
    return toStatus(row);
  }

  /** Stops watching a statechain (closed by withdrawal, or handed over elsewhere). */
  async remove(statechainId: string): Promise<boolean> {
    const removed = await this.store.delete(statechainId);
    if (removed) this.log.info({ statechainId }, "watchtower: entry removed");
    return removed;
  }

  async status(statechainId: string): Promise<WatchtowerStatus | undefined> {
    const row = await this.store.get(statechainId);
    return row ? toStatus(row) : undefined;
  }

  /** Subscribes to new blocks and catches up at once (after a restart, with whatever the store holds). */
  start(): Promise<void> {
    return this.blocks.start();
  }

  stop(): Promise<void> {
    return this.blocks.stop();
  }

  /** Resolves once a pass over all entries has run with the tip at `height` or above. */
  processedHeight(height: number): Promise<void> {
    return this.blocks.processedHeight(height);
  }

  /** One pass: every active entry is brought in line with the chain at the current tip. */
  async tick(): Promise<void> {
    let tip: number;
    try {
      tip = await this.opts.chain.tipHeight();
    } catch (err) {
      this.log.warn(
        { err: (err as Error).message },
        "watchtower: chain unavailable, will retry on the next block",
      );
      return;
    }
    for (const row of await this.store.active()) {
      try {
        const next =
          row.mode === "absolute" ? await this.stepAbsolute(row, tip) : await this.stepKickoff(row, tip);
        if (changed(row, next)) await this.store.update({ ...next, updatedAt: this.now() });
      } catch (err) {
        this.log.warn(
          { statechainId: row.statechainId, err: (err as Error).message },
          "watchtower: could not check this statechain, will retry on the next block",
        );
      }
    }
    this.blocks.passed(tip);
  }

  // --- per-mode steps ---------------------------------------------------------------------------------------

  private async stepAbsolute(row: WatchtowerRow, tip: number): Promise<WatchtowerRow> {
    const backup = await this.opts.chain.getTxStatus(row.backupTxid);
    if (backup) return this.tracked(row, backup);
    const coin = parseStatechainId(row.statechainId);
    const spent = await this.spentElsewhere(coin.txid, coin.vout);
    if (spent === "unknown") return { ...row, state: "waiting" };
    if (spent) return this.conflict(row, "the statechain outpoint was spent by another transaction");
    const waiting = this.unconflicted(row);
    if (tip < row.lock) return waiting;
    return this.sendBackup(waiting, tip);
  }

  private async stepKickoff(row: WatchtowerRow, tip: number): Promise<WatchtowerRow> {
    const chain = this.opts.chain;
    const backup = await chain.getTxStatus(row.backupTxid);
    if (backup) return this.tracked(row, backup);
    const kickoffTxid = row.kickoffTxid!;
    const kickoff = await chain.getTxStatus(kickoffTxid);
    if (kickoff && kickoff.confirmations > 0) {
      const confirmed: WatchtowerRow = {
        ...this.unconflicted(row),
        state: "kickoff-confirmed",
        kickoffHeight: kickoff.blockHeight,
      };
      if (!(await chain.getUtxo(kickoffTxid, 0)))
        return this.conflict(confirmed, "kick-off output 0 was spent by another transaction");
      // BIP68: the backup may be in block kickoffHeight + lock, so the mempool takes it one block earlier.
      if (tip + 1 < kickoff.blockHeight! + row.lock) return confirmed;
      return this.sendBackup(confirmed, tip);
    }
    if (kickoff) return this.maybeBump({ ...this.unconflicted(row), state: "kickoff-broadcast" });
    const coin = parseStatechainId(row.statechainId);
    const spent = await this.spentElsewhere(coin.txid, coin.vout);
    if (spent === "unknown") return { ...row, state: "waiting" };
    if (spent)
      return this.conflict(row, "the statechain outpoint was spent by a transaction other than the kick-off");
    // Not on chain (never sent, or dropped from the mempool): any earlier child went with it.
    const waiting = { ...this.unconflicted(row), kickoffHeight: undefined, cpfpTxid: undefined };
    if (row.kickoffAt === undefined || tip < row.kickoffAt) return waiting;
    return this.sendKickoff(waiting, tip);
  }

  /** true: the output existed and is gone; false: unspent; "unknown": its transaction is not on chain yet. */
  private async spentElsewhere(txid: string, vout: number): Promise<boolean | "unknown"> {
    if (await this.opts.chain.getUtxo(txid, vout)) return false;
    return (await this.opts.chain.getTxStatus(txid)) ? true : "unknown";
  }

  private tracked(row: WatchtowerRow, s: TxStatus): WatchtowerRow {
    if (s.confirmations > 0) {
      if (row.state !== "confirmed")
        this.log.info(
          {
            statechainId: row.statechainId,
            ownerIndex: row.ownerIndex,
            txid: row.backupTxid,
            height: s.blockHeight,
          },
          "watchtower: backup confirmed",
        );
      return { ...row, state: "confirmed", confirmedHeight: s.blockHeight, lastError: undefined };
    }
    return { ...row, state: "backup-broadcast", confirmedHeight: undefined, lastError: undefined };
  }

  private unconflicted(row: WatchtowerRow): WatchtowerRow {
    if (row.state !== "conflict") return row;
    this.log.info(
      { statechainId: row.statechainId },
      "watchtower: the conflicting spend is gone, watching again",
    );
    return { ...row, state: "waiting", lastError: undefined };
  }

  private conflict(row: WatchtowerRow, why: string): WatchtowerRow {
    if (row.state !== "conflict")
      this.log.warn({ statechainId: row.statechainId, ownerIndex: row.ownerIndex }, `watchtower: ${why}`);
    return { ...row, state: "conflict", lastError: why };
  }

  private failed(row: WatchtowerRow, what: string, err: ChainError): WatchtowerRow {
    this.log.warn(
      { statechainId: row.statechainId, ownerIndex: row.ownerIndex, code: err.code, err: err.message },
      `watchtower: ${what} refused, will retry on the next block`,
    );
    return { ...row, attempts: row.attempts + 1, lastError: `${what}: ${err.code}: ${err.message}` };
  }

  private async sendBackup(row: WatchtowerRow, tip: number): Promise<WatchtowerRow> {
    try {
      await this.opts.chain.broadcast(row.backupTx);
    } catch (err) {
      if (!(err instanceof ChainError)) throw err;
      if (err.code === "already-known")
        return { ...row, state: "backup-broadcast", broadcastHeight: row.broadcastHeight ?? tip };
      if (err.code === "conflict" || err.code === "missing-inputs")
        return this.conflict(row, `backup refused: ${err.message}`);
      return this.failed(row, "backup broadcast", err);
    }
    this.log.info(
      { statechainId: row.statechainId, ownerIndex: row.ownerIndex, txid: row.backupTxid, height: tip },
      "watchtower: backup broadcast",
    );
    return { ...row, state: "backup-broadcast", broadcastHeight: tip, lastError: undefined };
  }

  private async sendKickoff(row: WatchtowerRow, tip: number): Promise<WatchtowerRow> {
    try {
      await this.opts.chain.broadcast(row.kickoffTx!);
    } catch (err) {
      if (!(err instanceof ChainError)) throw err;
      if (err.code === "conflict" || err.code === "missing-inputs")
        return this.conflict(row, `kick-off refused: ${err.message}`);
      if (err.code !== "already-known") return this.failed(row, "kick-off broadcast", err);
    }
    this.log.info(
      { statechainId: row.statechainId, ownerIndex: row.ownerIndex, txid: row.kickoffTxid, height: tip },
      "watchtower: kick-off broadcast",
    );
    return this.maybeBump({ ...row, state: "kickoff-broadcast", broadcastHeight: tip, lastError: undefined });
  }

  /** Adds a CPFP child on the kick-off's anchor when its own fee rate is below the current estimate. */
  private async maybeBump(row: WatchtowerRow): Promise<WatchtowerRow> {
    const wallet = this.opts.feeWallet;
    if (!wallet || row.cpfpTxid) return row;
    const kickoff = Transaction.fromBuffer(row.kickoffTx!);
    const vsize = kickoff.virtualSize();
    const fee = row.amountSat - kickoff.outs.reduce((s, o) => s + o.value, 0n);
    const target = await this.opts.chain.estimateFeeRate(this.opts.cpfpTargetBlocks ?? 2);
    if (Number(fee) / vsize >= target) return row;
    const pub = secp256k1.getPublicKey(wallet.privateKey, true);
    const walletScript = p2wpkhScript(pub);
    const coins = (await this.opts.chain.findUtxos(walletScript)).filter(
      (u) => !u.coinbase || u.confirmations >= 100,
    );
    let raw: Uint8Array;
    let txid: string;
    try {
      const child = buildCpfpChild({
        parent: {
          txid: txidFromHex(row.kickoffTxid!),
          vout: 1,
          valueSat: ANCHOR_VALUE_SAT,
          kind: "anchor",
          script: ANCHOR_SCRIPT,
        },
        parentVsize: vsize,
        parentFeeSat: fee,
        feeUtxos: coins,
        changeScript: wallet.changeScript ?? walletScript,
        packageFeeRateSatVb: target,
      });
      raw = signP2wpkhInputs(
        child.raw,
        child.inputs.filter((i) => i.kind === "p2wpkh").map((i) => ({ ...i, privateKey: wallet.privateKey })),
      );
      txid = child.txidHex;
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.log.warn(
        { statechainId: row.statechainId, err: err.message },
        "watchtower: cannot build a CPFP child",
      );
      return { ...row, lastError: `CPFP child: ${err.message}` };
    }
    try {
      await this.opts.chain.broadcast(raw);
    } catch (err) {
      if (!(err instanceof ChainError)) throw err;
      if (err.code !== "already-known") return this.failed(row, "CPFP child broadcast", err);
    }
    this.log.info(
      { statechainId: row.statechainId, txid, kickoffTxid: row.kickoffTxid, feeRateSatVb: target },
      "watchtower: kick-off bumped with a CPFP child",
    );
    return { ...row, cpfpTxid: txid };
  }
}

function changed(a: WatchtowerRow, b: WatchtowerRow): boolean {
  return (
    a.state !== b.state ||
    a.kickoffHeight !== b.kickoffHeight ||
    a.cpfpTxid !== b.cpfpTxid ||
    a.broadcastHeight !== b.broadcastHeight ||
    a.confirmedHeight !== b.confirmedHeight ||
    a.lastError !== b.lastError ||
    a.attempts !== b.attempts
  );
}

function toStatus(r: WatchtowerRow): WatchtowerStatus {
  const broadcastFrom =
    r.mode === "absolute" ? r.lock : r.kickoffHeight !== undefined ? r.kickoffHeight + r.lock - 1 : undefined;
  return {
    statechainId: r.statechainId,
    ownerIndex: r.ownerIndex,
    mode: r.mode,
    lock: r.lock,
    state: r.state,
    backupTxid: r.backupTxid,
    kickoffTxid: r.kickoffTxid,
    kickoffAt: r.kickoffAt,
    kickoffHeight: r.kickoffHeight,
    broadcastFrom,
    cpfpTxid: r.cpfpTxid,
    broadcastHeight: r.broadcastHeight,
    confirmedHeight: r.confirmedHeight,
    lastError: r.lastError,
    attempts: r.attempts,
  };
}
