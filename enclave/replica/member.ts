// This enclave as a member of its replica set (DESIGN.md 4.1): the Raft node (raft.ts) over attested channels
// (links.ts), with the enclave's state as its state machine (state-delta.ts). Time comes in through tick(now);
// the timer that calls it lives in main.ts.
//
// The leader runs each step on its own state, then replicates the step's delta and answers only once the set
// committed it (an erasure: once every member applied it, and a member removed meanwhile has had its lease to
// wipe). Its own entries are therefore already in its state when they commit, and are not applied twice. A leader
// deposed with such entries uncommitted keeps them while they may still commit (the new leader has them, Raft
// §5.4.1, and commits them: they are then applied as ours, i.e. skipped); once one of them is overwritten by
// another entry or dropped from its log, its state holds a change the set never made: it wipes and stops, as a
// crashed member does, and comes back empty under a new id.
import type * as E from "../../proto/gen/enclave.ts";
import { check, fail, ProtocolError } from "../../protocol/errors.ts";
import { systemRng } from "../../protocol/rng.ts";
import { wipeCoin } from "../coins.ts";
import { type EnclaveCore, hex, type Replicator } from "../core.ts";
import { createInstanceKeys, type InstanceKeys, importInstanceKeys } from "../instance.ts";
import type { ChannelConfig } from "./channel.ts";
import { PeerLinks } from "./links.ts";
import { createNode, decodeMessage, encodeMessage, type Output, type RaftNode } from "./raft.ts";
import { applyDelta, deltaOf, snapshotOf } from "./state-delta.ts";

export interface Timing {
  heartbeatMs: number;
  electionTimeoutMs: number;
  /** A member that hears no majority for this long wipes. */
  leaseMs: number;
  /** The leader removes a member it has not heard from for this long. */
  removeUnreachableAfterMs: number;
  /** Bound on the drift of members' clocks against each other (fraction), for the lease margin. */
  maxDrift: number;
}

/**
 * The lease bounds how long a member cut off from the set may still hold a share the set erased, so an erasure
 * that removed a member waits it out: it is the price of a key update right after a member is lost, and the
 * longest stall of a whole machine the set survives (a member that stalls longer wipes).
 */
export const DEFAULT_TIMING: Timing = {
  heartbeatMs: 50,
  electionTimeoutMs: 250,
  leaseMs: 1_500,
  removeUnreachableAfterMs: 750,
  maxDrift: 0.01,
};

export interface MemberDeps {
  /** Hex of our instance key. */
  id: string;
  channel: ChannelConfig;
  timing: Timing;
  now: () => number;
  random: (maxExclusive: number) => number;
  /** Hands an envelope to the host. */
  send: (to: string, payload: Uint8Array) => void;
  /** The member lost its majority (or its leadership with changes uncommitted) and wiped: stop the process. */
  onWiped: (why: string) => void;
  warn: (msg: string, extra: Record<string, string>) => void;
  /** Role and term changes, membership changes: the set's history for an operator (ids and numbers only). */
  info?: (msg: string, extra: Record<string, string | number>) => void;
}

interface Waiter {
  index: number;
  term: number;
  erasure: boolean;
  /** Members of the configuration when the change was proposed: a removal meanwhile needs the lease margin. */
  members: Set<string>;
  resolve: () => void;
  reject: (err: Error) => void;
}

const SET_ID_BYTES = 16;

export class ReplicaMember implements Replicator {
  private node: RaftNode | undefined;
  private core: EnclaveCore | undefined;
  private identity: InstanceKeys | undefined;
  private identityReady: (keys: InstanceKeys) => void = () => undefined;
  private setId = "";
  private readonly links: PeerLinks;
  private readonly waiters: Waiter[] = [];
  /** Our own entries (index → term), already in our state: not applied again at commit. */
  private readonly own = new Map<number, number>();
  /** When each member was last heard, kept after its removal (the lease margin of an erasure). */
  private readonly lastHeard = new Map<string, number>();
  private wiped = false;
  private founding = false;
  private lastSeen = "";
  /** The other members of the configuration as last seen. */
  private configured = new Set<string>();

