// The replication core of the enclave replica set (DESIGN.md §4.1, issue #23): Raft (Ongaro & Ousterhout, "In
// Search of an Understandable Consensus Algorithm (Extended Version)") with single-server membership changes
// (Ongaro's dissertation §4.1), plus what a memory-only, secret-holding replica needs: applied entries lose their
// data, followers report what they applied, the leader removes the unreachable, and a node cut off from every
// majority for a lease wipes itself. Pure and deterministic: no I/O, no timers, no clock, no randomness but the
// injected one; time is the caller's `now` (this node's local clock, ms). RAFT.md explains each rule.
import type {
  AppendEntries,
  AppendReply,
  InstallSnapshot,
  Message,
  RequestVote,
  SnapshotReply,
  VoteReply,
} from "./raft-codec.ts";
import { type Entry, type NodeId, RaftLog, zeroEntry } from "./raft-log.ts";

export type { Message } from "./raft-codec.ts";
export { decodeMessage, encodeMessage, LIMITS } from "./raft-codec.ts";
export type { Entry, NodeId } from "./raft-log.ts";

export interface StateMachine {
  /** A committed command, in index order, once each. The node zeroes `data` when this returns. */
  apply(e: { index: number; term: number; data: Uint8Array }): void;
  /** The current state, for a member lacking entries whose data is gone. */
  snapshot(): Uint8Array;
  /** Replaces all state. The node zeroes `snapshot` when this returns. */
  restore(snapshot: Uint8Array): void;
  /** The lease is lost: forget everything. */
  wipe(): void;
}

export interface Options {
  id: NodeId;
  /** Base election timeout; each one drawn is in [base, 2·base) (Raft §5.2). */
  electionTimeoutMs: number;
  heartbeatMs: number;
  leaseMs: number;
  removeUnreachableAfterMs: number;
  /** An integer in [0, max). */
  random: (maxExclusive: number) => number;
  /** The most any member's clock rate may differ from true time (default 0.01): ages learnt are stretched by it. */
  maxDrift?: number;
  /** At most this many entries per AppendEntries (default 64). */
  maxBatch?: number;
}

export type Role = "follower" | "candidate" | "leader" | "wiped";
export interface Output {
  messages: { to: NodeId; msg: Message }[];
  wiped?: boolean;
}
export type Proposed = { index: number; term: number; messages: Output["messages"] };
export type NotLeader = { notLeader: NodeId | undefined };
export type Busy = { busy: string };

export interface Status {
  id: NodeId;
  role: Role;
  term: number;
  leader?: NodeId;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  /** The latest configuration in the log (in force, dissertation §4.1) and the one in force at commitIndex. */
  members: NodeId[];
  committedMembers: NodeId[];
  /** Per member, the latest time on this node's clock at which it surely heard from it (-Infinity: never). */
  lastHeard: Record<NodeId, number>;
  /** The latest time on this node's clock at which a majority of its configuration surely heard from it. */
  quorumAt: number;
  matchIndex?: Record<NodeId, number>;
  appliedBy?: Record<NodeId, number>;
}

export interface RaftNode {
  tick(now: number): Output;
  receive(from: NodeId, msg: Message, now: number): Output;
  /** Appends a command; the node takes the buffer and zeroes it when applied. */
  propose(data: Uint8Array, now: number): Proposed | NotLeader;
  addMember(id: NodeId, now: number): Proposed | NotLeader | Busy;
  removeMember(id: NodeId, now: number): Proposed | NotLeader | Busy;
  status(): Status;
  /** Leader only: every member of the committed and the latest configuration reports appliedIndex >= index. */
  appliedByAll(index: number): boolean;
  /** What this node still holds (for invariant checks). */
  entries(): readonly Entry[];
}

interface Peer {
  next: number;
  match: number;
  applied: number;
  lastSent: number;
  /** When this leader started counting this member's silence (its term's start, or the member's addition). */
  since: number;
}

