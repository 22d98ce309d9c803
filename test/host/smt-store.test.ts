import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { Db } from "../../common/sqlite.ts";
import { openSqliteSmt, SMT_MIGRATIONS } from "../../host/smt-store.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import {
  encodeSmtProof,
  MemoryNodeStore,
  SparseMerkleTree,
  verifySmtProof,
} from "../../protocol/smt/index.ts";

const file = () => path.join(mkdtempSync(path.join(tmpdir(), "smt-")), "t.sqlite");
const hex = (b: Uint8Array | null) => (b ? Buffer.from(b).toString("hex") : b);
const bytes = (seed: number, i: number) => {
  const b = new Uint8Array(32);
  new DataView(b.buffer).setUint32(0, Math.imul(i + 1, 2654435761) ^ seed);
  new DataView(b.buffer).setUint32(28, i);
  return b;
};

test("the SQLite-backed tree matches the in-memory tree and survives reopening", async () => {
  const f = file();
  let db = await Db.open(f);
  const { tree } = await openSqliteSmt(db, { cacheNodes: 0 });
  const mem = await SparseMerkleTree.open(new MemoryNodeStore());
  const roots: Uint8Array[] = [];
  for (let round = 0; round < 5; round++) {
    const batch = Array.from({ length: 40 }, (_, i) => ({
      key: bytes(round % 2, i + round),
      value: bytes(99, round),
    }));
    await tree.update(batch);
    await mem.update(batch);
    assert.equal(hex(tree.root), hex(mem.root));
    roots.push(tree.root);
  }
  await tree.remove(bytes(0, 0));
  await mem.remove(bytes(0, 0));
  assert.equal(hex(tree.root), hex(mem.root));
  await db.close();

  db = await Db.open(f, SMT_MIGRATIONS);
  const { tree: again, store } = await openSqliteSmt(db, { cacheNodes: 0 });
  assert.equal(hex(again.root), hex(mem.root));
  assert.ok((await store.nodeCount()) > 0, "the reopened SQLite store holds SMT nodes");
  // Proofs against an earlier (say, published) root still work after later updates and a restart.
  const key = bytes(1, 5); // written in rounds 1 and 3
  assert.equal(hex(await again.get(key)), hex(bytes(99, 3)));
  const { leaf, proof } = await again.prove(key, roots[1]!);
  assert.equal(hex(leaf), hex(bytes(99, 1)));
  verifySmtProof(roots[1]!, key, leaf, encodeSmtProof(proof));
  const ids = await db.all<{ id: string }>("SELECT id FROM schema_migrations");
  assert.deepEqual(
    ids.map((r) => r.id),
    ["smt-001-nodes"],
  );
  await db.close();
});

test("a corrupted node row is detected, not turned into a wrong proof", async () => {
  const db = await Db.open(file());
  const { tree } = await openSqliteSmt(db, { cacheNodes: 0 });
  await tree.update(Array.from({ length: 8 }, (_, i) => ({ key: bytes(1, i), value: bytes(2, i) })));
  await db.run("UPDATE smt_nodes SET body = substr(body, 1, 64) || x'ff' WHERE hash = ?", [tree.root]);
  await assert.rejects(tree.get(bytes(1, 0)), /does not hash to its key/);
  await db.run("DELETE FROM smt_nodes WHERE hash = ?", [tree.root]);
  await assert.rejects(
    tree.get(bytes(1, 0)),
    (e) => e instanceof ProtocolError && e.code === "SMT_NODE_MISSING",
  );
  await db.close();
});
