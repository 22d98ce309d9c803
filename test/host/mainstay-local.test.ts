// The local Mainstay-compatible service end to end on the embedded regtest chain, through the real client:
// commit, attest, mine, fetch the proof, verify it and the staychain against the chain.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { EmbeddedChain } from "../../chain/embedded.ts";
import { RegtestNode } from "../../chain/regtest-node.ts";
import { MainstayClient, MainstayError } from "../../host/mainstay/client.ts";
import { LocalMainstay, loadOrCreateMainstayKey } from "../../host/mainstay/local-service.ts";
import {
  fromDisplayHex,
  toDisplayHex,
  verifyAttestationTx,
  verifySlotProof,
  verifyStaychain,
} from "../../protocol/mainstay.ts";

let node: RegtestNode;
let chain: EmbeddedChain;
let ms: LocalMainstay;

before(async () => {
  node = await RegtestNode.start({
    dataDir: mkdtempSync(path.join(tmpdir(), "ms-")),
    rpcPort: 0,
    initialBlocks: 432,
  });
  chain = new EmbeddedChain(node);
  ms = await LocalMainstay.start({
    chain,
    slots: [
      { position: 0, token: "token-0" },
      { position: 2, token: "token-2" },
    ],
  });
});

after(async () => {
  await ms?.close();
  await node?.close();
});

const root = () => new Uint8Array(randomBytes(32));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const client = (position: number, token: string) =>
  new MainstayClient({ url: ms.url, position, token, retries: 0, timeoutMs: 5_000 });

async function rawTx(txid: Uint8Array): Promise<Uint8Array> {
  const tx = await chain.getTx(toDisplayHex(txid));
  assert.ok(tx, `transaction ${toDisplayHex(txid)} is on the chain`);
  return tx.raw;
}

test("commit, attest, mine: the proof verifies against the regtest chain, and the staychain links", async () => {
  const ours = client(2, "token-2");
  const neighbour = client(0, "token-0");
  const r1 = root();
  assert.equal(await ours.commitmentProof(r1), undefined, "nothing attested yet");
  assert.equal(await ours.latestProof(), undefined);
  await ours.send(r1);
  await neighbour.send(root());
  const t1 = await ms.attest();
  assert.ok(t1, "the first attestation transaction is made");
  assert.equal(ms.staychainBase, t1, "the first attestation is the staychain base");
  const pending = await ours.commitmentProof(r1);
  assert.equal(pending?.confirmed, false, "attested but not yet mined");
  await chain.mine(1);

  const p1 = await ours.commitmentProof(r1);
  assert.ok(p1?.confirmed, "our first root has a confirmed proof");
  assert.equal(hex(p1.proof.commitment), hex(r1), "the commitment's internal bytes are our root");
  assert.equal(p1.proof.position, 2);
  verifySlotProof(p1.proof, { position: 2 });
  assert.equal(toDisplayHex(p1.txid), t1);
  const raw1 = await rawTx(p1.txid);
  verifyAttestationTx(raw1, p1.proof.merkleRoot, ms.params);
  const status = await chain.getTxStatus(t1);
  assert.equal(status?.confirmations, 1);

  // Nothing changed: no new attestation.
  assert.equal(await ms.attest(), undefined);

  const r2 = root();
  await ours.send(r2);
  const t2 = await ms.attest();
  assert.ok(t2, "the second attestation transaction is made");
  // While t2 is unconfirmed, a new commitment waits: the staychain extends from confirmed tips only.
  await neighbour.send(root());
  assert.equal(await ms.attest(), undefined);
  await chain.mine(1);
  const latest = await ours.latestProof();
  assert.ok(latest, "our slot has a latest proof");
  assert.equal(toDisplayHex(latest.txid), t2);
  assert.equal(hex(latest.proof.commitment), hex(r2));
  verifySlotProof(latest.proof, { position: 2 });
  const raw2 = await rawTx(latest.txid);
  verifyStaychain(
    [
      { rawTx: raw1, root: p1.proof.merkleRoot },
      { rawTx: raw2, root: latest.proof.merkleRoot },
    ],
    ms.params,
    { baseTxid: fromDisplayHex(ms.staychainBase, "base") },
  );
  // The first root stays provable by its commitment (the earliest attestation holding it).
  assert.equal(toDisplayHex((await ours.commitmentProof(r1))!.txid), t1);
  // The waiting commitment goes in once t2 has confirmed.
  const t3 = await ms.attest();
  assert.ok(t3, "the third attestation transaction is made once the second has confirmed");
  assert.notEqual(t3, t2);
});