/** Zeroes the secret-bearing parts of a message we will not keep. */
function discard(msg: Message): void {
  if (msg.type === "append") for (const e of msg.entries) zeroEntry(e);
  if (msg.type === "snapshot") msg.data.fill(0);
}

const majority = (n: number) => Math.floor(n / 2) + 1;
const NONE = Number.NEGATIVE_INFINITY;

class Node implements RaftNode {
  private role: Role = "follower";
  private term = 0;
  private votedFor: NodeId | undefined;
  private leader: NodeId | undefined;
  private readonly log: RaftLog;
  private commitIndex = 0;
  private appliedIndex = 0;
  private electionAt: number;
  /** Last valid AppendEntries/InstallSnapshot from a current leader (dissertation §4.2.3). */
  private leaderSeenAt = NONE;
  /** Lease: per member a time (own clock) it surely heard us; and when a majority surely did. */
  private readonly heard = new Map<NodeId, number>();
  private quorumAt: number;
  /** The latest `sentAt` each peer sent us, echoed back so the peer can date our contact on its own clock. */
  private readonly peerClock = new Map<NodeId, number>();
  private votes = new Set<NodeId>();
  private peers = new Map<NodeId, Peer>();
  /** The index of this leader's no-op; config changes wait until it commits (dissertation §4.1, the fix). */
  private noopIndex = 0;
  private out: Output["messages"] = [];
  private readonly drift: number;
  private readonly maxBatch: number;

  constructor(
    private readonly opts: Options,
    private readonly sm: StateMachine,
    bootstrap: { members: NodeId[] } | undefined,
    now: number,
  ) {
    this.log = new RaftLog(bootstrap?.members ?? []);
    this.drift = opts.maxDrift ?? 0.01;
    this.maxBatch = opts.maxBatch ?? 64;
    // Grace at start: a bootstrapped node counts its start as contact with every member; a joining node holds
    // nothing and has no lease until it is given state.
    this.quorumAt = bootstrap ? now : NONE;
    for (const m of bootstrap?.members ?? []) this.heard.set(m, now);
    this.electionAt = now + this.timeout();
  }

  // ---- public API ----

  tick(now: number): Output {
    if (this.role === "wiped") return { messages: [] };
    this.updateQuorum(now);
    if (this.leaseLost(now)) return this.wipe();
    if (this.role === "leader") {
      this.maybeRemoveUnreachable(now);
      for (const id of this.peers.keys())
        if (now - this.peers.get(id)!.lastSent >= this.opts.heartbeatMs) this.sendTo(id, now);
    } else if (now >= this.electionAt && this.members().includes(this.opts.id)) {
      this.startElection(now);
    }
    return this.flush();
  }

  receive(from: NodeId, msg: Message, now: number): Output {
    if (this.role === "wiped" || from === this.opts.id) {
      discard(msg);
      return { messages: [] };
    }
    // Votes and replies count only from members of our configuration: a removed server's higher term must not
    // depose the leader through a reply (the same disruption dissertation §4.2.3 guards RequestVote against).
    const fromMember = this.members().includes(from);
    if (msg.type !== "append" && msg.type !== "snapshot" && !fromMember) return { messages: [] };
    if (msg.type === "vote") this.onRequestVote(from, msg, now);
    else if (this.fence(from, msg, now)) {
      if (msg.type === "voteReply") this.onVoteReply(from, msg, now);
      else if (msg.type === "append") this.onAppend(from, msg, now);
      else if (msg.type === "snapshot") this.onSnapshot(from, msg, now);
      else this.onReply(from, msg, now);
    }
    return this.flush();
  }

  propose(data: Uint8Array, now: number): Proposed | NotLeader {
    if (this.role !== "leader") return { notLeader: this.role === "wiped" ? undefined : this.leader };
    return { ...this.appendOwn({ kind: "command", data }, now), messages: this.flush().messages };
  }

