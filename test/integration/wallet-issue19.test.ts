// Wallet items of issue #19 against a running simulator SE: an interrupted send names its receiver (9), a
// funding that never reached the chain is not counted and can be rebroadcast (10), junk in a mailbox neither
// ends `receive --wait` nor stays (5), and receive polls only live addresses, in one batched request (7).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type SeClient, SeError } from "../../client/se-client.ts";
import type { Wallet } from "../../client/wallet.ts";
import { servicesOf, testWallet } from "../client/wallet-helpers.ts";
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
