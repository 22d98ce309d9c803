// The one behaviour every ChainBackend must show, run against the embedded node, bitcoind's RPC (bcoin's
// bitcoind-compatible server) and Esplora (a local Esplora-shaped server), all over a real bcoin regtest chain.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Transaction } from "bitcoinjs-lib";
import { type ChainBackend, ChainError, type Utxo } from "../../chain/backend.ts";
import { EmbeddedChain } from "../../chain/embedded.ts";
import type { RegtestNode } from "../../chain/regtest-node.ts";
import { p2wpkhScript, signP2wpkhInputs, type WalletUtxo } from "../../protocol/tx/index.ts";
import { startRegtest, TestWallet } from "./regtest-wallet.ts";

export interface BackendUnderTest {
  backend: ChainBackend;
  close(): Promise<void>;
}

async function rejects(p: Promise<unknown>, code: ChainError["code"]): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ChainError, `expected ChainError, got ${err}`);
    assert.equal(err.code, code, err.message);
    return true;
  });
}

const utxoOf = (txid: string, vout: number, valueSat: bigint, script: Uint8Array): WalletUtxo => ({
  txid,
  vout,
  valueSat,
  script,
});

export function backendSuite(name: string, make: (node: RegtestNode) => Promise<BackendUnderTest>): void {
  describe(`ChainBackend: ${name}`, () => {
    let node: RegtestNode;
    let dev: EmbeddedChain;
    let under: BackendUnderTest;
    let chain: ChainBackend;
    const wallet = new TestWallet(`suite-${name}`);
    const other = new TestWallet(`suite-other-${name}`);
    let coins: Utxo[] = [];

    before(async () => {
      node = await startRegtest();
      dev = new EmbeddedChain(node);
      under = await make(node);
      chain = under.backend;
      coins = await wallet.mineCoins(dev, 3);
      assert.equal(coins.length, 3);
    });
    after(async () => {
      await under?.close();
      await node?.close();
    });

    test("tip height and block events", async () => {
      assert.equal(await chain.tipHeight(), node.height());
      const seen: number[] = [];
      const off = chain.onBlock((h) => seen.push(h));
      try {
        // Polling backends take their baseline on the first poll: mine until an event shows up, then check
        // that every later block is reported once and in order.
        for (let i = 0; i < 100 && seen.length === 0; i++) {
          await dev.mine(1);
          await new Promise((r) => setTimeout(r, 30));
        }
        assert.ok(seen.length > 0, "no block event");
        const from = node.height();
        await dev.mine(2);
        for (let i = 0; i < 200 && !seen.includes(from + 2); i++) await new Promise((r) => setTimeout(r, 20));
        assert.deepEqual(
          seen.filter((h) => h > from),
          [from + 1, from + 2],
        );
        assert.deepEqual(
          seen,
          [...seen].sort((a, b) => a - b),
        );
      } finally {
        off();
      }
    });

    test("a payment: mempool, then confirmed; UTXOs follow", async () => {
      const coin = coins[0]!;
      assert.equal(coin.coinbase, true);
      const pay = wallet.pay([coin], [{ script: other.script, valueSat: 1_000_000n }], 2);
      assert.equal(await chain.broadcast(pay.raw), pay.txid);

      const pending = await chain.getTxStatus(pay.txid);
      assert.deepEqual(pending, { confirmations: 0, inMempool: true });
      const got = await chain.getTx(pay.txid);
      assert.deepEqual(got?.raw, pay.raw);
      const out = await chain.getUtxo(pay.txid, 0);
      assert.equal(out?.valueSat, 1_000_000n);
      assert.equal(out?.confirmations, 0);
      assert.equal(out?.coinbase, false);
      assert.deepEqual(out?.script, other.script);
      assert.equal(await chain.getUtxo(coin.txid, coin.vout), undefined, "spent by a mempool transaction");
      const mine = await chain.findUtxos(wallet.script);
      assert.ok(!mine.some((u) => u.txid === coin.txid), "mempool-spent coin is not listed");
      assert.ok(!mine.some((u) => u.txid === pay.txid), "unconfirmed change is not listed");

      await dev.mine(1);
      const done = await chain.getTxStatus(pay.txid);
      assert.equal(done?.confirmations, 1);
      assert.equal(done?.blockHeight, node.height());
      assert.equal(done?.blockHash, node.tipHash());
      assert.equal(done?.inMempool, false);
      await dev.mine(1);
      assert.equal((await chain.getTxStatus(pay.txid))?.confirmations, 2);
      const change = (await chain.findUtxos(wallet.script)).find((u) => u.txid === pay.txid);
      assert.equal(change?.vout, 1);
      assert.equal(change?.confirmations, 2);
      assert.deepEqual(
        (await chain.findUtxos(other.script)).map((u) => [u.txid, u.vout, u.valueSat]),
        [[pay.txid, 0, 1_000_000n]],
      );
    });

    test("a coinbase output, unknown transactions and unknown outputs", async () => {
      const cb = coins[1]!;
      const u = await chain.getUtxo(cb.txid, cb.vout);
      assert.equal(u?.coinbase, true);
      assert.ok(
        (u?.confirmations ?? 0) >= 100,
        `a mined coinbase has at least 100 confirmations (${u?.confirmations})`,
      );
      const unknown = "ab".repeat(32);
      assert.equal(await chain.getTx(unknown), undefined);
      assert.equal(await chain.getTxStatus(unknown), undefined);
      assert.equal(await chain.getUtxo(unknown, 0), undefined);
      assert.equal(await chain.getUtxo(cb.txid, 7), undefined);
      assert.deepEqual(await chain.findUtxos(p2wpkhScript(new TestWallet("nobody").pk)), []);
    });

    test("refusals: already known, conflict, missing inputs", async () => {
      const coin = coins[1]!;
      const a = wallet.pay([coin], [{ script: other.script, valueSat: 50_000n }]);
      const b = wallet.pay([coin], [{ script: other.script, valueSat: 60_000n }]);
      await chain.broadcast(a.raw);
      await rejects(chain.broadcast(a.raw), "already-known");
      await rejects(chain.broadcast(b.raw), "conflict");
      const ghost = wallet.pay([utxoOf("cd".repeat(32), 0, 100_000n, wallet.script)], [], 1);
      await rejects(chain.broadcast(ghost.raw), "missing-inputs");
      await dev.mine(1);
      await rejects(chain.broadcast(a.raw), "already-known");
      await rejects(chain.broadcast(b.raw), "missing-inputs");
    });

    test("refusals: non-final (absolute and BIP68), then accepted once final", async () => {
      const parent = wallet.pay([coins[2]!], [{ script: wallet.script, valueSat: 100_000n }]);
      await chain.broadcast(parent.raw);
      // Relative lock of 2 blocks on an unconfirmed parent.
      const child = new Transaction();
      child.version = 2;
      child.addInput(Transaction.fromBuffer(parent.raw).getHash(), 0, 2);
      child.addOutput(other.script, 99_000n);
      const childRaw = signOne(child, wallet, 100_000n);
      await rejects(chain.broadcast(childRaw), "non-final");
      await dev.mine(1);
      await rejects(chain.broadcast(childRaw), "non-final");
      await dev.mine(1);
      assert.equal(await chain.broadcast(childRaw), Transaction.fromBuffer(childRaw).getId());

      // Absolute lock: final once the next block may include it (locktime ≤ tip).
      const change = (await chain.findUtxos(wallet.script)).find((u) => u.txid === parent.txid)!;
      const locked = new Transaction();
      locked.version = 2;
      locked.locktime = node.height() + 2;
      locked.addInput(Transaction.fromBuffer(parent.raw).getHash(), change.vout, 0xfffffffe);
      locked.addOutput(other.script, change.valueSat - 1000n);
      const lockedRaw = signOne(locked, wallet, change.valueSat);
      await rejects(chain.broadcast(lockedRaw), "non-final");
      await dev.mine(1);
      await rejects(chain.broadcast(lockedRaw), "non-final");
      await dev.mine(1);
      await chain.broadcast(lockedRaw);
      await dev.mine(1);
    });

    test("refusals: fee below the relay minimum, dust, bad signature", async () => {
      // A small young coin has no "priority" to ride on: bcoin demands the relay fee.
      const fresh = (await chain.findUtxos(other.script)).find((u) => u.valueSat === 99_000n)!;
      const noFee = other.pay([fresh], [{ script: wallet.script, valueSat: fresh.valueSat }], 1, {
        change: false,
      });
      await rejects(chain.broadcast(noFee.raw), "fee");
      const dust = other.pay([fresh], [{ script: wallet.script, valueSat: 200n }], 1);
      await rejects(chain.broadcast(dust.raw), "nonstandard");
      const good = other.pay([fresh], [{ script: wallet.script, valueSat: 5000n }], 1);
      const tx = Transaction.fromBuffer(good.raw);
      const sig = tx.ins[0]!.witness[0]!;
      sig[10] = sig[10]! ^ 1;
      tx.setWitness(0, [sig, tx.ins[0]!.witness[1]!]);
      await rejects(chain.broadcast(new Uint8Array(tx.toBuffer())), "invalid");
      await rejects(chain.broadcast(Uint8Array.from([1, 2, 3])), "invalid");
      assert.equal(await chain.broadcast(good.raw), good.txid);
    });

    test("fee estimate is a usable rate", async () => {
      const rate = await chain.estimateFeeRate(2);
      assert.ok(Number.isFinite(rate) && rate >= 1, `rate ${rate}`);
    });
  });
}

function signOne(tx: Transaction, w: TestWallet, value: bigint): Uint8Array {
  return signP2wpkhInputs(new Uint8Array(tx.toBuffer()), [
    { inputIndex: 0, prevout: { script: w.script, valueSat: value }, privateKey: w.sk },
  ]);
}
