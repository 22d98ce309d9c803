// Where tree nodes live. Nodes are content-addressed (key = SHA-256 of the body) and never overwritten or
// removed, so every root the tree ever had, and in particular every published root, keeps answering proofs.
// The same tree code runs on the in-memory store below and on the host's SQLite store (host/smt-store.ts).
import { BODY_BYTES, HASH_BYTES, sha256 } from "./hash.ts";

export type MaybePromise<T> = T | Promise<T>;

export interface NewNode {
  hash: Uint8Array;
  body: Uint8Array;
}

const RECORD = HASH_BYTES + BODY_BYTES;
const CHUNK_RECORDS = 1 << 16;

/**
 * The nodes one update adds, packed as records (hash || body, 97 bytes) in chunks that start small (a single
 * update adds a few dozen nodes) and double up to 6 MB (a million-leaf build adds millions, and one JavaScript
 * object or ArrayBuffer per node would cost several times the data).
 */
export class NodeBatch implements Iterable<NewNode> {
  private readonly chunks: Buffer[] = [];
  private readonly scratch = Buffer.allocUnsafe(BODY_BYTES);
  private used = 0; // records in the last chunk
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Appends the node with this body (tag byte, then two 32-byte fields) and returns its hash. */
  push(tag: number, a: Uint8Array, b: Uint8Array): Uint8Array {
    let chunk = this.chunks[this.chunks.length - 1];
    if (!chunk || this.used * RECORD === chunk.length) {
      // The first chunk (32 records, 3 KB) comes from Node's shared Buffer pool: cheap for one-leaf updates.
      const records = Math.min(32 * 2 ** this.chunks.length, CHUNK_RECORDS);
      chunk = Buffer.allocUnsafe(records * RECORD);
      this.chunks.push(chunk);
      this.used = 0;
    }
    const off = this.used++ * RECORD;
    this.count++;
    // Hash from a scratch body rather than a view of the chunk: views cost more than the copy.
    const body = this.scratch;
    body[0] = tag;
    body.set(a, 1);
    body.set(b, 1 + HASH_BYTES);
    const hash = sha256(body);
    chunk.set(hash, off);
    chunk.set(body, off + HASH_BYTES);
    return hash;
  }

  /** Calls `fn` with each record's chunk and offset (the hash at off, the body after it): no allocation. */
  forEachRecord(fn: (chunk: Buffer, off: number) => void): void {
    for (let c = 0; c < this.chunks.length; c++) {
      const chunk = this.chunks[c]!;
      const records = c === this.chunks.length - 1 ? this.used : chunk.length / RECORD;
      for (let r = 0; r < records; r++) fn(chunk, r * RECORD);
    }
  }

  *[Symbol.iterator](): Iterator<NewNode> {
    const out: NewNode[] = [];
    this.forEachRecord((chunk, off) =>
      out.push({
        hash: chunk.subarray(off, off + HASH_BYTES),
        body: chunk.subarray(off + HASH_BYTES, off + RECORD),
      }),
    );
    yield* out;
  }
}

export interface NodeStore {
  /** The 65-byte body of the node with this hash, or undefined if the store has never seen it. */
  get(hash: Uint8Array): MaybePromise<Uint8Array | undefined>;
  /**
   * Present on stores that answer from memory: the tree then walks synchronously, without a promise per level.
   * Stores without it (SQLite) have the nodes an update needs fetched up front.
   */
  getSync?(hash: Uint8Array): Uint8Array | undefined;
  /** Adds `nodes` (hashes already present are skipped) and makes `root` the current root, atomically. */
  commit(nodes: Iterable<NewNode>, root: Uint8Array): MaybePromise<void>;
  /** The current root recorded by the last commit, or undefined for a store that has never been committed to. */
  currentRoot(): MaybePromise<Uint8Array | undefined>;
}