  constructor(private readonly d: MemberDeps) {
    this.links = new PeerLinks({
      self: d.id,
      config: d.channel,
      send: d.send,
      now: d.now,
      warn: d.warn,
      deliver: (from, bytes) => this.onMessage(from, bytes),
    });
  }

  /**
   * The enclave whose state this member replicates; set once, before any peer message is taken. The set's
   * identity — what it signs with and attests (ring-Pedersen parameters, partial-signature key) — is made by the
   * founder and reaches joiners with the state, so owners see one enclave whichever member leads. Until then
   * the enclave's `instance` waits for it (and serves no step: it leads no set).
   */
  attach(core: EnclaveCore): void {
    this.core = core;
    core.d.instance = new Promise<InstanceKeys>((resolve) => {
      this.identityReady = resolve;
    });
    // An enclave in no set still answers a leader that adds it: it waits, empty, to be added.
    this.node = createNode(this.nodeOptions(), this.stateMachine(), undefined, this.d.now());
  }

  private nodeOptions() {
    const t = this.d.timing;
    return {
      id: this.d.id,
      electionTimeoutMs: t.electionTimeoutMs,
      heartbeatMs: t.heartbeatMs,
      leaseMs: t.leaseMs,
      removeUnreachableAfterMs: t.removeUnreachableAfterMs,
      maxDrift: t.maxDrift,
      random: this.d.random,
    };
  }

  private stateMachine() {
    return {
      apply: (e: { index: number; term: number; data: Uint8Array }) => {
        if (this.wiped) return;
        const mine = this.own.get(e.index);
        if (mine !== undefined) {
          this.own.delete(e.index);
          if (mine !== e.term) this.onWipe("a change it made as leader was replaced by another leader's");
          return;
        }
        applyDelta(this.core!, e.data);
      },
      // The set id and identity travel with the state: a joiner learns which set it joined, and signs as it.
      snapshot: () => {
        const keys = this.identity!.exportForReplicas();
        const len = Buffer.alloc(4);
        len.writeUInt32BE(keys.length);
        const state = snapshotOf(this.core!);
        const out = Buffer.concat([Buffer.from(this.setId, "hex"), len, keys, state]);
        keys.fill(0);
        state.fill(0);
        return out;
      },
      restore: (bytes: Uint8Array) => {
        const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
        check(b.length >= SET_ID_BYTES + 4, "RECORD_PARSE", "a snapshot is truncated");
        const n = b.readUInt32BE(SET_ID_BYTES);
        check(n <= b.length - SET_ID_BYTES - 4, "RECORD_PARSE", "a snapshot is truncated");
        const identity = importInstanceKeys(b.subarray(SET_ID_BYTES + 4, SET_ID_BYTES + 4 + n));
        // The snapshot replaces the whole state, changes of our own not yet committed included.
        this.own.clear();
        applyDelta(this.core!, b.subarray(SET_ID_BYTES + 4 + n));
        this.setId = b.subarray(0, SET_ID_BYTES).toString("hex");
        this.identity = identity;
        this.core!.d.instanceId = Buffer.from(this.setId, "hex");
        this.core!.d.instance = identity;
        this.identityReady(identity);
      },
      wipe: () => this.onWipe("no majority heard within the lease"),
    };
  }

  /**
   * Founds a new set with this member alone (an enclave in no set, holding nothing): makes the set's identity
   * (its safe primes take seconds) and names the set by this enclave's instance id.
   */
  async found(): Promise<void> {
    if (this.setId || this.founding)
      fail("REPLICA_IN_SET", "this enclave is already a member of a replica set", "precondition");
    this.founding = true;
    const identity = await createInstanceKeys(systemRng);
    this.identity = identity;
    this.core!.d.instance = identity;
    this.identityReady(identity);
    this.setId = hex(this.core!.d.instanceId);
    this.node = createNode(this.nodeOptions(), this.stateMachine(), { members: [this.d.id] }, this.d.now());
    this.handle(this.node.tick(this.d.now()));
    // A set of one leads after its first election timeout: answer once it does, so the host's next call (the
    // admission of the next member) finds a leader.
    const deadline = this.d.now() + 10 * this.d.timing.electionTimeoutMs;
    while (!this.leading() && this.d.now() < deadline) await sleep(10);
  }

