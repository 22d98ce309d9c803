// Wallet items of issue #19 against a running simulator SE: an interrupted send names its receiver (9), a
// funding that never reached the chain is not counted and can be rebroadcast (10), junk in a mailbox neither
// ends `receive --wait` nor stays (5), and receive polls only live addresses, in one batched request (7).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type ChainBackend, ChainError } from "../../chain/backend.ts";
import { type SeClient, SeError } from "../../client/se-client.ts";
import { FUNDING_GRACE_MS, Wallet } from "../../client/wallet.ts";
import { PASSPHRASE, servicesOf, testWallet } from "../client/wallet-helpers.ts";
import { type Harness, ownerHarness } from "../helpers/owners.ts";
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