/**
 * An in-memory node store sized for millions of nodes: records (hash || body, 97 bytes) packed into 6 MB
 * chunks, found through an open-addressing table of record numbers probed by the hash's first four bytes
 * (SHA-256 output is uniform, so they make a good bucket index). No per-node JavaScript objects.
 */
export class MemoryNodeStore implements NodeStore {
  private readonly chunks: Buffer[] = [];
  private count = 0;
  private table = new Int32Array(1 << 16);
  private root: Uint8Array | undefined;

  get size(): number {
    return this.count;
  }

  /** Bytes held by records and index. */
  get bytes(): number {
    return this.chunks.length * CHUNK_RECORDS * RECORD + this.table.byteLength;
  }

  private chunkOf(n: number): Buffer {
    return this.chunks[Math.floor(n / CHUNK_RECORDS)]!;
  }

  private static bucket(b: Uint8Array, off: number): number {
    return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
  }

  /** Slot holding the hash at buf[at..at+32), or the empty slot where it would go (as -1 - slot). */
  private find(buf: Uint8Array, at: number): number {
    const mask = this.table.length - 1;
    for (let slot = MemoryNodeStore.bucket(buf, at) & mask; ; slot = (slot + 1) & mask) {
      const entry = this.table[slot]!;
      if (entry === 0) return -1 - slot;
      const chunk = this.chunkOf(entry - 1);
      const off = ((entry - 1) % CHUNK_RECORDS) * RECORD;
      let i = 0;
      while (i < HASH_BYTES && chunk[off + i] === buf[at + i]) i++;
      if (i === HASH_BYTES) return slot;
    }
  }

  private grow(): void {
    const old = this.table;
    this.table = new Int32Array(old.length * 2);
    const mask = this.table.length - 1;
    for (const entry of old) {
      if (entry === 0) continue;
      let slot =
        MemoryNodeStore.bucket(this.chunkOf(entry - 1), ((entry - 1) % CHUNK_RECORDS) * RECORD) & mask;
      while (this.table[slot] !== 0) slot = (slot + 1) & mask;
      this.table[slot] = entry;
    }
  }

  get(hash: Uint8Array): Uint8Array | undefined {
    return this.getSync(hash);
  }

  getSync(hash: Uint8Array): Uint8Array | undefined {
    if (hash.length !== HASH_BYTES) return undefined;
    const slot = this.find(hash, 0);
    if (slot < 0) return undefined;
    const n = this.table[slot]! - 1;
    const off = (n % CHUNK_RECORDS) * RECORD;
    return this.chunkOf(n).subarray(off + HASH_BYTES, off + RECORD);
  }

  /** Adds the record (hash || body) at src[at..at+97) unless its hash is already present. */
  private addRecord(src: Uint8Array, at: number): void {
    if ((this.count + 1) * 2 > this.table.length) this.grow();
    const slot = this.find(src, at);
    if (slot >= 0) return;
    const n = this.count;
    if (n % CHUNK_RECORDS === 0) this.chunks.push(Buffer.allocUnsafe(CHUNK_RECORDS * RECORD));
    this.chunkOf(n).set(src.subarray(at, at + RECORD), (n % CHUNK_RECORDS) * RECORD);
    this.table[-1 - slot] = n + 1;
    this.count = n + 1;
  }

  add(hash: Uint8Array, body: Uint8Array): void {
    if (hash.length !== HASH_BYTES || body.length !== BODY_BYTES) throw new Error("malformed node record");
    const rec = new Uint8Array(RECORD);
    rec.set(hash, 0);
    rec.set(body, HASH_BYTES);
    this.addRecord(rec, 0);
  }

  commit(nodes: Iterable<NewNode>, root: Uint8Array): void {
    if (nodes instanceof NodeBatch) nodes.forEachRecord((chunk, off) => this.addRecord(chunk, off));
    else for (const node of nodes) this.add(node.hash, node.body);
    this.root = Uint8Array.from(root);
  }

  currentRoot(): Uint8Array | undefined {
    return this.root;
  }
}
