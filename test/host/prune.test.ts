// The host's pruner (audit #19.13): rows past their limits go, fresh ones and anything a live coin needs stay.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Db } from "../../common/sqlite.ts";
import { ConfigError, loadConfig } from "../../host/config.ts";
import type { Logger } from "../../host/log.ts";
import { pruneOnce, startPruner } from "../../host/prune.ts";
import { HOST_MIGRATIONS, Store } from "../../host/store.ts";
import { StatechainStatus } from "../../proto/gen/common.ts";
import { DEFAULT_WINDOW_MS } from "../../protocol/auth.ts";

const NOW = 1_900_000_000_000;
const HOUR = 3600_000;
const LIMITS = { unfundedTtlMs: 10 * 60_000, answerRetentionMs: HOUR };
const b = (n: number, len = 32) => Buffer.alloc(len, n);

async function open() {
  const db = await Db.open(":memory:", HOST_MIGRATIONS);
  return { db, store: new Store(db) };
}

/** A funded coin `n` in `status`, with a transfer to receiver `r` (completed or not). */
async function coin(db: Db, n: number, status: StatechainStatus, receiver?: number, completed = false) {
  await db.run(
    "INSERT INTO deposits (deposit_id, proof_key, statechain_id, enclave_instance, created_at) VALUES (?, ?, ?, ?, ?)",
    [b(n, 16), b(1, 33), b(n, 36), b(0, 16), NOW - 30 * 24 * HOUR],
  );
  await db.run(
    `INSERT INTO statechains (statechain_id, deposit_id, status, amount_sat, shared_public_key, owner_index,
       deposit_proof_key, proof_key, state_hash, backup_mode, initial_lock, funding_tx, enclave_instance,
       created_at, updated_at) VALUES (?, ?, ?, 100000, ?, 1, ?, ?, ?, 1, 1000, ?, ?, ?, ?)`,
    [b(n, 36), b(n, 16), status, b(2, 33), b(1, 33), b(1, 33), b(3), b(4), b(0, 16), NOW, NOW],
  );
  if (receiver !== undefined)
    await db.run(
      `INSERT INTO transfers (statechain_id, new_owner_index, receiver_proof_key, receiver_backup_key, encrypted_x1,
         backup_lock, completed_at, created_at) VALUES (?, 2, ?, ?, ?, 990, ?, ?)`,
      [b(n, 36), b(receiver, 33), b(5, 33), b(6), completed ? NOW : null, NOW - 2 * HOUR],
    );
}

async function message(db: Db, id: number, coinN: number, receiver: number, at: number) {
  await db.run(
    "INSERT INTO mailbox (message_id, receiver_proof_key, statechain_id, ciphertext, created_at) VALUES (?, ?, ?, ?, ?)",
    [b(id, 16), b(receiver, 33), b(coinN, 36), b(9, 100), at],
  );
}

