// A transfer cut after the receiver's backup was co-signed (issue #22): the enclave is SIGKILLed and restarted
// mid-transfer, so it has lost the coin's key and the host marks the coin exit-by-backup. The receiver's backup
// (an interval earlier than the sender's) is then the coin's first valid exit. The receiver's wallet keeps the
// coin exit-only with that backup, counts it, and `exit` takes it out at its lock; funds that arrive by a backup
// the wallet never held (the SE's watchtower broadcast it) show in its on-chain balance. The sender's wallet
// follows the SE's word (GetStatechain's next_owner_backup_signed): the coin is the receiver's, not active, not
// counted, and its exit by the older backup is refused with the reason.
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, test } from "node:test";
import { Transaction } from "bitcoinjs-lib";
import { coinsTable } from "../../client/cli.ts";
import type { MethodName } from "../../client/se-client.ts";
import { SeError } from "../../client/se-client.ts";
import type { CoinSummary, Wallet } from "../../client/wallet.ts";
import { loadConfig } from "../../host/config.ts";
import { enclavePolicy } from "../../host/main.ts";
import { StatechainStatus } from "../../proto/gen/common.ts";
import { parseOutpointString } from "../../protocol/outpoint.ts";
import { testWallet } from "../client/wallet-helpers.ts";
import { type DurableSe, startDurableSe } from "../helpers/se-process.ts";
import { type SteppingHarness, steppingHarness } from "../host/support/coins.ts";
import { queryDb } from "../host/support/db-snapshot.ts";

const INIT_LOCK = 60;
const INTERVAL = 10;
const ENV = { SE_INIT_LOCK: String(INIT_LOCK), SE_LOCKTIME_INTERVAL: String(INTERVAL) };
const AMOUNT = 400_000n;
const CUT =
  /the transfer to \S+ was cut after the receiver's backup was co-signed .*the receiver's backup has the earlier lock and wins; this coin is the receiver's now/;

let se: DurableSe;
let h: SteppingHarness;
let alice: Wallet;
const mine = async () => void (await h.chain.mine(1));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  se = await startDurableSe({ env: ENV, policy: enclavePolicy(loadConfig({ env: ENV })) });
  h = await steppingHarness(se.host);
  alice = (await testWallet(h)).wallet;
  await alice.faucet(1);
});
after(async () => {
  await alice?.close();
  h?.close();
  await se?.stop();
});

async function untilExitByBackup(statechainId: string): Promise<void> {
  for (let i = 0; i < 150; i++) {
    const sc = await h.client.current
      .call("getStatechain", { statechainId: parseOutpointString(statechainId) })
      .catch(() => undefined);
    if (sc?.status === StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP) return;
    await sleep(200);
  }
  throw new Error(`the SE did not mark ${statechainId} exit-by-backup within 30 s`);
}

/**
 * Runs `flow` with the enclave killed (and a fresh one started) right after the SE answered `method` for `coin`;
 * with `lose`, that answer never reaches the wallet (a lost connection) and the flow sees UNAVAILABLE instead;
 * with `unsent`, the call is not sent at all: the enclave is killed while it is under way and it goes unanswered.
 */
async function cutAfter<T>(
  method: MethodName,
  coin: CoinSummary,
  flow: () => Promise<T>,
  lose = false,
  unsent = false,
): Promise<T> {
  let done = false;
  h.client.around = async (step, sendIt) => {
    if (step.method !== method || done) return sendIt();
    done = true;
    const res = unsent ? undefined : await sendIt();
    await se.restartEnclave();
    await untilExitByBackup(coin.statechainId);
    if (lose || unsent) throw new SeError(method, 14, "connection lost (test)");
    return res;
  };
  try {
    return await flow();
  } finally {
    h.client.around = (_s, sendIt) => sendIt();
    assert.ok(done, `the enclave was killed after ${method}`);
  }
}

/** The SE's view of the coin now. */
const statechain = (c: CoinSummary) =>
  h.client.current.call("getStatechain", { statechainId: parseOutpointString(c.statechainId) });

/** The sender's view of a coin whose transfer was cut after the receiver's backup was co-signed. */
async function senderSeesCut(coin: CoinSummary): Promise<void> {
  const sc = await statechain(coin);
  assert.equal(sc.status, StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP);
  assert.equal(sc.ownerIndex, 1, "the SE still names the sender the owner");
  assert.equal(sc.nextOwnerBackupSigned, true, "the receiver's backup is co-signed");
  const shown = (await alice.coins()).find((c) => c.number === coin.number)!;
  assert.equal(shown.status, "sent", "the coin is not active (nor exit-only) for the sender");
  assert.equal(shown.inBalance, false);
  assert.match(shown.hint ?? "", CUT);
  assert.match(coinsTable([shown]), CUT, "`wallet coins` says why");
  const bal = await alice.balance();
  const counted = (await alice.coins()).filter((c) => c.inBalance);
  assert.equal(
    bal.coinsSat,
    counted.reduce((sum, c) => sum + c.amountSat, 0n),
    "the balance counts only the coins in it",
  );
  assert.equal(bal.exitOnlyCoins, 0, "not counted as an exit-only coin of the sender");
  await assert.rejects(alice.exit(coin.number, { wait: false }), (e: Error & { code?: string }) => {
    assert.equal(e.code, "TRANSFER_CUT");
    assert.match(e.message, CUT);
    return true;
  });
}

