// SE gone: after two transfers the host and the enclave are killed (SIGKILL) and never come back; the SE's
// watchtower goes with them. The three owners hold their backups, and the chain. The newest owner's backup is the
// first the chain accepts: at its lock it confirms while the older owners' are still non-final, and once their
// locks pass they have nothing left to spend. Absolute mode: the locks are heights (nLockTime). Kick-off mode:
// the newest owner broadcasts the kick-off with a CPFP child on its anchor; every backup spends the kick-off with
// a relative lock (BIP68) counted from its confirmation, one interval shorter per owner.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { status } from "@grpc/grpc-js";
import * as bitcoin from "bitcoinjs-lib";
import { exitByBackup } from "../../client/exit.ts";
import { confirmDeposit, deposit, type OwnedCoin, pub, send } from "../../client/owner.ts";
import { fetchIncoming, receive } from "../../client/receive.ts";
import { SeError } from "../../client/se-client.ts";
import { loadConfig } from "../../host/config.ts";
import { enclavePolicy } from "../../host/main.ts";
import { p2wpkhScript } from "../../protocol/tx/script.ts";
import { fundedWallet, type Harness, newIdentity, ownerHarness } from "../helpers/owners.ts";
import { type DurableSe, startDurableSe } from "../helpers/se-process.ts";
import { rejection, statechainUtxo } from "../host/support/coins.ts";

const INIT_LOCK = 40;
const INTERVAL = 10;

const running: DurableSe[] = [];
after(async () => {
  await Promise.all(running.map((se) => se.stop()));
});

const txOf = (raw: Uint8Array) => bitcoin.Transaction.fromBuffer(Buffer.from(raw));

/** Deposit, then two transfers: owners 1, 2 and 3 of one coin, each with its own fully signed backup. */
async function threeOwners(h: Harness): Promise<[OwnedCoin, OwnedCoin, OwnedCoin]> {
  const wallet = await fundedWallet(h.chain);
  const coin1 = await deposit(h.ctx, {
    amountSat: 500_000n,
    utxos: wallet.utxos,
    changeScript: wallet.script,
  });
  await confirmDeposit(h.ctx, coin1, { onWait: async () => void (await h.chain.mine(1)) });
  const coins: OwnedCoin[] = [coin1];
  for (let i = 0; i < 2; i++) {
    const id = newIdentity();
    await send(h.ctx, coins[i]!, id.address);
    const [incoming] = await fetchIncoming(h.ctx, id);
    assert.ok(incoming, `owner ${i + 2} finds the transfer`);
    coins.push(await receive(h.ctx, id, incoming));
  }
  return coins as [OwnedCoin, OwnedCoin, OwnedCoin];
}

/** Kills host and enclave; the chain (its own process) runs on. Asserts the SE answers no more. */
async function killSe(se: DurableSe, h: Harness): Promise<void> {
  await Promise.all([se.host.stop("SIGKILL"), se.enclave.stop("SIGKILL")]);
  await assert.rejects(
    h.ctx.se.call("getInfo", {}),
    (e) => e instanceof SeError && e.code === status.UNAVAILABLE,
    "the SE is gone",
  );
}

/** Each backup pays its own owner's backup key (P2WPKH), all from the same input. */
function assertBackupsPayTheirOwners(coins: OwnedCoin[], spends: Buffer): void {
  for (const c of coins) {
    const tx = txOf(c.backupTx);
    assert.equal(tx.ins.length, 1);
    assert.ok(
      Buffer.from(tx.ins[0]!.hash).equals(spends),
      `owner ${c.ownerIndex}'s backup spends the expected output`,
    );
    assert.deepEqual(tx.outs[0]!.script, Buffer.from(p2wpkhScript(pub(c.backupSecret))));
  }
}

/**
 * With the tip one block short of `tip3` no backup is final; at `tip3` the older owners' still are not, owner 3's
 * goes out and confirms. Returns its txid.
 */
async function newestFirst(h: Harness, coins: OwnedCoin[], tip3: number): Promise<string> {
  const newest = coins.at(-1)!;
  await h.chain.mine(tip3 - 1 - (await h.chain.tipHeight()));
  for (const c of coins)
    await assert.rejects(
      h.chain.broadcast(c.backupTx),
      rejection("non-final"),
      `owner ${c.ownerIndex}'s is not final yet`,
    );
  await h.chain.mine(1);
  for (const c of coins.slice(0, -1))
    await assert.rejects(
      h.chain.broadcast(c.backupTx),
      rejection("non-final"),
      `owner ${c.ownerIndex}'s is still not final`,
    );
  const txid = await h.chain.broadcast(newest.backupTx);
  await h.chain.mine(1);
  assert.equal((await h.chain.getTxStatus(txid))?.confirmations, 1, `owner ${newest.ownerIndex}'s confirmed`);
  return txid;
}

