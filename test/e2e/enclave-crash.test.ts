// Crash safety of the enclave: it is SIGKILLed and restarted between every pair of transfer steps while the host
// and the regtest chain run on. A restarted enclave has lost every key share it held, so the host marks the coin
// exit-by-backup: the next step is refused with FAILED_PRECONDITION (only the mailbox, a read, still answers),
// nobody co-signs the coin again and the watchtower keeps exactly one backup for it, the newest co-signed one (the
// receiver's once its backup was co-signed). On chain each coin then goes to exactly one owner: the backup with
// the lowest lock confirms, the other owner's finds its input spent.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { status } from "@grpc/grpc-js";
import * as bitcoin from "bitcoinjs-lib";
import { confirmDeposit, deposit, type OwnedCoin, pub, randomSecret, send } from "../../client/owner.ts";
import { fetchIncoming, type IncomingTransfer, receive, TransferCutError } from "../../client/receive.ts";
import { SeError } from "../../client/se-client.ts";
import { loadConfig } from "../../host/config.ts";
import { enclavePolicy } from "../../host/main.ts";
import { StatechainStatus } from "../../proto/gen/common.ts";
import { outpointString } from "../../protocol/outpoint.ts";
import { systemRng } from "../../protocol/rng.ts";
import { txidToHex } from "../../protocol/tx/parse.ts";
import { p2wpkhScript } from "../../protocol/tx/script.ts";
import { newIdentity } from "../helpers/owners.ts";
import { type DurableSe, startDurableSe } from "../helpers/se-process.ts";
import { refused, signAs, TRANSFER_STEPS } from "../host/support/calls.ts";
import {
  rejection,
  type SteppingHarness,
  statechainUtxo,
  steppingHarness,
  tryCoSign,
  untilStatus,
} from "../host/support/coins.ts";
import { queryDb } from "../host/support/db-snapshot.ts";

const INIT_LOCK = 200;
const INTERVAL = 10;
const ENV = { SE_INIT_LOCK: String(INIT_LOCK), SE_LOCKTIME_INTERVAL: String(INTERVAL) };
/** What the host answers any step on a coin whose enclave lost its shares (host/api/lookup.ts). */
const EXIT_ONLY = /the statechain is exit by backup only/;

/** One coin whose enclave was killed mid-transfer, and what its two owners ended up holding. */
interface Crashed {
  step: string;
  coin1: OwnedCoin;
  /** Owner 2's coin, when the key update completed before the crash. */
  coin2?: OwnedCoin;
  /** Owner 2's backup key, and its fully signed backup once co-signed (from the watchtower, which holds it). */
  backupKey2: Buffer;
  backup2?: Buffer;
}

let se: DurableSe;
let h: SteppingHarness;
let wallet: { script: Uint8Array; utxos: Parameters<typeof deposit>[1]["utxos"] };
const crashed: Crashed[] = [];

const parse = (raw: Uint8Array) => bitcoin.Transaction.fromBuffer(Buffer.from(raw));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function towerEntries(coin: OwnedCoin) {
  return queryDb<{ statechain_id: string; owner_index: number; lock: number; backup_tx: Buffer }>(
    se.dataDir,
    "SELECT statechain_id, owner_index, lock, backup_tx FROM watchtower_entries WHERE statechain_id = ?",
    [outpointString(coin.statechainId)],
  );
}

before(async () => {
  se = await startDurableSe({ env: ENV, policy: enclavePolicy(loadConfig({ env: ENV })) });
  h = await steppingHarness(se.host);
  // One mature coinbase per crash point, so each fresh deposit needs no new funding (and no 100 blocks).
  const privateKey = randomSecret(systemRng);
  const script = p2wpkhScript(pub(privateKey));
  await h.chain.mine(TRANSFER_STEPS.length, script);
  await h.chain.mine(100);
  const utxos = (await h.chain.findUtxos(script)).map((u) => ({ ...u, privateKey }));
  assert.equal(utxos.length, TRANSFER_STEPS.length);
  wallet = { script, utxos };
});
after(async () => {
  h?.close();
  await se?.stop();
});