/** Exits the receiver's kept coin at its lock: the backup confirms and its output is the receiver's. */
async function receiverExits(bob: Wallet, coin: CoinSummary): Promise<void> {
  const tip = await h.chain.tipHeight();
  assert.ok(tip < coin.backupLock, `the lock ${coin.backupLock} is ahead of the tip ${tip}`);
  const before = (await bob.balance()).onchainSat;
  const r = await bob.exit(coin.number, { onWait: mine, timeoutMs: 120_000 });
  assert.equal(r.state.stage, "confirmed");
  assert.equal(r.coin.status, "exited");
  assert.ok(r.state.backupHeight! > coin.backupLock, "mined in a block above its nLockTime");
  const tx = await h.chain.getTx(r.state.backupTxid);
  const parsed = Transaction.fromBuffer(Buffer.from(tx!.raw));
  assert.equal(parsed.locktime, coin.backupLock, "the receiver's backup, with its (earlier) lock");
  const after = await bob.balance();
  assert.equal(
    after.onchainSat - before,
    r.receivedSat,
    "the backup's output is the receiver's on-chain funds",
  );
  assert.equal(after.coins, 0, "the coin left (not counted twice)");
}

test("cut after the hand-over: the receiver keeps the coin exit-only, counts it, and exits it at its lock", async () => {
  const { wallet: bob } = await testWallet(h);
  const coin = await alice.deposit(AMOUNT, { onWait: mine });
  const { address } = await bob.receiveAddress();
  await alice.send(coin.number, address);
  await se.restartEnclave();
  await untilExitByBackup(coin.statechainId);
  assert.equal((await statechain(coin)).nextOwnerBackupSigned, true);

  const r = await bob.receive();
  assert.deepEqual(r.refused, [], "nothing refused");
  assert.equal(r.received.length, 1, "the coin is kept");
  const kept = r.received[0]!;
  assert.equal(kept.status, "exit-only");
  assert.equal(kept.origin, "received");
  assert.equal(kept.ownerIndex, 2);
  assert.equal(kept.backupLock, coin.backupLock - INTERVAL, "the receiver's backup: an interval earlier");
  assert.match(kept.hint ?? "", /wallet exit/);
  const bal = await bob.balance();
  assert.equal(bal.coinsSat, AMOUNT, "counted in the balance");
  assert.equal(bal.exitOnlySat, AMOUNT);
  // Receiving again changes nothing: the address is used, the coin kept once.
  assert.deepEqual(await bob.receive(), { received: [], refused: [] });

  // The sender had finished its part: the coin is sent, and the older backup cannot take it out.
  const sent = await alice.coin(coin.number);
  assert.equal(sent.status, "sent");
  await assert.rejects(alice.exit(coin.number, { wait: false }), /COIN_STATE|no longer the newest/);

  await receiverExits(bob, kept);
  await bob.close();
});

