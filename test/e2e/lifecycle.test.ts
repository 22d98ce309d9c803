// The whole life of one coin across six wallets, through the real processes and the wallet SDK: a deposit, six
// transfers (the last one back to the first wallet, which must take the coin on a fresh key), each receiver's
// full verification (statechain, SMT, Mainstay, every backup, every key update's attestation), then a withdrawal
// that confirms and closes the statechain in a tree proof that verifies without the SE.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Wallet } from "../../client/wallet.ts";
import { StatechainStatus } from "../../proto/gen/common.ts";
import { parseOutpointString } from "../../protocol/outpoint.ts";
import { verifySmtProof } from "../../protocol/smt/index.ts";
import { statechainKey, verifyChain } from "../../protocol/statechain.ts";
import { testWallet } from "../client/wallet-helpers.ts";
import { type Harness, ownerHarness } from "../helpers/owners.ts";
import { type SeProcess, startSeProcess } from "../helpers/se-process.ts";

const INIT_LOCK = 300;
const INTERVAL = 10;
let se: SeProcess;
let h: Harness;
const wallets: Wallet[] = [];

before(async () => {
  se = await startSeProcess({
    env: {
      SE_MAINSTAY_INTERVAL_S: "1",
      SE_INIT_LOCK: String(INIT_LOCK),
      SE_LOCKTIME_INTERVAL: String(INTERVAL),
    },
  });
  h = await ownerHarness(se);
});
after(async () => {
  for (const w of wallets) await w.close();
  h?.close();
  await se?.stop();
});

/** Mines until the SE's Mainstay proof covers the statechain's current state. */
async function waitForMainstay(statechainId: string, stateHash: Buffer): Promise<void> {
  const sid = parseOutpointString(statechainId);
  for (let i = 0; i < 100; i++) {
    const p = await h.ctx.se.call("getSmtProof", { statechainId: sid });
    if (p.mainstay && Buffer.from(p.leaf).equals(stateHash)) return;
    await h.chain.mine(1);
    await new Promise((r) => setTimeout(r, 150));
  }
  assert.fail("the statechain's current state was never published to Mainstay");
}

test("deposit → six transfers between six wallets → withdrawal, every receiver verifying everything", async () => {
  for (let i = 0; i < 6; i++) wallets.push((await testWallet(h)).wallet);
  const first = wallets[0]!;
  await first.faucet(1);
  let coin = await first.deposit(1_000_000n, { onWait: async () => void (await h.chain.mine(1)) });
  const statechainId = coin.statechainId;
  const sid = parseOutpointString(statechainId);
  const locks = [coin.backupLock];
  let holder = first;

  for (let hop = 1; hop <= 6; hop++) {
    const to = wallets[hop % 6]!;
    await holder.send(coin.number, (await to.receiveAddress()).address);
    const got = await to.receive();
    assert.deepEqual(got.refused, [], `hop ${hop}: the receiver refused the coin`);
    const received = got.received.find((c) => c.statechainId === statechainId);
    assert.ok(received, `hop ${hop}: the coin arrived`);
    assert.equal(received.ownerIndex, hop + 1);
    assert.equal(received.backupLock, locks[0]! - hop * INTERVAL, "one interval earlier per owner");
    assert.deepEqual(
      received.attestations.map((a) => [a.what, a.valid]),
      [
        ["transfer-key", true],
        ["deletion", true],
      ],
    );
    locks.push(received.backupLock);

    // The previous holder's coin is gone from its usable set: it cannot send it again.
    await assert.rejects(holder.send(coin.number, (await to.receiveAddress()).address));

    const sc = await h.ctx.se.call("getStatechain", { statechainId: sid });
    await waitForMainstay(statechainId, Buffer.from(sc.stateHash));
    const report = await to.verify(received.number);
    assert.ok(report.ok, JSON.stringify(report.checks.filter((c) => c.status === "fail")));
    const byName = new Map(report.checks.map((c) => [c.name, c.status]));
    for (let owner = 1; owner <= hop + 1; owner++) assert.equal(byName.get(`backup.owner_${owner}`), "pass");
    assert.equal(byName.get(`attestation.owner_${hop + 1}`), "pass");
    for (const name of ["backup.order", "backup.mine_last", "receipts.chain", "mainstay.slot_proof"])
      assert.equal(byName.get(name), "pass", name);

    holder = to;
    coin = received;
  }
  assert.equal(holder, first, "the sixth transfer brought the coin back to the depositor");

  const w = await holder.withdraw(coin.number, await wallets[3]!.fundingAddress(), {
    onWait: async () => void (await h.chain.mine(1)),
  });
  assert.equal(w.coin.status, "withdrawn");
  const st = await h.chain.getTxStatus(w.txid);
  assert.ok(st && st.confirmations >= 1, "the withdrawal confirmed");

  const sc = await h.ctx.se.call("getStatechain", { statechainId: sid });
  assert.equal(sc.status, StatechainStatus.STATECHAIN_STATUS_CLOSED);
  assert.equal(sc.ownerIndex, 7);
  assert.equal(sc.keyUpdates.length, 6);
  const chain = verifyChain(sc.depositProofKey, sc.chain);
  assert.ok(chain.closed, "the signed chain ends in WITHDRAW");
  const proof = await h.ctx.se.call("getSmtProof", { statechainId: sid });
  assert.deepEqual(Buffer.from(proof.currentLeaf), Buffer.from(chain.currentState));
  verifySmtProof(proof.currentRoot, statechainKey(sid), proof.currentLeaf, proof.currentProof!);
  await assert.rejects(
    holder.send(coin.number, (await wallets[1]!.receiveAddress()).address),
    /COIN_STATE|only an active coin/,
  );
});
