// Crash safety of the host: the enclave and the regtest chain run on while the host is killed with SIGKILL between
// every pair of transfer steps, and inside each step (after the enclave answered, before and after the commit).
// After each restart the owner retries the exact signed request it had sent: a committed step answers with its
// stored result, an uncommitted one runs again. At the end exactly one owner can co-sign the coin.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { status } from "@grpc/grpc-js";
import { confirmDeposit, deposit, type OwnedCoin, send } from "../../client/owner.ts";
import { fetchIncoming, receive } from "../../client/receive.ts";
import { loadConfig } from "../../host/config.ts";
import { enclavePolicy } from "../../host/main.ts";
import { StatechainStatus } from "../../proto/gen/common.ts";
import { outpointBytes } from "../../protocol/outpoint.ts";
import { fundedWallet, newIdentity } from "../helpers/owners.ts";
import { type DurableSe, startDurableSe, startSeExpectingFailure } from "../helpers/se-process.ts";
import { encodeResponse, refused, type Step, signAs, TRANSFER_STEPS } from "../host/support/calls.ts";
import { type SteppingHarness, steppingHarness, tryCoSign, untilStatus } from "../host/support/coins.ts";
import { assertNoDbChange, queryDb } from "../host/support/db-snapshot.ts";

const ENV = { SE_MAINSTAY_INTERVAL_S: "1", SE_INIT_LOCK: "200", SE_LOCKTIME_INTERVAL: "10" };
const grpcName = (m: string) => m[0]!.toUpperCase() + m.slice(1);

let se: DurableSe;
let h: SteppingHarness;
let coin1: OwnedCoin;
let coin2: OwnedCoin;
let coin3: OwnedCoin;
/** The newest owner's coin, whichever tests ran. */
let latest: OwnedCoin;

async function restart(): Promise<void> {
  h.follow(await se.restart());
}

before(async () => {
  se = await startDurableSe({ env: ENV, policy: enclavePolicy(loadConfig({ env: ENV })) });
  h = await steppingHarness(se.host);
  const wallet = await fundedWallet(h.chain);
  coin1 = await deposit(h.ctx, { amountSat: 500_000n, utxos: wallet.utxos, changeScript: wallet.script });
  await confirmDeposit(h.ctx, coin1, { onWait: async () => void (await h.chain.mine(1)) });
  latest = coin1;
});
after(async () => {
  h?.close();
  await se?.stop();
});

test("a host configured with another policy than its enclave enforces refuses to start", async () => {
  const r = await startSeExpectingFailure({
    env: { ...se.env, SE_INIT_LOCK: "300" },
  });
  assert.match(r.stderr, /initLock/);
  assert.match(r.stderr, /enclave enforces 200, the configuration says 300/);
});

test("killed between every pair of transfer steps, the host resumes the transfer where it was", async () => {
  const killedAfter: string[] = [];
  h.client.around = async (step: Step, sendIt) => {
    const res = await sendIt();
    if (!TRANSFER_STEPS.includes(step.method)) return res;
    killedAfter.push(step.method);
    await restart();
    if (step.method === "mailboxGet") {
      // A read is not replayable: its nonce was spent before the crash and stays spent after it.
      await refused(h.client.send("mailboxGet", step.sent as never), status.UNAUTHENTICATED, /replay/);
    } else {
      const again = await h.client.send(step.method, step.sent as never);
      assert.deepEqual(
        encodeResponse(step.method, again as never),
        encodeResponse(step.method, res as never),
        `${step.method} answered again with its stored result`,
      );
    }
    return res;
  };
  const id2 = newIdentity();
  await send(h.ctx, coin1, id2.address);
  const [incoming] = await fetchIncoming(h.ctx, id2);
  assert.ok(incoming, "the transfer message survived the restarts");
  coin2 = await receive(h.ctx, id2, incoming);
  latest = coin2;
  h.client.around = (_s, sendIt) => sendIt();
  assert.deepEqual(killedAfter, TRANSFER_STEPS);

  const sc = await h.client.current.call("getStatechain", { statechainId: coin1.statechainId });
  assert.equal(sc.status, StatechainStatus.STATECHAIN_STATUS_ACTIVE);
  assert.equal(sc.ownerIndex, 2);
  assert.deepEqual(Buffer.from(sc.currentProofKey), id2.address.proofKey);
  assert.equal(await tryCoSign(h, coin1), status.UNAUTHENTICATED, "the sender can no longer co-sign");
  assert.equal(await tryCoSign(h, coin2), true, "the receiver co-signs");
});

