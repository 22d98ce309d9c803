// Unit cases of the replica set's Raft core (enclave/replica/raft.ts) on a tiny cluster driven by hand: every
// message goes through the byte codec, and the test decides which are delivered and when.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  createNode,
  decodeMessage,
  encodeMessage,
  type Message,
  type NodeId,
  type Options,
  type RaftNode,
} from "../../../enclave/replica/raft.ts";
import { CoinMachine, keyUpdate } from "./sim.ts";

const OPTS = { electionTimeoutMs: 100, heartbeatMs: 20, leaseMs: 1000, removeUnreachableAfterMs: 500 };

class Cluster {
  nodes = new Map<NodeId, { node: RaftNode; sm: CoinMachine }>();
  queue: { from: NodeId; to: NodeId; bytes: Uint8Array; type: Message["type"] }[] = [];
  now = 0;
  /** Pairs that cannot talk (either direction). */
  cut = new Set<string>();

  /** Every message sent, in order. */
  sent: { from: NodeId; to: NodeId; type: Message["type"] }[] = [];

  constructor(
    ids: NodeId[],
    private readonly extra: Partial<Options> = {},
  ) {
    for (const id of ids) this.add(id, ids);
  }
  add(id: NodeId, members?: NodeId[]): RaftNode {
    const sm = new CoinMachine();
    // Distinct fixed jitters (0, 13, 26, … ms) so that elections do not split forever.
    const jitter = 13 * this.nodes.size;
    const node = createNode(
      { id, ...OPTS, random: (max: number) => jitter % max, ...this.extra },
      sm,
      members ? { members } : undefined,
      this.now,
    );
    this.nodes.set(id, { node, sm });
    return node;
  }
  n(id: NodeId): RaftNode {
    return this.nodes.get(id)!.node;
  }
  sm(id: NodeId): CoinMachine {
    return this.nodes.get(id)!.sm;
  }
  push(from: NodeId, messages: { to: NodeId; msg: Message }[]): void {
    for (const { to, msg } of messages) this.sent.push({ from, to, type: msg.type });
    for (const { to, msg } of messages)
      this.queue.push({ from, to, bytes: encodeMessage(msg), type: msg.type });
  }
  tick(id: NodeId): void {
    this.push(id, this.n(id).tick(this.now).messages);
  }
  tickAll(): void {
    for (const id of this.nodes.keys()) this.tick(id);
  }
  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) if (other !== id) this.cut.add([id, other].sort().join("|"));
  }
  heal(): void {
    this.cut.clear();
  }
  /** Delivers queued messages (and what they cause) that `pick` accepts; drops cut ones. */
  deliver(
    pick: (m: { from: NodeId; to: NodeId; type: Message["type"] }) => boolean = () => true,
    rounds = 100,
  ): number {
    let n = 0;
    for (let round = 0; round < rounds; round++) {
      const batch = this.queue.filter(pick);
      if (!batch.length) break;
      this.queue = this.queue.filter((m) => !pick(m));
      for (const m of batch) {
        if (this.cut.has([m.from, m.to].sort().join("|")) || !this.nodes.has(m.to)) continue;
        n++;
        this.push(m.to, this.n(m.to).receive(m.from, decodeMessage(m.bytes), this.now).messages);
      }
    }
    return n;
  }
  /** Advances time in heartbeat steps, ticking and delivering everything. */
  run(ms: number, step = OPTS.heartbeatMs): void {
    for (const end = this.now + ms; this.now < end; ) {
      this.now += step;
      this.tickAll();
      this.deliver();
    }
  }
  /** Proposes on `id` and queues what it sends. */
  propose(id: NodeId, data: Uint8Array): ReturnType<RaftNode["propose"]> {
    const r = this.n(id).propose(data, this.now);
    if ("messages" in r) this.push(id, r.messages);
    return r;
  }
  elect(id: NodeId): void {
    this.now += 2 * OPTS.electionTimeoutMs;
    this.tick(id);
    this.deliver();
    assert.equal(this.n(id).status().role, "leader", `${id} won the election`);
  }
}

const secret = (b: number) => new Uint8Array(32).fill(b);
const allZero = (b: Uint8Array) => b.every((x) => x === 0);