const count = async (db: Db, table: string) =>
  (await db.get<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`))!.n;

test("rows older than their limits are pruned and fresh ones kept", async () => {
  const { db, store } = await open();
  // Idempotency answers and signing sessions: one past the retention, one inside it.
  await db.transaction(async (q) => {
    await store.saveIdempotent(b(1), "signFirst", b(1, 10), NOW - HOUR - 1, q);
    await store.saveIdempotent(b(2), "signFirst", b(2, 10), NOW - HOUR + 1000, q);
    await store.useNonce(b(1, 33), b(1), NOW - 1, q);
    await store.useNonce(b(1, 33), b(2), NOW + 1000, q);
  });
  for (const [id, at] of [
    [1, NOW - HOUR - 1],
    [2, NOW - 60_000],
  ] as const)
    await db.run(
      "INSERT INTO sign_sessions (session_id, statechain_id, purpose, tx, input_index, owner_index, created_at) VALUES (?, ?, 1, ?, 0, 1, ?)",
      [b(id, 16), b(1, 36), b(7), at],
    );
  // Unfunded deposits: one past its TTL, one inside; a funded one however old stays (its statechain needs it).
  for (const [id, at] of [
    [21, NOW - LIMITS.unfundedTtlMs - 1],
    [22, NOW - 1000],
  ] as const)
    await db.run(
      "INSERT INTO deposits (deposit_id, proof_key, enclave_instance, created_at) VALUES (?, ?, ?, ?)",
      [b(id, 16), b(1, 33), b(0, 16), at],
    );
  await coin(db, 30, StatechainStatus.STATECHAIN_STATUS_ACTIVE);

  const counts = await pruneOnce(store, NOW, LIMITS);
  assert.deepEqual(counts, {
    authNonces: 1,
    powUsed: 0,
    deposits: 1,
    idempotency: 1,
    signSessions: 1,
    mailbox: 0,
  });
  assert.equal(await store.idempotent(b(1)), undefined);
  assert.deepEqual((await store.idempotent(b(2)))?.response, b(2, 10));
  assert.ok(await store.signSession(b(2, 16)), "a fresh signing session is kept");
  assert.equal(await store.signSession(b(1, 16)), undefined);
  assert.ok(await store.deposit(b(22, 16)), "a fresh unfunded deposit is kept");
  assert.ok(await store.deposit(b(30, 16)), "a funded deposit is kept");
  assert.equal(await store.deposit(b(21, 16)), undefined);
  assert.deepEqual(await pruneOnce(store, NOW, LIMITS), {
    authNonces: 0,
    powUsed: 0,
    deposits: 0,
    idempotency: 0,
    signSessions: 0,
    mailbox: 0,
  });
  await db.close();
});

test("a retried request whose nonce is still remembered gets its stored answer after pruning", async () => {
  // The shortest retention the configuration accepts is the nonce's lifetime: a replay the nonce check
  // catches must find its answer (host/api/step.ts commit()), else it would be refused as a replay.
  assert.throws(
    () => loadConfig({ env: { SE_PRUNE_ANSWER_RETENTION_MS: String(2 * DEFAULT_WINDOW_MS - 1) } }),
    ConfigError,
  );
  const retention = loadConfig({ env: { SE_PRUNE_ANSWER_RETENTION_MS: String(2 * DEFAULT_WINDOW_MS) } }).prune
    .answerRetentionMs;
  const { db, store } = await open();
  const answeredAt = NOW - 2 * DEFAULT_WINDOW_MS + 1000;
  await db.transaction(async (q) => {
    await store.useNonce(b(1, 33), b(1), answeredAt + 2 * DEFAULT_WINDOW_MS, q);
    await store.saveIdempotent(b(1), "transferSend", b(3, 20), answeredAt, q);
  });
  await pruneOnce(store, NOW, { unfundedTtlMs: LIMITS.unfundedTtlMs, answerRetentionMs: retention });
  await db.transaction(async (q) => {
    assert.equal(await store.useNonce(b(1, 33), b(1), NOW, q), false, "the nonce is still remembered");
    assert.deepEqual((await store.idempotent(b(1), q))?.response, b(3, 20));
  });
  await db.close();
});

test("mailbox messages of open transfers stay however old; orphaned ones go", async () => {
  const { db, store } = await open();
  const old = NOW - 10 * HOUR;
  await coin(db, 1, StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING, 50);
  await message(db, 1, 1, 50, old); // the open transfer's message: kept
  await message(db, 2, 1, 51, old); // the transfer was redirected away from receiver 51: pruned
  await coin(db, 2, StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP, 52);
  await message(db, 3, 2, 52, old); // cut transfer: the receiver may hold the coin's first valid backup: kept
  await coin(db, 3, StatechainStatus.STATECHAIN_STATUS_CLOSED, 53);
  await message(db, 4, 3, 53, old); // closed coin: pruned
  await coin(db, 4, StatechainStatus.STATECHAIN_STATUS_ACTIVE, 54, true);
  await message(db, 5, 4, 54, NOW - 1000); // orphaned but recent: kept until the retention passes
  assert.equal((await pruneOnce(store, NOW, LIMITS)).mailbox, 2);
  const left = await db.all<{ message_id: Buffer }>("SELECT message_id FROM mailbox ORDER BY message_id");
  assert.deepEqual(
    left.map((r) => r.message_id[0]),
    [1, 3, 5],
  );
  assert.equal(await count(db, "statechains"), 4, "no coin row is touched");
  assert.equal(await count(db, "transfers"), 4);
  await db.close();
});

test("the pruner runs at start, logs counts only, and stops", async () => {
  const { db, store } = await open();
  await db.transaction((q) => store.saveIdempotent(b(1), "signFirst", b(1, 10), NOW - 2 * HOUR, q));
  const lines: Array<[object, string]> = [];
  const log = {
    info: (o: object, m: string) => lines.push([o, m]),
    warn: (o: object, m: string) => lines.push([o, m]),
  } as unknown as Logger;
  const p = startPruner(store, { ...LIMITS, intervalMs: 60_000 }, log, () => NOW);
  await p.done;
  p.stop();
  assert.equal(await count(db, "idempotency"), 0);
  assert.deepEqual(lines, [
    [
      { authNonces: 0, powUsed: 0, deposits: 0, idempotency: 1, signSessions: 0, mailbox: 0 },
      "pruned expired rows",
    ],
  ]);
  await db.close();
});
