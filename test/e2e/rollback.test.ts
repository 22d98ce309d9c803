// Rollback: copy the host's database before a transfer, complete the transfer, restore the copy and restart the
// host: the old owner still cannot sign. At start-up the host compares its records with the enclave's
// (host/enclave-agreement.ts), finds the coin's record stale and marks it exit-by-backup. The rest of the file
// runs the restored host with that check skipped, as a compromised host would: it believes owner 1 still owns
// the coin and lets its requests through, but the enclave (its own process, untouched) moved on to owner 2 at the key update, which
// replaced s1 and closed every signing session: it refuses every request owner 1 signs (a co-signed backup, a
// round opened before the copy, a withdrawal, a transfer to a third wallet). Owner 2, whom the restored host no
// longer knows, cannot co-sign either; it exits by its backup, whose lock is lower than owner 1's: the test mines
// to that lock and shows that owner 2's backup confirms and owner 1's cannot.
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { status } from "@grpc/grpc-js";
import * as bitcoin from "bitcoinjs-lib";
import {
  confirmDeposit,
  coSign,
  deposit,
  lockFor,
  type OwnedCoin,
  pub,
  send,
  withdraw,
} from "../../client/owner.ts";
import { fetchIncoming, receive } from "../../client/receive.ts";
import { loadConfig } from "../../host/config.ts";
import { connectEnclave } from "../../host/enclave-process.ts";
import { enclavePolicy } from "../../host/main.ts";
import { SignPurpose, StatechainStatus } from "../../proto/gen/common.ts";
import type { EnclaveServiceClient } from "../../proto/gen/enclave.ts";
import { unary } from "../../proto/unary.ts";
import { outpointBytes } from "../../protocol/outpoint.ts";
import { buildBackupTx } from "../../protocol/tx/build.ts";
import { p2wpkhScript } from "../../protocol/tx/script.ts";
import { fundedWallet, newIdentity } from "../helpers/owners.ts";
import { type DurableSe, startDurableSe } from "../helpers/se-process.ts";
import { encodeRequest, type Req, refused, signAs } from "../host/support/calls.ts";
import {
  rejection,
  type SteppingHarness,
  statechainUtxo,
  steppingHarness,
  tryCoSign,
} from "../host/support/coins.ts";
import { queryDb } from "../host/support/db-snapshot.ts";

const INIT_LOCK = 200;
const INTERVAL = 10;
const ENV = { SE_INIT_LOCK: String(INIT_LOCK), SE_LOCKTIME_INTERVAL: String(INTERVAL) };
/** The host's SQLite database with its write-ahead log (host/main.ts). */
const DB_FILES = ["host.sqlite", "host.sqlite-wal", "host.sqlite-shm"];
/** What the enclave answers a request signed by a key that is not the coin's current owner's. */
const NOT_THE_OWNER = /auth signature does not verify under the proof key/;

let se: DurableSe;
let h: SteppingHarness;
let enclave: EnclaveServiceClient;
let coin1: OwnedCoin;
let coin2: OwnedCoin;
/** Owner 1's second signing round for its own backup, signed before the copy and never sent. */
let heldBack: Req<"signSecond">;

/** Copies the database files from one directory to another; a file absent in `from` is removed in `to`. */
function copyDb(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const f of DB_FILES) {
    if (existsSync(path.join(from, f))) copyFileSync(path.join(from, f), path.join(to, f));
    else rmSync(path.join(to, f), { force: true });
  }
}

/** The coin as the host's database and as the enclave's memory describe it. */
async function views(coin: OwnedCoin) {
  const host = await h.client.current.call("getStatechain", { statechainId: coin.statechainId });
  const list = await unary(enclave, enclave.listStatechains, { pageAfter: Buffer.alloc(0), pageSize: 100 });
  const inEnclave = list.statechains.find(
    (s) => s.statechainId && Buffer.from(s.statechainId.txid).equals(Buffer.from(coin.statechainId.txid)),
  );
  assert.ok(inEnclave, "the enclave holds the coin");
  return { host, enclave: inEnclave };
}

