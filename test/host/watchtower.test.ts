// The watchtower on the embedded regtest chain: right backup, right height, for an owner who stays offline;
// across restarts; against conflicting spends; kick-off mode with a CPFP child from the fee wallet.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { type ChainBackend, ChainError, type Utxo } from "../../chain/backend.ts";
import { EmbeddedChain } from "../../chain/embedded.ts";
import type { RegtestNode } from "../../chain/regtest-node.ts";
import { Db } from "../../common/sqlite.ts";
import {
  type RegisterEntry,
  Watchtower,
  WatchtowerError,
  type WatchtowerLogger,
} from "../../host/watchtower.ts";
import {
  buildBackupTx,
  buildFundingTx,
  buildKickoffTx,
  buildWithdrawalTx,
  finalizeP2wpkhInput,
  signP2wpkhInputs,
} from "../../protocol/tx/index.ts";
import { bip143Digest } from "../../protocol/tx/sign.ts";
import { startRegtest, TestWallet } from "../chain/regtest-wallet.ts";

const sk = (label: string) => sha256(new TextEncoder().encode(`watchtower-test/${label}`));
const P_SK = sk("shared");
const P = secp256k1.getPublicKey(P_SK, true);
const AMOUNT = 10_000_000n;

let node: RegtestNode;
let chain: EmbeddedChain;
const wallet = new TestWallet("watchtower");
const feeWallet = new TestWallet("watchtower-fees");
let coins: Utxo[] = [];

before(async () => {
  node = await startRegtest();
  chain = new EmbeddedChain(node);
  await feeWallet.mineCoins(chain, 1);
  coins = await wallet.mineCoins(chain, 6);
});
after(() => node?.close());

class MemoryLogger implements WatchtowerLogger {
  lines: { level: string; obj: object; msg: string }[] = [];
  debug = (obj: object, msg: string) => void this.lines.push({ level: "debug", obj, msg });
  info = (obj: object, msg: string) => void this.lines.push({ level: "info", obj, msg });
  warn = (obj: object, msg: string) => void this.lines.push({ level: "warn", obj, msg });
  error = (obj: object, msg: string) => void this.lines.push({ level: "error", obj, msg });
  has = (msg: RegExp) => this.lines.some((l) => msg.test(l.msg));
}

const dbFile = () => path.join(mkdtempSync(path.join(tmpdir(), "watchtower-")), "host.sqlite");

function cosign(raw: Uint8Array, amount: bigint): Uint8Array {
  const digest = bip143Digest(raw, 0, P, amount);
  return finalizeP2wpkhInput(raw, 0, secp256k1.sign(digest, P_SK, { prehash: false, lowS: true }), P, amount);
}

/** A deposited coin (funding broadcast and confirmed) and signed exit transactions for owners 1..n. */
async function depositAbsolute(coin: Utxo, h0: number, owners: number, c = 4) {
  const funding = buildFundingTx({
    utxos: [coin],
    amountSat: AMOUNT,
    sharedPublicKey: P,
    changeScript: wallet.script,
    feeRateSatVb: 1,
  });
  const statechainId = `${funding.txidHex}:0`;
  const backups = Array.from({ length: owners }, (_, i) => {
    const lock = h0 - i * c;
    const built = buildBackupTx({
      mode: "absolute",
      spend: { txid: funding.txid, vout: 0 },
      spendAmountSat: AMOUNT,
      backupKey: secp256k1.getPublicKey(sk(`b${i + 1}`), true),
      lock,
      feeRateSatVb: 1,
    });
    const entry: RegisterEntry = {
      statechainId,
      ownerIndex: i + 1,
      mode: "absolute",
      lock,
      amountSat: AMOUNT,
      sharedPublicKey: P,
      backupTx: cosign(built.raw, AMOUNT),
    };
    return { entry, txid: built.txidHex };
  });
  await chain.broadcast(
    signP2wpkhInputs(funding.raw, [{ inputIndex: 0, prevout: coin, privateKey: wallet.sk }]),
  );
  await chain.mine(1);
  return { funding, statechainId, backups };
}

async function mineTo(height: number, wt: Watchtower): Promise<void> {
  if (height > node.height()) await chain.mine(height - node.height());
  await wt.processedHeight(height);
}