  addMember(id: NodeId, now: number): Proposed | NotLeader | Busy {
    const members = this.members();
    // The new member holds nothing yet, so the members heard lately must be a majority of the larger set by
    // themselves, or adding it could leave no majority able to elect (cf. dissertation §4.2.1).
    const lately = members.filter(
      (m) => m === this.opts.id || now - (this.heard.get(m) ?? NONE) < this.opts.electionTimeoutMs,
    );
    const why = members.includes(id)
      ? "already a member"
      : lately.length < majority(members.length + 1)
        ? "too few members heard lately to add one; remove the unreachable first"
        : undefined;
    return this.sent(this.changeConfig(why, [...members, id], now));
  }

  removeMember(id: NodeId, now: number): Proposed | NotLeader | Busy {
    const members = this.members();
    const why = !members.includes(id)
      ? "not a member"
      : id === this.opts.id
        ? "a leader does not remove itself"
        : undefined;
    return this.sent(
      this.changeConfig(
        why,
        members.filter((m) => m !== id),
        now,
      ),
    );
  }

  status(): Status {
    const s: Status = {
      id: this.opts.id,
      role: this.role,
      term: this.term,
      commitIndex: this.commitIndex,
      appliedIndex: this.appliedIndex,
      lastIndex: this.log.lastIndex,
      members: [...this.members()],
      committedMembers: [...this.log.configAt(this.commitIndex)],
      lastHeard: Object.fromEntries(this.members().map((m) => [m, this.heard.get(m) ?? NONE])),
      quorumAt: this.quorumAt,
    };
    if (this.leader !== undefined) s.leader = this.leader;
    if (this.role === "leader") {
      s.matchIndex = Object.fromEntries([...this.peers].map(([id, p]) => [id, p.match]));
      s.appliedBy = Object.fromEntries([...this.peers].map(([id, p]) => [id, p.applied]));
    }
    return s;
  }

  appliedByAll(index: number): boolean {
    if (this.role !== "leader") return false;
    // A member dropped by an uncommitted change may come back if the change is lost, so it counts until then.
    const all = new Set([...this.log.configAt(this.commitIndex), ...this.members()]);
    for (const m of all) {
      const applied = m === this.opts.id ? this.appliedIndex : this.peers.get(m)?.applied;
      if (applied === undefined || applied < index) return false;
    }
    return true;
  }

  entries(): readonly Entry[] {
    return this.log.entries;
  }

  // ---- terms, elections (Raft §5.1, §5.2, §5.4.1) ----

  private timeout(): number {
    const base = this.opts.electionTimeoutMs;
    return base + Math.min(base - 1, Math.max(0, Math.floor(this.opts.random(base))));
  }

  private members(): NodeId[] {
    return this.log.latestConfig().members;
  }

  /**
   * Raft §5.1: a message from a later term makes us a follower in it; one from an earlier term is stale (its
   * sender learns our term from the reply). Returns whether the message belongs to our term.
   */
  private fence(from: NodeId, msg: Exclude<Message, RequestVote>, now: number): boolean {
    if (msg.term > this.term) this.becomeFollower(msg.term, undefined);
    if (msg.term === this.term) return true;
    if (msg.type === "append" || msg.type === "snapshot") {
      discard(msg);
      const reply: AppendReply = {
        type: "appendReply",
        ...this.clock(msg.sentAt, now),
        success: false,
        matchIndex: 0,
        appliedIndex: this.appliedIndex,
      };
      this.out.push({ to: from, msg: reply });
    }
    return false;
  }

  private becomeFollower(term: number, leader: NodeId | undefined): void {
    if (term > this.term) {
      this.term = term;
      this.votedFor = undefined;
    }
    this.role = "follower";
    this.leader = leader;
    this.peers.clear();
  }

