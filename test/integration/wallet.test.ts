// The wallet SDK against a running simulator SE: deposit, send, receive, verify, withdraw and exit by backup,
// with the wallet files scanned for any secret in the clear.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { unpackFields } from "../../client/codec.ts";
import { KeyTree, mnemonicToSeed } from "../../client/keys.ts";
import { paillierKeyPath, paillierSeed } from "../../client/paillier-keys.ts";
import { shareLabel, WalletStore } from "../../client/store.ts";
import { Wallet } from "../../client/wallet.ts";
import { paillierKeyFromSeed } from "../../protocol/ecdsa2p/seeded-paillier.ts";
import { bytesToBigInt } from "../../protocol/encoding.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import { parseOutpointString } from "../../protocol/outpoint.ts";
import { findSecrets, PASSPHRASE, servicesOf, testWallet, walletSecrets } from "../client/wallet-helpers.ts";
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
    env: { SE_MAINSTAY_INTERVAL_S: "1", SE_INIT_LOCK: "300", SE_LOCKTIME_INTERVAL: "10" },
  });
  h = await ownerHarness(se);
});
after(async () => {
  h?.close();
  await se?.stop();
});

/** Mines until the SE's Mainstay proof covers the statechain (the local service attests on confirmed blocks). */
async function waitForMainstay(statechainId: string): Promise<void> {
  const sid = parseOutpointString(statechainId);
  for (let i = 0; i < 100; i++) {
    const p = await h.ctx.se.call("getSmtProof", { statechainId: sid });
    if (p.mainstay && p.leaf.length > 0) return;
    await h.chain.mine(1);
    await new Promise((r) => setTimeout(r, 150));
  }
  assert.fail("the statechain was never published to Mainstay");
}

