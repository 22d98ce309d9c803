// The embedded regtest node on disk (simulator mode): a restart resumes the chain with its address index (bcoin's
// bdb 0.2 on leveldown 6, through the range-bound shim) and its mempool, also after a crash (no close).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import bcoin from "bcoin";
import { EmbeddedChain } from "../../chain/embedded.ts";
import { RegtestNode } from "../../chain/regtest-node.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");

/** Spends the first output `script` holds, from the key that owns it, to a throwaway key. */
function spend(
  u: { txid: string; vout: number; valueSat: bigint; script: Uint8Array },
  ring: unknown,
): Uint8Array {
  const mtx = new bcoin.MTX();
  mtx.addCoin(
    bcoin.Coin.fromOptions({
      hash: Buffer.from(u.txid, "hex").reverse().toString("hex"),
      index: u.vout,
      value: Number(u.valueSat),
      script: bcoin.Script.fromRaw(Buffer.from(u.script)),
      height: 1,
    }),
  );
  mtx.addOutput(bcoin.KeyRing.generate().getAddress(), Number(u.valueSat) - 10_000);
  mtx.sign(ring);
  return new Uint8Array(mtx.toTX().toRaw());
}

test("a persistent node resumes its chain, address index and mempool; a new dir starts a new chain", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "regtest-persist-"));
  try {
    let node = await RegtestNode.start({ dataDir: dir, persistent: true, rpcPort: 0, initialBlocks: 110 });
    assert.equal(node.resumedHeight, undefined, "a new chain");
    const ring = bcoin.KeyRing.generate();
    const script = new Uint8Array(bcoin.Script.fromAddress(ring.getAddress()).toRaw());
    await node.mine(2, ring.getAddress().toString("regtest"));
    await node.mine(100);
    let chain = new EmbeddedChain(node);
    const utxos = await chain.findUtxos(script);
    assert.equal(utxos.length, 2);
    const sent = await chain.broadcast(spend(utxos[0]!, ring));
    const height = node.height();
    await node.close();

    node = await RegtestNode.start({ dataDir: dir, persistent: true, rpcPort: 0, initialBlocks: 110 });
    chain = new EmbeddedChain(node);
    assert.equal(node.resumedHeight, height);
    assert.equal(node.height(), height, "no initial blocks mined again");
    assert.equal((await chain.getTxStatus(sent))?.inMempool, true, "the mempool came back");
    assert.equal(
      (await chain.findUtxos(script)).length,
      1,
      "the address index came back (the spent one is gone)",
    );
    await node.mine(1);
    assert.equal((await chain.getTxStatus(sent))?.confirmations, 1);
    await node.close();

    // A transaction sent just before a crash (the process exits without closing the node) survives it.
    const crash = `
      import bcoin from "bcoin";
      import { EmbeddedChain } from "./chain/embedded.ts";
      import { RegtestNode } from "./chain/regtest-node.ts";
      const node = await RegtestNode.start({ dataDir: ${JSON.stringify(dir)}, persistent: true, rpcPort: 0, initialBlocks: 0 });
      const chain = new EmbeddedChain(node);
      const ring = bcoin.KeyRing.fromRaw(Buffer.from(${JSON.stringify(ring.toRaw().toString("hex"))}, "hex"));
      const [u] = await chain.findUtxos(new Uint8Array(Buffer.from(${JSON.stringify(Buffer.from(script).toString("hex"))}, "hex")));
      const mtx = new bcoin.MTX();
      mtx.addCoin(bcoin.Coin.fromOptions({ hash: Buffer.from(u.txid, "hex").reverse().toString("hex"), index: u.vout,
        value: Number(u.valueSat), script: bcoin.Script.fromRaw(Buffer.from(u.script)), height: 1 }));
      mtx.addOutput(bcoin.KeyRing.generate().getAddress(), Number(u.valueSat) - 10000);
      mtx.sign(ring);
      process.stdout.write(await chain.broadcast(new Uint8Array(mtx.toTX().toRaw())));
      process.exit(0);
    `;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", crash], {
      cwd: ROOT,
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    node = await RegtestNode.start({ dataDir: dir, persistent: true, rpcPort: 0, initialBlocks: 0 });
    chain = new EmbeddedChain(node);
    assert.equal(
      (await chain.getTxStatus(r.stdout.trim()))?.inMempool,
      true,
      "sent before the crash, still there",
    );
    await node.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
