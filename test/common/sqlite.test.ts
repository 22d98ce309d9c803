import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { Db } from "../../common/sqlite.ts";

const file = () => path.join(mkdtempSync(path.join(tmpdir(), "db-")), "t.sqlite");
const M = [{ id: "t-001", sql: "CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB NOT NULL)" }];

test("migrations apply once and survive reopening", async () => {
  const f = file();
  let db = await Db.open(f, M);
  await db.run("INSERT INTO kv VALUES (?, ?)", ["a", Buffer.from([1])]);
  await db.close();
  db = await Db.open(f, [...M, { id: "t-002", sql: "ALTER TABLE kv ADD COLUMN n INTEGER" }]);
  assert.deepEqual(await db.get("SELECT k, v, n FROM kv"), { k: "a", v: Buffer.from([1]), n: null });
  assert.equal((await db.all("SELECT id FROM schema_migrations")).length, 2);
  assert.equal(await db.get<{ m: string }>("PRAGMA journal_mode").then((r) => Object.values(r!)[0]), "wal");
  await db.close();
});

test("a failed transaction leaves nothing behind, and others never interleave with it", async () => {
  const db = await Db.open(file(), M);
  const failing = db.transaction(async (tx) => {
    await tx.run("INSERT INTO kv VALUES ('x', x'00')");
    await new Promise((r) => setTimeout(r, 20));
    throw new Error("boom");
  });
  const outside = db.run("INSERT INTO kv VALUES ('y', x'01')");
  await assert.rejects(failing, /boom/);
  await outside;
  assert.deepEqual(await db.all("SELECT k FROM kv ORDER BY k"), [{ k: "y" }]);
  await db.close();
});
