// End to end in simulator mode: the SMT (SQLite) is published by the publisher through the real client to the
// local Mainstay service, which attests to the embedded regtest chain; proofs are fetched and verified against
// the chain as a wallet would.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { HDKey } from "@scure/bip32";
import { EmbeddedChain } from "../../chain/embedded.ts";
import { RegtestNode } from "../../chain/regtest-node.ts";
import { Db } from "../../common/sqlite.ts";
import { type AttestedSlotProof, type MainstayApi, MainstayClient } from "../../host/mainstay/client.ts";
import { LocalMainstay } from "../../host/mainstay/local-service.ts";
import { MainstayPublisher } from "../../host/mainstay/publisher.ts";
import { openSqliteSmt } from "../../host/smt-store.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import {
  slotProofFromProto,
  toDisplayHex,
  verifyMainstayProof,
  verifyStaychain,
} from "../../protocol/mainstay.ts";
import { verifySmtProof } from "../../protocol/smt/index.ts";
import { initialState, statechainIdBytes } from "../../protocol/statechain.ts";

let node: RegtestNode;
let chain: EmbeddedChain;
let ms: LocalMainstay;
const POSITION = 1;
const TOKEN = "slot-token";

before(async () => {
  node = await RegtestNode.start({
    dataDir: mkdtempSync(path.join(tmpdir(), "pub-")),
    rpcPort: 0,
    initialBlocks: 432,
  });
  chain = new EmbeddedChain(node);
  ms = await LocalMainstay.start({ chain, slots: [{ position: POSITION, token: TOKEN }] });
});

after(async () => {
  await ms?.close();
  await node?.close();
});

const dbFile = () => path.join(mkdtempSync(path.join(tmpdir(), "pub-db-")), "se.sqlite");
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const client = () => new MainstayClient({ url: ms.url, position: POSITION, token: TOKEN, retries: 0 });

function statechain() {
  const id = statechainIdBytes({ txid: randomBytes(32), vout: 0 });
  const c1 = secp256k1.getPublicKey(secp256k1.utils.randomSecretKey(), true);
  return { id, state: initialState(c1) };
}
const smtKey = (id: Uint8Array) => sha256(id);

/** Everything a wallet checks in a GetSmtProof answer, against the regtest chain. */
async function walletVerifies(
  resp: Awaited<ReturnType<MainstayPublisher["proofFor"]>>,
  id: Uint8Array,
  expectedLeaf: Uint8Array | null,
) {
  const key = smtKey(id);
  assert.equal(hex(resp.key), hex(key));
  verifySmtProof(resp.root, key, resp.leaf.length ? resp.leaf : null, resp.proof!);
  assert.equal(resp.leaf.length ? hex(resp.leaf) : null, expectedLeaf && hex(expectedLeaf));
  assert.ok(resp.mainstay, "the published root carries a Mainstay proof");
  const txid = toDisplayHex(slotProofFromProto(resp.mainstay).txid);
  const tx = await chain.getTx(txid);
  assert.ok(tx, `the attestation transaction ${txid} is on the chain`);
  verifyMainstayProof(resp.mainstay, resp.root, { attestationTx: tx.raw, params: ms.params });
  assert.equal(resp.mainstay.confirmations, tx.status.confirmations);
  assert.equal(resp.mainstay.blockHeight, tx.status.blockHeight);
  assert.equal(resp.mainstay.position, POSITION);
  return { txid, raw: tx.raw, slotRoot: new Uint8Array(resp.mainstay.merkleRoot) };
}

test("publish, attest, mine, fetch the proof, verify it against the regtest chain", async () => {
  const db = await Db.open(dbFile());
  const { tree } = await openSqliteSmt(db);
  const publisher = await MainstayPublisher.open({
    tree,
    client: client(),
    db,
    intervalMs: 1000,
    chain,
    keyParams: ms.params,
  });
  const coins = [statechain(), statechain(), statechain()];
  await tree.update(coins.map((c) => ({ key: smtKey(c.id), value: c.state })));

  // Before anything is published: only the current proof.
  const early = await publisher.proofFor(coins[0]!.id);
  assert.equal(early.root.length, 0);
  assert.equal(early.mainstay, undefined);
  verifySmtProof(early.currentRoot, smtKey(coins[0]!.id), early.currentLeaf, early.currentProof!);

  const r1 = tree.root;
  assert.equal(hex((await publisher.tick()).sent!), hex(r1));
  assert.equal((await publisher.tick()).sent, undefined, "an unchanged root is not sent again");
  const sentOnly = await publisher.proofFor(coins[0]!.id);
  assert.equal(hex(sentOnly.root), hex(r1));
  assert.equal(sentOnly.mainstay, undefined, "no Mainstay proof before the attestation");

  await ms.attest();
  assert.equal((await publisher.tick()).attested, 0, "attested but unconfirmed is not recorded");
  await chain.mine(1);
  assert.equal((await publisher.tick()).attested, 1);
  const first = await walletVerifies(await publisher.proofFor(coins[0]!.id), coins[0]!.id, coins[0]!.state);
  const latest = await publisher.latest();
  assert.equal(latest.attested?.status, "attested");
  assert.equal(toDisplayHex(latest.attested!.txid!), first.txid);

  // A transfer changes one state: the published proof still shows the old state, the current one the new.
  const moved = new Uint8Array(randomBytes(32));
  await tree.set(smtKey(coins[1]!.id), moved);
  const between = await publisher.proofFor(coins[1]!.id);
  await walletVerifies(between, coins[1]!.id, coins[1]!.state);
  verifySmtProof(between.currentRoot, smtKey(coins[1]!.id), moved, between.currentProof!);
  assert.equal(hex(between.currentLeaf), hex(moved));

  // The next round publishes it; once attested and mined the published proof moves on, along the staychain.
  await publisher.tick();
  await ms.attest();
  await chain.mine(2);
  assert.equal((await publisher.tick()).attested, 1);
  const second = await walletVerifies(await publisher.proofFor(coins[1]!.id), coins[1]!.id, moved);
  verifyStaychain(
    [
      { rawTx: first.raw, root: first.slotRoot },
      { rawTx: second.raw, root: second.slotRoot },
    ],
    ms.params,
  );
  // An unknown statechain gets a verifiable non-inclusion proof.
  const stranger = statechain();
  await walletVerifies(await publisher.proofFor(stranger.id), stranger.id, null);
  await db.close();
});

