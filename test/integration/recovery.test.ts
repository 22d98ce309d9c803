// Issue #22: everything comes back from the mnemonic. Against a running simulator SE: a wallet deposits one coin,
// receives three by transfer (one of them twice), withdraws one and exits one; its file is deleted; a wallet
// restored from the 24 words and `recover`ed lists exactly the live and closed coins, each checked as `wallet
// verify` checks it, and sends and withdraws like the original. The RecoverCoins RPC answers only requests signed
// by the key asked about, and alike for a key that owns nothing and one never seen.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { KeyTree, mnemonicToSeed } from "../../client/keys.ts";
import { confirmDeposit, deposit } from "../../client/owner.ts";
import type { CoinSummary } from "../../client/wallet.ts";
import { RecoveredRole } from "../../proto/gen/statechain.ts";
import { parseOutpointString } from "../../protocol/outpoint.ts";
import { servicesOf, testWallet } from "../client/wallet-helpers.ts";
import { fundedWallet, type Harness, ownerHarness } from "../helpers/owners.ts";
import { type SeProcess, startSeProcess } from "../helpers/se-process.ts";

let se: SeProcess;
let h: Harness;
const mine =
  (n = 1) =>
  async () =>
    void (await h.chain.mine(n));

before(async () => {
  se = await startSeProcess({
    env: { SE_MAINSTAY_INTERVAL_S: "1", SE_INIT_LOCK: "300", SE_LOCKTIME_INTERVAL: "10" },
  });
  h = await ownerHarness(se);
});
after(async () => {
  h?.close();
  await se?.stop();
});

const by = (coins: CoinSummary[], id: string) => coins.find((c) => c.statechainId === id);

test("restore + recover rebuilds live and closed coins from the mnemonic; the restored wallet sends and withdraws", async () => {
  const { wallet: alice } = await testWallet(h);
  const { wallet: bob, mnemonic, file: bobFile } = await testWallet(h);
  await alice.faucet(1);
  await bob.faucet(1);

  // C first, with room: its exit must come before the locks of the coins that stay live pass (the SE's watchtower
  // broadcasts a current owner's backup at its lock).
  const c = await alice.deposit(330_000n, { onWait: mine() });
  await alice.send(c.number, (await bob.receiveAddress({ fresh: true })).address);
  const gotC = await bob.receive();
  assert.equal(gotC.received.length, 1);
  await h.chain.mine(200);
  const d = await bob.deposit(300_000n, { onWait: mine() });
  const a = await alice.deposit(310_000n, { onWait: mine() });
  const b = await alice.deposit(320_000n, { onWait: mine() });
  // A to bob, back to alice, and to bob again (a second receive of one coin, on another key slot).
  await alice.send(a.number, (await bob.receiveAddress({ fresh: true })).address);
  assert.equal((await bob.receive()).received.length, 1);
  const bobA = (await bob.coins()).find((x) => x.statechainId === a.statechainId)!;
  await bob.send(bobA.number, (await alice.receiveAddress({ fresh: true })).address);
  const back = (await alice.receive()).received[0]!;
  await alice.send(back.number, (await bob.receiveAddress({ fresh: true })).address);
  await alice.send(b.number, (await bob.receiveAddress({ fresh: true })).address);
  const got = await bob.receive();
  assert.deepEqual(got.refused, []);
  assert.equal(got.received.length, 2);
  const mine2 = new Map([...got.received, ...gotC.received].map((x) => [x.statechainId, x]));
  assert.equal(mine2.get(a.statechainId)!.ownerIndex, 4);

  const w = await bob.withdraw(mine2.get(b.statechainId)!.number, await alice.fundingAddress(), {
    onWait: mine(),
  });
  assert.equal(w.coin.status, "withdrawn");
  const x = await bob.exit(mine2.get(c.statechainId)!.number, { onWait: mine(5) });
  assert.equal(x.coin.status, "exited");
  const before = await bob.balance();
  await bob.close();
  rmSync(bobFile, { force: true });

  // The restored wallet: nothing until it asks the SE.
  const { wallet: restored } = await testWallet(undefined, { mnemonic });
  const events: string[] = [];
  restored.connect({ ...servicesOf(h), onProgress: (e) => events.push(e) });
  assert.deepEqual(await restored.coins(), []);
  const r = await restored.recover({ gap: 5 });
  assert.deepEqual(r.refused, []);
  assert.ok(events.includes("recover-scan") && events.includes("recover-coin"), `progress: ${events}`);
  const coins = await restored.coins();
  const status = Object.fromEntries(coins.map((k) => [k.statechainId, [k.status, k.origin, k.ownerIndex]]));
  assert.deepEqual(status, {
    [d.statechainId]: ["active", "deposit", 1],
    [a.statechainId]: ["active", "received", 4],
    [b.statechainId]: ["withdrawn", "received", 2],
    [c.statechainId]: ["exited", "received", 2],
  });
  assert.equal(coins.length, 4, "one row per coin: A's first stay with bob is not a coin of its own");
  const after = await restored.balance();
  assert.equal(after.coinsSat, before.coinsSat, "the same coins count in the balance");
  for (const id of [a.statechainId, d.statechainId]) {
    const v = await restored.verify(by(coins, id)!.number);
    assert.ok(v.ok, JSON.stringify(v.checks.filter((k) => k.status === "fail")));
  }
  // A second run finds the same and stores nothing twice.
  const again = await restored.recover({ gap: 5 });
  assert.equal(again.stored.length, 0);
  assert.equal((await restored.coins()).length, 4);

  // The restored wallet co-signs with the rebuilt share and Paillier key: it sends A and withdraws D.
  await restored.send(
    by(coins, a.statechainId)!.number,
    (await alice.receiveAddress({ fresh: true })).address,
  );
  const aliceGot = await alice.receive();
  assert.deepEqual(aliceGot.refused, []);
  assert.equal(aliceGot.received[0]!.ownerIndex, 5);
  const wd = await restored.withdraw(by(coins, d.statechainId)!.number, await alice.fundingAddress(), {
    onWait: mine(),
  });
  assert.equal(wd.coin.status, "withdrawn");
  // A receive address the restored wallet hands out is on a slot the scan found unused.
  const next = await restored.receiveAddress();
  assert.ok(next.index > Math.max(...r.usedSlots), `slot ${next.index} is past the used ${r.usedSlots}`);
  await restored.close();
  await alice.close();
});