/** How many calls the host has made to the enclave method `method` since it started (its latency histogram). */
async function enclaveCalls(method: string): Promise<number> {
  const text = await (await fetch(String(se.host.info.metrics))).text();
  const m = text.match(new RegExp(`^se_enclave_seconds_count\\{method="${method}"\\} (\\d+)$`, "m"));
  return m ? Number(m[1]) : 0;
}

/** Runs `fn` and returns how many calls the host made to each of the enclave methods `methods` meanwhile. */
async function forwarded(methods: string[], fn: () => Promise<unknown>): Promise<Record<string, number>> {
  const before = await Promise.all(methods.map(enclaveCalls));
  await fn();
  const after = await Promise.all(methods.map(enclaveCalls));
  return Object.fromEntries(methods.map((m, i) => [m, after[i]! - before[i]!]));
}

const lockOf = (raw: Uint8Array) => bitcoin.Transaction.fromBuffer(Buffer.from(raw)).locktime;

before(async () => {
  se = await startDurableSe({ env: ENV, policy: enclavePolicy(loadConfig({ env: ENV })) });
  enclave = connectEnclave(se.enclave.socketPath);
  h = await steppingHarness(se.host);
  const wallet = await fundedWallet(h.chain);
  coin1 = await deposit(h.ctx, { amountSat: 500_000n, utxos: wallet.utxos, changeScript: wallet.script });
  await confirmDeposit(h.ctx, coin1, { onWait: async () => void (await h.chain.mine(1)) });
  // Owner 1 opens a co-signing round (the enclave and the host keep the session) and keeps its finishing request.
  h.client.around = async (step, sendIt) => {
    if (step.method !== "signSecond") return sendIt();
    heldBack = step.sent as Req<"signSecond">;
    throw new Error("held back");
  };
  await assert.rejects(tryCoSign(h, coin1), /held back/);
  h.client.around = (_s, sendIt) => sendIt();
});
after(async () => {
  enclave?.close();
  h?.close();
  await se?.stop();
});

test("the host's database is copied, the coin transferred, the copy restored: the host flags the stale coin; without the check it is back at owner 1", async () => {
  const copy = path.join(se.dataDir, "rollback-copy");
  // A clean stop checkpoints the log; the copy takes whatever files there are all the same.
  assert.deepEqual(await se.host.stop("SIGTERM"), { code: 0, signal: null });
  copyDb(se.dataDir, copy);
  h.follow(await se.restart());

  const id2 = newIdentity();
  await send(h.ctx, coin1, id2.address);
  const [incoming] = await fetchIncoming(h.ctx, id2);
  assert.ok(incoming, "the receiver finds the transfer");
  coin2 = await receive(h.ctx, id2, incoming);
  assert.equal(coin2.ownerIndex, 2);
  assert.equal(await tryCoSign(h, coin1), status.UNAUTHENTICATED, "before the rollback the sender is out");

  // The operator (or an attacker with the disk) puts the old database back under a killed host.
  await se.host.stop("SIGKILL");
  copyDb(copy, se.dataDir);
  h.follow(await se.restart());
  const flagged = await views(coin1);
  assert.equal(flagged.host.ownerIndex, 1, "the restored database names owner 1");
  assert.equal(
    flagged.host.status,
    StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP,
    "the host found its record older than the enclave's",
  );
  const { stdout, stderr } = se.host.output();
  assert.match(stdout + stderr, /the database disagrees with the enclave/);
  const calls = await forwarded(["signFirst"], async () =>
    assert.equal(await tryCoSign(h, coin1), status.FAILED_PRECONDITION),
  );
  assert.deepEqual(calls, { signFirst: 0 }, "the host refuses before asking the enclave");

  // The same copy under a host that skips the comparison.
  await se.host.stop("SIGKILL");
  copyDb(copy, se.dataDir);
  se.env.SE_TEST_SKIP_ENCLAVE_AGREEMENT = "1";
  h.follow(await se.restart());

  const { host, enclave: held } = await views(coin1);
  assert.equal(host.ownerIndex, 1, "the restored database names owner 1");
  assert.deepEqual(Buffer.from(host.currentProofKey), pub(coin1.proofSecret));
  assert.equal(host.keyUpdates.length, 0, "the restored database has no key update");
  assert.equal(host.status, StatechainStatus.STATECHAIN_STATUS_ACTIVE);
  assert.equal(held.ownerIndex, 2, "the enclave still names owner 2");
  assert.deepEqual(Buffer.from(held.proofKey), pub(coin2.proofSecret));
  assert.equal(held.status, StatechainStatus.STATECHAIN_STATUS_ACTIVE);
  assert.notDeepEqual(Buffer.from(held.stateHash), Buffer.from(host.stateHash), "the states differ");
});