describe("absolute mode", () => {
  test("the newest owner's backup goes out when the next block may include it, and confirms", async () => {
    const logger = new MemoryLogger();
    const db = await Db.open(dbFile());
    const wt = await Watchtower.create({ db, chain, logger });
    const h0 = node.height() + 14;
    const { statechainId, backups } = await depositAbsolute(coins[0]!, h0, 3);
    await wt.register(backups[0]!.entry);
    await wt.register(backups[2]!.entry);
    await assert.rejects(
      wt.register(backups[1]!.entry),
      (e: unknown) => e instanceof WatchtowerError && e.code === "STALE_OWNER",
    );
    await wt.start();
    const lock = backups[2]!.entry.lock; // h0 − 8
    assert.equal((await wt.status(statechainId))?.broadcastFrom, lock);

    await mineTo(lock - 1, wt);
    assert.equal((await wt.status(statechainId))?.state, "waiting");
    assert.equal(await chain.getTxStatus(backups[2]!.txid), undefined, "nothing before the lock");
    assert.ok(!logger.lines.some((l) => l.level === "warn"), "no premature broadcast attempt");
    await mineTo(lock, wt);
    const sent = await wt.status(statechainId);
    assert.equal(sent?.state, "backup-broadcast");
    assert.equal(sent?.broadcastHeight, lock);
    assert.deepEqual(await chain.getTxStatus(backups[2]!.txid), { confirmations: 0, inMempool: true });
    await mineTo(lock + 1, wt);
    const done = await wt.status(statechainId);
    assert.equal(done?.state, "confirmed");
    assert.equal(done?.confirmedHeight, lock + 1);
    // Older owners are too late.
    await mineTo(h0, wt);
    await assert.rejects(
      chain.broadcast(backups[0]!.entry.backupTx),
      (e: unknown) => e instanceof ChainError && e.code === "missing-inputs",
    );
    assert.ok(
      logger.has(/backup broadcast/) && logger.has(/backup confirmed/),
      "the watchtower logs both the backup's broadcast and its confirmation",
    );
    await wt.stop();
    await db.close();
  });

  test("a restarted watchtower carries on from the database, and takes an already-confirmed backup as done", async () => {
    const file = dbFile();
    let db = await Db.open(file);
    let wt = await Watchtower.create({ db, chain, logger: new MemoryLogger() });
    const a = await depositAbsolute(coins[1]!, node.height() + 5, 1);
    const b = await depositAbsolute(coins[2]!, node.height() + 4, 1);
    await wt.register(a.backups[0]!.entry);
    await wt.register(b.backups[0]!.entry);
    await wt.start();
    await wt.stop();
    await db.close();

    // While the host is down: both locks pass, and b's owner broadcasts its backup, which confirms.
    await chain.mine(a.backups[0]!.entry.lock - node.height());
    await chain.broadcast(b.backups[0]!.entry.backupTx);
    await chain.mine(1);

    db = await Db.open(file);
    const logger = new MemoryLogger();
    wt = await Watchtower.create({ db, chain, logger });
    assert.equal((await wt.status(a.statechainId))?.state, "waiting");
    await wt.start();
    assert.equal((await wt.status(a.statechainId))?.state, "backup-broadcast");
    assert.equal((await wt.status(a.statechainId))?.broadcastHeight, node.height());
    const bs = await wt.status(b.statechainId);
    assert.equal(bs?.state, "confirmed");
    assert.equal(bs?.broadcastHeight, undefined, "the watchtower never had to send it");
    await wt.stop();
    await db.close();
  });

  test("a withdrawal spending the coin is a conflict: the backup is never sent", async () => {
    const db = await Db.open(dbFile());
    const logger = new MemoryLogger();
    const wt = await Watchtower.create({ db, chain, logger });
    const { funding, statechainId, backups } = await depositAbsolute(coins[3]!, node.height() + 4, 1);
    await wt.register(backups[0]!.entry);
    await wt.start();
    const wd = buildWithdrawalTx({
      spend: { txid: funding.txid, vout: 0 },
      spendAmountSat: AMOUNT,
      withdrawScript: wallet.script,
      feeRateSatVb: 1,
    });
    await chain.broadcast(cosign(wd.raw, AMOUNT));
    await mineTo(node.height() + 1, wt);
    const s = await wt.status(statechainId);
    assert.equal(s?.state, "conflict");
    assert.match(s?.lastError ?? "", /spent by another transaction/);
    await mineTo(backups[0]!.entry.lock + 1, wt);
    assert.equal((await wt.status(statechainId))?.state, "conflict");
    assert.equal(await chain.getTxStatus(backups[0]!.txid), undefined);
    assert.ok(
      logger.lines.some((l) => l.level === "warn" && /spent by another/.test(l.msg)),
      "the watchtower warns that the coin was spent by another transaction",
    );
    assert.equal(await wt.remove(statechainId), true);
    assert.equal(await wt.status(statechainId), undefined);
    await wt.stop();
    await db.close();
  });

  test("registration checks the transactions it is given", async () => {
    const db = await Db.open(dbFile());
    const wt = await Watchtower.create({ db, chain, logger: new MemoryLogger() });
    const tip = node.height();
    const { backups } = await depositAbsolute(coins[4]!, tip + 30, 2);
    const e = backups[0]!.entry;
    const invalid = (p: Promise<unknown>, msg: RegExp) =>
      assert.rejects(
        p,
        (err: unknown) =>
          err instanceof WatchtowerError && err.code === "INVALID_ENTRY" && msg.test(err.message),
      );
    await invalid(wt.register({ ...e, lock: e.lock + 1 }), /locktime .* ≠ registered lock/);
    await invalid(wt.register({ ...e, amountSat: AMOUNT + 1n }), /does not verify/);
    await invalid(
      wt.register({ ...e, sharedPublicKey: secp256k1.getPublicKey(sk("other"), true) }),
      /different public key/,
    );
    await invalid(
      wt.register({ ...e, statechainId: `${"00".repeat(32)}:0` }),
      /does not spend the statechain outpoint/,
    );
    await invalid(wt.register({ ...e, mode: "kickoff" }), /needs its kick-off/);
    await invalid(wt.register({ ...e, statechainId: "nope" }), /txid:vout/);
    const unsigned = buildBackupTx({
      mode: "absolute",
      spend: { txid: Buffer.from(e.statechainId.slice(0, 64), "hex").reverse(), vout: 0 },
      spendAmountSat: AMOUNT,
      backupKey: P,
      lock: e.lock,
      feeRateSatVb: 1,
    });
    await invalid(wt.register({ ...e, backupTx: unsigned.raw }), /not signed/);
    // The same owner may replace a backup that has not gone out yet.
    await wt.register(e);
    const again = await wt.register({ ...e, backupTx: cosign(unsigned.raw, AMOUNT) });
    assert.equal(again.backupTxid, unsigned.txidHex);
    await db.close();
  });
});