test("election: the first node to time out wins a term and the others follow it (Raft §5.2)", () => {
  const c = new Cluster(["a", "b", "c"]);
  c.now = 50;
  c.tickAll();
  assert.equal(c.queue.length, 0, "no one campaigns before its election timeout");
  c.elect("a");
  for (const id of ["b", "c"]) {
    const s = c.n(id).status();
    assert.deepEqual([s.role, s.term, s.leader], ["follower", 1, "a"], `${id} follows a in term 1`);
  }
  assert.equal(Object.hasOwn(c.propose("b", secret(1)), "notLeader"), true, "a follower refuses");
});

test("election restriction: a candidate with a shorter log gets no vote (Raft §5.4.1)", () => {
  const c = new Cluster(["a", "b", "c"]);
  c.elect("a");
  c.isolate("c");
  c.propose("a", keyUpdate(0, 0, secret(1)));
  c.deliver();
  c.isolate("a");
  c.cut.delete("b|c");
  c.now += 300;
  c.tick("c");
  c.deliver();
  assert.notEqual(c.n("c").status().role, "leader", "c's log lacks a's entry that b holds");
  assert.equal(c.n("b").status().term, 2, "b heard c's term-2 request and refused it");
  c.tick("b");
  c.deliver();
  assert.equal(c.n("b").status().role, "leader", "b, whose log is longer, wins");
});

test("replication: a committed command is applied everywhere once, then its data is zeroed and dropped", () => {
  const c = new Cluster(["a", "b", "c"]);
  c.elect("a");
  const data = keyUpdate(0, 0, secret(9));
  const r = c.propose("a", data);
  assert.ok("index" in r, "the leader accepts");
  c.deliver((m) => m.type === "append");
  const held = c
    .n("b")
    .entries()
    .find((e) => e.index === r.index)!;
  const bCopy = held.data!;
  assert.equal(bCopy[5], 9, "b holds the entry's data before it commits");
  c.isolate("c"); // so that c lags and no one may compact the entry away: only apply can clear it
  c.deliver();
  assert.equal(c.n("a").status().commitIndex, r.index, "a majority holds it: committed");
  c.run(40);
  for (const id of ["a", "b"]) {
    const e = c
      .n(id)
      .entries()
      .find((x) => x.index === r.index);
    assert.ok(e && e.data === null, `${id} still holds the applied entry's index and term, and no data`);
  }
  assert.ok(allZero(data), "the leader's buffer was zeroed at apply");
  assert.ok(allZero(bCopy), "the follower's buffer was zeroed at apply");
  c.heal();
  c.run(60);
  for (const id of ["a", "b", "c"]) {
    assert.equal(c.sm(id).coins.get(0)?.epoch, 1, `${id} applied the key update`);
    const e = c
      .n(id)
      .entries()
      .find((x) => x.index === r.index);
    assert.ok(!e || e.data === null, `${id} keeps no data for the applied entry`);
  }
  assert.ok(c.n("a").appliedByAll(r.index), "every member reported it applied");
});

test("appliedByAll waits for every member, not a majority", () => {
  const c = new Cluster(["a", "b", "c"]);
  c.elect("a");
  c.isolate("c");
  const r = c.propose("a", keyUpdate(0, 0, secret(2)));
  assert.ok("index" in r, "accepted");
  c.run(60);
  assert.ok(c.n("a").status().commitIndex >= r.index, "committed by a and b");
  assert.equal(c.n("a").appliedByAll(r.index), false, "c has not applied it");
  c.heal();
  c.run(60);
  assert.equal(c.n("a").appliedByAll(r.index), true, "now c has");
  assert.equal(c.n("b").appliedByAll(r.index), false, "a follower never answers");
});