test("the service refuses a wrong token or an unknown position, in the API's own words", async () => {
  await assert.rejects(
    client(2, "wrong").send(root()),
    (e) => e instanceof MainstayError && e.code === "rejected" && /your token is wrong/.test(e.message),
  );
  await assert.rejects(
    client(5, "token-2").send(root()),
    (e) => e instanceof MainstayError && e.code === "rejected" && /position is unknown/.test(e.message),
  );
  const res = await fetch(`${ms.url}/api/v1/commitment/send`, { method: "POST", body: "{not json" });
  assert.equal(res.status, 200);
  type Reply = { response?: unknown; error?: string; timestamp: number; allowance: { cost: number } };
  assert.match(((await res.json()) as Reply).error!, /X-MAINSTAY-PAYLOAD/);
  const index = (await (await fetch(`${ms.url}/api/v1`)).json()) as Reply;
  assert.equal(index.response, "Mainstay-API-v1");
  assert.equal(typeof index.timestamp, "number");
  assert.equal(typeof index.allowance.cost, "number");
  const bad = (await (await fetch(`${ms.url}/api/v1/commitment/commitment?commitment=abc`)).json()) as Reply;
  assert.match(bad.error!, /must contain 64 characters/);
});

test("with a state file, a restarted service resumes its staychain on the same chain and refuses another chain's", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "ms-state-"));
  const stateFile = path.join(dir, "state.json");
  const key = loadOrCreateMainstayKey(path.join(dir, "key.json"));
  assert.deepEqual(loadOrCreateMainstayKey(path.join(dir, "key.json")), key, "the key file is read back");
  const open = () => LocalMainstay.start({ chain, slots: [{ position: 1, token: "t" }], key, stateFile });
  const first = await open();
  const c = new MainstayClient({ url: first.url, position: 1, token: "t", retries: 0, timeoutMs: 5_000 });
  const r = root();
  await c.send(r);
  const t1 = await first.attest();
  assert.ok(t1, "the local service attests the root");
  await first.close();
  // Restarted before the attestation was mined: it is still in this node's mempool, then mined.
  const second = await open();
  assert.equal(second.staychainBase, t1);
  assert.equal(second.attestationCount, 1);
  await chain.mine(1);
  const c2 = new MainstayClient({ url: second.url, position: 1, token: "t", retries: 0, timeoutMs: 5_000 });
  const p = await c2.commitmentProof(r);
  assert.equal(p && toDisplayHex(p.txid), t1);
  assert.equal(p?.confirmed, true);
  // The staychain goes on from the resumed tip.
  await c2.send(root());
  const t2 = await second.attest();
  assert.ok(t2, "the resumed service attests the next root");
  await chain.mine(1);
  verifyAttestationTx(
    await rawTx(fromDisplayHex(t2, "t2")),
    (await c2.latestProof())!.proof.merkleRoot,
    second.params,
  );
  await second.close();

  // The same state on a chain that never saw its attestations: refused, naming --fresh.
  const other = await RegtestNode.start({ dataDir: "", rpcPort: 0, initialBlocks: 0 });
  try {
    await assert.rejects(
      LocalMainstay.start({
        chain: new EmbeddedChain(other),
        slots: [{ position: 1, token: "t" }],
        key,
        stateFile,
      }),
      /names attestation .* this chain does not have .*--fresh/,
    );
  } finally {
    await other.close();
  }
});