test("owner 1 cannot get a backup co-signed: the enclave verifies its request under owner 2's key", async () => {
  assert.ok(coin2, "runs after the rollback");
  // A backup to its own key at its own lock (what tryCoSign sends), then one at a lock below owner 2's (what
  // owner 1 would need to beat owner 2 on chain), as a backup and as a withdrawal.
  let signed: Buffer | undefined;
  h.client.around = async (step, sendIt) => {
    if (step.method === "signFirst") signed = encodeRequest("signFirst", step.sent as never);
    return sendIt();
  };
  // The host lets it through (its record names owner 1): the refusal is the enclave's, and the enclave gives
  // the same refusal when handed the request directly.
  const calls = await forwarded(["signFirst"], async () =>
    assert.equal(await tryCoSign(h, coin1), status.UNAUTHENTICATED),
  );
  h.client.around = (_s, sendIt) => sendIt();
  assert.deepEqual(calls, { signFirst: 1 }, "the host forwarded the request to the enclave");
  await refused(
    unary(enclave, enclave.signFirst, {
      signedRequest: signed!,
      chainTip: await h.chain.tipHeight(),
      kickoffHeight: 0,
    }),
    status.UNAUTHENTICATED,
    NOT_THE_OWNER,
  );
  const sessions = () =>
    queryDb(se.dataDir, "SELECT 1 FROM sign_sessions WHERE statechain_id = ?", [
      outpointBytes(coin1.statechainId),
    ]);
  const opened = (await sessions()).length;
  const undercut = buildBackupTx({
    mode: "absolute",
    spend: { txid: coin1.statechainId.txid, vout: coin1.statechainId.vout },
    spendAmountSat: coin1.amountSat,
    backupKey: newIdentity().address.backupKey,
    lock: lockFor(coin1.initialLock, coin1.interval, 3),
    feeRateSatVb: 2,
  });
  for (const purpose of [SignPurpose.SIGN_PURPOSE_BACKUP, SignPurpose.SIGN_PURPOSE_WITHDRAWAL]) {
    await refused(
      coSign(h.ctx, coin1, purpose, undercut.raw, coin1.amountSat),
      status.UNAUTHENTICATED,
      NOT_THE_OWNER,
    );
  }
  assert.equal((await sessions()).length, opened, "no signing session was opened");
});

test("owner 1 cannot finish a co-signing round it opened before the copy, which the restored host still has", async () => {
  assert.ok(coin2, "runs after the rollback");
  // The restored host still has the open session and has never seen this request's nonce; the enclave closed
  // every session at the key update and verifies the request under owner 2's key.
  const [session] = await queryDb<{ signature: Buffer | null }>(
    se.dataDir,
    "SELECT signature FROM sign_sessions WHERE session_id = ?",
    [heldBack.sessionId],
  );
  assert.ok(session, "the restored database has the open session");
  assert.equal(session.signature, null);
  const calls = await forwarded(["signSecond"], () =>
    refused(h.client.send("signSecond", heldBack), status.UNAUTHENTICATED, NOT_THE_OWNER),
  );
  assert.deepEqual(calls, { signSecond: 1 }, "the host forwarded it, the enclave refused it");
});