for (const [i, crashAfter] of TRANSFER_STEPS.entries()) {
  test(`enclave killed after ${crashAfter}: the coin is exit-only, the rest of the transfer is refused`, async () => {
    // A fresh coin: the previous restart left every earlier coin exit-only.
    const coin1 = await deposit(h.ctx, {
      amountSat: 500_000n,
      utxos: [wallet.utxos[i]!],
      changeScript: wallet.script,
    });
    await confirmDeposit(h.ctx, coin1, { onWait: async () => void (await h.chain.mine(1)) });
    const active = await h.client.current.call("getStatechain", { statechainId: coin1.statechainId });
    assert.equal(active.status, StatechainStatus.STATECHAIN_STATUS_ACTIVE);

    /** The host's answer to each transfer step the wallet sent after the crash. */
    const answers: { method: string; code?: number; message?: string }[] = [];
    let down = false;
    h.client.around = async (step, sendIt) => {
      if (!TRANSFER_STEPS.includes(step.method)) return sendIt();
      if (down) {
        try {
          const res = await sendIt();
          answers.push({ method: step.method });
          return res;
        } catch (e) {
          if (e instanceof SeError) answers.push({ method: step.method, code: e.code, message: e.message });
          throw e;
        }
      }
      const res = await sendIt();
      if (step.method === crashAfter) {
        await se.restartEnclave();
        // The host's monitor polls the enclave every 2 s.
        await untilStatus(h, coin1, StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP);
        down = true;
      }
      return res;
    };
    const id2 = newIdentity();
    let incoming: IncomingTransfer | undefined;
    let coin2: OwnedCoin | undefined;
    let sendError: unknown;
    let receiveError: unknown;
    try {
      sendError = await send(h.ctx, coin1, id2.address).then(
        () => undefined,
        (e: unknown) => e,
      );
      [incoming] = await fetchIncoming(h.ctx, id2);
      if (incoming) {
        try {
          coin2 = await receive(h.ctx, id2, incoming);
        } catch (e) {
          receiveError = e;
        }
      }
    } finally {
      h.client.around = (_s, sendIt) => sendIt();
    }
    assert.ok(down, `the enclave was killed after ${crashAfter}`);

    // The wallets' view: the first step after the crash is refused, and the flow stops there.
    const sent = TRANSFER_STEPS.indexOf("transferSend");
    const keyUpdate = TRANSFER_STEPS.indexOf("transferReceiverKeyUpdate");
    const refusedSteps = answers.filter((a) => a.method !== "mailboxGet");
    if (i < sent) {
      assert.ok(sendError instanceof SeError, `send fails: ${sendError}`);
      assert.equal(incoming, undefined, "no transfer message reached the receiver");
      assert.deepEqual(
        refusedSteps.map((a) => a.method),
        [TRANSFER_STEPS[i + 1]],
      );
    } else {
      assert.equal(sendError, undefined, "the hand-over was done before the crash");
      assert.ok(incoming, "the receiver has the transfer message");
    }
    if (i === sent || i === sent + 1) {
      // The wallet reads the coin's status before it says anything to the SE, and stops there: the transfer was
      // cut after its backup was co-signed, which every check found valid (the wallet keeps the coin exit-only).
      assert.ok(receiveError instanceof TransferCutError, `receive fails: ${receiveError}`);
      assert.equal(receiveError.code, "TRANSFER_CUT");
      assert.match(receiveError.message, /the SE can no longer co-sign it .* by a backup transaction/);
      assert.deepEqual(
        Buffer.from(receiveError.checked.incoming.message.backupTx),
        Buffer.from(incoming!.message.backupTx),
      );
      assert.equal(refusedSteps.length, 0);
      // Sent all the same, the receiver's next step is refused by the host.
      const e = await refused(
        h.client.send(
          "transferReceiverInit",
          signAs(
            "transferReceiverInit",
            {
              statechainId: coin1.statechainId,
              receiverProofKey: id2.address.proofKey,
              nonce: Buffer.from(systemRng(32)),
              auth: undefined,
            },
            id2.proofSecret,
          ),
        ),
        status.FAILED_PRECONDITION,
      );
      refusedSteps.push({ method: "transferReceiverInit", code: e.code, message: e.message });
    }
    if (i === keyUpdate - 1) {
      // The key update is refused (exit by backup only) and the SE confirms the coin is cut at the sender's index.
      assert.ok(receiveError instanceof TransferCutError, `receive fails: ${receiveError}`);
      assert.equal(receiveError.code, "TRANSFER_CUT");
      assert.deepEqual(
        refusedSteps.map((a) => a.method),
        ["transferReceiverKeyUpdate"],
      );
    }
    if (i < keyUpdate) {
      assert.equal(coin2, undefined, "receive produced no coin");
      assert.equal(refusedSteps.length, 1);
      const [next] = refusedSteps;
      assert.equal(next!.code, status.FAILED_PRECONDITION, `${next!.method}: ${next!.message}`);
      assert.match(next!.message!, EXIT_ONLY);
    } else {
      assert.equal(receiveError, undefined);
      assert.ok(coin2, "the transfer completed before the crash");
      assert.equal(coin2.ownerIndex, 2);
      assert.equal(refusedSteps.length, 0);
    }

    // The host's view: exit-only, no owner can co-sign or start another transfer.
    const sc = await h.client.current.call("getStatechain", { statechainId: coin1.statechainId });
    assert.equal(sc.status, StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP);
    assert.equal(sc.ownerIndex, coin2 ? 2 : 1);
    assert.equal(await tryCoSign(h, coin1), status.FAILED_PRECONDITION, "the sender cannot co-sign");
    if (coin2) assert.equal(await tryCoSign(h, coin2), status.FAILED_PRECONDITION, "nor the receiver");
    await refused(
      send(h.ctx, coin2 ?? coin1, newIdentity().address),
      status.FAILED_PRECONDITION,
      /cannot start a transfer: the statechain is exit by backup only/,
    );

    // The watchtower holds one backup for the coin, the newest co-signed one: owner 2's from the moment the
    // sender handed its finished signature to the host (SignComplete; the enclave redirects no transfer past its
    // SignSecond), else owner 1's. It takes it over right after marking the coin, so allow it a moment.
    const cosigned2 = i >= TRANSFER_STEPS.indexOf("signComplete");
    const expected = {
      statechain_id: outpointString(coin1.statechainId),
      owner_index: cosigned2 ? 2 : 1,
      lock: cosigned2 ? coin1.initialLock - INTERVAL : coin1.initialLock,
    };
    let tower = await towerEntries(coin1);
    for (let n = 0; n < 50 && tower[0]?.owner_index !== expected.owner_index; n++) {
      await sleep(100);
      tower = await towerEntries(coin1);
    }
    assert.deepEqual(
      tower.map(({ statechain_id, owner_index, lock }) => ({ statechain_id, owner_index, lock })),
      [expected],
    );
    const towerBackup = Buffer.from(tower[0]!.backup_tx);
    if (coin2) assert.deepEqual(towerBackup, coin2.backupTx, "the receiver's own backup");
    else if (incoming)
      assert.deepEqual(towerBackup, Buffer.from(incoming.message.backupTx), "the one handed over");
    crashed.push({
      step: crashAfter,
      coin1,
      coin2,
      backupKey2: id2.address.backupKey,
      // Owner 2's backup when it was co-signed: the watchtower has it even when the receiver was not handed it.
      backup2: cosigned2 ? towerBackup : undefined,
    });
  });
}