test("Figure 8: an entry of an earlier term on a majority is not committed by counting (Raft §5.4.2)", () => {
  const c = new Cluster(["s1", "s2", "s3", "s4", "s5"], { maxBatch: 1 });
  c.elect("s1");
  c.run(40);
  // s1 (term 1) replicates X at index 2 to s2 only.
  const x = keyUpdate(0, 0, secret(0xaa));
  const rx = c.propose("s1", x);
  assert.ok("index" in rx && rx.index === 2, "X at index 2");
  c.deliver((m) => m.to === "s2" || m.from === "s2");
  c.queue = [];
  // s5 wins term 2 with s3 and s4 (its no-op at index 2, term 2, reaches no one).
  c.now += 300;
  c.tick("s5");
  c.deliver((m) => m.type === "vote" && ["s3", "s4"].includes(m.to));
  c.deliver((m) => m.type === "voteReply");
  assert.equal(c.n("s5").status().role, "leader", "s5 leads term 2");
  c.queue = [];
  // s2 wins term 3 with s3 and s4 (its term-2 try meets their votes for s5) and sends X (term 1) to them, but
  // not its own term-3 no-op.
  c.now += 300;
  c.tick("s2");
  c.deliver((m) => m.type === "vote" && ["s3", "s4"].includes(m.to));
  c.deliver((m) => m.type === "voteReply");
  assert.equal(c.n("s2").status().role, "candidate", "s2 did not win term 2");
  c.queue = [];
  c.now += 300;
  c.tick("s2");
  c.deliver((m) => m.type === "vote" && ["s3", "s4"].includes(m.to));
  c.deliver((m) => m.type === "voteReply");
  assert.equal(c.n("s2").status().role, "leader", "s2 leads term 3");
  // With one entry per AppendEntries, s3 and s4 get X; the host drops the one that would give them the no-op.
  const carriesNoop = (m: { to: NodeId; bytes: Uint8Array }) => {
    const msg = decodeMessage(m.bytes);
    const wouldTake = msg.type === "append" && msg.prevIndex <= c.n(m.to).status().lastIndex;
    return wouldTake && msg.entries.some((e) => e.term === 3);
  };
  const between = (m: { from: NodeId; to: NodeId }) =>
    (m.from === "s2" && ["s3", "s4"].includes(m.to)) || (m.to === "s2" && ["s3", "s4"].includes(m.from));
  for (let round = 0; round < 6; round++) {
    c.queue = c.queue.filter((m) => between(m) && !carriesNoop(m));
    c.deliver(between, 1);
  }
  c.queue = [];
  assert.deepEqual(
    ["s2", "s3", "s4"].map(
      (id) =>
        c
          .n(id)
          .entries()
          .find((e) => e.index === 2)?.term,
    ),
    [1, 1, 1],
    "X (term 1) is on a majority",
  );
  assert.equal(c.n("s2").status().commitIndex, 1, "but s2 does not commit it: it is not of s2's term");
  // With s2 cut off, s5 (last term 2, the highest) can still win a later term and overwrite X everywhere: had
  // s2 committed X by counting, a committed entry would now be lost (the node would throw on the conflict).
  c.queue = [];
  c.isolate("s2");
  c.run(400);
  const s = c.n("s5").status();
  assert.equal(s.role, "leader", "s5 leads");
  assert.ok(s.term >= 4, "in a term after s2's");
  c.heal();
  c.run(100);
  for (const id of ["s2", "s3", "s4"])
    assert.equal(c.n(id).status().commitIndex, s.commitIndex, `${id} caught up`);
  assert.equal(c.n("s1").status().role, "wiped", "s1, which heard no majority for over a lease, wiped");
  assert.equal(c.sm("s2").coins.get(0), undefined, "X was never applied");
  assert.ok(allZero(x), "X's buffer on s1 was zeroed when s5's log replaced it");
});

test("a conflicting suffix is truncated and its data zeroed (Raft §5.3)", () => {
  const c = new Cluster(["a", "b", "c"]);
  c.elect("a");
  c.run(40);
  c.isolate("a");
  const lost = keyUpdate(1, 0, secret(0x55));
  assert.ok("index" in c.propose("a", lost), "a takes X it cannot replicate");
  c.now += 300;
  c.tick("b");
  c.deliver();
  assert.equal(c.n("b").status().role, "leader", "b leads term 2");
  c.run(40);
  assert.equal(lost[5], 0x55, "a still holds X before it hears b");
  c.heal();
  c.run(60);
  assert.equal(c.n("a").status().role, "follower", "a stepped down");
  assert.equal(
    c.sent.filter((m) => m.type === "snapshot" && m.to === "a").length,
    0,
    "a was brought in line by AppendEntries alone (b's no-op conflicts with X)",
  );
  assert.ok(c.n("a").status().appliedIndex >= 2, "a applied b's entries");
  assert.ok(allZero(lost), "X's buffer was zeroed when it was truncated");
  assert.equal(c.sm("a").coins.get(1), undefined, "X was never applied");
});