  leading(): boolean {
    return !this.wiped && this.node?.status().role === "leader";
  }

  /**
   * Admits `peer` (leader only): opens the attested channel first, so a peer whose attestation fails never
   * counts in a majority, then adds it through the log and waits until it holds the state.
   */
  async admit(peer: string, timeoutMs = 10_000): Promise<void> {
    const node = this.leaderNode();
    const deadline = this.d.now() + timeoutMs;
    while (!this.links.connected(peer)) {
      this.links.ensure(peer);
      if (this.d.now() > deadline)
        fail("REPLICA_ADMISSION", `no attested channel to ${peer.slice(0, 16)}… in time`, "unavailable");
      await sleep(20);
    }
    // One change at a time, and not before this leader's first entry commits: wait for the set to be ready.
    let r = node.addMember(peer, this.d.now());
    while ("busy" in r && this.d.now() < deadline) {
      await sleep(20);
      r = this.leaderNode().addMember(peer, this.d.now());
    }
    if ("notLeader" in r) fail("NOT_LEADER", "this enclave no longer leads its replica set", "unavailable");
    if ("busy" in r)
      fail("REPLICA_BUSY", `the set is changing its membership (${r.busy}); try again`, "unavailable");
    this.handle({ messages: r.messages });
    await this.waitFor(r.index, r.term, false);
    while ((node.status().appliedBy?.[peer] ?? 0) < r.index) {
      if (this.d.now() > deadline)
        fail("REPLICA_ADMISSION", "the joiner did not catch up in time", "unavailable");
      await sleep(20);
    }
  }

  async commit(
    core: EnclaveCore,
    change: {
      coin: Parameters<typeof deltaOf>[1][number];
      erasure: boolean;
      closed?: E.CloseStatechainResponse;
    },
  ): Promise<void> {
    const node = this.leaderNode();
    const delta = change.closed
      ? deltaOf(core, [], [{ coin: change.coin, answer: change.closed }])
      : deltaOf(core, [change.coin]);
    const r = node.propose(delta, this.d.now());
    if ("notLeader" in r) return this.deposed();
    this.own.set(r.index, r.term);
    this.handle({ messages: r.messages });
    await this.waitFor(r.index, r.term, change.erasure);
  }

  private leaderNode(): RaftNode {
    if (!this.leading())
      fail("NOT_LEADER", "this enclave does not lead its replica set; ask the leader", "unavailable");
    return this.node!;
  }

  private waitFor(index: number, term: number, erasure: boolean): Promise<void> {
    const members = new Set(this.node!.status().members);
    return new Promise((resolve, reject) => {
      this.waiters.push({ index, term, erasure, members, resolve, reject });
      this.settle();
    });
  }

  tick(now: number): void {
    if (this.wiped || !this.node) return;
    this.handle(this.node.tick(now));
  }

  /** An envelope the host carried to us. */
  receive(from: string, payload: Uint8Array): Promise<void> {
    if (this.wiped) return Promise.resolve();
    return this.links.receive(from, payload);
  }

  private onMessage(from: string, bytes: Uint8Array): void {
    if (this.wiped || !this.node || bytes.length === 0) return;
    let msg: ReturnType<typeof decodeMessage>;
    try {
      msg = decodeMessage(bytes);
    } catch (err) {
      this.d.warn("peer message refused", { peer: from, code: (err as Error).message.slice(0, 80) });
      return;
    }
    this.handle(this.node.receive(from, msg, this.d.now()));
  }

