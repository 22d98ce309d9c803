// Wallet items of issue #19 against a running simulator SE: an interrupted send names its receiver (9), a
// funding that never reached the chain is not counted and can be rebroadcast (10), junk in a mailbox neither
// ends `receive --wait` nor stays (5), and receive polls only live addresses, in one batched request (7).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { Transaction } from "bitcoinjs-lib";
import { type ChainBackend, ChainError } from "../../chain/backend.ts";
import { decodeReceiveAddress } from "../../client/address.ts";
import { confirmDeposit, coSign, deposit } from "../../client/owner.ts";
import { fetchMailboxes, MAILBOX_BATCH_MAX } from "../../client/receive.ts";
import { type SeClient, SeError } from "../../client/se-client.ts";
import { FUNDING_GRACE_MS, Wallet } from "../../client/wallet.ts";
import { SignPurpose } from "../../proto/gen/common.ts";
import { encrypt as eciesEncrypt } from "../../protocol/ecies.ts";
import { signTransfer } from "../../protocol/statechain.ts";
import { buildBackupTx, MAX_FUNDING_TX_BYTES } from "../../protocol/tx/build.ts";
import { PASSPHRASE, servicesOf, testWallet } from "../client/wallet-helpers.ts";
import { fundedWallet, type Harness, newIdentity, ownerHarness } from "../helpers/owners.ts";
import { type SeProcess, startSeProcess } from "../helpers/se-process.ts";

let se: SeProcess;
let h: Harness;
const mine = async () => void (await h.chain.mine(1));

before(async () => {
  se = await startSeProcess({
    env: { SE_MAINSTAY_ENABLED: "false", SE_INIT_LOCK: "300", SE_LOCKTIME_INTERVAL: "10" },
  });
  h = await ownerHarness(se);
});
after(async () => {
  h?.close();
  await se?.stop();
});

/** An SE client that fails `method` (as a lost connection would) while `failing()` says so. */
function failingSe(base: SeClient, method: string, failing: () => boolean): SeClient {
  const client = Object.create(base) as SeClient;
  client.call = (async (m: string, req: unknown, signer?: Uint8Array, deadlineMs?: number) => {
    if (m === method && failing()) throw new SeError(m, 14, "connection lost (test)");
    return base.call(m as "getInfo", req as never, signer, deadlineMs);
  }) as SeClient["call"];
  return client;
}

async function fundedDeposit(w: Wallet, amountSat = 500_000n) {
  await w.faucet(1);
  return w.deposit(amountSat, { onWait: mine });
}

test("an interrupted send records its receiver; a retry elsewhere names it (#19.9)", async () => {
  const { wallet: alice } = await testWallet(h);
  const { wallet: bob } = await testWallet(h);
  const { wallet: carol } = await testWallet(h);
  const coin = await fundedDeposit(alice);
  const bobAddress = (await bob.receiveAddress()).address;
  let cut = true;
  alice.connect({ ...servicesOf(h), se: failingSe(h.ctx.se, "transferSend", () => cut) });
  await assert.rejects(alice.send(coin.number, bobAddress), /connection lost/);
  const [pending] = await alice.coins();
  assert.equal(pending!.status, "active");
  assert.equal(pending!.receiver?.address, bobAddress, "the receiver is on record");
  const since = pending!.receiver!.sinceMs;
  await assert.rejects(
    alice.send(coin.number, (await carol.receiveAddress()).address),
    (e: Error & { code?: string }) => {
      assert.equal(e.code, "COIN_COMMITTED");
      assert.ok(e.message.includes(bobAddress), e.message);
      assert.ok(e.message.includes(new Date(since).toISOString()), e.message);
      assert.ok(e.message.includes(`wallet send ${coin.number} ${bobAddress}`), e.message);
      return true;
    },
  );
  assert.equal(
    (await alice.coins())[0]!.receiver?.address,
    bobAddress,
    "the refused redirect changed nothing",
  );
  cut = false;
  const sent = await alice.send(coin.number, bobAddress);
  assert.equal(sent.status, "sent");
  assert.equal(sent.receiver?.address, bobAddress);
  const got = await bob.receive();
  assert.equal(got.received.length, 1);
  for (const w of [alice, bob, carol]) await w.close();
});

/** The harness chain with its broadcast replaced. */
function chainWith(broadcast: (raw: Uint8Array) => Promise<string>): ChainBackend {
  const chain = Object.create(h.chain) as ChainBackend;
  chain.broadcast = broadcast;
  return chain;
}