test("deposit → send → receive → verify → withdraw, and no secret in either wallet file", async () => {
  const { wallet: alice, file: aliceFile } = await testWallet(h);
  const { wallet: bob, file: bobFile } = await testWallet(h);
  const events: string[] = [];
  alice.connect({ ...servicesOf(h), onProgress: (e) => events.push(e) });

  await assert.rejects(alice.deposit(1_000_000n), (e: Error & { code?: string }) => {
    assert.equal(e.code, "INSUFFICIENT_FUNDS");
    assert.match(e.message, /bcrt1q[0-9a-z]+/, "names the address to fund");
    return true;
  });
  const funded = await alice.faucet(1);
  assert.ok(
    funded.onchainSat > 1_000_000n,
    `the faucet funded alice with more than 1,000,000 sat (${funded.onchainSat})`,
  );

  const coin = await alice.deposit(1_000_000n, { onWait: mine() });
  assert.equal(coin.status, "active");
  assert.equal(coin.ownerIndex, 1);
  assert.ok(
    coin.depositAddress.startsWith("bcrt1q"),
    `the deposit address is regtest P2WPKH (${coin.depositAddress})`,
  );
  assert.ok(
    events.includes("keygen") && events.includes("broadcast") && events.includes("confirmations"),
    `the deposit reports keygen, broadcast and confirmations (${events})`,
  );
  const [listed] = await alice.coins();
  assert.equal(listed!.statechainId, coin.statechainId);
  assert.ok(listed!.blocksToLock! > 250, "the backup's lock is about init_lock blocks away");

  const { address } = await bob.receiveAddress();
  assert.match(address, /^rsc1/);
  assert.equal((await bob.receiveAddress()).address, address, "the same unused address until a coin arrives");
  assert.equal((await bob.receive()).received.length, 0, "an empty mailbox");

  const sent = await alice.send(coin.number, address);
  assert.equal(sent.status, "sent");
  const got = await bob.receive();
  assert.deepEqual(got.refused, []);
  assert.equal(got.received.length, 1);
  const bobCoin = got.received[0]!;
  assert.equal(bobCoin.statechainId, coin.statechainId);
  assert.equal(bobCoin.ownerIndex, 2);
  assert.equal(bobCoin.backupLock, coin.backupLock - 10);
  assert.deepEqual(
    bobCoin.attestations.map((a) => [a.what, a.valid, a.simulator]),
    [
      ["transfer-key", true, true],
      ["deletion", true, true],
    ],
  );
  assert.notEqual((await bob.receiveAddress()).address, address, "a used address is not handed out again");

  // No secret, raw or hex, in either file (nor its WAL), while open and after closing.
  for (const file of [aliceFile, bobFile]) {
    const secrets = await walletSecrets(file);
    assert.ok(secrets.size >= 10, `the wallet file holds at least 10 encrypted secrets (${secrets.size})`);
    assert.deepEqual(findSecrets(file, secrets), [], `${file} holds a secret in the clear`);
  }

  await waitForMainstay(bobCoin.statechainId);
  const report = await bob.verify(bobCoin.number);
  const byName = new Map(report.checks.map((c) => [c.name, c]));
  assert.ok(report.ok, JSON.stringify(report.checks.filter((c) => c.status === "fail")));
  assert.ok(report.simulator, "the report says the SE is a simulator");
  for (const name of [
    "statechain.signatures",
    "statechain.state_hash",
    "statechain.ownership",
    "smt.current",
    "smt.published",
    "mainstay.slot_proof",
    "mainstay.attestation_tx",
    "funding.transaction",
    "funding.on_chain",
    "backup.owner_1",
    "backup.owner_2",
    "backup.order",
    "backup.mine_last",
    "attestation.owner_2",
    "receipts.chain",
  ])
    assert.equal(byName.get(name)?.status, "pass", `${name}: ${byName.get(name)?.detail}`);
  assert.equal(byName.get("mainstay.commitment")?.status, "skip", "no Mainstay key given");
  // With the local service's key, as the simulator publishes it, the attestation transaction's commitment to the
  // slot-tree root is checked too; a wrong key fails that check by name.
  const { mainstay } = await h.ctx.se.call("getInfo", {});
  assert.equal(mainstay?.servicePublicKey.length, 33);
  const mainstayKey = { basePubkey: mainstay!.servicePublicKey, chainCode: mainstay!.serviceChainCode };
  const mainstaySlot = mainstay!.slot;
  bob.connect({ ...servicesOf(h), mainstayKey, mainstaySlot, allowUnpublished: false });
  const keyed = await bob.verify(bobCoin.number);
  const commitment = keyed.checks.find((c) => c.name === "mainstay.commitment");
  assert.equal(commitment?.status, "pass", commitment?.detail);
  assert.ok(keyed.ok, "fully published: every check passes without --allow-unpublished");
  bob.connect({
    ...servicesOf(h),
    mainstayKey: { ...mainstayKey, chainCode: Buffer.alloc(32, 7) },
    mainstaySlot,
  });
  const wrong = await bob.verify(bobCoin.number);
  assert.equal(wrong.checks.find((c) => c.name === "mainstay.commitment")?.status, "fail");
  // A slot the wallet does not trust for this SE fails the slot proof by name.
  bob.connect({ ...servicesOf(h), mainstayKey, mainstaySlot: mainstaySlot + 1 });
  const otherSlot = await bob.verify(bobCoin.number);
  assert.match(otherSlot.checks.find((c) => c.name === "mainstay.slot_proof")!.detail, /MAINSTAY_SLOT/);
  // Without trusted Mainstay parameters the publication cannot be checked: a failure unless accepted.
  bob.connect({ ...servicesOf(h), allowUnpublished: false });
  const untrusted = await bob.verify(bobCoin.number);
  assert.equal(untrusted.ok, false);
  assert.match(untrusted.checks.find((c) => c.name === "mainstay.commitment")!.detail, /UNPUBLISHED/);
  bob.connect(servicesOf(h));
  assert.match(byName.get("attestation.owner_2")!.detail, /SIMULATOR/);
  const aliceView = await alice.verify(coin.number);
  assert.equal(aliceView.checks.find((c) => c.name === "statechain.ownership")?.status, "skip");

  const to = await alice.fundingAddress();
  const w = await bob.withdraw(bobCoin.number, to, { onWait: mine() });
  assert.equal(w.coin.status, "withdrawn");
  assert.equal(w.coin.withdrawalTxid, w.txid);
  const st = await h.chain.getTxStatus(w.txid);
  assert.ok(st && st.confirmations >= 1, "the withdrawal transaction is confirmed");
  await assert.rejects(bob.send(bobCoin.number, address), /COIN_STATE|only an active coin/);

  await alice.close();
  await bob.close();
  for (const file of [aliceFile, bobFile]) assert.deepEqual(findSecrets(file, await walletSecrets(file)), []);
});

