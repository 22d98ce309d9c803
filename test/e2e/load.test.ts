// Load: fifty wallets pass coins among themselves at the same time, for a bounded time, through one SE. Every
// transfer must complete (no error), and at the end every coin has exactly one holder, the one the SE's signed
// chain names, with as many owners as transfers it went through: nothing lost, nothing duplicated. Prints the
// transfers per second. TEST_LONG=1 runs the full 60 s with a coin for every wallet.
import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import { performance } from "node:perf_hooks";
import { after, before, test } from "node:test";
import { confirmDeposit, deposit, type OwnedCoin, pub, randomSecret, send } from "../../client/owner.ts";
import { fetchIncoming, receive } from "../../client/receive.ts";
import { StatechainStatus } from "../../proto/gen/common.ts";
import { outpointString } from "../../protocol/outpoint.ts";
import { systemRng } from "../../protocol/rng.ts";
import { verifyChain } from "../../protocol/statechain.ts";
import { p2wpkhScript } from "../../protocol/tx/script.ts";
import { type Harness, newIdentity, ownerHarness } from "../helpers/owners.ts";
import { type SeProcess, startSeProcess } from "../helpers/se-process.ts";
import { tryCoSign } from "../host/support/coins.ts";

const LONG = process.env.TEST_LONG === "1";
const WALLETS = 50;
const COINS = LONG ? 50 : 12;
const SECONDS = LONG ? 60 : 12;

let se: SeProcess;
let h: Harness;

before(async () => {
  se = await startSeProcess({
    // Every wallet of this test runs on one address: the per-peer cap on unfunded deposits is raised for it.
    env: {
      SE_MAINSTAY_ENABLED: "false",
      SE_INIT_LOCK: "5000",
      SE_LOCKTIME_INTERVAL: "1",
      SE_DEPOSIT_MAX_UNFUNDED_PER_PEER: "64",
    },
  });
  h = await ownerHarness(se);
});
after(async () => {
  h?.close();
  await se?.stop();
});

interface Holding {
  coin: OwnedCoin;
  transfers: number;
}

test(`${WALLETS} wallets transfer ${COINS} coins concurrently for ${SECONDS} s: none lost, none duplicated`, async (t) => {
  const { ctx, chain } = h;
  // One coinbase per coin, so the deposits spend disjoint outputs and can run at once.
  const fundingKey = randomSecret(systemRng);
  const fundingScript = p2wpkhScript(pub(fundingKey));
  await chain.mine(COINS, fundingScript);
  await chain.mine(100);
  const utxos = (await chain.findUtxos(fundingScript)).map((u) => ({ ...u, privateKey: fundingKey }));
  assert.ok(utxos.length >= COINS, `at least ${COINS} funding outputs for the coins (found ${utxos.length})`);

  const coins = await Promise.all(
    utxos
      .slice(0, COINS)
      .map((u) => deposit(ctx, { amountSat: 100_000n, utxos: [u], changeScript: fundingScript })),
  );
  await chain.mine(1);
  for (const c of coins) await confirmDeposit(ctx, c, { onWait: async () => void (await chain.mine(1)) });

  // wallet index → the coins it holds, by statechain id
  const held: Map<string, Holding>[] = Array.from({ length: WALLETS }, () => new Map());
  for (const [i, coin] of coins.entries())
    held[i % WALLETS]!.set(outpointString(coin.statechainId), { coin, transfers: 0 });
  const old: OwnedCoin[] = [];
  const errors: unknown[] = [];
  let transfers = 0;
  const t0 = performance.now();
  const deadline = t0 + SECONDS * 1000;

  // Each coin moves on its own: its holder sends it to a random other wallet, which receives it on a fresh key.
  await Promise.all(
    coins.map(async (first, i) => {
      const id = outpointString(first.statechainId);
      let at = i % WALLETS;
      while (performance.now() < deadline) {
        const from = held[at]!.get(id)!;
        let to = randomInt(WALLETS - 1);
        if (to >= at) to++;
        try {
          const identity = newIdentity();
          await send(ctx, from.coin, identity.address);
          const incoming = (await fetchIncoming(ctx, identity)).find(
            (m) => outpointString(m.statechainId) === id,
          );
          assert.ok(incoming, "the transfer reached the receiver's mailbox");
          const coin = await receive(ctx, identity, incoming);
          held[at]!.delete(id);
          held[to]!.set(id, { coin, transfers: from.transfers + 1 });
          old.push(from.coin);
          at = to;
          transfers++;
        } catch (err) {
          errors.push(err);
          return;
        }
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const rate = transfers / secs;
  t.diagnostic(`${transfers} transfers in ${secs.toFixed(1)} s: ${rate.toFixed(2)} transfers/s`);
  process.stderr.write(
    `${JSON.stringify({ test: "e2e.load", wallets: WALLETS, coins: COINS, transfers, seconds: secs, per_second: rate })}\n`,
  );
  assert.deepEqual(errors, [], "every transfer completed");
  assert.ok(transfers >= COINS, "every coin moved at least once");

  // Every coin has exactly one holder, and the SE's signed chain agrees with it.
  const holders = new Map<string, number>();
  for (const [w, m] of held.entries())
    for (const id of m.keys()) {
      assert.ok(!holders.has(id), `coin ${id} is held by two wallets`);
      holders.set(id, w);
    }
  assert.equal(holders.size, COINS, "no coin lost");
  let total = 0;
  for (const m of held)
    for (const { coin, transfers: n } of m.values()) {
      total += n;
      const sc = await ctx.se.call("getStatechain", { statechainId: coin.statechainId });
      assert.equal(sc.status, StatechainStatus.STATECHAIN_STATUS_ACTIVE);
      assert.equal(sc.ownerIndex, 1 + n);
      assert.equal(coin.ownerIndex, 1 + n);
      assert.deepEqual(
        Buffer.from(verifyChain(sc.depositProofKey, sc.chain).currentKey),
        pub(coin.proofSecret),
      );
    }
  assert.equal(total, transfers);

  // The current holders co-sign; a sample of former holders cannot.
  for (const m of held) for (const { coin } of m.values()) assert.equal(await tryCoSign(h, coin), true);
  for (const coin of old.slice(0, 5)) assert.notEqual(await tryCoSign(h, coin), true);
});
