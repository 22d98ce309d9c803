// Start-up reconciliation compares each coin's status with the enclave's, not only its owner and proof key
// (issue #19.3), with real processes and a killed host (the pattern of key-update-recovery.test.ts). Killed after
// the enclave accepted a withdrawal (or closed the coin) and before its own commit, the restarted host writes
// what the enclave did; a withdrawal in the database that the enclave never accepted is marked exit-by-backup.
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import sqlite3 from "sqlite3";
import {
  confirmDeposit,
  confirmWithdrawal,
  deposit,
  type OwnedCoin,
  pub,
  randomSecret,
  withdraw,
} from "../../client/owner.ts";
import { loadConfig } from "../../host/config.ts";
import { enclavePolicy } from "../../host/main.ts";
import {
  StatechainStatus,
  type StatechainTx,
  StatechainTx as StatechainTxCodec,
  StatechainTxKind,
} from "../../proto/gen/common.ts";
import { outpointBytes, outpointString } from "../../protocol/outpoint.ts";
import { systemRng } from "../../protocol/rng.ts";
import { p2wpkhScript } from "../../protocol/tx/index.ts";
import { fundedWallet } from "../helpers/owners.ts";
import { type DurableSe, startDurableSe } from "../helpers/se-process.ts";
import { type SteppingHarness, steppingHarness } from "../host/support/coins.ts";

const ENV = { SE_MAINSTAY_ENABLED: "false", SE_INIT_LOCK: "200", SE_LOCKTIME_INTERVAL: "10" };
const mine = async () => void (await h.chain.mine(1));

let se: DurableSe;
let h: SteppingHarness;

before(async () => {
  se = await startDurableSe({ env: ENV, policy: enclavePolicy(loadConfig({ env: ENV })) });
  h = await steppingHarness(se.host);
});
after(async () => {
  h?.close();
  await se?.stop();
});

async function newCoin(): Promise<OwnedCoin> {
  const w = await fundedWallet(h.chain);
  const coin = await deposit(h.ctx, { amountSat: 400_000n, utxos: w.utxos, changeScript: w.script });
  await confirmDeposit(h.ctx, coin, { onWait: mine });
  return coin;
}

const destination = () => Buffer.from(p2wpkhScript(pub(randomSecret(systemRng))));

async function status(coin: OwnedCoin): Promise<StatechainStatus> {
  return (await h.client.current.call("getStatechain", { statechainId: coin.statechainId })).status;
}

/** Runs `sql` on the host's database (the host is down). */
function sqlRun(sql: string, params: unknown[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(path.join(se.dataDir, "host.sqlite"), (err) => {
      if (err) return reject(err);
      db.run(sql, params, (e) => {
        db.close();
        if (e) reject(e);
        else resolve();
      });
    });
  });
}

function sqlGet<T>(sql: string, params: unknown[]): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(path.join(se.dataDir, "host.sqlite"), sqlite3.OPEN_READONLY, (err) => {
      if (err) return reject(err);
      db.get(sql, params, (e, row) => {
        db.close();
        if (e) reject(e);
        else resolve(row as T | undefined);
      });
    });
  });
}

test("killed after the enclave accepted a withdrawal and before its commit, the host writes the withdrawal at start-up", async () => {
  const coin = await newCoin();
  const to = destination();
  let statement: StatechainTx | undefined;
  se.crashAt("WithdrawInit", "before-commit");
  await assert.rejects(
    withdraw(h.ctx, coin, to, {
      onStatement: async (s) => {
        statement = s;
      },
    }),
    "the host dies inside WithdrawInit",
  );
  h.follow(await se.restart());
  assert.equal(
    await status(coin),
    StatechainStatus.STATECHAIN_STATUS_WITHDRAWING,
    "the restarted host knows the withdrawal the enclave accepted, before any retry",
  );
  // Written as the step writes it: the owner's retry with the same statement is the same withdrawal.
  assert.ok(statement, "the wallet kept the statement it signed");
  const stored = await sqlGet<{ statechain_tx: Buffer }>(
    "SELECT statechain_tx FROM withdrawals WHERE statechain_id = ?",
    [outpointBytes(coin.statechainId)],
  );
  assert.deepEqual(stored?.statechain_tx, Buffer.from(StatechainTxCodec.encode(statement).finish()));
  await withdraw(h.ctx, coin, to, { statement });
  await confirmWithdrawal(h.ctx, coin, { onWait: mine });
  assert.equal(await status(coin), StatechainStatus.STATECHAIN_STATUS_CLOSED);
});