test("owner 1 cannot withdraw: the enclave refuses its WITHDRAW", async () => {
  assert.ok(coin2, "runs after the rollback");
  const calls = await forwarded(["withdrawInit"], () =>
    refused(
      withdraw(h.ctx, coin1, p2wpkhScript(newIdentity().address.proofKey)),
      status.UNAUTHENTICATED,
      NOT_THE_OWNER,
    ),
  );
  assert.deepEqual(calls, { withdrawInit: 1 }, "the host forwarded it, the enclave refused it");
  const { host } = await views(coin1);
  assert.equal(host.status, StatechainStatus.STATECHAIN_STATUS_ACTIVE, "no withdrawal was recorded");
});

test("owner 1 cannot transfer to a third wallet: nothing reaches the receiver, no key update can follow", async () => {
  assert.ok(coin2, "runs after the rollback");
  const id3 = newIdentity();
  const calls = await forwarded(["transferInit", "keyUpdate"], () =>
    refused(send(h.ctx, coin1, id3.address), status.UNAUTHENTICATED, NOT_THE_OWNER),
  );
  assert.deepEqual(calls, { transferInit: 1, keyUpdate: 0 }, "the enclave refused the transfer's first step");
  assert.deepEqual(await fetchIncoming(h.ctx, id3), [], "the third wallet's mailbox is empty");
  const { host, enclave: held } = await views(coin1);
  assert.equal(host.status, StatechainStatus.STATECHAIN_STATUS_ACTIVE, "no transfer is pending at the host");
  assert.equal(held.status, StatechainStatus.STATECHAIN_STATUS_ACTIVE, "nor in the enclave");
  assert.equal(held.ownerIndex, 2);
});

test("owner 2, unknown to the restored host, cannot co-sign; it exits by its backup, which unlocks first", async () => {
  assert.ok(coin2, "runs after the rollback");
  // The host checks requests against its (restored) record of the owner: owner 2's signature is not owner 1's,
  // and the host refuses before asking the enclave.
  const calls = await forwarded(["signFirst", "transferInit"], async () => {
    assert.equal(await tryCoSign(h, coin2), status.UNAUTHENTICATED);
    await refused(
      h.client.send(
        "transferSenderInit",
        signAs(
          "transferSenderInit",
          {
            statechainId: coin2.statechainId,
            receiverProofKey: newIdentity().address.proofKey,
            receiverBackupKey: newIdentity().address.backupKey,
            auth: undefined,
          },
          coin2.proofSecret,
        ),
      ),
      status.UNAUTHENTICATED,
      NOT_THE_OWNER,
    );
  });
  assert.deepEqual(calls, { signFirst: 0, transferInit: 0 });

  // Owner 2 holds a fully signed backup that unlocks one interval before owner 1's.
  const lock1 = lockOf(coin1.backupTx);
  const lock2 = lockOf(coin2.backupTx);
  assert.equal(lock1, coin1.initialLock);
  assert.equal(lock2, lock1 - INTERVAL, "owner 2's backup unlocks first");
  const [tower] = await queryDb<{ owner_index: number; lock: number }>(
    se.dataDir,
    "SELECT owner_index, lock FROM watchtower_entries",
  );
  assert.deepEqual({ ...tower }, { owner_index: 1, lock: lock1 }, "the restored watchtower holds owner 1's");

  // On chain: at owner 2's lock its backup confirms; owner 1's is not final yet, and later has nothing to spend.
  const tip = await h.chain.tipHeight();
  await h.chain.mine(lock2 - tip);
  await assert.rejects(
    h.chain.broadcast(coin1.backupTx),
    rejection("non-final"),
    "owner 1's is not final yet",
  );
  const txid2 = await h.chain.broadcast(coin2.backupTx);
  await h.chain.mine(1);
  assert.ok((await h.chain.getTxStatus(txid2))?.confirmations, "owner 2's backup confirmed");
  await h.chain.mine(lock1 - lock2);
  await assert.rejects(h.chain.broadcast(coin1.backupTx), rejection("missing-inputs"), "the coin is spent");
  assert.equal(await statechainUtxo(h, coin1), undefined);
});