test("cut after the hand-over, the receiver's wallet file lost: restore + recover keep the coin exit-only, and it exits", async () => {
  const { wallet: lost, mnemonic, file } = await testWallet(h);
  const coin = await alice.deposit(AMOUNT, { onWait: mine });
  await alice.send(coin.number, (await lost.receiveAddress()).address);
  await lost.close();
  rmSync(file, { force: true });
  await se.restartEnclave();
  await untilExitByBackup(coin.statechainId);

  const { wallet: bob } = await testWallet(h, { mnemonic });
  const r = await bob.recover({ gap: 3 });
  assert.deepEqual(r.refused, [], "nothing refused");
  assert.equal(r.stored.length, 1, "the pending receiver's coin is found by its proof key");
  const kept = r.stored[0]!;
  assert.equal(kept.statechainId, coin.statechainId);
  assert.equal(kept.status, "exit-only");
  assert.equal(kept.ownerIndex, 2);
  assert.equal(kept.backupLock, coin.backupLock - INTERVAL, "with its own backup, an interval earlier");
  assert.match(r.coins[0]!.why ?? "", /cut after this wallet's backup was co-signed/);
  assert.equal((await bob.balance()).exitOnlySat, AMOUNT, "counted in the balance");
  // The mailbox still holds the transfer: a receive leaves the recovered coin as it is.
  assert.deepEqual((await bob.receive()).refused, []);
  assert.equal((await bob.coins()).length, 1);
  await receiverExits(bob, await bob.coin(kept.number));
  await bob.close();
});

test("cut after the receiver's TransferReceiverInit: the key update is refused, the coin kept exit-only", async () => {
  const { wallet: bob } = await testWallet(h);
  const coin = await alice.deposit(AMOUNT, { onWait: mine });
  const { address } = await bob.receiveAddress();
  await alice.send(coin.number, address);
  const r = await cutAfter("transferReceiverInit", coin, () => bob.receive());
  assert.deepEqual(r.refused, [], "nothing refused");
  assert.equal(r.received.length, 1);
  const kept = r.received[0]!;
  assert.equal(kept.status, "exit-only");
  assert.equal(kept.backupLock, coin.backupLock - INTERVAL);
  assert.equal((await bob.balance()).exitOnlySat, AMOUNT);
  await receiverExits(bob, kept);
  await bob.close();
});

test("cut after SignComplete, before the hand-over: the sender is told the coin is the receiver's; the watchtower's broadcast of the receiver's backup shows in its balance", async () => {
  const { wallet: bob } = await testWallet(h);
  const coin = await alice.deposit(AMOUNT, { onWait: mine });
  const { address } = await bob.receiveAddress();
  // The hand-over (TransferSend) is refused: the SE can no longer co-sign the coin.
  await assert.rejects(
    cutAfter("signComplete", coin, () => alice.send(coin.number, address)),
    (e: Error & { code?: string }) => {
      assert.equal(e.code, "TRANSFER_CUT");
      assert.match(e.message, CUT);
      assert.ok(e.message.includes(address), "it names the receiver");
      return true;
    },
  );
  await senderSeesCut(coin);

  // The receiver never got the message: nothing to receive, and nothing held yet.
  assert.deepEqual(await bob.receive(), { received: [], refused: [] });
  assert.equal((await bob.balance()).onchainSat, 0n);
  // The SE's watchtower broadcasts the receiver's backup (the coin's newest co-signed one) at its lock.
  const [tower] = await queryDb<{ owner_index: number; lock: number; backup_tx: Buffer }>(
    se.dataDir,
    "SELECT owner_index, lock, backup_tx FROM watchtower_entries WHERE statechain_id = ?",
    [coin.statechainId],
  );
  assert.equal(tower?.owner_index, 2, "the watchtower holds the receiver's backup");
  const value = Transaction.fromBuffer(Buffer.from(tower.backup_tx)).outs[0]!.value;
  let arrived = 0n;
  for (let i = 0; i < 200 && arrived === 0n; i++) {
    await mine();
    await sleep(100);
    arrived = (await bob.balance()).onchainSat;
  }
  assert.equal(arrived, BigInt(value), "the receiver's balance shows the funds its backup brought");
  assert.ok((await h.chain.tipHeight()) > tower.lock, "the funds arrived once the backup's lock passed");
  await bob.close();
});

test("cut after SignComplete with the sender's answer lost: `wallet coins` learns from the SE that the coin is the receiver's", async () => {
  const { wallet: bob } = await testWallet(h);
  const coin = await alice.deposit(AMOUNT, { onWait: mine });
  const { address } = await bob.receiveAddress();
  await assert.rejects(
    cutAfter("signComplete", coin, () => alice.send(coin.number, address), true),
    /connection lost/,
  );
  // The wallet last knew the coin active (being sent); the SE's view decides.
  assert.equal((await alice.coin(coin.number)).status, "active");
  await senderSeesCut(coin);
  await bob.close();
});

test("cut with the sender's answer lost: `wallet exit` asks the SE first and refuses with the reason", async () => {
  const { wallet: bob } = await testWallet(h);
  const coin = await alice.deposit(AMOUNT, { onWait: mine });
  const { address } = await bob.receiveAddress();
  await assert.rejects(
    cutAfter("signComplete", coin, () => alice.send(coin.number, address), true),
    /connection lost/,
  );
  assert.equal((await alice.coin(coin.number)).status, "active", "as the wallet last knew it");
  await assert.rejects(alice.exit(coin.number, { wait: false }), (e: Error & { code?: string }) => {
    assert.equal(e.code, "TRANSFER_CUT");
    assert.match(e.message, CUT);
    return true;
  });
  const shown = await alice.coin(coin.number);
  assert.equal(shown.status, "sent");
  assert.equal(shown.exit, undefined, "no exit was started");
  await bob.close();
});

test("cut while the key update went unanswered: the next receive finds the coin cut and keeps it exit-only", async () => {
  const { wallet: bob } = await testWallet(h);
  const coin = await alice.deposit(AMOUNT, { onWait: mine });
  const { address } = await bob.receiveAddress();
  await alice.send(coin.number, address);
  const first = await cutAfter("transferReceiverKeyUpdate", coin, () => bob.receive(), false, true);
  assert.deepEqual(
    first.refused.map((r) => r.code),
    ["KEY_UPDATE_UNANSWERED"],
  );
  assert.equal(first.received.length, 0);
  // Resumed: the same request goes again, the SE refuses it (exit by backup only) at the sender's index.
  const r = await bob.receive();
  assert.deepEqual(r.refused, [], "nothing refused");
  assert.equal(r.received.length, 1);
  const kept = r.received[0]!;
  assert.equal(kept.status, "exit-only");
  assert.equal(kept.backupLock, coin.backupLock - INTERVAL);
  assert.equal((await bob.balance()).exitOnlySat, AMOUNT);
  await receiverExits(bob, kept);
  await bob.close();
});
