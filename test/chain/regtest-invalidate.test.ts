// invalidateblock on the embedded chain's RPC (issue #19 item 11): the chain rewinds, the disconnected blocks'
// transactions go back to the mempool as bitcoind does, and mining (on demand and on the interval) goes on.
// generateblock (as bitcoind's) mines chosen transactions, so a reorg test can confirm a double spend (#19.8).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import * as bitcoin from "bitcoinjs-lib";
import { EmbeddedChain } from "../../chain/embedded.ts";
import type { RegtestNode } from "../../chain/regtest-node.ts";
import { p2wpkhScript } from "../../protocol/tx/index.ts";
import { startRegtest, TestWallet } from "./regtest-wallet.ts";

let node: RegtestNode;
let chain: EmbeddedChain;

before(async () => {
  node = await startRegtest();
  chain = new EmbeddedChain(node);
});
after(() => node.close());

async function rpc(method: string, params: unknown[]): Promise<unknown> {
  const res = await fetch(node.rpc.url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Basic ${Buffer.from(`${node.rpc.user}:${node.rpc.password}`).toString("base64")}`,
    },
    body: JSON.stringify({ method, params, id: 1 }),
  });
  const body = (await res.json()) as { result: unknown; error: { message: string } | null };
  if (body.error) throw new Error(body.error.message);
  return body.result;
}

test("invalidateblock rewinds, returns the block's transactions to the mempool, and mining goes on", async () => {
  const wallet = new TestWallet("invalidate");
  const [coin] = await wallet.mineCoins(chain);
  assert.ok(coin, "the spending transaction is found");
  const payment = wallet.pay([coin], [{ script: wallet.script, valueSat: 10_000n }]);
  await chain.broadcast(payment.raw);
  const [mined] = await chain.mine(1);
  const height = node.height();
  assert.equal((await chain.getTxStatus(payment.txid))?.confirmations, 1);

  assert.equal(await rpc("invalidateblock", [mined]), null);
  assert.equal(node.height(), height - 1);
  assert.equal((await chain.getTxStatus(payment.txid))?.confirmations, 0, "back in the mempool");

  // On demand: the next block is built on the new tip and confirms the returned transaction again.
  const [next] = await chain.mine(1);
  assert.notEqual(next, mined);
  assert.equal(node.height(), height);
  assert.equal((await chain.getTxStatus(payment.txid))?.confirmations, 1);

  // On the interval: blocks keep coming after another invalidate (waits on block events, no timing assumption).
  await rpc("invalidateblock", [next]);
  const errors: Error[] = [];
  node.startIntervalMining(50, (err) => errors.push(err));
  const target = height + 2;
  await new Promise<void>((resolve) => {
    const off = node.onBlock((h) => {
      if (h >= target) {
        off();
        resolve();
      }
    });
  });
  node.stopIntervalMining();
  assert.deepEqual(errors, []);
  assert.ok(node.height() >= target, `mining went on to height ${target} (at ${node.height()})`);
});

test("generateblock confirms a double spend of a transaction in the mempool, which then drops it", async () => {
  const wallet = new TestWallet("generateblock");
  const [coin] = await wallet.mineCoins(chain);
  assert.ok(coin, "the wallet has a mature coin");
  const first = wallet.pay([coin], [{ script: wallet.script, valueSat: 10_000n }]);
  await chain.broadcast(first.raw);
  const other = new TestWallet("generateblock-other");
  const second = wallet.pay([coin], [{ script: other.script, valueSat: 20_000n }], 2);
  // The mempool refuses the conflict (bcoin has no replace-by-fee); a block built with it does not ask.
  await assert.rejects(chain.broadcast(second.raw), /rejected/);

  const height = node.height();
  const address = bitcoinRegtestAddress(other.pk);
  const mined = (await rpc("generateblock", [address, [Buffer.from(second.raw).toString("hex")]])) as {
    hash: string;
  };
  assert.match(mined.hash, /^[0-9a-f]{64}$/);
  assert.equal(node.height(), height + 1);
  assert.equal((await chain.getTxStatus(second.txid))?.confirmations, 1, "the double spend is mined");
  assert.equal(
    await chain.getTxStatus(first.txid),
    undefined,
    "the mempool dropped the replaced transaction",
  );
  const block = (await rpc("getblock", [mined.hash, 1])) as { tx: string[] };
  assert.equal(block.tx.length, 2, "the coinbase and the one transaction asked for, nothing else");

  // A txid names a mempool transaction; one that is not there is refused with its txid.
  const change = await chain.getUtxo(second.txid, 1);
  assert.ok(change, "the double spend's change is unspent");
  const third = wallet.pay([change], [{ script: wallet.script, valueSat: 5_000n }]);
  await chain.broadcast(third.raw);
  await rpc("generateblock", [address, [third.txid]]);
  assert.equal((await chain.getTxStatus(third.txid))?.confirmations, 1);
  await assert.rejects(rpc("generateblock", [address, [first.txid]]), /not in the mempool/);
});

/** bitcoind's regtest spelling (bcrt1…) of P2WPKH(pk): the RPC takes it as bitcoind does. */
function bitcoinRegtestAddress(pk: Uint8Array): string {
  return bitcoin.address.fromOutputScript(Buffer.from(p2wpkhScript(pk)), bitcoin.networks.regtest);
}
