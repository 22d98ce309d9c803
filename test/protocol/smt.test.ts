import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { test } from "node:test";
import { SmtProof } from "../../proto/gen/statechain.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import { internalHash, KEY_BITS, keyBit, leafHash } from "../../protocol/smt/hash.ts";
import {
  decodeSmtProof,
  EMPTY,
  encodeSmtProof,
  MemoryNodeStore,
  type NodeStore,
  SparseMerkleTree,
  verifySmtProof,
} from "../../protocol/smt/index.ts";

// Deterministic test randomness: SHA-256 in counter mode.
function stream(seed: string) {
  let counter = 0;
  const bytes = (n: number) => {
    const out = Buffer.alloc(n);
    for (let off = 0; off < n; off += 32) {
      createHash("sha256").update(`${seed}/${counter++}`).digest().copy(out, off);
    }
    return new Uint8Array(out);
  };
  const int = (max: number) => Buffer.from(bytes(4)).readUInt32BE() % max;
  return { bytes, int };
}

/** The reference: the canonical root recomputed from scratch from the key/value set, no store, no reuse. */
function naiveRoot(entries: Array<[Uint8Array, Uint8Array]>, depth = 0): Uint8Array {
  if (entries.length === 0) return EMPTY;
  if (entries.length === 1) return leafHash(entries[0]![0], entries[0]![1]);
  const left = entries.filter(([k]) => keyBit(k, depth) === 0);
  const right = entries.filter(([k]) => keyBit(k, depth) === 1);
  const l = naiveRoot(left, depth + 1);
  const r = naiveRoot(right, depth + 1);
  // A single leaf below an otherwise empty split rises (canonical form).
  if (left.length === 0 && right.length === 1) return r;
  if (right.length === 0 && left.length === 1) return l;
  return internalHash(l, r);
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const unhex = (s: string) => new Uint8Array(Buffer.from(s, "hex"));
/** Byte equality regardless of Buffer vs Uint8Array; null stays null. */
const eqb = (actual: Uint8Array | null | undefined, expected: Uint8Array | null | undefined, msg?: string) =>
  assert.equal(actual ? hex(actual) : actual, expected ? hex(expected) : expected, msg);
const code = (c: string) => (e: unknown) => e instanceof ProtocolError && e.code === c;

async function tree() {
  return SparseMerkleTree.open(new MemoryNodeStore());
}

/** A store that answers only through promises, like SQLite: the tree must prefetch what it reads. */
function asyncStore(): NodeStore {
  const inner = new MemoryNodeStore();
  return {
    get: async (hash) => inner.get(hash),
    commit: async (nodes, root) => inner.commit(nodes, root),
    currentRoot: async () => inner.currentRoot(),
  };
}

test("empty and single-leaf trees have the canonical roots", async () => {
  const t = await tree();
  eqb(t.root, EMPTY);
  const k = new Uint8Array(32).fill(0xaa);
  const v = new Uint8Array(32).fill(1);
  await t.set(k, v);
  eqb(t.root, leafHash(k, v));
  const { leaf, proof } = await t.prove(k);
  eqb(leaf, v);
  assert.equal(proof.siblings.length, 0);
  verifySmtProof(t.root, k, v, encodeSmtProof(proof));
  await t.remove(k);
  eqb(t.root, EMPTY);
  const absent = await t.prove(k);
  assert.equal(absent.leaf, null);
  verifySmtProof(EMPTY, k, null, encodeSmtProof(absent.proof));
});

test("inclusion and both kinds of non-inclusion proofs verify, and only for the true statement", async () => {
  const r = stream("proofs");
  const t = await tree();
  const entries = Array.from({ length: 200 }, () => [r.bytes(32), r.bytes(32)] as [Uint8Array, Uint8Array]);
  await t.update(entries.map(([key, value]) => ({ key, value })));
  eqb(t.root, naiveRoot(entries));
  for (const [key, value] of entries.slice(0, 50)) {
    const { leaf, proof } = await t.prove(key);
    eqb(leaf, value);
    const pb = encodeSmtProof(proof);
    verifySmtProof(t.root, key, value, pb);
    assert.throws(() => verifySmtProof(t.root, key, r.bytes(32), pb), code("SMT_PROOF_MISMATCH"));
    assert.throws(() => verifySmtProof(t.root, key, null, pb), code("SMT_PROOF_MISMATCH"));
  }
  let sawEmpty = false;
  let sawOther = false;
  for (let i = 0; i < 60; i++) {
    const key = r.bytes(32);
    const { leaf, proof } = await t.prove(key);
    assert.equal(leaf, null);
    if (proof.other) sawOther = true;
    else sawEmpty = true;
    const pb = encodeSmtProof(proof);
    verifySmtProof(t.root, key, null, pb);
    // The same proof cannot claim the key is present with any value.
    assert.throws(() => verifySmtProof(t.root, key, r.bytes(32), pb));
  }
  assert.ok(sawEmpty && sawOther, "both non-inclusion shapes were exercised");
});

test("a changed leaf, sibling, bitmap, depth or other leaf makes the proof fail", async () => {
  const r = stream("tamper");
  const t = await tree();
  const entries = Array.from({ length: 64 }, () => ({ key: r.bytes(32), value: r.bytes(32) }));
  await t.update(entries);
  const { key, value } = entries[7]!;
  const pb = encodeSmtProof((await t.prove(key)).proof);
  verifySmtProof(t.root, key, value, pb);
  const flip = (b: Buffer, i = 0) => {
    const c = Buffer.from(b);
    c[i]! ^= 1;
    return c;
  };

  const leafChanged = flip(Buffer.from(value), 31);
  assert.throws(() => verifySmtProof(t.root, key, leafChanged, pb), code("SMT_PROOF_MISMATCH"));
  pb.siblings.forEach((_, i) => {
    const siblings = pb.siblings.map((s, j) => (j === i ? flip(s, 5) : s));
    assert.throws(() => verifySmtProof(t.root, key, value, { ...pb, siblings }), code("SMT_PROOF_MISMATCH"));
  });
  // Marking a present sibling empty (or the reverse) breaks the sibling count or the hashes.
  for (let bit = 0; bit < pb.depth; bit++) {
    const bitmap = flip(pb.bitmap, bit >> 3);
    bitmap[bit >> 3] = pb.bitmap[bit >> 3]! ^ (1 << (bit & 7));
    assert.throws(() => verifySmtProof(t.root, key, value, { ...pb, bitmap }), ProtocolError);
  }
  assert.throws(() => verifySmtProof(t.root, key, value, { ...pb, depth: pb.depth + 1 }), ProtocolError);
  assert.throws(() => verifySmtProof(t.root, flip(Buffer.from(key), 31), value, pb), ProtocolError);
  assert.throws(() => verifySmtProof(flip(Buffer.from(t.root)), key, value, pb), code("SMT_PROOF_MISMATCH"));

  // Non-inclusion ending at another leaf: changing that leaf breaks it too.
  let absent: Uint8Array;
  let proof: SmtProof;
  do {
    absent = r.bytes(32);
    proof = encodeSmtProof((await t.prove(absent)).proof);
  } while (proof.otherKey.length === 0);
  verifySmtProof(t.root, absent, null, proof);
  assert.throws(() => verifySmtProof(t.root, absent, null, { ...proof, otherLeaf: flip(proof.otherLeaf) }));
  assert.throws(() => verifySmtProof(t.root, absent, null, { ...proof, otherKey: flip(proof.otherKey, 31) }));
  // Claiming the other leaf's own key is absent through its own leaf is refused outright.
  assert.throws(() => verifySmtProof(t.root, proof.otherKey, null, proof), code("SMT_PROOF_MALFORMED"));
  // Dropping the other leaf turns it into an "ends at empty" claim, which does not hash to the root.
  assert.throws(
    () =>
      verifySmtProof(t.root, absent, null, {
        ...proof,
        otherKey: Buffer.alloc(0),
        otherLeaf: Buffer.alloc(0),
      }),
    code("SMT_PROOF_MISMATCH"),
  );
});

test("a non-inclusion proof through another leaf whose key leaves the path above the claimed depth is refused", () => {
  // A hostile SE publishes a root with leaf L placed on K's path at `depth` although L's key leaves that path
  // one level higher (it shares only depth − 1 bits with K). Every hash checks out; only the prefix rule
  // (the other leaf's key must share the path down to the proven position) tells this apart from a real one.
  const r = stream("off-path");
  const depth = 5;
  const key = r.bytes(32);
  const siblings = Array.from({ length: depth }, () => r.bytes(32));
  const value = r.bytes(32);
  const withBitFlipped = (bit: number) => {
    const k = Uint8Array.from(key);
    k[bit >> 3]! ^= 0x80 >> (bit & 7);
    return k;
  };
  /** The root a proof with `other` at `depth` on key's path implies (the verifier's walk, redone here). */
  const rootThrough = (other: Uint8Array) => {
    let h = leafHash(other, value);
    for (let i = 0; i < depth; i++)
      h = keyBit(key, depth - 1 - i) ? internalHash(siblings[i]!, h) : internalHash(h, siblings[i]!);
    return h;
  };
  const proofThrough = (other: Uint8Array) => encodeSmtProof({ siblings, other: { key: other, value } });
  // Control: a leaf sharing exactly `depth` bits (it differs from K at bit `depth`) may end the path there.
  const onPath = withBitFlipped(depth);
  verifySmtProof(rootThrough(onPath), key, null, proofThrough(onPath));
  for (const bit of [depth - 1, 0]) {
    const offPath = withBitFlipped(bit);
    assert.throws(
      () => verifySmtProof(rootThrough(offPath), key, null, proofThrough(offPath)),
      (e) => code("SMT_PROOF_MALFORMED")(e) && /leaves the path above depth 5/.test(`${e}`),
    );
  }
});

test("decoding refuses malformed and non-canonical proofs from a hostile host", () => {
  const s = Buffer.alloc(32, 9);
  const ok = {
    bitmap: Buffer.from([0b10]),
    siblings: [s, s],
    depth: 3,
    otherKey: Buffer.alloc(0),
    otherLeaf: Buffer.alloc(0),
  };
  assert.equal(decodeSmtProof(ok).siblings.length, 3);
  const bad = (p: Partial<SmtProof>, msg: RegExp) =>
    assert.throws(
      () => decodeSmtProof({ ...ok, ...p }),
      (e) => code("SMT_PROOF_MALFORMED")(e) && msg.test(`${e}`),
    );
  bad({ depth: 257, bitmap: Buffer.alloc(33) }, /depth 257/);
  bad({ bitmap: Buffer.from([0b10, 0]) }, /bitmap is 2 bytes/);
  bad({ bitmap: Buffer.from([0b1010]) }, /beyond the depth/);
  bad({ siblings: [s] }, /more siblings/);
  bad({ siblings: [s, s, s] }, /3 siblings given/);
  bad({ siblings: [s, Buffer.alloc(31, 1)] }, /31 bytes/);
  bad({ siblings: [s, Buffer.alloc(32)] }, /empty hash/);
  bad({ otherKey: Buffer.alloc(32, 1) }, /32 bytes each/);
  bad({ otherKey: Buffer.alloc(33, 1), otherLeaf: Buffer.alloc(32, 1) }, /32 bytes each/);
  // A full 256-level proof is the largest accepted.
  const full = { ...ok, depth: 256, bitmap: Buffer.alloc(32, 0xff), siblings: [] };
  assert.equal(decodeSmtProof(full).siblings.length, 256);
});

test("keys that differ only in their last bit sit at depth 256", async () => {
  const t = await tree();
  const a = new Uint8Array(32).fill(0x5a);
  const b = Uint8Array.from(a);
  b[31]! ^= 1;
  const c = Uint8Array.from(a);
  c[0]! ^= 0x80;
  const v = new Uint8Array(32).fill(3);
  await t.update([
    { key: a, value: v },
    { key: b, value: v },
    { key: c, value: v },
  ]);
  eqb(
    t.root,
    naiveRoot([
      [a, v],
      [b, v],
      [c, v],
    ]),
  );
  const { proof } = await t.prove(b);
  assert.equal(proof.siblings.length, KEY_BITS);
  const pb = encodeSmtProof(proof);
  verifySmtProof(t.root, b, v, pb);
  assert.equal(pb.siblings.length, 2, "only the two non-empty siblings travel");
  await t.remove(a);
  eqb(
    t.root,
    naiveRoot([
      [b, v],
      [c, v],
    ]),
  );
  assert.equal((await t.prove(b)).proof.siblings.length, 1, "the lone leaf rose back up");
});

for (const [name, makeStore] of [
  ["in-memory", () => new MemoryNodeStore()],
  ["asynchronous", asyncStore],
] as const)
  test(`random batches of inserts, updates and removals match the naive reference tree (${name} store)`, async () => {
    const r = stream("random-ops");
    const t = await SparseMerkleTree.open(makeStore());
    const model = new Map<string, Uint8Array>();
    const history: Array<{ root: Uint8Array; snapshot: Map<string, Uint8Array> }> = [];
    // A small key space with shared prefixes forces merges, splits and collapses.
    const prefixes = Array.from({ length: 6 }, () => r.bytes(30));
    const randomKey = () => {
      if (model.size > 0 && r.int(3) === 0) {
        const keys = [...model.keys()];
        return unhex(keys[r.int(keys.length)]!);
      }
      const k = new Uint8Array(32);
      k.set(r.int(2) ? prefixes[r.int(prefixes.length)]! : r.bytes(30));
      k.set(r.bytes(2), 30);
      return k;
    };
    for (let round = 0; round < 120; round++) {
      const batch = Array.from({ length: 1 + r.int(12) }, () => {
        const key = randomKey();
        return { key, value: r.int(4) === 0 ? null : r.bytes(32) };
      });
      await t.update(batch);
      for (const { key, value } of batch) {
        if (value) model.set(hex(key), value);
        else model.delete(hex(key));
      }
      const entries = [...model].map(([k, v]) => [unhex(k), v] as [Uint8Array, Uint8Array]);
      eqb(t.root, naiveRoot(entries), `round ${round}`);
      for (const { key } of batch) {
        const expected = model.get(hex(key)) ?? null;
        eqb(await t.get(key), expected);
        const { leaf, proof } = await t.prove(key);
        eqb(leaf, expected);
        verifySmtProof(t.root, key, expected, encodeSmtProof(proof));
      }
      if (round % 20 === 0) history.push({ root: t.root, snapshot: new Map(model) });
    }
    // Content-addressed nodes are never overwritten: every earlier root still answers, with its own values.
    for (const { root, snapshot } of history) {
      for (const [k, v] of [...snapshot].slice(0, 5)) {
        const key = unhex(k);
        eqb(await t.get(key, root), v);
        const { leaf, proof } = await t.prove(key, root);
        verifySmtProof(root, key, leaf, encodeSmtProof(proof));
        eqb(leaf, v);
      }
    }
  });

test("a batch naming a key twice keeps the last change", async () => {
  const t = await tree();
  const k = new Uint8Array(32).fill(1);
  await t.update([
    { key: k, value: new Uint8Array(32).fill(1) },
    { key: k, value: new Uint8Array(32).fill(2) },
  ]);
  eqb(await t.get(k), new Uint8Array(32).fill(2));
  await t.update([
    { key: k, value: null },
    { key: k, value: new Uint8Array(32).fill(3) },
  ]);
  eqb(await t.get(k), new Uint8Array(32).fill(3));
  await assert.rejects(t.set(new Uint8Array(31), new Uint8Array(32)), code("SMT_KEY"));
  await assert.rejects(t.set(new Uint8Array(32), new Uint8Array(33)), code("SMT_VALUE"));
});

test("the memory store grows its index and finds every record again", () => {
  const data = randomBytes(70_000 * 97);
  const store = new MemoryNodeStore();
  const recs = Array.from({ length: 70_000 }, (_, i) => ({
    hash: data.subarray(i * 97, i * 97 + 32),
    body: Uint8Array.of(1, ...data.subarray(i * 97 + 33, i * 97 + 97)),
  }));
  store.commit(recs, recs[0]!.hash);
  store.commit(recs.slice(0, 10), recs[1]!.hash); // known hashes are skipped
  assert.equal(store.size, recs.length);
  for (const rec of recs.filter((_, i) => i % 97 === 0)) eqb(store.get(rec.hash), rec.body);
  assert.equal(store.get(randomBytes(32)), undefined);
  eqb(store.currentRoot(), recs[1]!.hash);
});

test("a tree reopened on the same store continues from its committed root", async () => {
  const store = new MemoryNodeStore();
  const t = await SparseMerkleTree.open(store);
  const k = new Uint8Array(32).fill(4);
  await t.set(k, new Uint8Array(32).fill(5));
  const again = await SparseMerkleTree.open(store);
  eqb(again.root, t.root);
  eqb(await again.get(k), new Uint8Array(32).fill(5));
  // A root whose nodes the store never saw is an internal error, not a silent "absent".
  await assert.rejects(again.get(k, new Uint8Array(32).fill(9)), code("SMT_NODE_MISSING"));
});

test("SmtProof survives the wire", async () => {
  const r = stream("wire");
  const t = await tree();
  const entries = Array.from({ length: 30 }, () => ({ key: r.bytes(32), value: r.bytes(32) }));
  await t.update(entries);
  const pb = encodeSmtProof((await t.prove(entries[3]!.key)).proof);
  const back = SmtProof.decode(SmtProof.encode(pb).finish());
  verifySmtProof(t.root, entries[3]!.key, entries[3]!.value, back);
});