test("on chain every coin goes to exactly one owner: the lowest held backup confirms, the other is spent", async () => {
  assert.equal(crashed.length, TRANSFER_STEPS.length, "runs after every crash point");
  const exits = crashed.map((c) => {
    const one = { owner: 1, tx: c.coin1.backupTx, key: pub(c.coin1.backupSecret) };
    const two = c.backup2 && { owner: 2, tx: c.backup2, key: c.backupKey2 };
    const [winner, loser] = [one, two]
      .filter((b) => b !== undefined)
      .map((b) => ({ ...b, lock: parse(b.tx).locktime }))
      .sort((a, b) => a.lock - b.lock);
    return { ...c, winner: winner!, loser };
  });
  for (const e of exits) {
    assert.equal(e.winner.owner, e.backup2 ? 2 : 1, `${e.step}: the newest owner's backup unlocks first`);
    if (e.loser) assert.equal(e.loser.lock, e.winner.lock + INTERVAL);
  }

  // In lock order: at each winner's lock its backup goes out (the SE's watchtower may send it first: the same
  // transaction) and confirms; the other owner's backup is not final yet.
  exits.sort((a, b) => a.winner.lock - b.winner.lock);
  for (const e of exits) {
    const tip = await h.chain.tipHeight();
    if (tip < e.winner.lock) await h.chain.mine(e.winner.lock - tip);
    if (e.loser) await assert.rejects(h.chain.broadcast(e.loser.tx), rejection("non-final"), e.step);
    await h.chain.broadcast(e.winner.tx).catch((err) => {
      if (!rejection("already-known")(err)) throw err;
    });
    await h.chain.mine(1);
    const txid = parse(e.winner.tx).getId();
    assert.ok((await h.chain.getTxStatus(txid))?.confirmations, `${e.step}: the backup confirmed`);
  }

  // Past every lock: each coin's outpoint is spent by its winner's backup, which pays that owner's backup key;
  // the other owner's backup has nothing left to spend.
  const last = Math.max(...exits.map((e) => e.loser?.lock ?? e.winner.lock));
  const tip = await h.chain.tipHeight();
  if (tip < last) await h.chain.mine(last - tip);
  for (const e of exits) {
    const sid = e.coin1.statechainId;
    assert.equal(await statechainUtxo(h, e.coin1), undefined, `${e.step}: the coin is spent`);
    const spent = await h.chain.getTx(parse(e.winner.tx).getId());
    assert.ok(spent?.status.confirmations, `${e.step}: the winner's backup is in a block`);
    const tx = parse(spent.raw);
    assert.equal(tx.ins.length, 1);
    assert.equal(txidToHex(tx.ins[0]!.hash), txidToHex(sid.txid));
    assert.equal(tx.ins[0]!.index, sid.vout);
    assert.deepEqual(Buffer.from(tx.outs[0]!.script), Buffer.from(p2wpkhScript(e.winner.key)));
    if (e.loser)
      await assert.rejects(h.chain.broadcast(e.loser.tx), rejection("missing-inputs"), `${e.step}: spent`);
  }
});
