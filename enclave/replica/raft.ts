// The replication core of the enclave replica set (DESIGN.md §4.1, issue #23): Raft (Ongaro & Ousterhout, "In
// Search of an Understandable Consensus Algorithm (Extended Version)") with single-server membership changes
// (Ongaro's dissertation §4.1), plus what a memory-only, secret-holding replica needs: applied entries lose their
// data, followers report what they applied, the leader removes the unreachable, and a node cut off from every
// majority for a lease wipes itself. Pure and deterministic: no I/O, no timers, no clock, no randomness but the
// injected one; time is the caller's `now` (this node's local clock, ms). RAFT.md explains each rule.

import {
  type Busy,
  majority,
  type NotLeader,
  type Options,
  type Output,
  type Proposed,
  type RaftNode,
  type StateMachine,
} from "./raft-api.ts";
import type {
  AppendEntries,
  AppendReply,
  InstallSnapshot,
  Message,
  RequestVote,
  SnapshotReply,
  VoteReply,
} from "./raft-codec.ts";
import { zeroReceived } from "./raft-codec.ts";
import { type Entry, type NodeId, zeroEntry } from "./raft-log.ts";

export type * from "./raft-api.ts";
export type { Message } from "./raft-codec.ts";
export { decodeMessage, encodeMessage, LIMITS, zeroReceived } from "./raft-codec.ts";
export type { Entry, NodeId } from "./raft-log.ts";

import { NONE, NodeState } from "./raft-state.ts";

class Node extends NodeState implements RaftNode {
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
      zeroReceived(msg);
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
    // themselves, or adding it could leave no majority able to elect (cf. dissertation §4.2.1). A set of one
    // can only grow by counting its first joiner, which the caller has just reached (replica/member.ts admits
    // only a peer whose attested channel is open): until that joiner has the state, the set of two needs both.
    const lately = members.filter(
      (m) => m === this.opts.id || now - (this.heard.get(m) ?? NONE) < this.opts.electionTimeoutMs,
    );
    const counted = lately.length + (members.length === 1 ? 1 : 0);
    const why = members.includes(id)
      ? "already a member"
      : counted < majority(members.length + 1)
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

  // ---- terms, elections (Raft §5.1, §5.2, §5.4.1) ----

  /**
   * Raft §5.1: a message from a later term makes us a follower in it; one from an earlier term is stale (its
   * sender learns our term from the reply). Returns whether the message belongs to our term.
   */
  private fence(from: NodeId, msg: Exclude<Message, RequestVote>, now: number): boolean {
    if (msg.term > this.term) this.becomeFollower(msg.term, undefined);
    if (msg.term === this.term) return true;
    if (msg.type === "append" || msg.type === "snapshot") {
      zeroReceived(msg);
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
    const committed = this.commitIndex;
    if (msg.type === "snapshotReply" || msg.success) {
      p.match = Math.max(p.match, msg.matchIndex);
      p.next = Math.max(p.next, p.match + 1);
      this.advanceCommit();
    } else p.next = Math.max(p.match + 1, Math.min(p.next - 1, msg.matchIndex + 1));
    // Commit news goes out at once, not with the next heartbeat, to every peer that holds every entry but has not
    // applied the latest commit: followers apply sooner, and an erasure (answered once every member applied it)
    // waits a round trip instead of up to a heartbeat interval. A peer still lacking entries gets them when its
    // reply comes (sending it entries this leader has applied, whose data is gone, would mean a snapshot).
    for (const [id, q] of this.peers) {
      const news = id === from || this.commitIndex > committed;
      if (news && q.next > this.log.lastIndex && q.applied < this.commitIndex) this.sendTo(id, now);
    }
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
