// A withdrawal closes the coin only once buried (issue #19.4): before withdrawBurialDepth confirmations the SE
// keeps the share and the watchtower entry, a reorg that takes the withdrawal out of the chain leaves the coin
// withdrawing (the wallet confirms it again and it is mined again), and at the burial depth the coin is closed.
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import sqlite3 from "sqlite3";
import { StatechainStatus } from "../../proto/gen/common.ts";
import { parseOutpointString } from "../../protocol/outpoint.ts";
import { testWallet } from "../client/wallet-helpers.ts";
import { type Harness, ownerHarness } from "../helpers/owners.ts";
import { type SeProcess, startSeProcess } from "../helpers/se-process.ts";

const BURIAL = 3;
let se: SeProcess;
let h: Harness;
const mine = () => async () => void (await h.chain.mine(1));

before(async () => {
  se = await startSeProcess({
    env: { SE_MAINSTAY_ENABLED: "false", SE_WITHDRAW_BURIAL_DEPTH: String(BURIAL) },
  });
  h = await ownerHarness(se);
});
after(async () => {
  h?.close();
  await se?.stop();
});

/** How many statechains the SE's watchtower holds (read from its database, read-only). */
function watchtowerEntries(): Promise<number> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(path.join(se.dataDir, "host.sqlite"), sqlite3.OPEN_READONLY, (err) => {
      if (err) return reject(err);
      db.get("SELECT count(*) AS n FROM watchtower_entries", (e, row: { n: number } | undefined) => {
        db.close();
        if (e) reject(e);
        else resolve(row!.n);
      });
    });
  });
}

/** Waits until the watchtower holds `n` entries (registration and removal follow a step's commit). */
async function untilEntries(n: number, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while ((await watchtowerEntries()) !== n) {
    assert.ok(Date.now() < deadline, what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function seStatus(statechainId: string): Promise<StatechainStatus> {
  const sc = await h.ctx.se.call("getStatechain", { statechainId: parseOutpointString(statechainId) });
  return sc.status;
}

test("a withdrawal undone by a reorg leaves the coin protected, and it closes only once buried", async () => {
  const { wallet } = await testWallet(h);
  await wallet.faucet(1);
  const coin = await wallet.deposit(400_000n, { onWait: mine() });
  await untilEntries(1, "the deposit's backup was not registered with the watchtower");
  const to = await wallet.fundingAddress();
  const { txid } = await wallet.withdraw(coin.number, to, { wait: false });
  // The withdrawal is in the mempool: exiting by the backup would conflict with it, so the wallet refuses.
  await assert.rejects(wallet.exit(coin.number, { wait: false }), /withdrawing/);

  await h.chain.mine(1);
  await wallet.withdraw(coin.number, to, { wait: false });
  const mined = await h.chain.getTxStatus(txid);
  assert.equal(mined?.confirmations, 1);
  assert.equal(
    await seStatus(coin.statechainId),
    StatechainStatus.STATECHAIN_STATUS_WITHDRAWING,
    "1 confirmation is not buried: the share is kept",
  );
  assert.equal(await watchtowerEntries(), 1, "the watchtower keeps the entry until burial");

  // A 1-block reorg: the withdrawal leaves the chain (back to the mempool, as bitcoind does).
  await h.chain.rpc("invalidateblock", [mined!.blockHash]);
  assert.equal((await h.chain.getTxStatus(txid))?.confirmations ?? 0, 0);
  const again = await wallet.withdraw(coin.number, to, { wait: false });
  assert.equal(again.txid, txid, "the same signed withdrawal, sent again");
  assert.equal(again.coin.status, "withdrawing");
  assert.equal(await seStatus(coin.statechainId), StatechainStatus.STATECHAIN_STATUS_WITHDRAWING);
  assert.equal(await watchtowerEntries(), 1);

  // Mined again, then buried: only now is the coin closed (share erased) and no longer watched.
  const w = await wallet.withdraw(coin.number, to, { onWait: mine() });
  assert.equal(w.coin.status, "withdrawn");
  assert.ok(
    ((await h.chain.getTxStatus(txid))?.confirmations ?? 0) >= BURIAL,
    `the withdrawal is buried ${BURIAL} deep`,
  );
  assert.equal(await seStatus(coin.statechainId), StatechainStatus.STATECHAIN_STATUS_CLOSED);
  await untilEntries(0, "the watchtower entry was not dropped after the close");
});