describe("kick-off mode", () => {
  async function depositKickoff(coin: Utxo, locks: number[]) {
    const funding = buildFundingTx({
      utxos: [coin],
      amountSat: AMOUNT,
      sharedPublicKey: P,
      changeScript: wallet.script,
      feeRateSatVb: 1,
    });
    const statechainId = `${funding.txidHex}:0`;
    const k = buildKickoffTx({
      outpoint: { txid: funding.txid, vout: 0 },
      amountSat: AMOUNT,
      sharedPublicKey: P,
      feeRateSatVb: 1,
    });
    const kickoffTx = cosign(k.raw, AMOUNT);
    const backups = locks.map((lock, i) => {
      const built = buildBackupTx({
        mode: "kickoff",
        spend: { txid: k.txid, vout: 0 },
        spendAmountSat: k.outputAmountSat,
        backupKey: secp256k1.getPublicKey(sk(`k${i + 1}`), true),
        lock,
        feeRateSatVb: 1,
      });
      return { txid: built.txidHex, raw: cosign(built.raw, k.outputAmountSat), lock };
    });
    await chain.broadcast(
      signP2wpkhInputs(funding.raw, [{ inputIndex: 0, prevout: coin, privateKey: wallet.sk }]),
    );
    await chain.mine(1);
    const entry = (n: number, kickoffAt?: number): RegisterEntry => ({
      statechainId,
      ownerIndex: n,
      mode: "kickoff",
      lock: backups[n - 1]!.lock,
      amountSat: AMOUNT,
      sharedPublicKey: P,
      backupTx: backups[n - 1]!.raw,
      kickoffTx,
      kickoffAt,
    });
    return { statechainId, kickoffTx, kickoffTxid: k.txidHex, backups, entry };
  }

  test("kick-off at its height with a CPFP child, then the backup once its relative lock has passed", async () => {
    // The node's estimate says 5 sat/vB; the kick-off pays 1: the fee wallet bumps it.
    const pricey: ChainBackend = Object.assign(Object.create(chain) as EmbeddedChain, {
      estimateFeeRate: async () => 5,
    });
    const db = await Db.open(dbFile());
    const logger = new MemoryLogger();
    const wt = await Watchtower.create({
      db,
      chain: pricey,
      logger,
      feeWallet: { privateKey: feeWallet.sk },
    });
    const d = await depositKickoff(coins[5]!, [12, 6]);
    const kickoffAt = node.height() + 3;
    await wt.register(d.entry(2, kickoffAt));
    await wt.start();

    await mineTo(kickoffAt - 1, wt);
    assert.equal((await wt.status(d.statechainId))?.state, "waiting");
    assert.equal(await chain.getTxStatus(d.kickoffTxid), undefined);
    await mineTo(kickoffAt, wt);
    const bumped = await wt.status(d.statechainId);
    assert.equal(bumped?.state, "kickoff-broadcast");
    assert.ok(bumped?.cpfpTxid, "the watchtower records the CPFP child that bumps the kick-off");
    assert.equal((await chain.getTxStatus(bumped.cpfpTxid))?.inMempool, true);
    assert.ok(logger.has(/CPFP/), "the watchtower logs the CPFP");

    await mineTo(kickoffAt + 1, wt);
    const hk = kickoffAt + 1;
    const confirmed = await wt.status(d.statechainId);
    assert.equal(confirmed?.state, "kickoff-confirmed");
    assert.equal(confirmed?.kickoffHeight, hk);
    assert.equal((await chain.getTxStatus(bumped.cpfpTxid))?.blockHeight, hk);
    assert.equal(confirmed?.broadcastFrom, hk + 6 - 1);

    await mineTo(hk + 4, wt);
    assert.equal((await wt.status(d.statechainId))?.state, "kickoff-confirmed");
    assert.equal(await chain.getTxStatus(d.backups[1]!.txid), undefined);
    assert.ok(!logger.lines.some((l) => l.level === "warn"), "no premature broadcast attempt");
    await mineTo(hk + 5, wt);
    assert.equal((await wt.status(d.statechainId))?.state, "backup-broadcast");
    await mineTo(hk + 6, wt);
    assert.equal((await wt.status(d.statechainId))?.state, "confirmed");
    // The old owner's backup (lock 12) loses.
    await chain.mine(6);
    await assert.rejects(
      chain.broadcast(d.backups[0]!.raw),
      (e: unknown) => e instanceof ChainError && e.code === "missing-inputs",
    );
    const secret = Buffer.from(feeWallet.sk).toString("hex");
    assert.ok(!JSON.stringify(logger.lines).includes(secret), "the fee wallet's key is never logged");
    await wt.stop();
    await db.close();
  });

  test("someone else's kick-off: the watchtower follows it and exits for the newest owner", async () => {
    const db = await Db.open(dbFile());
    const wt = await Watchtower.create({ db, chain, logger: new MemoryLogger() });
    // The wallet also holds the previous test's change, smaller than a deposit; outpoint order is random.
    const coin = (await chain.findUtxos(wallet.script)).find(
      (u) => !u.coinbase && u.valueSat > AMOUNT + 10_000n,
    )!;
    const d = await depositKickoff(coin, [9, 5]);
    await wt.register(d.entry(1));
    await wt.register(d.entry(2)); // no kickoffAt: the watchtower never starts the exit itself
    await wt.start();
    await mineTo(node.height() + 3, wt);
    assert.equal((await wt.status(d.statechainId))?.state, "waiting");
    // An old owner broadcasts the kick-off (it pays its own relay fee; no fee wallet here, so no bump).
    await chain.broadcast(d.kickoffTx);
    await mineTo(node.height() + 1, wt);
    const hk = node.height();
    const s = await wt.status(d.statechainId);
    assert.equal(s?.state, "kickoff-confirmed");
    assert.equal(s?.cpfpTxid, undefined);
    await mineTo(hk + 4, wt);
    assert.equal((await wt.status(d.statechainId))?.state, "backup-broadcast");
    await mineTo(hk + 5, wt);
    assert.equal((await wt.status(d.statechainId))?.state, "confirmed");
    await wt.stop();
    await db.close();
  });
});

test("a chain outage is logged and the pass skipped", async () => {
  const db = await Db.open(dbFile());
  const logger = new MemoryLogger();
  const down: ChainBackend = Object.assign(Object.create(chain) as EmbeddedChain, {
    tipHeight: async () => {
      throw new ChainError("unavailable", "connection refused");
    },
  });
  const wt = await Watchtower.create({ db, chain: down, logger });
  await wt.tick();
  assert.ok(
    logger.lines.some((l) => l.level === "warn" && /chain unavailable/.test(l.msg)),
    "the watchtower warns that the chain is unavailable",
  );
  await db.close();
});