test("a failed funding broadcast is not counted and can be rebroadcast (#19.10)", async () => {
  const { wallet: alice } = await testWallet(h);
  await alice.faucet(1);
  alice.connect({
    ...servicesOf(h),
    chain: chainWith(async () => {
      throw new ChainError("unavailable", "backend unreachable (test)");
    }),
  });
  let number = 0;
  await assert.rejects(alice.deposit(300_000n, { onWait: mine }), (e: Error & { code?: string }) => {
    assert.equal(e.code, "FUNDING_FAILED");
    const m = /wallet deposit --rebroadcast (\d+)/.exec(e.message);
    assert.ok(m, e.message);
    number = Number(m[1]);
    return true;
  });
  alice.connect(servicesOf(h));
  const [failed] = await alice.coins();
  assert.equal(failed!.number, number);
  assert.equal(failed!.status, "funding-failed");
  const bal = await alice.balance();
  assert.equal(bal.coins, 0, "a coin whose funding never went out is not held");
  assert.equal(bal.coinsSat, 0n);
  const again = await alice.rebroadcastFunding(number, { onWait: mine });
  assert.equal(again.status, "active");
  assert.equal((await alice.balance()).coinsSat, 300_000n);
  await alice.close();
});

test("a funding the chain never saw is marked after the grace period and rebroadcast (#19.10)", async () => {
  const { wallet: created, file } = await testWallet(h);
  await created.faucet(1);
  // The broadcast "succeeds" but nothing reaches the node (a backend that lost it, an evicted transaction).
  created.connect({ ...servicesOf(h), chain: chainWith(async () => "00".repeat(32)) });
  const coin = await created.deposit(300_000n, { wait: false });
  assert.equal(coin.status, "awaiting-confirmation");
  await created.close();
  let clock = Date.now();
  const alice = await Wallet.open(file, PASSPHRASE, { now: () => clock });
  alice.connect(servicesOf(h));
  assert.equal((await alice.coins())[0]!.status, "awaiting-confirmation", "within the grace period: waiting");
  clock += FUNDING_GRACE_MS + 1;
  assert.equal((await alice.coins())[0]!.status, "funding-failed");
  assert.equal((await alice.balance()).coins, 0);
  const again = await alice.rebroadcastFunding(coin.number, { onWait: mine });
  assert.equal(again.status, "active");
  await alice.close();
});

/** A coin whose owner hands `address` a message that is not encrypted to it (junk anyone with a coin can send). */
async function sendJunk(to: { proofKey: Uint8Array; backupKey: Uint8Array }): Promise<void> {
  const w = await fundedWallet(h.chain);
  const coin = await deposit(h.ctx, { amountSat: 300_000n, utxos: w.utxos, changeScript: w.script });
  await confirmDeposit(h.ctx, coin, { onWait: mine });
  const init = await h.ctx.se.call(
    "transferSenderInit",
    {
      statechainId: coin.statechainId,
      receiverProofKey: Buffer.from(to.proofKey),
      receiverBackupKey: Buffer.from(to.backupKey),
      auth: undefined,
    },
    coin.proofSecret,
  );
  const backup = buildBackupTx({
    mode: "absolute",
    spend: { txid: coin.statechainId.txid, vout: coin.statechainId.vout },
    spendAmountSat: coin.amountSat,
    backupKey: to.backupKey,
    lock: init.backupLock,
    feeRateSatVb: h.ctx.feeRateSatVb,
  });
  await coSign(h.ctx, coin, SignPurpose.SIGN_PURPOSE_BACKUP, backup.raw, coin.amountSat);
  const sc = await h.ctx.se.call("getStatechain", { statechainId: coin.statechainId });
  await h.ctx.se.call(
    "transferSend",
    {
      statechainId: coin.statechainId,
      statechainTx: signTransfer(coin.proofSecret, sc.stateHash, to.proofKey, h.ctx.rng),
      encryptedMessage: Buffer.from(eciesEncrypt(newIdentity().address.proofKey, Buffer.from("junk"))),
      auth: undefined,
    },
    coin.proofSecret,
  );
}

