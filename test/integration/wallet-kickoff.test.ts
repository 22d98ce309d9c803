// Kick-off mode (DESIGN.md 3.5) through the wallet: a received coin exits by broadcasting the kick-off with a
// CPFP child on its anchor, waiting out its relative lock, then its backup; a coin withdraws cooperatively
// from the statechain outpoint while the kick-off stays off chain.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { parseTx } from "../../protocol/tx/parse.ts";
import { ANCHOR_SCRIPT } from "../../protocol/tx/script.ts";
import { testWallet } from "../client/wallet-helpers.ts";
import { type Harness, ownerHarness } from "../helpers/owners.ts";
import { type SeProcess, startSeProcess } from "../helpers/se-process.ts";

let se: SeProcess;
let h: Harness;
const mine =
  (n = 1) =>
  async () =>
    void (await h.chain.mine(n));

before(async () => {
  se = await startSeProcess({
    env: {
      SE_BACKUP_MODE: "kickoff",
      SE_MAINSTAY_ENABLED: "false",
      SE_INIT_LOCK: "30",
      SE_LOCKTIME_INTERVAL: "10",
    },
  });
  h = await ownerHarness(se);
});
after(async () => {
  h?.close();
  await se?.stop();
});

test("kick-off mode: exit by kick-off + CPFP, relative lock, backup; withdrawal from the funding outpoint", async () => {
  const { wallet: alice } = await testWallet(h);
  const { wallet: bob } = await testWallet(h);
  await alice.faucet(1);
  const coin = await alice.deposit(600_000n, { onWait: mine() });
  assert.equal(coin.backupMode, "kickoff");
  assert.equal(coin.backupLock, 30);
  await alice.send(coin.number, (await bob.receiveAddress()).address);
  const got = await bob.receive();
  assert.deepEqual(got.refused, []);
  const bobCoin = got.received[0]!;
  assert.equal(bobCoin.backupLock, 20, "the receiver's relative lock is one interval shorter");
  const report = await bob.verify(bobCoin.number);
  assert.ok(report.ok, JSON.stringify(report.checks.filter((c) => c.status === "fail")));
  assert.equal(report.checks.find((c) => c.name === "kickoff.transaction")?.status, "pass");

  // Bob has no on-chain coins: the anchor alone pays the child.
  const first = await bob.exit(bobCoin.number, { wait: false });
  assert.equal(first.state.stage, "waiting-kickoff");
  assert.ok(first.state.kickoffTxid && first.state.cpfpTxid, "kick-off and CPFP child broadcast");
  assert.equal(first.coin.status, "exiting");
  const child = await h.chain.getTx(first.state.cpfpTxid!);
  assert.ok(child, "the child is in the mempool");
  const spent = parseTx(child.raw).ins[0]!;
  assert.equal(Buffer.from(spent.hash).reverse().toString("hex"), first.state.kickoffTxid);
  assert.equal(spent.index, 1, "the child spends the kick-off's anchor");
  const kickoff = await h.chain.getTx(first.state.kickoffTxid!);
  assert.deepEqual(Buffer.from(parseTx(kickoff!.raw).outs[1]!.script), Buffer.from(ANCHOR_SCRIPT));

  const blocks: number[] = [];
  const done = await bob.exit(bobCoin.number, {
    onWait: async () => {
      blocks.push(await h.chain.tipHeight());
      await h.chain.mine(3);
    },
  });
  assert.equal(done.state.stage, "confirmed");
  assert.equal(done.coin.status, "exited");
  assert.ok(
    done.state.kickoffHeight! > 0,
    `the kick-off confirmed at a height above 0 (${done.state.kickoffHeight})`,
  );
  assert.ok(
    done.state.backupHeight! >= done.state.kickoffHeight! + 20,
    `backup at ${done.state.backupHeight}, kick-off at ${done.state.kickoffHeight}: the relative lock held`,
  );
  assert.ok((await bob.balance()).onchainSat > 590_000n, "bob's on-chain balance holds the exited coin");

  // A second coin withdraws cooperatively: the kick-off never went out, so the funding outpoint is spent.
  const coin2 = await alice.deposit(300_000n, { onWait: mine() });
  const w = await alice.withdraw(coin2.number, await bob.fundingAddress(), { onWait: mine() });
  assert.equal(w.coin.status, "withdrawn");
  const wtx = parseTx((await h.chain.getTx(w.txid))!.raw);
  assert.equal(
    Buffer.from(wtx.ins[0]!.hash).reverse().toString("hex"),
    coin2.statechainId.split(":")[0],
    "the withdrawal spends the statechain outpoint",
  );
  await alice.close();
  await bob.close();
});