/** Once the newest backup confirmed, the older owners' have nothing to spend (their locks have passed). */
async function assertOlderBackupsLose(h: Harness, older: OwnedCoin[]): Promise<void> {
  for (const c of older)
    await assert.rejects(
      h.chain.broadcast(c.backupTx),
      rejection("missing-inputs"),
      `owner ${c.ownerIndex}'s backup has nothing to spend`,
    );
}

test("absolute mode: with the SE gone, owner 3's backup confirms at its lock height, before owners 1 and 2 can", async () => {
  const env = { SE_INIT_LOCK: String(INIT_LOCK), SE_LOCKTIME_INTERVAL: String(INTERVAL) };
  const se = await startDurableSe({ env, policy: enclavePolicy(loadConfig({ env })) });
  running.push(se);
  const h = await ownerHarness(se.host);
  try {
    const coins = await threeOwners(h);
    const [coin1, coin2] = coins;
    const locks = coins.map((c) => txOf(c.backupTx).locktime);
    assert.deepEqual(
      locks,
      [coin1.initialLock, coin1.initialLock - INTERVAL, coin1.initialLock - 2 * INTERVAL],
      "each owner's lock is one interval lower than the previous owner's",
    );
    assertBackupsPayTheirOwners(coins, Buffer.from(coin1.statechainId.txid));
    await killSe(se, h);

    // The mempool takes a backup with nLockTime L once the tip is L (the next block's height is above L).
    const [lock1, , lock3] = locks as [number, number, number];
    const txid3 = await newestFirst(h, coins, lock3);

    await h.chain.mine(lock1 - (await h.chain.tipHeight()));
    await assertOlderBackupsLose(h, [coin1, coin2]);
    assert.equal(await statechainUtxo(h, coin1), undefined);
    const paid = await h.chain.getUtxo(txid3, 0);
    assert.ok(paid, "owner 3's backup output is unspent, owner 3's to spend");
  } finally {
    h.close();
  }
});

test("kick-off mode: with the SE gone, owner 3 broadcasts kick-off + CPFP; its backup's relative lock ends first", async () => {
  const env = {
    SE_BACKUP_MODE: "kickoff",
    SE_INIT_LOCK: String(INIT_LOCK),
    SE_LOCKTIME_INTERVAL: String(INTERVAL),
  };
  const se = await startDurableSe({ env, policy: enclavePolicy(loadConfig({ env })) });
  running.push(se);
  const h = await ownerHarness(se.host);
  try {
    const coins = await threeOwners(h);
    const [coin1, coin2, coin3] = coins;
    assert.ok(coin3.kickoffTx, "owner 3 holds the kick-off");
    for (const c of coins)
      assert.deepEqual(c.kickoffTx, coin3.kickoffTx, `owner ${c.ownerIndex} holds the same kick-off`);
    const kickoffTxid = txOf(coin3.kickoffTx).getId();
    const relLocks = coins.map((c) => txOf(c.backupTx).ins[0]!.sequence);
    assert.deepEqual(relLocks, [INIT_LOCK, INIT_LOCK - INTERVAL, INIT_LOCK - 2 * INTERVAL]);
    assertBackupsPayTheirOwners(coins, Buffer.from(txOf(coin3.kickoffTx).getHash()));
    await killSe(se, h);

    // No backup can go out before the kick-off exists.
    for (const c of coins) await assert.rejects(h.chain.broadcast(c.backupTx), rejection("missing-inputs"));
    // Owner 3 has no on-chain coins: the anchor pays the child.
    const sent = await exitByBackup(coin3, {
      chain: h.chain,
      feeRateSatVb: 2,
      changeScript: p2wpkhScript(pub(coin3.backupSecret)),
      noWait: true,
    });
    assert.equal(sent.stage, "waiting-kickoff");
    assert.equal(sent.kickoffTxid, kickoffTxid);
    assert.ok(sent.cpfpTxid, "the CPFP child went out with the kick-off");
    await h.chain.mine(1);
    const kickoffHeight = await h.chain.tipHeight();
    assert.equal((await h.chain.getTxStatus(kickoffTxid))?.confirmations, 1, "the kick-off confirmed");
    assert.equal((await h.chain.getTxStatus(sent.cpfpTxid))?.confirmations, 1, "with its child");

    // A backup with relative lock n may enter the block at kickoffHeight + n, so the mempool takes it once the
    // tip is one below.
    const txid3 = await newestFirst(h, coins, kickoffHeight + relLocks[2]! - 1);

    await h.chain.mine(kickoffHeight + relLocks[0]! - (await h.chain.tipHeight()));
    await assertOlderBackupsLose(h, [coin1, coin2]);
    assert.equal(await h.chain.getUtxo(kickoffTxid, 0), undefined, "the kick-off's coin output is spent");
    assert.ok(await h.chain.getUtxo(txid3, 0), "owner 3's backup output is owner 3's to spend");
    assert.equal(await statechainUtxo(h, coin1), undefined);
  } finally {
    h.close();
  }
});