test("junk in a mailbox does not end `receive --wait`, and is discarded (#19.5)", async () => {
  const { wallet: alice } = await testWallet(h);
  const { wallet: bob } = await testWallet(h);
  const coin = await fundedDeposit(alice);
  const { address } = await bob.receiveAddress();
  await sendJunk(decodeReceiveAddress(address, "regtest"));
  let waits = 0;
  const r = await bob.receive({
    wait: true,
    timeoutMs: 10 * 60_000,
    onWait: async () => {
      // The genuine coin is sent only once the wallet is waiting past the junk.
      if (waits++ === 0) await alice.send(coin.number, address);
    },
  });
  assert.equal(waits, 1, "it waited once, past the junk");
  assert.equal(r.received.length, 1, "the genuine coin arrived");
  assert.equal(r.received[0]!.statechainId, coin.statechainId);
  assert.deepEqual(
    r.refused.map((x) => x.code),
    ["MESSAGE_DECRYPT"],
    "the junk is reported once",
  );
  assert.match(r.refused[0]!.reason, /discarded/);
  // The junk is gone from the SE's mailbox: nothing is left for the address.
  const C = decodeReceiveAddress(address, "regtest").proofKey;
  const left = await h.ctx.se
    .call("mailboxGet", {
      receiverProofKey: Buffer.from(C),
      auth: undefined,
      discardMessageIds: [],
    })
    .catch((e: Error) => e);
  assert.ok(left instanceof SeError, "(unsigned: refused, the mailbox is only its key's)");
  const again = await bob.receive();
  assert.deepEqual(again, { received: [], refused: [] }, "no junk is reported twice");
  await alice.close();
  await bob.close();
});

test("a discard deletes messages of the signer's own mailbox only (#19.5)", async () => {
  const victim = newIdentity();
  const stranger = newIdentity();
  await sendJunk(victim.address);
  const [box] = await fetchMailboxes(h.ctx, [victim]);
  assert.equal(box!.unreadable.length, 1);
  const id = box!.unreadable[0]!.messageId;
  // The stranger names the victim's message in a discard of its own mailbox: nothing of the victim's goes.
  await h.ctx.se.call(
    "mailboxGet",
    { receiverProofKey: stranger.address.proofKey, auth: undefined, discardMessageIds: [id] },
    stranger.proofSecret,
  );
  // A discard in the victim's mailbox needs the victim's signature.
  await assert.rejects(
    h.ctx.se.call(
      "mailboxGet",
      { receiverProofKey: victim.address.proofKey, auth: undefined, discardMessageIds: [id] },
      stranger.proofSecret,
    ),
    (e: SeError) => e.code === 16,
  );
  assert.equal((await fetchMailboxes(h.ctx, [victim]))[0]!.unreadable.length, 1, "still there");
  await fetchMailboxes(h.ctx, [victim], [[id]]);
  assert.deepEqual(
    (await fetchMailboxes(h.ctx, [victim]))[0],
    { incoming: [], unreadable: [] },
    "its owner discarded it",
  );
});

test("a funding over the size a transfer message can carry is refused, by the wallet and by the SE (#19.5)", async () => {
  const w = await fundedWallet(h.chain);
  // 200 small coins: the funding would need all of them, more than MAX_FUNDING_TX_BYTES.
  const many = Array.from({ length: 200 }, (_, i) => ({
    txid: randomBytes(32).toString("hex"),
    vout: i,
    valueSat: 5_000n,
    script: w.script,
    confirmations: 10,
    privateKey: w.privateKey,
  }));
  const calls: string[] = [];
  const spy = Object.create(h.ctx.se) as SeClient;
  spy.call = (async (m: string, req: unknown, signer?: Uint8Array, d?: number) => {
    calls.push(m);
    return h.ctx.se.call(m as "getInfo", req as never, signer, d);
  }) as SeClient["call"];
  await assert.rejects(
    deposit({ ...h.ctx, se: spy }, { amountSat: 900_000n, utxos: many, changeScript: w.script }),
    (e: Error & { code?: string }) => {
      assert.equal(e.code, "FUNDING_TOO_LARGE");
      assert.match(e.message, /consolidate/);
      return true;
    },
  );
  assert.ok(!calls.includes("depositInit"), "refused before the SE is asked for a deposit");
  // A client that sends one anyway: the SE refuses to bind it.
  const padded = Object.create(h.ctx.se) as SeClient;
  padded.call = (async (m: string, req: Record<string, unknown>, signer?: Uint8Array, d?: number) => {
    if (m === "depositFund") {
      const tx = Transaction.fromBuffer(Buffer.from(req.fundingTx as Uint8Array));
      tx.addOutput(Buffer.concat([Buffer.from([0x6a]), randomBytes(MAX_FUNDING_TX_BYTES)]), 0n);
      req = { ...req, fundingTx: tx.toBuffer() };
    }
    return h.ctx.se.call(m as "getInfo", req as never, signer, d);
  }) as SeClient["call"];
  await assert.rejects(
    deposit({ ...h.ctx, se: padded }, { amountSat: 300_000n, utxos: w.utxos, changeScript: w.script }),
    (e: Error) => /more than 16384: every transfer of the coin carries it/.test(e.message),
  );
});

