// The state of one replica and its bookkeeping: terms and votes, the log and what is applied, the lease clocks,
// the leader's view of its peers, and the outbox. enclave/replica/raft.ts drives it with the protocol's rules.
import {
  majority,
  type Options,
  type Output,
  type Proposed,
  type Role,
  type StateMachine,
  type Status,
} from "./raft-api.ts";
import { type Entry, type NodeId, RaftLog, zeroEntry } from "./raft-log.ts";

export interface Peer {
  next: number;
  match: number;
  applied: number;
  lastSent: number;
  /** When this leader started counting this member's silence (its term's start, or the member's addition). */
  since: number;
}

export const NONE = Number.NEGATIVE_INFINITY;

export class NodeState {
  protected role: Role = "follower";
  protected term = 0;
  protected votedFor: NodeId | undefined;
  protected leader: NodeId | undefined;
  protected readonly log: RaftLog;
  protected commitIndex = 0;
  protected appliedIndex = 0;
  protected electionAt: number;
  /** Last valid AppendEntries/InstallSnapshot from a current leader (dissertation §4.2.3). */
  protected leaderSeenAt = NONE;
  /** Lease: per member a time (own clock) it surely heard us; and when a majority surely did. */
  protected readonly heard = new Map<NodeId, number>();
  protected quorumAt: number;
  /** The latest `sentAt` each peer sent us, echoed back so the peer can date our contact on its own clock. */
  protected readonly peerClock = new Map<NodeId, number>();
  protected votes = new Set<NodeId>();
  protected peers = new Map<NodeId, Peer>();
  /** The index of this leader's no-op; config changes wait until it commits (dissertation §4.1, the fix). */
  protected noopIndex = 0;
  protected out: Output["messages"] = [];
  protected readonly drift: number;
  protected readonly maxBatch: number;

  constructor(
    protected readonly opts: Options,
    protected readonly sm: StateMachine,
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

  protected timeout(): number {
    const base = this.opts.electionTimeoutMs;
    return base + Math.min(base - 1, Math.max(0, Math.floor(this.opts.random(base))));
  }

  protected members(): NodeId[] {
    return this.log.latestConfig().members;
  }

  protected becomeFollower(term: number, leader: NodeId | undefined): void {
    if (term > this.term) {
      this.term = term;
      this.votedFor = undefined;
    }
    this.role = "follower";
    this.leader = leader;
    this.peers.clear();
  }

  protected addPeer(id: NodeId, now: number): void {
    this.peers.set(id, { next: this.log.lastIndex + 1, match: 0, applied: 0, lastSent: NONE, since: now });
  }

  protected countIn(members: NodeId[], set: { has(id: NodeId): boolean }): boolean {
    return members.filter((m) => set.has(m)).length >= majority(members.length);
  }

  /** Every member has applied up to here. */
  protected compactPoint(): number {
    let min = this.appliedIndex;
    for (const p of this.peers.values()) min = Math.min(min, p.applied);
    return min;
  }

  /** Applies committed entries in order; a command's data is zeroed and dropped as soon as it is applied. */
  protected applyCommitted(): void {
    while (this.appliedIndex < this.commitIndex) {
      const e = this.log.entry(this.appliedIndex + 1)!;
      if (e.kind === "command" && e.data) this.sm.apply({ index: e.index, term: e.term, data: e.data });
      zeroEntry(e);
      this.appliedIndex = e.index;
    }
  }

  protected noteHeard(from: NodeId, echo: number | null): void {
    if (echo !== null) this.heard.set(from, Math.max(this.heard.get(from) ?? NONE, echo));
  }

  /** Direct contact: the majority-th latest time among the members (ourselves: now). */
  protected updateQuorum(now: number): void {
    const members = this.members();
    const times = members
      .map((m) => (m === this.opts.id ? now : (this.heard.get(m) ?? NONE)))
      .sort((a, b) => b - a);
    const t = times[majority(members.length) - 1];
    if (t !== undefined && this.members().includes(this.opts.id)) this.quorumAt = Math.max(this.quorumAt, t);
  }

  protected leaseLost(now: number): boolean {
    const holdsNothing =
      this.appliedIndex === 0 && this.log.lastIndex === 0 && !this.members().includes(this.opts.id);
    if (holdsNothing && this.quorumAt === NONE) return false; // a joiner not yet added
    return now - this.quorumAt >= this.opts.leaseMs;
  }

  protected wipe(): Output {
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
  protected clock(echo: number, now: number): { term: number; sentAt: number; echo: number } {
    return { term: this.term, sentAt: now, echo };
  }

  protected sent<T>(r: T | Proposed): T | Proposed {
    return typeof r === "object" && r !== null && "index" in r
      ? { ...r, messages: this.flush().messages }
      : r;
  }

  protected flush(): Output {
    const messages = this.out;
    this.out = [];
    return { messages };
  }
}
