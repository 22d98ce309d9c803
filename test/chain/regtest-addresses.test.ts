// The embedded node's bitcoind-compatible RPC takes bitcoind's regtest addresses ("bcrt1…", the wallet's) as
// well as bcoin's ("rb1…").
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import * as bitcoin from "bitcoinjs-lib";
import { bcoinRegtestAddress, RegtestNode } from "../../chain/regtest-node.ts";

let node: RegtestNode;
before(async () => {
  node = await RegtestNode.start({ dataDir: "", rpcPort: 0, initialBlocks: 0 });
});
after(async () => {
  await node?.close();
});

async function rpc<T>(method: string, params: unknown[]): Promise<T> {
  const res = await fetch(node.rpc.url, {
    method: "POST",
    headers: {
      authorization: `Basic ${Buffer.from(`${node.rpc.user}:${node.rpc.password}`).toString("base64")}`,
      "content-type": "application/json",
    },
    body: JSON.stringify({ jsonrpc: "1.0", id: 1, method, params }),
  });
  const body = (await res.json()) as { result: T; error: { message: string } | null };
  if (body.error) throw new Error(body.error.message);
  return body.result;
}

const regtest = bitcoin.networks.regtest;
const p2wpkh = bitcoin.payments.p2wpkh({ hash: Buffer.alloc(20, 7), network: regtest }).address!;
const p2tr = bitcoin.address.toBech32(Buffer.alloc(32, 9), 1, "bcrt");
const p2pkh = bitcoin.payments.p2pkh({ hash: Buffer.alloc(20, 7), network: regtest }).address!;
const p2sh = bitcoin.payments.p2sh({ hash: Buffer.alloc(20, 7), network: regtest }).address!;

test("bitcoind's regtest addresses in bcoin's spelling, the same scripts", () => {
  assert.match(p2wpkh, /^bcrt1q/);
  const rb = bcoinRegtestAddress(p2wpkh);
  assert.match(rb, /^rb1q/);
  // The same program (segwit) or hash (base58) under bcoin's prefixes.
  for (const a of [p2wpkh, p2tr]) {
    const [ours, theirs] = [a, bcoinRegtestAddress(a)].map((x) => bitcoin.address.fromBech32(x));
    assert.equal(theirs!.prefix, "rb");
    assert.equal(theirs!.version, ours!.version);
    assert.deepEqual(theirs!.data, ours!.data);
  }
  for (const [a, version] of [
    [p2pkh, 0x3c],
    [p2sh, 0x26],
  ] as const) {
    const [ours, theirs] = [a, bcoinRegtestAddress(a)].map((x) => bitcoin.address.fromBase58Check(x));
    assert.equal(theirs!.version, version);
    assert.deepEqual(theirs!.hash, ours!.hash);
  }
  assert.match(bcoinRegtestAddress(p2tr), /^rb1p/);
  for (const other of ["rb1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", "bcrt1qnotanaddress", "00ff", "n"])
    assert.equal(bcoinRegtestAddress(other), other);
});

test("generatetoaddress and validateaddress take bcrt1… addresses (and still rb1…)", async () => {
  const start = await rpc<number>("getblockcount", []);
  const hashes = await rpc<string[]>("generatetoaddress", [1, p2wpkh]);
  assert.equal(hashes.length, 1);
  await rpc<string[]>("generatetoaddress", [1, bcoinRegtestAddress(p2wpkh)]);
  assert.equal(await rpc<number>("getblockcount", []), start + 2);
  const block = await rpc<{ tx: string[] }>("getblock", [hashes[0], 1]);
  const coinbase = await rpc<{ vout: Array<{ scriptPubKey: { hex: string } }> }>("getrawtransaction", [
    block.tx[0],
    1,
  ]);
  const script = Buffer.from(bitcoin.address.toOutputScript(p2wpkh, regtest)).toString("hex");
  assert.ok(
    coinbase.vout.some((o) => o.scriptPubKey.hex === script),
    "the coinbase pays the bcrt1 address",
  );
  // (bcoin 1.0.2 predates bech32m: it knows no version 1 address in either spelling.)
  for (const a of [p2wpkh, p2pkh, p2sh])
    assert.equal((await rpc<{ isvalid: boolean }>("validateaddress", [a])).isvalid, true, a);
});
