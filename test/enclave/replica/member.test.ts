// Three replica members in one process (enclave/replica/member.ts): Raft over the attested channels, with each
// member's enclave state as its state machine, and an in-memory "host" carrying the envelopes (which can cut a
// member off). A change commits on every member; an erasure answers only once every member applied it (the
// replaced share zeroed everywhere); a new member receives the current coins; the leader cut off, another takes
// over with every committed coin, and the old one wipes within its lease.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import type { Coin } from "../../../enclave/coins.ts";
import { type EnclaveCore, idHexOf } from "../../../enclave/core.ts";
import type { Timing } from "../../../enclave/replica/member.ts";
import { fullCoin, view } from "./coins.ts";
import { inProcessSet, type Running } from "./in-process.ts";

const TIMING: Timing = {
  heartbeatMs: 20,
  electionTimeoutMs: 100,
  leaseMs: 800,
  removeUnreachableAfterMs: 400,
  maxDrift: 0.01,
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const set = inProcessSet({ timing: TIMING, tickMs: 10 });
const start = set.start;
const cut = set.cut;
after(() => set.stop());

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(10);
  }
}

function hold(core: EnclaveCore, c: Coin): Coin {
  core.coins.add(c);
  if (c.outpoint) core.coins.bind(c, idHexOf(c.outpoint));
  return c;
}

const coinsOf = (core: EnclaveCore) =>
  core.coins
    .all()
    .map(view)
    .sort((a, b) => a.depositId.compare(b.depositId));

let a: Running;
let b: Running;
let c: Running;

test("a founded set admits two members over attested channels; a committed change is on every member", async () => {
  a = start();
  b = start();
  c = start();
  await a.member.found();
  await until(() => a.member.leading(), "the founder to lead");
  await a.member.admit(b.id);
  await a.member.admit(c.id);
  assert.equal(a.member.status().members.length, 3, "the leader's configuration has three members");
  const coin = hold(a.core, fullCoin());
  await a.member.commit(a.core, { coin, erasure: false });
  await until(() => b.core.coins.size === 1 && c.core.coins.size === 1, "the followers to apply the change");
  assert.deepEqual(coinsOf(b.core), coinsOf(a.core), "follower b holds the leader's coin");
  assert.deepEqual(coinsOf(c.core), coinsOf(a.core), "follower c holds the leader's coin");
  assert.equal(b.member.status().setId, a.member.status().setId, "the joiner learnt the set id");
  assert.deepEqual(b.core.d.instanceId, a.core.d.instanceId, "a joiner's identity statements name the set");
  const [ka, kb] = [await a.core.d.instance, await b.core.d.instance];
  assert.deepEqual(kb.publicKey, ka.publicKey, "a joiner signs partial signatures with the set's key");
  assert.deepEqual(kb.ringPedersen, ka.ringPedersen, "a joiner holds the set's ring-Pedersen parameters");
});

test("an erasure answers only once every member applied it: the replaced share is zero on all three", async () => {
  const held = [a, b, c].map((m) => m.core.coins.all()[0]!);
  const shares = held.map((x) => x.key!.share);
  const coin = a.core.coins.all()[0]!;
  // The leader's key update: a new share replaces the old one in its own state, then goes through the log.
  const s1 = coin.key!.share;
  coin.key = { ...coin.key!, share: Buffer.alloc(32, 7) };
  s1.fill(0);
  await a.member.commit(a.core, { coin, erasure: true });
  for (const [i, s] of shares.entries()) {
    assert.ok(
      s.every((x) => x === 0),
      `member ${i}'s copy of the replaced share must be zero when the erasure answers`,
    );
  }
  for (const m of [b, c]) {
    assert.deepEqual(
      Buffer.from(m.core.coins.all()[0]!.key!.share),
      Buffer.alloc(32, 7),
      "the new share is held",
    );
  }
});

test("a follower is not the leader: it serves no step, and `commit` there is refused", async () => {
  assert.equal(b.member.leading(), false, "a follower does not lead");
  await assert.rejects(b.member.commit(b.core, { coin: b.core.coins.all()[0]!, erasure: false }), {
    code: "NOT_LEADER",
  } as object);
});

test("the leader cut off: another member leads with every committed coin, and the old leader wipes within its lease", async () => {
  const before = coinsOf(a.core);
  cut.add(a.id);
  const t0 = Date.now();
  await until(() => b.member.leading() || c.member.leading(), "a new leader", 5000);
  const leader = b.member.leading() ? b : c;
  assert.deepEqual(coinsOf(leader.core), before, "the new leader holds every committed coin");
  await until(() => a.wiped !== undefined, "the cut-off leader to wipe", TIMING.leaseMs * 3);
  const wipedAfter = Date.now() - t0;
  assert.ok(
    wipedAfter <= TIMING.leaseMs * 1.02 + 200,
    `wiped ${wipedAfter} ms after the cut, lease ${TIMING.leaseMs} ms`,
  );
  assert.equal(a.core.coins.size, 0, "the wiped member holds no coin");
  assert.ok(before.length === 1 && a.member.status().role === "wiped", "and says so");
  // The new leader removes the lost member, and a new one joins with the coins.
  await until(() => leader.member.status().members.length === 2, "the lost member's removal", 5000);
  const d = start();
  await leader.member.admit(d.id);
  assert.deepEqual(coinsOf(d.core), before, "a new member receives the current coins");
  const coin = leader.core.coins.all()[0]!;
  coin.ownerIndex += 1;
  await leader.member.commit(leader.core, { coin, erasure: true });
  for (const m of [b, c, d])
    assert.equal(m.core.coins.all()[0]!.ownerIndex, coin.ownerIndex, "applied everywhere");
});