test("killed inside each step, before and after its commit, the host finishes the transfer on a retry", async () => {
  assert.ok(coin2, "runs after the previous test");
  const crashed: string[] = [];
  h.client.around = async (step: Step, sendIt) => {
    if (!TRANSFER_STEPS.includes(step.method) || step.method === "mailboxGet") return sendIt();
    crashed.push(step.method);
    // Killed after the enclave answered and before anything was written: the step left no trace.
    se.crashAt(grpcName(step.method), "before-commit");
    await assertNoDbChange(se.dataDir, `${step.method} killed before its commit`, () =>
      refused(sendIt(), status.UNAVAILABLE),
    );
    await restart();
    if (step.method === "transferReceiverKeyUpdate") {
      // The enclave had made the key update: the restarted host wrote it from the enclave's answer (#19.1), and
      // the retry gets that answer. Killed after a commit instead (before the answer, the tree update and the
      // watchtower registration), the restart catches up too: the retry of the stored step checks it below.
      const sc = await h.client.current.call("getStatechain", {
        statechainId: (step.request as { statechainId: never }).statechainId,
      });
      assert.equal(sc.status, StatechainStatus.STATECHAIN_STATUS_ACTIVE, "recovered at start-up");
      const answer = await h.client.send(step.method, step.sent as never);
      se.crashAt("GetKeyUpdateResult", "after-commit"); // no commit in a read: the hook stays unused
      return answer;
    }
    return h.client.send(step.method, step.sent as never);
  };
  const id3 = newIdentity();
  await send(h.ctx, coin2, id3.address);
  const [incoming] = await fetchIncoming(h.ctx, id3);
  coin3 = await receive(h.ctx, id3, incoming!);
  latest = coin3;
  h.client.around = (_s, sendIt) => sendIt();
  assert.deepEqual(
    crashed,
    TRANSFER_STEPS.filter((m) => m !== "mailboxGet"),
  );
  assert.equal(coin3.ownerIndex, 3);

  // The restart after the key update's commit caught up with the tree and the watchtower.
  const sc = await h.client.current.call("getStatechain", { statechainId: coin3.statechainId });
  const proof = await h.client.current.call("getSmtProof", { statechainId: coin3.statechainId });
  assert.deepEqual(Buffer.from(proof.currentLeaf), Buffer.from(sc.stateHash));
  const [tower] = await queryDb<{ owner_index: number }>(
    se.dataDir,
    "SELECT owner_index FROM watchtower_entries",
  );
  assert.equal(tower?.owner_index, 3, "the watchtower holds the newest owner's backup");
  const rows = await queryDb<{ n: number }>(
    se.dataDir,
    "SELECT COUNT(*) AS n FROM transfers WHERE statechain_id = ? AND completed_at IS NULL",
    [outpointBytes(coin3.statechainId)],
  );
  assert.equal(rows[0]!.n, 0, "no transfer is left pending");

  // Exactly one owner can co-sign: never two, never none.
  assert.equal(await tryCoSign(h, coin1), status.UNAUTHENTICATED);
  assert.equal(await tryCoSign(h, coin2), status.UNAUTHENTICATED);
  assert.equal(await tryCoSign(h, coin3), true);
});

