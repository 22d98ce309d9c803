// invalidateblock on the embedded chain's RPC (issue #19 item 11): the chain rewinds, the disconnected blocks'
// transactions go back to the mempool as bitcoind does, and mining (on demand and on the interval) goes on.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { EmbeddedChain } from "../../chain/embedded.ts";
import type { RegtestNode } from "../../chain/regtest-node.ts";
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
