// The messages replicas exchange (Raft §5, Figure 2; §7 InstallSnapshot) and their byte form. The host carries
// these bytes, so decoding trusts nothing: every length is bounded before it is read, every number must be of its
// kind, and anything short, long or malformed throws an Error naming what was wrong. (The channel between members
// is authenticated end to end; the codec is the second wall, not the first.)
import { type Entry, type NodeId, zeroEntry } from "./raft-log.ts";

/**
 * Clock fields: `sentAt` is the sender's local clock when it sent; `echo` returns the latest `sentAt` the sender
 * had from the receiver (null if none yet), so the receiver learns a time on its OWN clock at which the sender
 * was surely alive and reachable. `quorumAge` is how long ago, on the leader's clock, the leader last had a
 * majority so confirmed. These drive the lease (RAFT.md); no clock is ever compared with another node's.
 */
interface Clocked {
  term: number;
  sentAt: number;
  echo: number | null;
}
export interface RequestVote extends Clocked {
  type: "vote";
  lastIndex: number;
  lastTerm: number;
}
export interface VoteReply extends Clocked {
  type: "voteReply";
  granted: boolean;
}
export interface AppendEntries extends Clocked {
  type: "append";
  prevIndex: number;
  prevTerm: number;
  entries: Entry[];
  leaderCommit: number;
  /** Every member has applied up to here: entries at or before it may be folded into the base. */
  compactTo: number;
  quorumAge: number;
}
export interface AppendReply extends Clocked {
  type: "appendReply";
  success: boolean;
  /** On success the last index known to match the leader; on failure a hint: the follower may match up to here. */
  matchIndex: number;
  appliedIndex: number;
}
export interface InstallSnapshot extends Clocked {
  type: "snapshot";
  lastIndex: number;
  lastTerm: number;
  members: NodeId[];
  data: Uint8Array;
  quorumAge: number;
}
export interface SnapshotReply extends Clocked {
  type: "snapshotReply";
  matchIndex: number;
  appliedIndex: number;
}
export type Message = RequestVote | VoteReply | AppendEntries | AppendReply | InstallSnapshot | SnapshotReply;

export const LIMITS = {
  message: 64 << 20,
  entries: 4096,
  entryData: 1 << 20,
  snapshot: 48 << 20,
  members: 64,
  nodeId: 128,
};

const VERSION = 1;
const TYPES = ["vote", "voteReply", "append", "appendReply", "snapshot", "snapshotReply"] as const;
const KINDS = ["noop", "command", "config"] as const;
const ID_CHARS = /^[\x21-\x7e]+$/;

class Writer {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  len = 0;
  private room(n: number): void {
    if (this.len + n > LIMITS.message) throw new Error("raft message: too large to encode");
    if (this.len + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    next.set(this.buf.subarray(0, this.len));
    this.buf.fill(0); // it may hold entry data
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.len++] = v;
  }
  u32(v: number): void {
    this.room(4);
    this.view.setUint32(this.len, v);
    this.len += 4;
  }
  /** A non-negative safe integer (index, term). */
  int(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`raft message: ${v} is not an index or term`);
    this.f64(v);
  }
  f64(v: number): void {
    if (!Number.isFinite(v)) throw new Error("raft message: a clock value is not finite");
    this.room(8);
    this.view.setFloat64(this.len, v);
    this.len += 8;
  }
  bytes(b: Uint8Array, max: number): void {
    if (b.length > max) throw new Error("raft message: a byte field is over its limit");
    this.u32(b.length);
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  id(s: NodeId): void {
    if (s.length > LIMITS.nodeId || !ID_CHARS.test(s)) throw new Error("raft message: bad node id");
    this.u8(s.length);
    for (let i = 0; i < s.length; i++) this.u8(s.charCodeAt(i));
  }
  ids(list: NodeId[]): void {
    if (list.length > LIMITS.members) throw new Error("raft message: too many members");
    this.u8(list.length);
    for (const s of list) this.id(s);
  }
  done(): Uint8Array {
    const out = this.buf.slice(0, this.len);
    this.buf.fill(0);
    return out;
  }
}

