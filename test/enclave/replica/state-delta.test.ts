// State deltas and snapshots (enclave/replica/state-delta.ts): a member that applies a leader's snapshot holds
// the leader's coins and global state; a delta that replaces a coin erases the replaced coin's secrets (a key
// update applied on a follower is the erasure of s1 there); a close removes the coin and keeps its answer; a bad
// record changes nothing.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import type { Coin } from "../../../enclave/coins.ts";
import { EnclaveCore, type EnclaveDeps, idHexOf } from "../../../enclave/core.ts";
import { ActionLog } from "../../../enclave/log.ts";
import { encodeCoin } from "../../../enclave/replica/coin-record.ts";
import {
  applyDelta,
  decodeDelta,
  deltaOf,
  encodeDelta,
  snapshotOf,
} from "../../../enclave/replica/state-delta.ts";
import { ProtocolError } from "../../../protocol/errors.ts";
import { fullCoin, view } from "./coins.ts";

function core(): EnclaveCore {
  return new EnclaveCore({ log: new ActionLog(), now: Date.now } as unknown as EnclaveDeps);
}

function hold(e: EnclaveCore, c: Coin): Coin {
  e.coins.add(c);
  if (c.outpoint) e.coins.bind(c, idHexOf(c.outpoint));
  return c;
}

function leaderWithCoins(n: number): EnclaveCore {
  const e = core();
  for (let i = 0; i < n; i++) hold(e, fullCoin());
  e.maxTip = 812;
  e.maxTipAt = 1_765_000_000_000;
  e.lastReceipt = randomBytes(32);
  e.d.log.append({ type: "x", subject: "y", at: 1 });
  return e;
}

const coinsOf = (e: EnclaveCore) =>
  e.coins
    .all()
    .map(view)
    .sort((a, b) => a.depositId.compare(b.depositId));

test("a member that applies the leader's snapshot holds the same coins and global state", () => {
  const leader = leaderWithCoins(3);
  const member = core();
  applyDelta(member, snapshotOf(leader));
  assert.deepEqual(coinsOf(member), coinsOf(leader), "the member's coins differ from the leader's");
  for (const c of leader.coins.all()) {
    assert.ok(member.coins.statechain(c.idHex!), "a funded coin must be found by its statechain id too");
  }
  assert.equal(member.maxTip, 812, "the chain-tip ratchet must travel with the state");
  assert.deepEqual(Buffer.from(member.lastReceipt), Buffer.from(leader.lastReceipt), "last receipt differs");
  assert.deepEqual(member.d.log.head, leader.d.log.head, "log head differs");
  assert.equal(member.d.log.length, leader.d.log.length, "log length differs");
});

test("a snapshot replaces everything: a coin the leader no longer holds is wiped and dropped", () => {
  const leader = leaderWithCoins(1);
  const member = core();
  const stale = hold(member, fullCoin());
  const share = stale.key!.share;
  applyDelta(member, snapshotOf(leader));
  assert.equal(member.coins.size, 1, "the member must hold exactly the leader's coins");
  assert.ok(!member.coins.deposit(stale.depositId.toString("hex")), "the stale coin must be gone");
  assert.ok(
    share.every((b) => b === 0),
    "the stale coin's share must be zeroed",
  );
});

test("a delta that replaces a coin (a key update: new share, new owner) erases the replaced share, x1 and keys", () => {
  const leader = leaderWithCoins(1);
  const member = core();
  applyDelta(member, snapshotOf(leader));
  const held = member.coins.all()[0]!;
  const oldShare = held.key!.share;
  const x1 = held.pending!.x1;
  const tk = held.pending!.transferKeys[0]!.secret;
  // The leader's key update: s2 replaces s1, owner n+1, no transfer pending.
  const c = leader.coins.all()[0]!;
  const updated: Coin = {
    ...c,
    key: { ...c.key!, share: randomBytes(32) },
    ownerIndex: c.ownerIndex + 1,
    pending: undefined,
  };
  applyDelta(member, deltaOf(leader, [updated]));
  const now = member.coins.all()[0]!;
  assert.equal(member.coins.size, 1, "the update must replace the coin, not add one");
  assert.equal(now.ownerIndex, c.ownerIndex + 1, "the member must hold the new owner");
  assert.deepEqual(Buffer.from(now.key!.share), Buffer.from(updated.key!.share), "the member must hold s2");
  assert.ok(
    oldShare.every((b) => b === 0),
    "s1 must be zeroed on the member when the key update is applied",
  );
  assert.ok(x1.erased && tk.erased, "x1 and the transfer key must be erased with it");
});

test("a close removes the coin, wipes its share and keeps its answer for a retry", () => {
  const leader = leaderWithCoins(1);
  const member = core();
  applyDelta(member, snapshotOf(leader));
  const held = member.coins.all()[0]!;
  const share = held.key!.share;
  const c = leader.coins.all()[0]!;
  const answer = { erasure: undefined };
  applyDelta(member, deltaOf(leader, [], [{ coin: c, answer }]));
  assert.equal(member.coins.size, 0, "the closed coin must leave the registry");
  assert.ok(
    share.every((b) => b === 0),
    "the closed coin's share must be zeroed",
  );
  assert.deepEqual(member.coins.closed.get(c.idHex!), answer, "the close answer must be kept for a retry");
});

test("a delta with one bad coin record changes nothing; malformed deltas are refused by RECORD_* codes", () => {
  const leader = leaderWithCoins(2);
  const member = core();
  applyDelta(member, snapshotOf(leader));
  const before = coinsOf(member);
  const good = encodeCoin(leader.coins.all()[0]!);
  const bad = Buffer.from(good.subarray(0, good.length - 1));
  const d = encodeDelta({
    snapshot: true,
    core: { maxTip: 1, maxTipAt: 1, lastReceipt: randomBytes(32), logHead: randomBytes(32), logLength: 1n },
    coins: [good, bad],
    closed: [],
  });
  assert.throws(() => applyDelta(member, d), { code: "RECORD_PARSE" } as object);
  assert.deepEqual(coinsOf(member), before, "a refused delta must leave the member's coins as they were");
  assert.equal(member.maxTip, 812, "a refused delta must leave the global state as it was");
  const snap = snapshotOf(leader);
  for (let n = 0; n < snap.length; n += 97) {
    assert.throws(
      () => decodeDelta(snap.subarray(0, n)),
      (e: unknown) => e instanceof ProtocolError && e.code.startsWith("RECORD_"),
      `a delta cut to ${n} bytes must be refused with a RECORD_ code`,
    );
  }
});

test("encoding a delta zeroes the coin records it copied (each held the shares too)", () => {
  const rec = encodeCoin(fullCoin());
  const copy = Buffer.from(rec);
  const delta = encodeDelta({
    snapshot: false,
    core: { maxTip: 1, maxTipAt: 1, lastReceipt: randomBytes(32), logHead: randomBytes(32), logLength: 1n },
    coins: [rec],
    closed: [],
  });
  assert.ok(
    rec.every((b) => b === 0),
    "the coin record must be zeroed once copied into the delta",
  );
  assert.ok(Buffer.from(delta).includes(copy), "the delta must carry the record");
});