test("a received coin exits by its backup once the lock is reached; the sender's older backup cannot", async () => {
  const { wallet: alice } = await testWallet(h);
  const { wallet: bob } = await testWallet(h);
  await alice.faucet(1);
  const coin = await alice.deposit(500_000n, { wait: false });
  assert.equal(coin.status, "awaiting-confirmation");
  await h.chain.mine(1);
  assert.equal((await alice.coins())[0]!.status, "active", "`coins` asks the SE about unconfirmed deposits");
  await alice.send(coin.number, (await bob.receiveAddress()).address);
  const [bobCoin] = (await bob.receive()).received;
  assert.ok(bobCoin, "bob received the coin");

  await assert.rejects(alice.exit(coin.number), (e: Error & { code?: string }) => e.code === "COIN_STATE");
  const early = await bob.exit(bobCoin.number, { wait: false });
  assert.equal(early.state.stage, "waiting-lock");
  assert.equal(early.coin.status, "active", "nothing broadcast yet: the coin can still be sent or withdrawn");
  // A height lock is final in a block above nLockTime: the first block that may include the backup.
  assert.equal(early.coin.exit?.unlockHeight, bobCoin.backupLock + 1);

  const done = await bob.exit(bobCoin.number, { onWait: mine(20) });
  assert.equal(done.state.stage, "confirmed");
  assert.equal(done.coin.status, "exited");
  assert.ok(
    done.state.backupHeight! > bobCoin.backupLock,
    "the backup confirmed in a block above the backup's lock",
  );
  const tx = await h.chain.getTx(done.state.backupTxid);
  assert.ok(tx && tx.status.confirmations >= 1, "the backup transaction is on the chain and confirmed");
  // The backup output pays the wallet's backup key: it is now an on-chain coin of the wallet.
  const bal = await bob.balance();
  assert.ok(bal.onchainSat > 490_000n && bal.onchainSat < 500_000n, `balance ${bal.onchainSat}`);
  assert.equal(bal.coins, 0);

  // The file reopens with the same coins (and a wrong passphrase does not open it).
  const file = bob.file;
  await bob.close();
  await assert.rejects(Wallet.open(file, "not the passphrase"), (e: Error & { code?: string }) => {
    assert.equal(e.code, "WRONG_PASSPHRASE");
    return true;
  });
  const again = await Wallet.open(file, PASSPHRASE);
  again.connect(servicesOf(h));
  assert.equal((await again.coin(bobCoin.number)).status, "exited");
  await again.close();
  await alice.close();
});

/** N of every coin a wallet file holds (its sealed key secret: o, then the Paillier primes p, q). */
async function coinModuli(file: string): Promise<Map<string, bigint>> {
  const store = await WalletStore.open(file, PASSPHRASE);
  try {
    const out = new Map<string, bigint>();
    const rows = await store.db.all<{ statechain_id: Buffer; key_idx: number; share_sealed: Buffer }>(
      "SELECT statechain_id, key_idx, share_sealed FROM coins",
    );
    for (const r of rows) {
      const sealed = store.open(r.share_sealed, shareLabel(r.statechain_id.toString("hex"), r.key_idx));
      const [, p, q] = unpackFields(sealed, 3, "stored key secret");
      out.set(`${file}#${r.key_idx}`, bytesToBigInt(p!) * bytesToBigInt(q!));
    }
    return out;
  } finally {
    await store.close();
  }
}

async function sqlOf<T>(file: string, sql: string, args: (string | number)[] = []): Promise<T[]> {
  const store = await WalletStore.open(file, PASSPHRASE);
  try {
    return await store.db.all<T>(sql, args);
  } finally {
    await store.close();
  }
}