test("a step that reached the enclave first is written first: a sender's retry cannot undo the key update", async () => {
  const sender = latest;
  const id4 = newIdentity();
  h.client.around = async (step: Step, sendIt) => {
    if (step.method !== "transferReceiverKeyUpdate") return sendIt();
    // The sender retries its TransferSenderInit (a fresh request, same receiver); it gets its answer from the
    // enclave and is held before its commit while the receiver's key update arrives.
    // The pause is a ceiling only: the test releases the retry itself once it has seen the key update wait.
    se.crashAt("TransferSenderInit", "before-commit", 300_000);
    const retry = h.client.send(
      "transferSenderInit",
      signAs(
        "transferSenderInit",
        {
          statechainId: sender.statechainId,
          receiverProofKey: id4.address.proofKey,
          receiverBackupKey: id4.address.backupKey,
          auth: undefined,
        },
        sender.proofSecret,
      ),
    );
    assert.equal(
      await se.untilPaused(),
      "TransferSenderInit:before-commit",
      "the retry is held before its commit",
    );
    // The host runs one step at a time per coin (host/keyed-mutex.ts): the key update waits for the held retry,
    // and is answered only after the retry's commit. Were it to run meanwhile, the retry's later commit would
    // write the pre-update state over it.
    const answered: string[] = [];
    const keyUpdate = sendIt().then((res) => {
      answered.push("key update");
      return res;
    });
    const retried = retry.then(() => {
      answered.push("retry");
    });
    try {
      await sleep(500);
      assert.deepEqual(answered, [], "the key update is not answered while the retry is held");
      assert.equal(se.pausedAt(), "TransferSenderInit:before-commit", "the retry is still held");
      se.release();
      await retried;
      const res = await keyUpdate;
      assert.deepEqual(
        answered,
        ["retry", "key update"],
        "the retry is written first, the key update after it",
      );
      return res;
    } finally {
      se.release();
    }
  };
  await send(h.ctx, sender, id4.address);
  const [incoming] = await fetchIncoming(h.ctx, id4);
  const coin4 = await receive(h.ctx, id4, incoming!);
  latest = coin4;
  h.client.around = (_s, sendIt) => sendIt();

  const sc = await h.client.current.call("getStatechain", { statechainId: coin4.statechainId });
  assert.equal(sc.status, StatechainStatus.STATECHAIN_STATUS_ACTIVE, "the coin is not left pending");
  assert.equal(sc.ownerIndex, sender.ownerIndex + 1);
  assert.deepEqual(Buffer.from(sc.currentProofKey), id4.address.proofKey);
  assert.equal(await tryCoSign(h, sender), status.UNAUTHENTICATED);
  assert.equal(await tryCoSign(h, coin4), true);
});

test("an enclave that restarted has lost its shares: the host marks its coins exit-by-backup", async () => {
  await se.restartEnclave();
  await untilStatus(h, latest, StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP);
  assert.equal(await tryCoSign(h, latest), status.FAILED_PRECONDITION, "nothing is co-signed any more");
  const [tower] = await queryDb<{ owner_index: number }>(
    se.dataDir,
    "SELECT owner_index FROM watchtower_entries",
  );
  assert.equal(tower?.owner_index, latest.ownerIndex, "the newest owner's backup stays with the watchtower");
  const metrics = await (await fetch(String(se.host.info.metrics))).text();
  assert.match(metrics, /^se_statechains\{state="STATECHAIN_STATUS_EXIT_BY_BACKUP"\} 1$/m);
});

test("SIGTERM lets a step in flight finish, then the host exits 0", async () => {
  se.crashAt("DepositConfirm", "before-commit", 300_000);
  const call = h.client.send(
    "depositConfirm",
    signAs("depositConfirm", { statechainId: latest.statechainId, auth: undefined }, latest.proofSecret),
  );
  assert.equal(await se.untilPaused(), "DepositConfirm:before-commit", "the step is held before its commit");
  const exited = se.host.stop("SIGTERM");
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  // The host closes its server with a grace of 3 s (host/server.ts): a step held for part of it still finishes.
  await sleep(300);
  assert.equal(se.pausedAt(), "DepositConfirm:before-commit", "the step was in flight when SIGTERM came");
  assert.ok(!gone, "the host does not exit while a step is in flight");
  se.release();
  const res = await call;
  assert.equal(res.status, StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP);
  assert.deepEqual(await exited, { code: 0, signal: null });
});
