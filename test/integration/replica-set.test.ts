// The enclave replica set with real processes (DESIGN.md 4.1, issue #23): `se start` with three enclave members.
// A member SIGKILLed — a follower or the leader — loses its shares, yet no coin is forced on chain: the others
// hold them, the host restarts the process, and the leader admits it as a new member, which receives the
// current state. Two members stopped for less than the lease stop co-signing without losing anything; they
// resume when the members come back. A member cut off by the transport for longer than the lease wipes itself.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { confirmDeposit, deposit, type OwnedCoin, send } from "../../client/owner.ts";
import { fetchIncoming, receive } from "../../client/receive.ts";
import { connectEnclave } from "../../host/enclave-process.ts";
import { StatechainStatus } from "../../proto/gen/common.ts";
import type { ReplicaStatus } from "../../proto/gen/enclave.ts";
import { unary } from "../../proto/unary.ts";
import { fundedWallet, type Harness, newIdentity, ownerHarness } from "../helpers/owners.ts";
import { isAlive, memberPid, type SeProcess, startSeProcess } from "../helpers/se-process.ts";

const REPLICAS = 3;
let se: SeProcess;
let h: Harness;
let wallet: Awaited<ReturnType<typeof fundedWallet>>;
let setId: string | undefined;
let partitionFile: string;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const socketOf = (slot: number) => path.join(se.dataDir, `enclave.sock.${slot}`);

/** Each member's status as it answers on its own socket (undefined: not answering). */
async function members(): Promise<Array<ReplicaStatus | undefined>> {
  return Promise.all(
    Array.from({ length: REPLICAS }, async (_, slot) => {
      const c = connectEnclave(socketOf(slot));
      try {
        return (await unary(c, c.getStatus, {}, { deadlineMs: 1000 })).replica;
      } catch {
        return undefined;
      } finally {
        c.close();
      }
    }),
  );
}

const pidOf = (slot: number) => memberPid(se.dataDir, slot);

async function slotWith(role: string): Promise<number> {
  const all = await members();
  const slot = all.findIndex((m) => m?.role === role);
  assert.ok(slot >= 0, `no member is ${role}: ${JSON.stringify(all.map((m) => m?.role))}`);
  return slot;
}

/** Waits until every slot answers as a member of one set with `REPLICAS` members and one leader. */
async function settled(timeoutMs = 30_000): Promise<ReplicaStatus[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all = await members();
    const ok =
      all.every(
        (m) => m?.setId && m.setId === all[0]?.setId && (m.role === "leader" || m.role === "follower"),
      ) &&
      all.filter((m) => m?.role === "leader").length === 1 &&
      all.find((m) => m?.role === "leader")!.members.length === REPLICAS;
    if (ok) {
      // The set never changes: a new set id would mean every member was lost, and every coin exit-only.
      setId ??= all[0]!.setId;
      assert.equal(all[0]!.setId, setId, "the replica set is the one founded at start");
      return all as ReplicaStatus[];
    }
    if (Date.now() > deadline) {
      const seen = all.map(
        (m) => m && { id: m.memberId.slice(0, 8), role: m.role, set: m.setId.slice(0, 8) },
      );
      throw new Error(`the set did not settle: ${JSON.stringify(seen)}`);
    }
    await sleep(100);
  }
}

async function newCoin(): Promise<OwnedCoin> {
  const coin = await deposit(h.ctx, {
    amountSat: 1_000_000n,
    utxos: wallet.utxos.splice(0, 1),
    changeScript: wallet.script,
  });
  await confirmDeposit(h.ctx, coin, { onWait: async () => void (await h.chain.mine(1)) });
  return coin;
}

async function transfer(coin: OwnedCoin): Promise<OwnedCoin> {
  const to = newIdentity();
  await send(h.ctx, coin, to.address);
  const [incoming] = await fetchIncoming(h.ctx, to);
  assert.ok(incoming, "the receiver finds the transfer");
  return receive(h.ctx, to, incoming);
}

async function statusOf(coin: OwnedCoin): Promise<StatechainStatus> {
  return (await h.ctx.se.call("getStatechain", { statechainId: coin.statechainId })).status;
}

before(async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), "se-replicas-"));
  partitionFile = path.join(dataDir, "partition");
  se = await startSeProcess({
    dataDir,
    env: {
      SE_ENCLAVE_REPLICAS: String(REPLICAS),
      SE_MAINSTAY_ENABLED: "false",
      SE_TEST_PARTITION_FILE: partitionFile,
    },
  });
  h = await ownerHarness(se);
  // One mature coinbase per coin the tests deposit.
  wallet = await fundedWallet(h.chain);
  await h.chain.mine(8, wallet.script);
  await h.chain.mine(100);
  wallet.utxos = (await h.chain.findUtxos(wallet.script)).map((u) => ({
    ...u,
    privateKey: wallet.privateKey,
  }));
});
after(async () => {
  h?.close();
  await se?.stop();
  // REPLICA_LOG=<file> keeps the SE's log (the members' replica events among it) for a failing run.
  if (process.env.REPLICA_LOG && se)
    writeFileSync(process.env.REPLICA_LOG, se.output().stderr + se.output().stdout);
});

