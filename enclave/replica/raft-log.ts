// The replicated log of one replica (Raft §5.3, §7): the entries after a base point (baseIndex, baseTerm) that
// stands for everything already folded into the state machine. Entries carry secret key shares, so every entry
// that leaves the log (conflict truncation, compaction, wipe) has its data buffer zeroed first, and an applied
// entry keeps only its index, term and kind (see RAFT.md, "secrets leave the log once applied").

export type NodeId = string;

export interface Entry {
  index: number;
  term: number;
  kind: "noop" | "command" | "config";
  /** A command's bytes until it is applied; null afterwards, and always null for noop and config entries. */
  data: Uint8Array | null;
  /** The whole new configuration, for a config entry. */
  members?: NodeId[];
}

/** Zeroes an entry's data and drops the reference. */
export function zeroEntry(e: Entry): void {
  e.data?.fill(0);
  e.data = null;
}

export class RaftLog {
  private base = { index: 0, term: 0, members: [] as NodeId[] };
  private list: Entry[] = [];
  private configCache: { index: number; members: NodeId[] } | undefined;

  constructor(members: NodeId[]) {
    this.base.members = [...members];
  }

  get baseIndex(): number {
    return this.base.index;
  }
  get baseTerm(): number {
    return this.base.term;
  }
  get lastIndex(): number {
    return this.base.index + this.list.length;
  }
  get lastTerm(): number {
    return this.list.length ? this.list[this.list.length - 1]!.term : this.base.term;
  }
  get entries(): readonly Entry[] {
    return this.list;
  }

  /** The entry at `index`, if this log still holds it (not folded into the base). */
  entry(index: number): Entry | undefined {
    return index > this.base.index ? this.list[index - this.base.index - 1] : undefined;
  }

  /** The term at `index` (the base's term at the base), or undefined outside [baseIndex, lastIndex]. */
  termAt(index: number): number | undefined {
    if (index === this.base.index) return this.base.term;
    return this.entry(index)?.term;
  }

  append(e: Entry): void {
    if (e.index !== this.lastIndex + 1)
      throw new Error(`raft log: append at ${e.index} after ${this.lastIndex}`);
    this.list.push(e);
    if (e.kind === "config") this.configCache = undefined;
  }

  /** Drops the entries from `index` on, zeroing them (Raft §5.3: a conflicting suffix is deleted). */
  truncateFrom(index: number): void {
    if (index <= this.base.index) throw new Error("raft log: truncating below the base");
    for (const e of this.list.splice(index - this.base.index - 1)) zeroEntry(e);
    this.configCache = undefined;
  }

  /** Folds entries up to `index` into the base (Raft §7), zeroing them; the config they set moves to the base. */
  compactTo(index: number): void {
    if (index <= this.base.index || index > this.lastIndex) return;
    const members = this.configAt(index);
    const term = this.termAt(index)!;
    for (const e of this.list.splice(0, index - this.base.index)) zeroEntry(e);
    this.base = { index, term, members };
    this.configCache = undefined;
  }

  /** Replaces the whole log by a snapshot's base point (Raft §7: the snapshot supersedes the log). */
  resetTo(index: number, term: number, members: NodeId[]): void {
    for (const e of this.list) zeroEntry(e);
    this.list = [];
    this.base = { index, term, members: [...members] };
    this.configCache = undefined;
  }

  /** Zeroes and drops everything. */
  wipe(): void {
    this.resetTo(0, 0, []);
  }

  /** The configuration in force at `index`: the last config entry at or before it, else the base's. */
  configAt(index: number): NodeId[] {
    for (let i = Math.min(index, this.lastIndex); i > this.base.index; i--) {
      const e = this.entry(i)!;
      if (e.kind === "config") return e.members!;
    }
    return this.base.members;
  }

  /** The latest configuration in the log, committed or not (dissertation §4.1: a server uses the latest). */
  latestConfig(): { index: number; members: NodeId[] } {
    if (!this.configCache) {
      let found: { index: number; members: NodeId[] } = {
        index: this.base.index,
        members: this.base.members,
      };
      for (let i = this.lastIndex; i > this.base.index; i--) {
        const e = this.entry(i)!;
        if (e.kind === "config") {
          found = { index: i, members: e.members! };
          break;
        }
      }
      this.configCache = found;
    }
    return this.configCache;
  }
}