test("publications persist: a reopened publisher answers with the same attested root", async () => {
  const file = dbFile();
  let db = await Db.open(file);
  let { tree } = await openSqliteSmt(db);
  let publisher = await MainstayPublisher.open({ tree, client: client(), db, intervalMs: 1000, chain });
  const coin = statechain();
  await tree.set(smtKey(coin.id), coin.state);
  await publisher.tick();
  await ms.attest();
  await chain.mine(1);
  await publisher.tick();
  const before = await publisher.proofFor(coin.id);
  assert.ok(before.mainstay, "after the publisher's second tick the coin's proof includes a Mainstay proof");
  await db.close();

  db = await Db.open(file);
  ({ tree } = await openSqliteSmt(db));
  publisher = await MainstayPublisher.open({ tree, client: client(), db, intervalMs: 1000, chain });
  const again = await publisher.proofFor(coin.id);
  assert.equal(hex(again.root), hex(before.root));
  assert.equal(hex(again.mainstay!.txid), hex(before.mainstay!.txid));
  await walletVerifies(again, coin.id, coin.state);
  await db.close();
});

test("while Mainstay is down the publisher backs off, blocks nothing, and publishes once it is back", async () => {
  const file = dbFile();
  const db = await Db.open(file);
  const { tree } = await openSqliteSmt(db);
  const coin = statechain();
  await tree.set(smtKey(coin.id), coin.state);

  // A service that accepts connections and never answers.
  const silent = createServer(() => undefined);
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
  const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const down = new MainstayClient({ url, position: POSITION, token: TOKEN, retries: 0, timeoutMs: 300 });
  const publisher = await MainstayPublisher.open({
    tree,
    client: down,
    db,
    intervalMs: 100,
    maxBackoffMs: 5000,
  });
  const r1 = await publisher.tick();
  assert.match(r1.error?.message ?? "", /no answer within 300 ms/);
  assert.equal(r1.sent, undefined);
  assert.equal((await publisher.latest()).sent, undefined, "nothing recorded as sent");
  assert.ok(publisher.nextDelayMs >= 50, "backing off");

  // While a round hangs on Mainstay, proofs are still served.
  const hanging = await MainstayPublisher.open({
    tree,
    client: new MainstayClient({ url, position: POSITION, token: TOKEN, retries: 0, timeoutMs: 60_000 }),
    db,
    intervalMs: 100,
  });
  let settled = false;
  const pending = hanging.tick().then((r) => {
    settled = true;
    return r;
  });
  const resp = await hanging.proofFor(coin.id);
  verifySmtProof(resp.currentRoot, smtKey(coin.id), coin.state, resp.currentProof!);
  assert.equal(settled, false, "proofFor answered while the Mainstay round was still waiting");
  silent.closeAllConnections();
  assert.equal((await pending).error?.name, "MainstayError");
  await new Promise<void>((r) => silent.close(() => r()));

  // Back: a publisher running in the background (same database) publishes by itself.
  const up = await MainstayPublisher.open({ tree, client: client(), db, intervalMs: 20 });
  up.start();
  for (let i = 0; i < 100 && !(await up.latest()).sent; i++) await new Promise((r) => setTimeout(r, 20));
  await up.stop();
  assert.equal(hex((await up.latest()).sent!.root), hex(tree.root));
  await db.close();
});

test("a Mainstay answer that does not check out is not recorded", async () => {
  const db = await Db.open(dbFile());
  const { tree } = await openSqliteSmt(db);
  const coin = statechain();
  await tree.set(smtKey(coin.id), coin.state);
  const real = client();
  // The local service's answers, with the wrong key for its attestation transactions.
  const stranger = HDKey.fromMasterSeed(randomBytes(32));
  const publisher = await MainstayPublisher.open({
    tree,
    client: real,
    db,
    intervalMs: 1000,
    chain,
    keyParams: { basePubkey: stranger.publicKey!, chainCode: stranger.chainCode! },
  });
  await publisher.tick();
  await ms.attest();
  await chain.mine(1);
  const r = await publisher.tick();
  assert.ok(r.error instanceof ProtocolError && r.error.code === "MAINSTAY_COMMITMENT", `${r.error}`);
  assert.equal((await publisher.latest()).attested, undefined);

  // A service answering with a proof of some other commitment.
  const liar: MainstayApi = {
    position: POSITION,
    send: async () => undefined,
    commitmentProof: async (): Promise<AttestedSlotProof> => {
      const other = await real.commitmentProof(tree.root);
      return { ...other!, proof: { ...other!.proof, commitment: new Uint8Array(randomBytes(32)) } };
    },
  };
  const fooled = await MainstayPublisher.open({ tree, client: liar, db, intervalMs: 1000 });
  const r2 = await fooled.tick();
  assert.match(r2.error?.message ?? "", /another commitment/);
  assert.equal((await fooled.latest()).attested, undefined);
  await db.close();
});
