// A 256-bit-keyed sparse Merkle tree with single-leaf subtrees collapsed (DESIGN.md 3.7).
//
// Canonical form, which makes the root a function of the key/value set alone:
//   a subtree holding no leaf      hashes to EMPTY (32 zero bytes),
//   a subtree holding one leaf     IS that leaf: leafHash(key, value), at whatever depth it sits,
//   a subtree holding 2+ leaves    is internalHash(left, right) of its two halves (split on the key's next bit).
// Paths are therefore about log2(n) nodes long instead of 256, which keeps updates, proofs and storage small at
// millions of statechains. Updates are batched: each call writes only the nodes of the new version.
//
// The tree walks are synchronous over a node reader: in-memory stores read directly; for asynchronous stores
// (SQLite) the nodes a walk will touch are fetched first. A promise per level would cost more than the hashing.
import { check, fail } from "../errors.ts";
import {
  BODY_BYTES,
  decodeBody,
  EMPTY,
  HASH_BYTES,
  INTERNAL_TAG,
  isEmpty,
  KEY_BITS,
  keyBit,
  LEAF_TAG,
  type SmtNode,
  sameBytes,
} from "./hash.ts";
import type { SmtProofData } from "./proof.ts";
import { NodeBatch, type NodeStore } from "./store.ts";

export interface SmtChange {
  /** 32-byte key. */
  key: Uint8Array;
  /** 32-byte leaf value, or null to remove the key. */
  value: Uint8Array | null;
}

type Reader = (hash: Uint8Array) => Uint8Array | undefined;

/** What a subtree is, as far as we know without reading it. */
type Kind = "empty" | "leaf" | "internal" | "unknown";
interface Sub {
  hash: Uint8Array;
  kind: Kind;
}

const EMPTY_SUB: Sub = { hash: EMPTY, kind: "empty" };

function checkKey(key: Uint8Array): void {
  check(key.length === HASH_BYTES, "SMT_KEY", `tree key must be 32 bytes, got ${key.length}`);
}

function checkValue(value: Uint8Array): void {
  check(value.length === HASH_BYTES, "SMT_VALUE", `leaf value must be 32 bytes, got ${value.length}`);
}

function readNode(read: Reader, hash: Uint8Array): SmtNode {
  const body = read(hash);
  if (!body) fail("SMT_NODE_MISSING", "the tree store lacks a node of this root", "internal");
  check(
    body.length === BODY_BYTES,
    "SMT_NODE_CORRUPT",
    "the tree store returned a malformed node",
    "internal",
  );
  return decodeBody(body);
}