test("three members form one set with one leader; a coin deposits and transfers through it", async () => {
  const all = await settled();
  assert.equal(new Set(all.map((m) => m.memberId)).size, REPLICAS, "each member has its own id");
  const coin = await transfer(await newCoin());
  assert.equal(coin.ownerIndex, 2, "the transfer went through the set");
});

test("a follower SIGKILLed: transfers go on, it is restarted and admitted as a new member with the coins", async () => {
  await settled();
  const coin = await newCoin();
  const slot = await slotWith("follower");
  const before = (await members())[slot]!.memberId;
  process.kill(pidOf(slot), "SIGKILL");
  const moved = await transfer(coin);
  assert.equal(moved.ownerIndex, 2, "the transfer completes with one member down");
  const all = await settled();
  assert.notEqual(all[slot]!.memberId, before, "the restarted member is a new member");
  assert.equal(
    await statusOf(moved),
    StatechainStatus.STATECHAIN_STATUS_ACTIVE,
    "no coin is forced on chain",
  );
  const again = await transfer(moved);
  assert.equal(again.ownerIndex, 3, "the coin transfers again");
});

test("the leader SIGKILLed: a new leader answers the next transfer within 2 s, and no coin is forced on chain", async () => {
  await settled();
  const coin = await newCoin();
  const slot = await slotWith("leader");
  process.kill(pidOf(slot), "SIGKILL");
  const t0 = Date.now();
  const moved = await transfer(coin);
  const failoverMs = Date.now() - t0;
  console.log(JSON.stringify({ test: "replica.failover", transfer_after_leader_kill_ms: failoverMs }));
  assert.equal(moved.ownerIndex, 2, "the transfer completes under the new leader");
  assert.equal(
    await statusOf(moved),
    StatechainStatus.STATECHAIN_STATUS_ACTIVE,
    "no coin is forced on chain",
  );
  await settled();
});

test("every member killed in turn, one at a time: the coins live on in the members that joined since", async () => {
  const coin = await newCoin();
  let held = coin;
  for (let slot = 0; slot < REPLICAS; slot++) {
    await settled();
    process.kill(pidOf(slot), "SIGKILL");
    await sleep(200);
    await settled();
  }
  held = await transfer(held);
  assert.equal(held.ownerIndex, 2, "after every original member is gone the coin still transfers");
  assert.equal(await statusOf(held), StatechainStatus.STATECHAIN_STATUS_ACTIVE, "no coin is forced on chain");
});

test("two members stopped for less than the lease: co-signing waits, nothing is lost, it resumes when they return", async () => {
  await settled();
  const coin = await newCoin();
  const followers = (await members()).flatMap((m, slot) => (m?.role === "follower" ? [slot] : []));
  assert.equal(followers.length, 2, "two followers");
  const pids = followers.map(pidOf);
  for (const pid of pids) process.kill(pid, "SIGSTOP");
  const pending = transfer(coin);
  await sleep(1000);
  for (const pid of pids) process.kill(pid, "SIGCONT");
  const moved = await pending;
  assert.equal(moved.ownerIndex, 2, "the transfer completes once a majority is back");
  assert.equal(
    await statusOf(moved),
    StatechainStatus.STATECHAIN_STATUS_ACTIVE,
    "no coin is forced on chain",
  );
});

test("the leader cut off by the transport past its lease wipes itself; the others go on with every coin", async () => {
  await settled();
  const coin = await newCoin();
  const slot = await slotWith("leader");
  const pid = pidOf(slot);
  writeFileSync(partitionFile, String(slot));
  // It hears no majority: within its lease (1.5 s) it wipes and exits (code 3); the host restarts the slot.
  const deadline = Date.now() + 10_000;
  while (isAlive(pid)) {
    assert.ok(Date.now() < deadline, "the cut-off leader must wipe and exit within its lease");
    await sleep(50);
  }
  rmSync(partitionFile, { force: true });
  const moved = await transfer(coin);
  assert.equal(moved.ownerIndex, 2, "the others, a majority, go on");
  assert.equal(
    await statusOf(moved),
    StatechainStatus.STATECHAIN_STATUS_ACTIVE,
    "no coin is forced on chain",
  );
  await settled();
});