test("receive polls only addresses that can still receive, in batched signed requests (#19.7)", async () => {
  const { wallet: alice } = await testWallet(h);
  const { wallet: bob } = await testWallet(h);
  const coin = await fundedDeposit(alice);
  const first = (await bob.receiveAddress()).address;
  const ADDRESSES = 2 * MAILBOX_BATCH_MAX + 10;
  for (let i = 1; i < ADDRESSES; i++) await bob.receiveAddress({ fresh: true });
  const batches: number[] = [];
  const singles: string[] = [];
  const spy = Object.create(h.ctx.se) as SeClient;
  spy.call = (async (m: string, req: Record<string, unknown>, signer?: Uint8Array, d?: number) => {
    if (m === "mailboxGetBatch") batches.push((req.mailboxes as unknown[]).length);
    if (m === "mailboxGet") singles.push(m);
    return h.ctx.se.call(m as "getInfo", req as never, signer, d);
  }) as SeClient["call"];
  bob.connect({ ...servicesOf(h), se: spy });
  await alice.send(coin.number, first);
  const r = await bob.receive();
  assert.equal(r.received.length, 1);
  assert.deepEqual(singles, [], "no MailboxGet per address");
  assert.deepEqual(batches, [MAILBOX_BATCH_MAX, MAILBOX_BATCH_MAX, 10]);
  batches.length = 0;
  await bob.receive();
  assert.deepEqual(
    batches,
    [MAILBOX_BATCH_MAX, MAILBOX_BATCH_MAX, 9],
    "the address that received is not polled",
  );
  await alice.close();
  await bob.close();
});

test("a mailbox batch reads only mailboxes whose keys sign, is bounded, and is not replayable (#19.7)", async () => {
  const a = newIdentity();
  const b = newIdentity();
  const entry = (key: Uint8Array, signer: Uint8Array) =>
    h.ctx.se.signMailboxEntry(
      { receiverProofKey: Buffer.from(key), auth: undefined, discardMessageIds: [] },
      signer,
    );
  const ok = await h.ctx.se.call("mailboxGetBatch", {
    mailboxes: [entry(a.address.proofKey, a.proofSecret), entry(b.address.proofKey, b.proofSecret)],
  });
  assert.equal(ok.mailboxes.length, 2);
  const refusedWith = async (req: Parameters<SeClient["call"]>[1], code: number, re: RegExp) =>
    assert.rejects(h.ctx.se.call("mailboxGetBatch", req as never), (e: SeError) => {
      assert.equal(e.code, code, e.message);
      assert.match(e.message, re);
      return true;
    });
  // Another's mailbox, signed by a key that is not its own: the whole batch is refused.
  await refusedWith(
    { mailboxes: [entry(a.address.proofKey, a.proofSecret), entry(b.address.proofKey, a.proofSecret)] },
    16,
    /mailbox entry 1/,
  );
  // A MailboxGet's signature is not an entry's.
  const single = h.ctx.se.sign(
    "mailboxGet",
    { receiverProofKey: b.address.proofKey, auth: undefined, discardMessageIds: [] },
    b.proofSecret,
  );
  await refusedWith({ mailboxes: [single] }, 16, /mailbox entry 0/);
  // The same signed batch again.
  const once = { mailboxes: [entry(a.address.proofKey, a.proofSecret)] };
  await h.ctx.se.call("mailboxGetBatch", once);
  await refusedWith(once, 16, /replay/);
  // Bounded: not empty, no key twice, at most MAILBOX_BATCH_MAX.
  await refusedWith({ mailboxes: [] }, 3, /1 to 64/);
  await refusedWith(
    { mailboxes: [entry(a.address.proofKey, a.proofSecret), entry(a.address.proofKey, a.proofSecret)] },
    3,
    /twice/,
  );
  const lots = Array.from({ length: MAILBOX_BATCH_MAX + 1 }, () => newIdentity());
  await refusedWith({ mailboxes: lots.map((x) => entry(x.address.proofKey, x.proofSecret)) }, 8, /1 to 64/);
});