class Reader {
  private pos = 0;
  private readonly view: DataView;
  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  private need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) throw new Error(`raft message: truncated in ${what}`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
  f64(what: string): number {
    this.need(8, what);
    const v = this.view.getFloat64(this.pos);
    this.pos += 8;
    if (!Number.isFinite(v)) throw new Error(`raft message: ${what} is not finite`);
    return v;
  }
  int(what: string): number {
    const v = this.f64(what);
    if (!Number.isSafeInteger(v) || v < 0)
      throw new Error(`raft message: ${what} is not a non-negative integer`);
    return v;
  }
  bool(what: string): boolean {
    const v = this.u8(what);
    if (v > 1) throw new Error(`raft message: ${what} is not a boolean`);
    return v === 1;
  }
  bytes(max: number, what: string): Uint8Array {
    const n = this.u32(what);
    if (n > max) throw new Error(`raft message: ${what} of ${n} bytes is over its limit`);
    this.need(n, what);
    // A copy of its own (Buffer#slice would be a view: the caller zeroes the received bytes once decoded).
    const out = new Uint8Array(n);
    out.set(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }
  id(what: string): NodeId {
    const n = this.u8(what);
    if (n === 0 || n > LIMITS.nodeId) throw new Error(`raft message: ${what} has a bad length`);
    this.need(n, what);
    let s = "";
    for (let i = 0; i < n; i++) s += String.fromCharCode(this.buf[this.pos++]!);
    if (!ID_CHARS.test(s)) throw new Error(`raft message: ${what} has a bad character`);
    return s;
  }
  ids(what: string): NodeId[] {
    const n = this.u8(what);
    if (n > LIMITS.members) throw new Error(`raft message: ${what} lists too many members`);
    const out: NodeId[] = [];
    for (let i = 0; i < n; i++) out.push(this.id(what));
    if (new Set(out).size !== out.length) throw new Error(`raft message: ${what} repeats a member`);
    return out;
  }
  end(): void {
    if (this.pos !== this.buf.length) throw new Error("raft message: trailing bytes");
  }
}

function writeEntry(w: Writer, e: Entry): void {
  w.int(e.index);
  w.int(e.term);
  w.u8(KINDS.indexOf(e.kind));
  if (e.kind === "command") {
    w.u8(e.data ? 1 : 0);
    if (e.data) w.bytes(e.data, LIMITS.entryData);
  }
  if (e.kind === "config") w.ids(e.members ?? []);
}

function readEntry(r: Reader, expectIndex: number): Entry {
  const index = r.int("entry index");
  if (index !== expectIndex) throw new Error("raft message: entries are not consecutive");
  const term = r.int("entry term");
  const kind = KINDS[r.u8("entry kind")];
  if (!kind) throw new Error("raft message: unknown entry kind");
  if (kind === "noop") return { index, term, kind, data: null };
  if (kind === "config") return { index, term, kind, data: null, members: r.ids("config members") };
  const data = r.bool("entry data flag") ? r.bytes(LIMITS.entryData, "entry data") : null;
  return { index, term, kind, data };
}

/** The byte form of a message. The caller owns the result (zero it once sent if it may carry secrets). */
export function encodeMessage(m: Message): Uint8Array {
  const w = new Writer();
  w.u8(VERSION);
  w.u8(TYPES.indexOf(m.type));
  w.int(m.term);
  w.f64(m.sentAt);
  w.u8(m.echo === null ? 0 : 1);
  if (m.echo !== null) w.f64(m.echo);
  switch (m.type) {
    case "vote":
      w.int(m.lastIndex);
      w.int(m.lastTerm);
      break;
    case "voteReply":
      w.u8(m.granted ? 1 : 0);
      break;
    case "append":
      w.int(m.prevIndex);
      w.int(m.prevTerm);
      w.int(m.leaderCommit);
      w.int(m.compactTo);
      w.f64(m.quorumAge);
      if (m.entries.length > LIMITS.entries) throw new Error("raft message: too many entries");
      w.u32(m.entries.length);
      for (const e of m.entries) writeEntry(w, e);
      break;
    case "appendReply":
      w.u8(m.success ? 1 : 0);
      w.int(m.matchIndex);
      w.int(m.appliedIndex);
      break;
    case "snapshot":
      w.int(m.lastIndex);
      w.int(m.lastTerm);
      w.ids(m.members);
      w.f64(m.quorumAge);
      w.bytes(m.data, LIMITS.snapshot);
      break;
    case "snapshotReply":
      w.int(m.matchIndex);
      w.int(m.appliedIndex);
      break;
  }
  return w.done();
}

/** Parses a message, refusing anything malformed. Entry and snapshot data are fresh copies the caller owns. */
export function decodeMessage(bytes: Uint8Array): Message {
  if (!(bytes instanceof Uint8Array)) throw new Error("raft message: not bytes");
  if (bytes.length > LIMITS.message) throw new Error("raft message: too large");
  const r = new Reader(bytes);
  if (r.u8("version") !== VERSION) throw new Error("raft message: unknown version");
  const type = TYPES[r.u8("type")];
  if (!type) throw new Error("raft message: unknown type");
  const term = r.int("term");
  const sentAt = r.f64("sentAt");
  const echo = r.bool("echo flag") ? r.f64("echo") : null;
  const head = { term, sentAt, echo };
  let m: Message;
  switch (type) {
    case "vote":
      m = { type, ...head, lastIndex: r.int("lastIndex"), lastTerm: r.int("lastTerm") };
      break;
    case "voteReply":
      m = { type, ...head, granted: r.bool("granted") };
      break;
    case "append": {
      const prevIndex = r.int("prevIndex");
      const prevTerm = r.int("prevTerm");
      const leaderCommit = r.int("leaderCommit");
      const compactTo = r.int("compactTo");
      const quorumAge = r.f64("quorumAge");
      const n = r.u32("entry count");
      if (n > LIMITS.entries) throw new Error("raft message: too many entries");
      const entries: Entry[] = [];
      for (let i = 0; i < n; i++) entries.push(readEntry(r, prevIndex + 1 + i));
      m = { type, ...head, prevIndex, prevTerm, leaderCommit, compactTo, quorumAge, entries };
      break;
    }
    case "appendReply":
      m = {
        type,
        ...head,
        success: r.bool("success"),
        matchIndex: r.int("matchIndex"),
        appliedIndex: r.int("appliedIndex"),
      };
      break;
    case "snapshot": {
      const lastIndex = r.int("lastIndex");
      const lastTerm = r.int("lastTerm");
      const members = r.ids("snapshot members");
      const quorumAge = r.f64("quorumAge");
      m = {
        type,
        ...head,
        lastIndex,
        lastTerm,
        members,
        quorumAge,
        data: r.bytes(LIMITS.snapshot, "snapshot"),
      };
      break;
    }
    case "snapshotReply":
      m = { type, ...head, matchIndex: r.int("matchIndex"), appliedIndex: r.int("appliedIndex") };
      break;
  }
  r.end();
  return m;
}

/**
 * Zeroes the secret-bearing parts of a RECEIVED message its receiver will not keep (entry data, snapshot data).
 * Never call it on an outgoing AppendEntries: its entries are the leader's own log entries.
 */
export function zeroReceived(msg: Message): void {
  if (msg.type === "append") for (const e of msg.entries) zeroEntry(e);
  if (msg.type === "snapshot") msg.data.fill(0);
}