  private startElection(now: number): void {
    this.term += 1;
    this.role = "candidate";
    this.leader = undefined;
    this.votedFor = this.opts.id;
    this.votes = new Set([this.opts.id]);
    this.electionAt = now + this.timeout();
    this.peers.clear();
    if (this.countIn(this.members(), this.votes)) {
      this.becomeLeader(now);
      return;
    }
    const vote: Omit<RequestVote, "echo"> = {
      type: "vote",
      term: this.term,
      sentAt: now,
      lastIndex: this.log.lastIndex,
      lastTerm: this.log.lastTerm,
    };
    for (const m of this.members())
      if (m !== this.opts.id) this.out.push({ to: m, msg: { ...vote, echo: this.peerClock.get(m) ?? null } });
  }

  private onRequestVote(from: NodeId, msg: RequestVote, now: number): void {
    // Dissertation §4.2.3: while a current leader was heard within the minimum election timeout, a vote request
    // is ignored entirely (no term update, no vote), so a removed or partitioned server cannot depose it.
    if (this.role === "leader" || now - this.leaderSeenAt < this.opts.electionTimeoutMs) return;
    if (msg.term > this.term) this.becomeFollower(msg.term, undefined);
    this.peerClock.set(from, msg.sentAt);
    this.noteHeard(from, msg.echo); // a candidate that echoes our clock has heard from us
    // Raft §5.4.1: only a candidate whose log is at least as up to date as ours gets our vote.
    const upToDate =
      msg.lastTerm > this.log.lastTerm ||
      (msg.lastTerm === this.log.lastTerm && msg.lastIndex >= this.log.lastIndex);
    const granted =
      msg.term === this.term && upToDate && (this.votedFor === undefined || this.votedFor === from);
    if (granted) {
      this.votedFor = from;
      this.electionAt = now + this.timeout();
    }
    this.out.push({ to: from, msg: { type: "voteReply", ...this.clock(msg.sentAt, now), granted } });
  }

  private onVoteReply(from: NodeId, msg: VoteReply, now: number): void {
    if (this.role !== "candidate") return;
    // Any answer proves contact; counting refusals too keeps a majority's leases alive through split votes.
    this.peerClock.set(from, msg.sentAt);
    this.noteHeard(from, msg.echo);
    if (!msg.granted) return;
    this.votes.add(from);
    if (this.countIn(this.members(), this.votes)) this.becomeLeader(now);
  }

  private becomeLeader(now: number): void {
    this.role = "leader";
    this.leader = this.opts.id;
    this.peers.clear();
    for (const m of this.members()) if (m !== this.opts.id) this.addPeer(m, now);
    this.updateQuorum(now);
    // Raft §8 / dissertation §4.1: a no-op of our own term, so earlier entries commit and config changes may go.
    this.noopIndex = this.appendOwn({ kind: "noop", data: null }, now).index;
  }

  private addPeer(id: NodeId, now: number): void {
    this.peers.set(id, { next: this.log.lastIndex + 1, match: 0, applied: 0, lastSent: NONE, since: now });
  }

  private countIn(members: NodeId[], set: { has(id: NodeId): boolean }): boolean {
    return members.filter((m) => set.has(m)).length >= majority(members.length);
  }

  // ---- log replication (Raft §5.3) and commitment (§5.4.2) ----

  private appendOwn(
    e: Pick<Entry, "kind" | "data" | "members">,
    now: number,
  ): { index: number; term: number } {
    const entry: Entry = { index: this.log.lastIndex + 1, term: this.term, ...e };
    this.log.append(entry);
    if (entry.kind === "config") this.syncPeers(now);
    this.advanceCommit();
    for (const id of this.peers.keys()) this.sendTo(id, now);
    return { index: entry.index, term: entry.term };
  }

  /** Leader: peers follow the latest configuration (dissertation §4.1: it takes effect when appended). */
  private syncPeers(now: number): void {
    const members = this.members();
    for (const id of [...this.peers.keys()]) if (!members.includes(id)) this.peers.delete(id);
    for (const m of members) if (m !== this.opts.id && !this.peers.has(m)) this.addPeer(m, now);
  }