function compareKeys(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < HASH_BYTES; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

/** Sorts by key and keeps the last change of each key. */
export function normaliseChanges(changes: Iterable<SmtChange>): SmtChange[] {
  const list = [...changes];
  for (const c of list) {
    checkKey(c.key);
    if (c.value) checkValue(c.value);
  }
  if (list.length > 1) list.sort((a, b) => compareKeys(a.key, b.key)); // stable: equal keys keep call order
  const out: SmtChange[] = [];
  for (const c of list) {
    const last = out[out.length - 1];
    if (last && sameBytes(last.key, c.key)) out[out.length - 1] = c;
    else out.push(c);
  }
  return out;
}

/** First index in [lo, hi) whose key has bit `depth` set (keys sorted and sharing their first `depth` bits). */
function splitIndex(list: readonly SmtChange[], lo: number, hi: number, depth: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keyBit(list[mid]!.key, depth) === 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

class Writer {
  readonly nodes = new NodeBatch();
  constructor(private readonly read: Reader) {}

  leaf(key: Uint8Array, value: Uint8Array): Sub {
    return { hash: this.nodes.push(LEAF_TAG, key, value), kind: "leaf" };
  }

  /** The parent of two subtrees in canonical form. */
  join(left: Sub, right: Sub): Sub {
    if (left.kind === "empty" && right.kind === "empty") return EMPTY_SUB;
    if (left.kind === "empty" || right.kind === "empty") {
      const other = left.kind === "empty" ? right : left;
      let kind = other.kind;
      if (kind === "unknown") kind = readNode(this.read, other.hash).leaf ? "leaf" : "internal";
      // A lone leaf rises to take its parent's place; a lone internal subtree keeps its parent.
      if (kind === "leaf") return { hash: other.hash, kind };
    }
    return { hash: this.nodes.push(INTERNAL_TAG, left.hash, right.hash), kind: "internal" };
  }

  /** A fresh subtree at `depth` from sorted, distinct leaves (no null values). */
  build(list: readonly SmtChange[], lo: number, hi: number, depth: number): Sub {
    if (lo === hi) return EMPTY_SUB;
    if (hi - lo === 1) return this.leaf(list[lo]!.key, list[lo]!.value!);
    if (depth >= KEY_BITS) fail("SMT_DEPTH", "two distinct keys reached depth 256", "internal");
    const mid = splitIndex(list, lo, hi, depth);
    return this.join(this.build(list, lo, mid, depth + 1), this.build(list, mid, hi, depth + 1));
  }

  /** Applies the changes list[lo, hi) to the subtree `hash` at `depth`. */
  apply(hash: Uint8Array, depth: number, list: readonly SmtChange[], lo: number, hi: number): Sub {
    if (lo === hi) return { hash, kind: isEmpty(hash) ? "empty" : "unknown" };
    if (isEmpty(hash)) {
      const adds = list.slice(lo, hi).filter((c) => c.value !== null);
      return this.build(adds, 0, adds.length, depth);
    }
    const node = readNode(this.read, hash);
    if (node.leaf) {
      // Merge the resident leaf with the changes, unless a change names its key.
      const merged: SmtChange[] = [];
      let placed = false;
      for (let i = lo; i < hi; i++) {
        const c = list[i]!;
        const order = compareKeys(node.key, c.key);
        if (!placed && order <= 0) {
          placed = true;
          if (order < 0) merged.push({ key: node.key, value: node.value });
        }
        if (c.value !== null) merged.push(c);
      }
      if (!placed) merged.push({ key: node.key, value: node.value });
      return this.build(merged, 0, merged.length, depth);
    }
    if (depth >= KEY_BITS) fail("SMT_DEPTH", "tree path is longer than 256 levels", "internal");
    const mid = splitIndex(list, lo, hi, depth);
    return this.join(
      this.apply(node.left, depth + 1, list, lo, mid),
      this.apply(node.right, depth + 1, list, mid, hi),
    );
  }
}

const hexOf = (h: Uint8Array) => Buffer.from(h.buffer, h.byteOffset, h.byteLength).toString("hex");

/**
 * Loads, from an asynchronous store, every node `apply` will read for these changes: the nodes on the changed
 * keys' paths and, when the batch removes keys (a removal can make a sibling rise), the untouched siblings too.
 */
async function prefetch(store: NodeStore, root: Uint8Array, list: readonly SmtChange[]): Promise<Reader> {
  const cache = new Map<string, Uint8Array>();
  const removes = list.some((c) => c.value === null);
  const load = async (hash: Uint8Array): Promise<SmtNode | undefined> => {
    const body = await store.get(hash);
    if (!body) return undefined; // apply reports the missing node
    cache.set(hexOf(hash), body);
    return body.length === BODY_BYTES ? decodeBody(body) : undefined;
  };
  const walk = async (hash: Uint8Array, depth: number, lo: number, hi: number): Promise<void> => {
    if (isEmpty(hash) || depth > KEY_BITS) return;
    if (lo === hi) {
      if (removes) await load(hash);
      return;
    }
    const node = await load(hash);
    if (!node || node.leaf) return;
    const mid = splitIndex(list, lo, hi, depth);
    await walk(node.left, depth + 1, lo, mid);
    await walk(node.right, depth + 1, mid, hi);
  };
  await walk(root, 0, 0, list.length);
  return (hash) => cache.get(hexOf(hash));
}

function syncReader(store: NodeStore): Reader | undefined {
  const getSync = store.getSync;
  return getSync ? (hash) => getSync.call(store, hash) : undefined;
}

/**
 * Computes the root after `changes` and the nodes that version adds. Nothing is written: the caller commits
 * `nodes` (with the new root) to the store.
 */
export async function computeUpdate(
  store: NodeStore,
  root: Uint8Array,
  changes: Iterable<SmtChange>,
): Promise<{ root: Uint8Array; nodes: NodeBatch }> {
  const list = normaliseChanges(changes);
  const read = syncReader(store) ?? (await prefetch(store, root, list));
  const w = new Writer(read);
  const sub = w.apply(root, 0, list, 0, list.length);
  return { root: Uint8Array.from(sub.hash), nodes: w.nodes };
}

/** Reads the path of `key` from `root` down to the empty subtree or leaf where it ends. */
async function walkPath(
  store: NodeStore,
  root: Uint8Array,
  key: Uint8Array,
): Promise<{ end: SmtNode | null; siblings: Uint8Array[] }> {
  checkKey(key);
  const read = syncReader(store);
  const siblings: Uint8Array[] = [];
  let hash = root;
  for (let depth = 0; depth <= KEY_BITS; depth++) {
    if (isEmpty(hash)) return { end: null, siblings };
    const body = read ? read(hash) : await store.get(hash);
    const node = readNode(() => body, hash);
    if (node.leaf) return { end: node, siblings };
    if (depth === KEY_BITS) break;
    const right = keyBit(key, depth) === 1;
    siblings.push(right ? node.left : node.right);
    hash = right ? node.right : node.left;
  }
  return fail("SMT_DEPTH", "tree path is longer than 256 levels", "internal");
}

/** The value stored under `key` in the version with root `root`, or null. */
export async function lookup(
  store: NodeStore,
  root: Uint8Array,
  key: Uint8Array,
): Promise<Uint8Array | null> {
  const { end } = await walkPath(store, root, key);
  return end?.leaf && sameBytes(end.key, key) ? Uint8Array.from(end.value) : null;
}

/** Inclusion proof (the key is present) or non-inclusion proof (it is not) against `root`. */
export async function prove(
  store: NodeStore,
  root: Uint8Array,
  key: Uint8Array,
): Promise<{ leaf: Uint8Array | null; proof: SmtProofData }> {
  const { end, siblings: topDown } = await walkPath(store, root, key);
  const siblings = topDown.reverse().map((s) => Uint8Array.from(s));
  if (!end?.leaf) return { leaf: null, proof: { siblings } };
  if (sameBytes(end.key, key)) return { leaf: Uint8Array.from(end.value), proof: { siblings } };
  return {
    leaf: null,
    proof: { siblings, other: { key: Uint8Array.from(end.key), value: Uint8Array.from(end.value) } },
  };
}

/**
 * A tree over a node store, holding its current root. Updates are queued so they apply one after another;
 * reads and proofs may name any earlier root.
 */
export class SparseMerkleTree {
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly store: NodeStore,
    private current: Uint8Array,
  ) {}

  /** Opens the tree at the store's current root (empty for a new store). */
  static async open(store: NodeStore): Promise<SparseMerkleTree> {
    const root = await store.currentRoot();
    return new SparseMerkleTree(store, root ? Uint8Array.from(root) : EMPTY);
  }

  get root(): Uint8Array {
    return this.current;
  }

  /** Applies a batch of changes and commits the new version; resolves with the new root. */
  update(changes: Iterable<SmtChange>): Promise<Uint8Array> {
    const list = [...changes];
    const next = this.queue.then(async () => {
      const { root, nodes } = await computeUpdate(this.store, this.current, list);
      await this.store.commit(nodes, root);
      this.current = root;
      return root;
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  set(key: Uint8Array, value: Uint8Array): Promise<Uint8Array> {
    return this.update([{ key, value }]);
  }

  remove(key: Uint8Array): Promise<Uint8Array> {
    return this.update([{ key, value: null }]);
  }

  get(key: Uint8Array, root: Uint8Array = this.current): Promise<Uint8Array | null> {
    return lookup(this.store, root, key);
  }

  prove(
    key: Uint8Array,
    root: Uint8Array = this.current,
  ): Promise<{ leaf: Uint8Array | null; proof: SmtProofData }> {
    return prove(this.store, root, key);
  }
}
