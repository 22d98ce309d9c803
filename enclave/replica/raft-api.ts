// The replica's interface to the enclave (enclave/replica/raft.ts implements it; RAFT.md explains the rules).
import type { Message } from "./raft-codec.ts";
import type { Entry, NodeId } from "./raft-log.ts";

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

/** A majority of n voters. */
export const majority = (n: number): number => Math.floor(n / 2) + 1;