  private sendTo(id: NodeId, now: number): void {
    const p = this.peers.get(id)!;
    p.lastSent = now;
    const prevIndex = p.next - 1;
    const entries: Entry[] = [];
    for (let i = p.next; i <= this.log.lastIndex && entries.length < this.maxBatch; i++)
      entries.push(this.log.entry(i)!);
    // An entry below our base, or a command already applied here, has no data left: send the current state.
    const gone =
      prevIndex < this.log.baseIndex || entries.some((e) => e.kind === "command" && e.data === null);
    const base = {
      term: this.term,
      sentAt: now,
      echo: this.peerClock.get(id) ?? null,
      quorumAge: now - this.quorumAt,
    };
    if (gone) {
      const snap: InstallSnapshot = {
        type: "snapshot",
        ...base,
        lastIndex: this.appliedIndex,
        lastTerm: this.log.termAt(this.appliedIndex)!,
        members: [...this.log.configAt(this.appliedIndex)],
        data: this.sm.snapshot(),
      };
      this.out.push({ to: id, msg: snap });
      p.next = this.appliedIndex + 1; // optimistic; a refusal of the next AppendEntries brings it back
      return;
    }
    const msg: AppendEntries = {
      type: "append",
      ...base,
      prevIndex,
      prevTerm: this.log.termAt(prevIndex)!,
      entries,
      leaderCommit: this.commitIndex,
      compactTo: this.compactPoint(),
    };
    this.out.push({ to: id, msg });
  }

  /** Every member has applied up to here. */
  private compactPoint(): number {
    let min = this.appliedIndex;
    for (const p of this.peers.values()) min = Math.min(min, p.applied);
    return min;
  }

  /** Raft §5.3/§5.4.2: commit the highest index of OUR term that a majority holds (earlier terms follow it). */
  private advanceCommit(): void {
    if (this.role !== "leader") return;
    const members = this.members();
    for (let n = this.log.lastIndex; n > this.commitIndex; n--) {
      if (this.log.termAt(n)! < this.term) break; // Figure 8: never by counting replicas of an older term
      const holders = members.filter((m) =>
        m === this.opts.id ? true : (this.peers.get(m)?.match ?? 0) >= n,
      ).length;
      if (holders >= majority(members.length)) {
        this.commitIndex = n;
        break;
      }
    }
    this.applyCommitted();
    this.log.compactTo(Math.min(this.compactPoint(), this.appliedIndex));
  }

  /** Applies committed entries in order; a command's data is zeroed and dropped as soon as it is applied. */
  private applyCommitted(): void {
    while (this.appliedIndex < this.commitIndex) {
      const e = this.log.entry(this.appliedIndex + 1)!;
      if (e.kind === "command" && e.data) this.sm.apply({ index: e.index, term: e.term, data: e.data });
      zeroEntry(e);
      this.appliedIndex = e.index;
    }
  }

  private onAppend(from: NodeId, msg: AppendEntries, now: number): void {
    const accepted = this.acceptLeader(from, msg, now);
    const reply = (success: boolean, matchIndex: number) =>
      this.out.push({
        to: from,
        msg: {
          type: "appendReply",
          ...this.clock(msg.sentAt, now),
          success,
          matchIndex,
          appliedIndex: this.appliedIndex,
        },
      });
    // Raft §5.3: the entry before the new ones must match; a missing or conflicting one is refused with a hint.
    const matches = msg.prevIndex < this.log.baseIndex || this.log.termAt(msg.prevIndex) === msg.prevTerm;
    if (!accepted || !matches) {
      for (const e of msg.entries) zeroEntry(e);
      reply(false, accepted ? this.hint(msg.prevIndex) : this.log.lastIndex);
      return;
    }
    for (const e of msg.entries) this.take(e);
    const lastNew = msg.prevIndex + msg.entries.length;
    if (msg.leaderCommit > this.commitIndex)
      this.commitIndex = Math.max(this.commitIndex, Math.min(msg.leaderCommit, lastNew, this.log.lastIndex));
    this.applyCommitted();
    this.log.compactTo(Math.min(msg.compactTo, this.appliedIndex));
    reply(true, Math.max(lastNew, this.log.baseIndex));
  }