test("RecoverCoins: refused unless signed by the key asked about; a key owning nothing looks like an unknown one", async () => {
  const { wallet: alice, mnemonic } = await testWallet(h);
  await alice.faucet(1);
  const coin = await alice.deposit(250_000n, { onWait: mine() });
  await alice.close();
  const keys = new KeyTree(mnemonicToSeed(mnemonic), "regtest");
  const proof = keys.secret("proof", 0);
  const C = Buffer.from(secp256k1.getPublicKey(proof, true));
  const mallory = secp256k1.utils.randomSecretKey();
  await assert.rejects(
    h.ctx.se.call("recoverCoins", { proofKey: C, auth: undefined }, mallory),
    /AUTH_SIGNATURE|signature/,
    "another key's signature is refused",
  );
  const mine1 = await h.ctx.se.call("recoverCoins", { proofKey: C, auth: undefined }, proof);
  assert.equal(mine1.coins.length, 1);
  const [rc] = mine1.coins;
  assert.deepEqual(rc!.statechainId, parseOutpointString(coin.statechainId));
  assert.equal(rc!.role, RecoveredRole.RECOVERED_ROLE_OWNER);
  assert.equal(rc!.backupTxs.length, 1);
  assert.ok(rc!.key && rc!.key.sePublicShare.length === 33, "the coin's key as the enclave holds it");
  // Slot 1 was handed out (the wallet keeps a receive address) but owns nothing; a fresh key was never seen.
  const unused = keys.secret("proof", 5);
  const stranger = secp256k1.utils.randomSecretKey();
  const answers = await Promise.all(
    [unused, stranger].map((sk) =>
      h.ctx.se.call(
        "recoverCoins",
        { proofKey: Buffer.from(secp256k1.getPublicKey(sk, true)), auth: undefined },
        sk,
      ),
    ),
  );
  assert.deepEqual(answers[0], answers[1]);
  assert.deepEqual(answers[0], { coins: [] });
  await assert.rejects(
    h.ctx.se.call("recoverCoins", { proofKey: Buffer.alloc(33, 2), auth: undefined }, proof),
    /INVALID|point|signature/i,
  );
  keys.wipe();
});

test("a coin whose share this seed did not make (o drawn at random) comes back exit-only, to leave by its backup", async () => {
  const { wallet, mnemonic } = await testWallet(h);
  await wallet.close();
  const keys = new KeyTree(mnemonicToSeed(mnemonic), "regtest");
  const funds = await fundedWallet(h.chain);
  // The owner API without a wallet's keys draws o (and makes the Paillier key) on the spot.
  const coin = await deposit(h.ctx, {
    amountSat: 200_000n,
    utxos: funds.utxos,
    changeScript: funds.script,
    proofSecret: keys.secret("proof", 3),
    backupSecret: keys.secret("backup", 3),
  });
  await confirmDeposit(h.ctx, coin, { onWait: mine() });
  keys.wipe();
  const { wallet: restored } = await testWallet(h, { mnemonic });
  const r = await restored.recover({ gap: 5 });
  assert.deepEqual(r.refused, []);
  assert.equal(r.stored.length, 1);
  assert.equal(r.stored[0]!.status, "exit-only");
  assert.match(r.coins[0]!.why ?? "", /RECOVERY_NO_SHARE/);
  assert.equal((await restored.balance()).exitOnlySat, 200_000n, "it counts, as exit-only");
  await assert.rejects(
    restored.send(r.stored[0]!.number, (await restored.receiveAddress()).address),
    /COIN_STATE|exit/,
  );
  const out = await restored.exit(r.stored[0]!.number, { onWait: mine(25) });
  assert.equal(out.coin.status, "exited", "the restored wallet takes it out by its backup");
  assert.ok(out.receivedSat > 190_000n, `the backup pays the wallet (${out.receivedSat} sat)`);
  await restored.close();
});