test("a follower that lags behind applied entries gets a snapshot of the current state", () => {
  const c = new Cluster(["a", "b", "c"]);
  c.elect("a");
  c.isolate("c");
  for (let e = 0; e < 3; e++) {
    c.propose("a", keyUpdate(0, e, secret(e + 1)));
    c.run(40);
  }
  assert.equal(c.sm("c").coins.size, 0, "c has nothing yet");
  c.heal();
  c.sent = [];
  c.run(100);
  const snapshots = c.sent.filter((m) => m.type === "snapshot" && m.to === "c").length;
  assert.ok(snapshots >= 1, "the leader sent c a snapshot (its entries have no data left)");
  assert.equal(c.sm("c").digest(), c.sm("a").digest(), "c's state is a's");
  assert.equal(c.sm("c").coins.get(0)?.epoch, 3, "the current epoch only");
  assert.equal(c.n("c").status().appliedIndex, c.n("a").status().appliedIndex, "c applied up to a");
});

test("a new empty member is added after the leader's no-op commits, and gets a snapshot (dissertation §4.1)", () => {
  const c = new Cluster(["a", "b", "c"]);
  c.now += 200;
  c.tick("a");
  c.deliver((m) => m.type === "vote" || m.type === "voteReply");
  assert.equal(c.n("a").status().role, "leader", "a leads");
  assert.ok("busy" in c.n("a").addMember("d", c.now), "no change before the no-op of this term commits");
  c.deliver();
  c.propose("a", keyUpdate(0, 0, secret(3)));
  c.run(40);
  const d = c.add("d");
  c.run(200);
  assert.equal(d.status().role, "follower", "an unadded node waits, holding nothing, without wiping");
  const r = c.n("a").addMember("d", c.now);
  assert.ok("index" in r, "a adds d");
  assert.ok("busy" in c.n("a").addMember("e", c.now), "one change at a time");
  c.push("a", r.messages);
  assert.equal(c.n("a").appliedByAll(r.index), false, "d has applied nothing yet");
  c.run(100);
  assert.deepEqual(d.status().members, ["a", "b", "c", "d"], "d knows the new configuration");
  assert.equal(c.sm("d").coins.get(0)?.epoch, 1, "d has the state");
  assert.equal(c.n("a").appliedByAll(r.index), true, "and every member has applied the change");
});

test("no member is added while the members heard lately are not a majority of the larger set", () => {
  const c = new Cluster(["a", "b", "c"]);
  c.elect("a");
  c.run(40);
  c.isolate("c");
  c.run(120);
  const r = c.n("a").addMember("d", c.now);
  assert.ok("busy" in r && /heard lately/.test(r.busy), "with c silent, {a, b} is not a majority of four");
  c.heal();
  c.run(60);
  assert.ok("index" in c.n("a").addMember("d", c.now), "with all three heard, d may be added");
  // A set of one counts its first joiner, or it could never grow.
  const one = new Cluster(["a"]);
  one.elect("a");
  one.run(40);
  assert.ok("index" in one.n("a").addMember("b", one.now), "a set of one grows to two");
});

test("the leader removes a member it has not heard from, only while the rest is a majority", () => {
  const c = new Cluster(["a", "b", "c"]);
  c.elect("a");
  c.run(40);
  c.isolate("c");
  c.run(400);
  const before = c.n("a").status();
  assert.deepEqual(before.members, ["a", "b", "c"], "not yet: 400 ms < 500 ms");
  assert.ok(c.now - before.lastHeard.c! >= 400, "status shows when c was last heard");
  assert.ok(c.now - before.lastHeard.b! <= 60, "and that b was heard just now");
  c.run(200);
  const s = c.n("a").status();
  assert.deepEqual(s.members, ["a", "b"], "c was removed");
  assert.equal(s.committedMembers.length, 2, "and the removal committed");
  assert.deepEqual(Object.keys(s.lastHeard), ["a", "b"], "lastHeard lists the members");

  const c2 = new Cluster(["a", "b", "c"]);
  c2.elect("a");
  c2.run(40);
  c2.isolate("a");
  c2.run(800);
  assert.deepEqual(c2.n("a").status().members, ["a", "b", "c"], "no removal without a majority left");
});