  /** One entry from the leader: kept, or (already held, or below our base) zeroed and dropped. */
  private take(e: Entry): void {
    const mine = this.log.termAt(e.index);
    if (e.index <= this.log.baseIndex || mine === e.term) {
      zeroEntry(e);
      return;
    }
    if (mine !== undefined) {
      // Raft §5.3: a conflicting entry and all after it go (zeroed); committed ones never conflict (§5.4).
      if (e.index <= this.commitIndex)
        throw new Error(`raft: leader conflicts with committed entry ${e.index}`);
      this.log.truncateFrom(e.index);
    }
    if (e.kind !== "command") e.data = null;
    this.log.append(e);
  }

  /** Where the leader should look next: before the first entry of the conflicting term, never below commit. */
  private hint(prevIndex: number): number {
    if (prevIndex > this.log.lastIndex) return this.log.lastIndex;
    const t = this.log.termAt(prevIndex);
    let i = prevIndex - 1;
    while (i > this.commitIndex && this.log.termAt(i) === t) i--;
    return Math.max(i, this.commitIndex);
  }

  /**
   * A valid AppendEntries/InstallSnapshot of our term: its sender is the leader (Raft §5.2: a candidate steps
   * down). Updates the election timer, the disruptive-server clock and the lease. A node that has no lease yet
   * (a joiner) refuses state until the leader can date the contact on our clock (it then sends `echo`).
   */
  private acceptLeader(from: NodeId, msg: AppendEntries | InstallSnapshot, now: number): boolean {
    if (this.role !== "follower" || this.leader !== from) this.becomeFollower(msg.term, from);
    this.leaderSeenAt = now;
    this.electionAt = now + this.timeout();
    this.peerClock.set(from, msg.sentAt);
    if (msg.echo === null) return this.quorumAt !== NONE;
    this.noteHeard(from, msg.echo);
    // The leader had a majority quorumAge ago on its clock, and that was no earlier than our echoed send time
    // minus that age (the leader sent after it received our message); stretched by the allowed drift.
    this.quorumAt = Math.max(this.quorumAt, Math.min(msg.echo, msg.echo - msg.quorumAge * (1 + this.drift)));
    return true;
  }

  private onSnapshot(from: NodeId, msg: InstallSnapshot, now: number): void {
    const accepted = this.acceptLeader(from, msg, now);
    if (accepted && msg.lastIndex > this.appliedIndex) {
      // Raft §7: keep what follows the snapshot if our log agrees at its last entry, else discard the log.
      if (this.log.termAt(msg.lastIndex) === msg.lastTerm && msg.lastIndex > this.log.baseIndex) {
        this.log.compactTo(msg.lastIndex);
      } else this.log.resetTo(msg.lastIndex, msg.lastTerm, msg.members);
      this.sm.restore(msg.data);
      this.appliedIndex = msg.lastIndex;
      this.commitIndex = Math.max(this.commitIndex, msg.lastIndex);
    }
    msg.data.fill(0);
    const reply: SnapshotReply = {
      type: "snapshotReply",
      ...this.clock(msg.sentAt, now),
      matchIndex: accepted ? this.commitIndex : 0,
      appliedIndex: this.appliedIndex,
    };
    this.out.push({ to: from, msg: reply });
  }

  private onReply(from: NodeId, msg: AppendReply | SnapshotReply, now: number): void {
    const p = this.peers.get(from);
    if (this.role !== "leader" || !p) return;
    this.noteHeard(from, msg.echo);
    this.peerClock.set(from, msg.sentAt);
    this.updateQuorum(now);
    p.applied = Math.max(p.applied, msg.appliedIndex);
    if (msg.type === "snapshotReply" || msg.success) {
      p.match = Math.max(p.match, msg.matchIndex);
      p.next = Math.max(p.next, p.match + 1);
      this.advanceCommit();
    } else p.next = Math.max(p.match + 1, Math.min(p.next - 1, msg.matchIndex + 1));
    if (p.next <= this.log.lastIndex || (msg.type === "appendReply" && !msg.success)) this.sendTo(from, now);
  }