test("killed after the enclave closed the coin and before its commit, the host writes the close at start-up", async () => {
  const coin = await newCoin();
  const { txid } = await withdraw(h.ctx, coin, destination());
  await mine(); // buried (regtest: the withdrawal confirmations)
  const id = outpointString(coin.statechainId);
  assert.ok(
    await sqlGet("SELECT 1 AS x FROM watchtower_entries WHERE statechain_id = ?", [id]),
    "the watchtower holds the coin's backup while it is withdrawing",
  );
  se.crashAt("WithdrawConfirm", "before-commit");
  await assert.rejects(confirmWithdrawal(h.ctx, coin), "the host dies after the enclave erased the share");
  h.follow(await se.restart());
  assert.equal(
    await status(coin),
    StatechainStatus.STATECHAIN_STATUS_CLOSED,
    "the restarted host records the close the enclave made, before any retry",
  );
  const w = await sqlGet<{ erasure: Buffer | null; txid: string }>(
    "SELECT erasure, txid FROM withdrawals WHERE statechain_id = ?",
    [outpointBytes(coin.statechainId)],
  );
  assert.equal(w?.txid, txid);
  assert.ok(w?.erasure && w.erasure.length > 0, "the enclave's erasure receipt is kept");
  assert.equal(
    await sqlGet("SELECT 1 AS x FROM watchtower_entries WHERE statechain_id = ?", [id]),
    undefined,
    "a closed coin is no longer watched",
  );
  const sc = await h.client.current.call("getStatechain", { statechainId: coin.statechainId });
  assert.equal(
    sc.chain.at(-1)?.kind,
    StatechainTxKind.STATECHAIN_TX_KIND_WITHDRAW,
    "the statechain ends in it",
  );
  await confirmWithdrawal(h.ctx, coin); // the owner's retry: closed
});

test("a withdrawal in the database the enclave never accepted is marked exit-by-backup at start-up, and logged", async () => {
  const coin = await newCoin();
  await se.host.stop("SIGKILL");
  // As a database that does not match the enclave would: a withdrawal the owner never sent to the enclave.
  const row = await sqlGet<{ state_hash: Buffer }>(
    "SELECT state_hash FROM statechains WHERE statechain_id = ?",
    [outpointBytes(coin.statechainId)],
  );
  const forged = StatechainTxCodec.encode({
    kind: StatechainTxKind.STATECHAIN_TX_KIND_WITHDRAW,
    previousState: row!.state_hash,
    nextProofKey: Buffer.alloc(0),
    withdrawScript: destination(),
    signature: Buffer.alloc(64, 7),
  }).finish();
  await sqlRun("INSERT INTO withdrawals (statechain_id, statechain_tx) VALUES (?, ?)", [
    outpointBytes(coin.statechainId),
    Buffer.from(forged),
  ]);
  await sqlRun("UPDATE statechains SET status = ? WHERE statechain_id = ?", [
    StatechainStatus.STATECHAIN_STATUS_WITHDRAWING,
    outpointBytes(coin.statechainId),
  ]);
  h.follow(await se.restart());
  assert.equal(await status(coin), StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP);
  assert.match(
    se.host.output().stdout,
    /"reason":"the database records a withdrawal the enclave never accepted[^"]*".*disagrees with the enclave/,
  );
});