test("per-coin Paillier keys: made ahead for an address, derived from the seed, claimed only past the checks, burnt once claimed, never shared", async () => {
  const { wallet: alice, file: aliceFile, mnemonic: aliceWords } = await testWallet(h);
  const { wallet: bob, file: bobFile, mnemonic: bobWords } = await testWallet(h);
  await alice.faucet(1);
  const derived = (words: string, slot: number, keygen: number) => {
    const keys = new KeyTree(mnemonicToSeed(words), "regtest");
    const seed = paillierSeed(keys, paillierKeyPath("regtest", 0, slot, keygen));
    const key = paillierKeyFromSeed(seed, { nonces: 0 });
    keys.wipe();
    return key.n;
  };

  // Handing out an address makes its first coin's key ahead, sealed in the wallet file: the seed's key.
  const { address: a0, index: s0 } = await bob.receiveAddress();
  await bob.keysReady();
  const path0 = paillierKeyPath("regtest", 0, s0, 0);
  const [ahead] = await sqlOf<{ path: string; n: Buffer }>(bobFile, "SELECT path, n FROM paillier_keys");
  assert.equal(ahead?.path, path0, "the key of the address's first keygen is in the wallet file");
  assert.equal(bytesToBigInt(ahead!.n), derived(bobWords, s0, 0), "the cached key is the one the seed gives");

  const first = await alice.deposit(200_000n, { onWait: mine() });
  const second = await alice.deposit(200_000n, { onWait: mine() });
  await alice.send(first.number, a0);

  // A receive refused by a check before it needs the key (here the call that gets the transfer key fails once)
  // claims none: the slot's count stays, the key made ahead stays in the file. One refused after it claimed the
  // key (the key update's call fails once, before anything reaches the SE) burns it: the next attempt on the same
  // slot uses keygen 1.
  const se = h.ctx.se;
  let cut: string | undefined;
  const flaky = Object.create(se) as typeof se;
  flaky.call = ((m: string, ...rest: unknown[]) => {
    if (m === cut) {
      cut = undefined;
      return Promise.reject(new ProtocolError("TEST_CUT", `cut by the test at ${m}`));
    }
    return (se.call as (...a: unknown[]) => unknown)(m, ...rest);
  }) as typeof se.call;
  bob.connect({ ...servicesOf(h), se: flaky });
  const keygensOf = async () =>
    (await sqlOf<{ keygens: number }>(bobFile, "SELECT keygens FROM key_slots WHERE idx = ?", [s0]))[0]
      ?.keygens;
  cut = "transferReceiverInit";
  const early = await bob.receive();
  assert.deepEqual(
    early.refused.map((r) => r.code),
    ["TEST_CUT"],
    "the first attempt is refused by the cut",
  );
  await bob.keysReady();
  assert.equal(await keygensOf(), 0, "a receive refused before it needed the key claims none");
  assert.deepEqual(
    (await sqlOf<{ path: string }>(bobFile, "SELECT path FROM paillier_keys")).map((r) => r.path),
    [path0],
    "the key made ahead is still in the file",
  );
  cut = "transferReceiverKeyUpdate";
  const late = await bob.receive();
  assert.deepEqual(
    late.refused.map((r) => r.code),
    ["TEST_CUT"],
    "the second attempt is cut at the key update",
  );
  assert.equal(await keygensOf(), 1, "a receive refused after it claimed the key burns it");
  const received = await bob.receive();
  assert.equal(received.received.length, 1, JSON.stringify(received.refused));
  bob.connect(servicesOf(h));
  assert.equal(await keygensOf(), 2, "two keygens were started on the slot");
  const bobN = await coinModuli(bobFile);
  assert.deepEqual([...bobN.values()], [derived(bobWords, s0, 1)], "the coin has the slot's second key");
  assert.notEqual(derived(bobWords, s0, 1), derived(bobWords, s0, 0));
  assert.deepEqual(
    await sqlOf(bobFile, "SELECT path FROM paillier_keys"),
    [],
    "no cached key is left once it went to a keygen",
  );

  // A second coin to a second address; every coin of both wallets has its own N.
  const { address: a1 } = await bob.receiveAddress();
  await alice.send(second.number, a1);
  assert.equal((await bob.receive()).received.length, 1);
  const all = new Map([...(await coinModuli(aliceFile)), ...(await coinModuli(bobFile))]);
  assert.equal(all.size, 4, "two deposits in alice's file, two received coins in bob's");
  assert.equal(new Set(all.values()).size, 4, "no two coins share a Paillier modulus");
  const aliceSlots = await sqlOf<{ idx: number }>(
    aliceFile,
    "SELECT idx FROM key_slots WHERE purpose = 'deposit'",
  );
  for (const { idx } of aliceSlots)
    assert.equal(all.get(`${aliceFile}#${idx}`), derived(aliceWords, idx, 0), `deposit slot ${idx}'s key`);
  await alice.close();
  await bob.close();
  for (const file of [aliceFile, bobFile]) assert.deepEqual(findSecrets(file, await walletSecrets(file)), []);
});
