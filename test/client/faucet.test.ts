// The wallet's faucet over a regtest chain: paid by the node's funded key when it has one (one transaction, one
// block), else by coinbases mined to the wallet, and FAUCET_LIMIT when late coinbases cannot reach the amount.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { DevChain, Utxo } from "../../chain/backend.ts";
import type { SeClient } from "../../client/se-client.ts";
import { testWallet } from "./wallet-helpers.ts";

/** A regtest chain at `tip` that records what it mines; `fund` as given (undefined: a node without a wallet). */
function fakeChain(tip: number, fund?: DevChain["fund"]) {
  const mined: { n: number; script?: Uint8Array }[] = [];
  const utxos: Utxo[] = [];
  const chain = {
    network: "regtest",
    kind: "bitcoind",
    tipHeight: async () => tip,
    findUtxos: async (script: Uint8Array) =>
      utxos.filter((u) => Buffer.from(u.script).equals(Buffer.from(script))),
    mine: async (n: number, script?: Uint8Array) => {
      mined.push({ n, script });
      tip += n;
      return [];
    },
    ...(fund ? { fund } : {}),
  } as unknown as DevChain;
  return { chain, mined, utxos };
}

async function connected(chain: DevChain) {
  const { wallet } = await testWallet();
  wallet.connect({ se: {} as SeClient, chain, trust: { aws: true } });
  return wallet;
}

test("faucet: the node's funded key pays what the wallet lacks, and one block (to the node) confirms it", async () => {
  const paid: bigint[] = [];
  const fake = fakeChain(5000, async (script, sat) => {
    paid.push(sat);
    fake.utxos.push({
      txid: "aa".repeat(32),
      vout: 0,
      valueSat: sat,
      script,
      confirmations: 1,
      coinbase: false,
    });
    return { txid: "aa".repeat(32) };
  });
  const w = await connected(fake.chain);
  try {
    const r = await w.faucet(1, 3_000_000_000n);
    assert.deepEqual(
      [r.source, r.blocks, r.sentSat, r.onchainSat],
      ["faucet", 1, 3_000_000_000n, 3_000_000_000n],
    );
    assert.deepEqual(fake.mined, [{ n: 1, script: undefined }], "one block, paid to the node's own key");
    assert.equal((await w.faucet(1, 2_000_000_000n)).source, "none", "enough already: nothing sent");
    assert.equal((await w.faucetSend(100_000n)).sentSat, 100_000n);
    assert.deepEqual(paid, [3_000_000_000n, 100_000n]);
  } finally {
    await w.close();
  }
});

test("faucet: a node without a funded key is paid in coinbases; late in the chain that hits FAUCET_LIMIT and says why", async () => {
  const early = fakeChain(200);
  const w = await connected(early.chain);
  try {
    // Height 201 to 203 pay 25 btc each: three coinbases, then their maturity.
    const r = await w.faucet(1, 7_000_000_000n);
    assert.equal(r.source, "coinbase");
    assert.equal(r.blocks, 3);
    assert.equal(early.mined.length, 2);
    assert.equal(early.mined[0]!.n, 3);
    assert.equal(early.mined[1]!.n, 100);
  } finally {
    await w.close();
  }
  const late = fakeChain(4000, async () => ({
    unavailable: "insufficient funds: the faucet key holds 0 sat",
  }));
  const v = await connected(late.chain);
  try {
    await assert.rejects(v.faucet(1, 100_000_000n), (e: Error & { code?: string }) => {
      assert.equal(e.code, "FAUCET_LIMIT");
      assert.match(
        e.message,
        /pays nothing from a funded key \(insufficient funds: the faucet key holds 0 sat\)/,
      );
      assert.match(e.message, /subsidy halves every 150 blocks.*`se start --fresh`/);
      return true;
    });
    assert.deepEqual(late.mined, [], "nothing mined for an amount it cannot reach");
  } finally {
    await v.close();
  }
});