test("lease: a partitioned follower wipes within the lease, the connected ones do not", () => {
  const c = new Cluster(["a", "b", "c"]);
  c.elect("a");
  c.propose("a", keyUpdate(0, 0, secret(4)));
  c.run(100);
  const cutAt = c.now;
  c.isolate("c");
  c.run(900);
  assert.notEqual(c.n("c").status().role, "wiped", "c keeps its lease for a while");
  let wipedAt = 0;
  for (let i = 0; i < 20 && !wipedAt; i++) {
    c.now += 20;
    const out = c.n("c").tick(c.now);
    if (out.wiped) wipedAt = c.now;
    c.tick("a");
    c.tick("b");
    c.deliver();
  }
  assert.ok(wipedAt > 0 && wipedAt - cutAt <= 1000 + 40, `c wiped ${wipedAt - cutAt} ms after the cut`);
  assert.equal(c.n("c").status().role, "wiped", "role wiped");
  assert.equal(c.sm("c").coins.size, 0, "state machine wiped");
  assert.equal(c.n("c").entries().length, 0, "log gone");
  c.heal();
  c.run(100);
  assert.equal(c.n("c").status().role, "wiped", "a wiped node ignores everything from then on");
  assert.equal(c.n("a").status().role, "leader", "a still leads");
  assert.notEqual(c.n("b").status().role, "wiped", "b kept its lease");
});

test("lease: a partitioned old leader wipes; the majority elects a new one and goes on", () => {
  const c = new Cluster(["a", "b", "c"]);
  c.elect("a");
  c.run(40);
  const cutAt = c.now;
  c.isolate("a");
  const stale = c.propose("a", keyUpdate(2, 0, secret(8)));
  assert.ok("index" in stale, "the old leader still takes a proposal");
  c.run(1100);
  assert.equal(c.n("a").status().role, "wiped", "the old leader wiped");
  assert.equal(c.sm("a").coins.size + c.n("a").entries().length, 0, "holding nothing");
  const leader = ["b", "c"].find((id) => c.n(id).status().role === "leader");
  assert.ok(leader, "b or c leads");
  assert.ok(c.n(leader).status().term > 1, "in a later term");
  assert.ok(c.now - cutAt >= 1000, "and the test ran past the lease");
  const r = c.propose(leader, keyUpdate(2, 0, secret(9)));
  c.run(40);
  assert.ok("index" in r && c.n(leader).status().commitIndex >= r.index, "the majority commits");
});

test("disruptive servers: a vote request within the minimum election timeout of hearing the leader is ignored (dissertation §4.2.3)", () => {
  const c = new Cluster(["a", "b", "c"]);
  c.elect("a");
  c.run(40);
  const out = c
    .n("b")
    .receive("c", { type: "vote", term: 9, sentAt: 0, echo: null, lastIndex: 99, lastTerm: 9 }, c.now);
  assert.equal(out.messages.length, 0, "no reply");
  assert.equal(c.n("b").status().term, 1, "and no term change");
  c.now += 150;
  const later = c
    .n("b")
    .receive("c", { type: "vote", term: 9, sentAt: 0, echo: null, lastIndex: 99, lastTerm: 9 }, c.now);
  assert.equal(later.messages.length, 1, "after the timeout it answers");
  assert.equal(c.n("b").status().term, 9, "in the new term");
});

const SAMPLES: Message[] = [
  { type: "vote", term: 3, sentAt: 12.5, echo: null, lastIndex: 7, lastTerm: 2 },
  { type: "voteReply", term: 3, sentAt: 1, echo: 12.5, granted: true },
  {
    type: "append",
    term: 3,
    sentAt: 100.25,
    echo: 99,
    prevIndex: 4,
    prevTerm: 2,
    leaderCommit: 4,
    compactTo: 3,
    quorumAge: 17.5,
    entries: [
      { index: 5, term: 3, kind: "noop", data: null },
      { index: 6, term: 3, kind: "command", data: new Uint8Array([1, 2, 3]) },
      { index: 7, term: 3, kind: "command", data: null },
      { index: 8, term: 3, kind: "config", data: null, members: ["a", "b", "n-7"] },
    ],
  },
  { type: "appendReply", term: 3, sentAt: 5, echo: 100.25, success: false, matchIndex: 4, appliedIndex: 3 },
  {
    type: "snapshot",
    term: 3,
    sentAt: 5,
    echo: 1,
    lastIndex: 9,
    lastTerm: 3,
    members: ["a", "b"],
    data: new Uint8Array([9, 9]),
    quorumAge: 0,
  },
  { type: "snapshotReply", term: 3, sentAt: 5, echo: 5, matchIndex: 9, appliedIndex: 9 },
];