  private handle(out: Output): void {
    if (this.wiped) return;
    for (const m of out.messages) {
      this.links.send(m.to, encodeMessage(m.msg));
      // A snapshot this member made carries every live share: zeroed once encoded (entries are the log's own).
      if (m.msg.type === "snapshot") m.msg.data.fill(0);
    }
    if (out.wiped) {
      this.onWipe("no majority heard within the lease");
      return;
    }
    const s = this.node!.status();
    const now = this.d.now();
    const seen = `${s.role}/${s.term}/${s.leader ?? ""}/${s.members.length}`;
    if (seen !== this.lastSeen) {
      this.lastSeen = seen;
      this.d.info?.("replica member state", {
        role: s.role,
        term: s.term,
        leader: (s.leader ?? "").slice(0, 16),
        members: s.members.length,
        commit: s.commitIndex,
      });
    }
    for (const [id, at] of Object.entries(s.lastHeard)) if (Number.isFinite(at)) this.lastHeard.set(id, at);
    // A member removed from the configuration: its channel's keys go (a joiner not yet added keeps its own).
    for (const id of this.configured) if (!s.members.includes(id)) this.links.forget(id);
    this.configured = new Set(s.members.filter((id) => id !== this.d.id));
    // Channels to every member stay open, followers' to each other too: an election after the leader's loss
    // must not wait for handshakes, or the members' leases could run out first.
    for (const id of this.configured) this.links.ensure(id);
    this.lastHeard.set(this.d.id, now);
    if (this.own.size > 0 && this.ownDropped()) {
      this.onWipe("a change it made as leader left its log uncommitted");
      return;
    }
    this.settle();
  }

  /** Whether one of our own uncommitted entries is no longer in our log as we made it (truncated, §5.3). */
  private ownDropped(): boolean {
    const held = new Map(this.node!.entries().map((e) => [e.index, e.term]));
    for (const [index, term] of this.own) if (held.get(index) !== term) return true;
    return false;
  }

  /** Resolves every waiter whose change is committed (an erasure: applied by all, removals past their lease). */
  private settle(): void {
    const node = this.node!;
    const s = node.status();
    const now = this.d.now();
    const t = this.d.timing;
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!;
      if (s.role !== "leader" || s.term !== w.term) {
        this.waiters.splice(i, 1);
        w.reject(notLeader());
        continue;
      }
      if (s.commitIndex < w.index) continue;
      if (w.erasure) {
        if (!node.appliedByAll(w.index)) continue;
        // A member removed since the proposal may still hold the erased share until its lease runs out.
        const leaseOver = [...w.members]
          .filter((m) => !s.members.includes(m))
          .every(
            (m) =>
              now - (this.lastHeard.get(m) ?? 0) >
              (t.leaseMs * (1 + t.maxDrift)) / (1 - t.maxDrift) + t.heartbeatMs,
          );
        if (!leaseOver) continue;
      }
      this.waiters.splice(i, 1);
      w.resolve();
    }
  }

  private deposed(): never {
    this.onWipe("lost its leadership with changes the set did not commit");
    return fail("NOT_LEADER", "this enclave lost its leadership; ask the new leader", "unavailable");
  }

  private onWipe(why: string): void {
    if (this.wiped) return;
    this.wipeState();
    for (const w of this.waiters.splice(0)) w.reject(notLeader());
    this.d.onWiped(why);
  }

  /** Forgets every share and key: the state, the channels. */
  private wipeState(): void {
    this.wiped = true;
    this.links.wipeAll();
    const core = this.core;
    if (!core) return;
    for (const c of core.coins.all()) {
      wipeCoin(c);
      core.coins.remove(c);
    }
  }

  status(): E.ReplicaStatus {
    const s = this.node?.status();
    const now = this.d.now();
    return {
      setId: this.setId,
      memberId: this.d.id,
      role: this.wiped
        ? "wiped"
        : this.founding && !this.setId
          ? "founding"
          : !this.setId
            ? "none"
            : (s?.role ?? "none"),
      term: BigInt(s?.term ?? 0),
      leaderId: s?.leader ?? "",
      members: (s?.members ?? []).map((id) => ({
        id,
        appliedIndex: BigInt(s?.appliedBy?.[id] ?? 0),
        lastHeardMsAgo: BigInt(this.lastHeard.has(id) ? now - this.lastHeard.get(id)! : -1),
      })),
      commitIndex: BigInt(s?.commitIndex ?? 0),
      appliedIndex: BigInt(s?.appliedIndex ?? 0),
    };
  }
}

const notLeader = () =>
  new ProtocolError(
    "NOT_LEADER",
    "this enclave lost its leadership before the set committed; ask the leader",
    "unavailable",
  );
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
