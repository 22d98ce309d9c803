// One SE per data dir: a second `se start` on a running SE's data dir is refused, naming the PID that holds it,
// and leaves the running SE's database, chain RPC credentials and enclave socket alone; a stale lock (its PID
// gone) is taken over.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { credentials } from "@grpc/grpc-js";
import { DataDirLockedError, LOCK_FILE, lockDataDir } from "../../host/datadir-lock.ts";
import { StatechainServiceClient } from "../../proto/gen/statechain.ts";
import { unary } from "../../proto/unary.ts";
import { startSeExpectingFailure, startSeProcess } from "../helpers/se-process.ts";

test("a second se start on the same data dir is refused; the first keeps running untouched", async () => {
  const first = await startSeProcess({ env: { SE_MAINSTAY_ENABLED: "false" } });
  try {
    const dir = first.dataDir;
    assert.equal(readFileSync(path.join(dir, LOCK_FILE), "utf8").trim(), String(first.proc.pid));
    const files = ["host.sqlite", "bitcoin-rpc.json", "enclave.sock"].map((f) => path.join(dir, f));
    const before = files.map((f) => statSync(f).ino);
    const rpc = readFileSync(files[1]!, "utf8");

    const second = await startSeExpectingFailure({ dataDir: dir, env: { SE_MAINSTAY_ENABLED: "false" } });
    assert.match(second.stderr, new RegExp(`in use by another SE \\(PID ${first.proc.pid}`));
    assert.match(second.stderr, /another --data-dir/);

    assert.deepEqual(
      files.map((f) => statSync(f).ino),
      before,
      "the database, RPC credentials and socket are the same files",
    );
    assert.equal(readFileSync(files[1]!, "utf8"), rpc);
    const api = new StatechainServiceClient(`127.0.0.1:${first.port}`, credentials.createInsecure());
    try {
      const info = await unary(api, api.getInfo, {}, { deadlineMs: 5000 });
      assert.equal(info.network, "regtest");
    } finally {
      api.close();
    }
    assert.equal(readFileSync(path.join(dir, LOCK_FILE), "utf8").trim(), String(first.proc.pid));
  } finally {
    await first.stop();
  }
  assert.equal(existsSync(path.join(first.dataDir, LOCK_FILE)), false, "a clean stop releases the lock");
});

test("a lock whose PID is gone is stale and taken over; this process cannot lock a dir twice", () => {
  const d = mkdtempSync(path.join(tmpdir(), "se-lock-"));
  const dead = spawnSync(process.execPath, ["-e", "process.exit(0)"]).pid!;
  writeFileSync(path.join(d, LOCK_FILE), `${dead}\n`);
  const lock = lockDataDir(d);
  assert.equal(readFileSync(lock.file, "utf8").trim(), String(process.pid));
  assert.throws(() => lockDataDir(d), DataDirLockedError);
  lock.release();
  assert.equal(existsSync(lock.file), false);
  // A lock file with this process's PID that it does not hold is a reused PID (a restarted container): stale.
  writeFileSync(path.join(d, LOCK_FILE), `${process.pid}\n`);
  lockDataDir(d).release();
});