test("codec: every message type survives a round trip", () => {
  for (const m of SAMPLES) assert.deepEqual(decodeMessage(encodeMessage(m)), m, `${m.type} round-trips`);
});

test("codec: what is decoded from a Buffer owns its bytes: zeroing the received message leaves it intact", () => {
  // The channel hands over a Buffer, whose slice() is a view; the member zeroes it once decoded (it may carry
  // shares), so entry and snapshot data must be copies.
  for (const m of SAMPLES.filter((x) => x.type === "append" || x.type === "snapshot")) {
    const received = Buffer.from(encodeMessage(m));
    const decoded = decodeMessage(received);
    received.fill(0);
    assert.deepEqual(decoded, m, `${m.type} decoded from a Buffer survives the zeroing of that Buffer`);
  }
});

test("codec: truncated, extended, corrupted and out-of-bounds input is refused with an Error", () => {
  for (const m of SAMPLES) {
    const bytes = encodeMessage(m);
    for (let n = 0; n < bytes.length; n++)
      assert.throws(() => decodeMessage(bytes.subarray(0, n)), /raft message/, `${m.type} cut to ${n} bytes`);
    assert.throws(
      () => decodeMessage(new Uint8Array([...bytes, 0])),
      /trailing/,
      `${m.type} with a trailing byte`,
    );
  }
  const append = encodeMessage(SAMPLES[2]!);
  const bad = (edit: (b: Uint8Array, v: DataView) => void, why: RegExp, what: string) => {
    const b = append.slice();
    edit(b, new DataView(b.buffer));
    assert.throws(() => decodeMessage(b), why, what);
  };
  bad((b) => (b[0] = 2), /version/, "an unknown version");
  bad((b) => (b[1] = 6), /type/, "an unknown type");
  bad((_, v) => v.setFloat64(2, 1.5), /integer/, "a fractional term");
  bad((_, v) => v.setFloat64(2, -1), /integer/, "a negative term");
  bad((_, v) => v.setFloat64(10, Number.NaN), /finite/, "a NaN clock");
  const countAt = 2 + 8 + 8 + 1 + 8 + 8 * 5;
  bad((_, v) => v.setUint32(countAt, 1e6), /too many entries/, "an entry count over the limit");
  bad((_, v) => v.setFloat64(countAt + 4, 6), /consecutive/, "entries that skip an index");
  bad((b) => (b[countAt + 4 + 16] = 7), /kind/, "an unknown entry kind");
  const dataLenAt = countAt + 4 + 17 + 17 + 1;
  bad((_, v) => v.setUint32(dataLenAt, 0xffffffff), /over its limit/, "an entry length over the limit");
  assert.throws(() => decodeMessage(new Uint8Array(0)), /truncated/, "empty input");
  let garbageRefused = 0;
  let x = 12345;
  for (let i = 0; i < 500; i++) {
    const g = new Uint8Array(1 + (i % 200)).map(() => {
      x = (x * 1103515245 + 12345) >>> 0;
      return x >>> 24;
    });
    try {
      decodeMessage(g);
    } catch (e) {
      if (e instanceof Error && /raft message/.test(e.message)) garbageRefused++;
    }
  }
  assert.equal(garbageRefused, 500, "random bytes are refused, each with a raft message Error");
  const big = { ...SAMPLES[4]!, data: new Uint8Array(49 << 20) } as Message;
  assert.throws(() => encodeMessage(big), /limit/, "an oversized snapshot is not encoded");
  assert.throws(
    () => encodeMessage({ ...SAMPLES[0]!, term: 0.5 } as Message),
    /not an index or term/,
    "the encoder refuses a fractional term",
  );
});