  // ---- membership (dissertation §4.1) and removal of the unreachable ----

  private changeConfig(why: string | undefined, members: NodeId[], now: number): Proposed | NotLeader | Busy {
    if (this.role !== "leader") return { notLeader: this.role === "wiped" ? undefined : this.leader };
    if (why) return { busy: why };
    if (this.commitIndex < this.noopIndex) return { busy: "no entry of this term is committed yet" };
    if (this.log.latestConfig().index > this.commitIndex)
      return { busy: "a configuration change is in progress" };
    return { ...this.appendOwn({ kind: "config", data: null, members }, now), messages: [] };
  }

  /** One at a time, and only while the rest still holds a majority of the configuration without it. */
  private maybeRemoveUnreachable(now: number): void {
    const members = this.members();
    for (const m of members) {
      const p = this.peers.get(m);
      if (!p || now - Math.max(p.since, this.heard.get(m) ?? NONE) < this.opts.removeUnreachableAfterMs)
        continue;
      const rest = members.filter((x) => x !== m);
      // "Reachable" is the opposite of what makes m removable: heard within removeUnreachableAfterMs.
      const reachable = rest.filter(
        (x) => x === this.opts.id || now - (this.heard.get(x) ?? NONE) < this.opts.removeUnreachableAfterMs,
      );
      if (reachable.length < majority(rest.length)) return;
      const r = this.removeMember(m, now);
      if ("index" in r) this.out.push(...r.messages);
      return;
    }
  }

  // ---- lease (RAFT.md "lease") ----

  private noteHeard(from: NodeId, echo: number | null): void {
    if (echo !== null) this.heard.set(from, Math.max(this.heard.get(from) ?? NONE, echo));
  }

  /** Direct contact: the majority-th latest time among the members (ourselves: now). */
  private updateQuorum(now: number): void {
    const members = this.members();
    const times = members
      .map((m) => (m === this.opts.id ? now : (this.heard.get(m) ?? NONE)))
      .sort((a, b) => b - a);
    const t = times[majority(members.length) - 1];
    if (t !== undefined && this.members().includes(this.opts.id)) this.quorumAt = Math.max(this.quorumAt, t);
  }

  private leaseLost(now: number): boolean {
    const holdsNothing =
      this.appliedIndex === 0 && this.log.lastIndex === 0 && !this.members().includes(this.opts.id);
    if (holdsNothing && this.quorumAt === NONE) return false; // a joiner not yet added
    return now - this.quorumAt >= this.opts.leaseMs;
  }

  private wipe(): Output {
    this.sm.wipe();
    this.log.wipe();
    this.role = "wiped";
    this.leader = undefined;
    this.peers.clear();
    this.votes.clear();
    this.out = [];
    return { messages: [], wiped: true };
  }

  /** The header of a reply: our term, our clock, and the sender's `sentAt` echoed. */
  private clock(echo: number, now: number): { term: number; sentAt: number; echo: number } {
    return { term: this.term, sentAt: now, echo };
  }

  private sent<T>(r: T | Proposed): T | Proposed {
    return typeof r === "object" && r !== null && "index" in r
      ? { ...r, messages: this.flush().messages }
      : r;
  }

  private flush(): Output {
    const messages = this.out;
    this.out = [];
    return { messages };
  }
}

/** A replica. Without `bootstrap` it starts empty, outside any configuration, and waits to be added. */
export function createNode(
  opts: Options,
  sm: StateMachine,
  bootstrap: { members: NodeId[] } | undefined,
  now: number,
): RaftNode {
  return new Node(opts, sm, bootstrap, now);
}
