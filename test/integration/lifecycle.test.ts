// A coin's whole life through the real processes: deposit, two transfers (each receiver checking everything,
// including the enclave's deletion attestation), the old owner locked out, withdrawal, the statechain closed.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  confirmDeposit,
  confirmWithdrawal,
  coSign,
  deposit,
  type OwnedCoin,
  send,
  withdraw,
} from "../../client/owner.ts";
import { fetchIncoming, receive } from "../../client/receive.ts";
import { SeError } from "../../client/se-client.ts";
import { SignPurpose, StatechainStatus } from "../../proto/gen/common.ts";
import { verifySmtProof } from "../../protocol/smt/index.ts";
import { statechainKey, verifyChain } from "../../protocol/statechain.ts";
import { buildBackupTx } from "../../protocol/tx/build.ts";
import { p2wpkhScript } from "../../protocol/tx/script.ts";
import { fundedWallet, type Harness, newIdentity, ownerHarness } from "../helpers/owners.ts";
import { type SeProcess, startSeProcess } from "../helpers/se-process.ts";

let se: SeProcess;
let h: Harness;

before(async () => {
  se = await startSeProcess({
    env: { SE_MAINSTAY_INTERVAL_S: "1", SE_INIT_LOCK: "200", SE_LOCKTIME_INTERVAL: "10" },
  });
  h = await ownerHarness(se);
});
after(async () => {
  h?.close();
  await se?.stop();
});

test("deposit → transfer → transfer → withdrawal, with every receiver check and the old owners locked out", async () => {
  const { ctx, chain } = h;
  const wallet = await fundedWallet(chain);
  const coin1 = await deposit(ctx, {
    amountSat: 1_000_000n,
    utxos: wallet.utxos,
    changeScript: wallet.script,
  });
  await confirmDeposit(ctx, coin1, { onWait: async () => void (await chain.mine(1)) });
  let sc = await ctx.se.call("getStatechain", { statechainId: coin1.statechainId });
  assert.equal(sc.status, StatechainStatus.STATECHAIN_STATUS_ACTIVE);
  assert.equal(sc.ownerIndex, 1);

  // Owner 1 → owner 2.
  const id2 = newIdentity();
  await send(ctx, coin1, id2.address);
  const [in2] = await fetchIncoming(ctx, id2);
  assert.ok(in2, "the receiver finds the transfer in its mailbox");
  const coin2 = await receive(ctx, id2, in2);
  assert.equal(coin2.ownerIndex, 2);
  assert.ok(
    coin2.attestations.every((v) => v.valid && v.simulator),
    "every attestation the receiver checked is valid and from the simulator",
  );

  // Owner 1 can no longer co-sign anything.
  await assert.rejects(
    coSign(ctx, coin1, SignPurpose.SIGN_PURPOSE_BACKUP, backupFor(coin1, 1).raw, coin1.amountSat),
    (e: unknown) => e instanceof SeError && e.code === 16,
  );

  // Owner 2 → owner 3.
  const id3 = newIdentity();
  await send(ctx, coin2, id3.address);
  const [in3] = await fetchIncoming(ctx, id3);
  const coin3 = await receive(ctx, id3, in3!);
  assert.equal(coin3.ownerIndex, 3);
  assert.equal(coin3.backupHistory.length, 2);

  sc = await ctx.se.call("getStatechain", { statechainId: coin3.statechainId });
  const chainV = verifyChain(sc.depositProofKey, sc.chain);
  assert.equal(sc.keyUpdates.length, 2);
  assert.deepEqual(Buffer.from(chainV.currentKey), id3.address.proofKey);

  // Owner 3 withdraws.
  const dest = p2wpkhScript(newIdentity().address.proofKey);
  const w = await withdraw(ctx, coin3, dest);
  await confirmWithdrawal(ctx, coin3, { onWait: async () => void (await chain.mine(1)) });
  const st = await chain.getTxStatus(w.txid);
  assert.ok(st && st.confirmations >= 1, "the withdrawal confirmed");
  sc = await ctx.se.call("getStatechain", { statechainId: coin3.statechainId });
  assert.equal(sc.status, StatechainStatus.STATECHAIN_STATUS_CLOSED);
  const closed = verifyChain(sc.depositProofKey, sc.chain);
  assert.ok(closed.closed, "the verified statechain ends closed");
  const proof = await ctx.se.call("getSmtProof", { statechainId: coin3.statechainId });
  assert.deepEqual(Buffer.from(proof.currentLeaf), Buffer.from(closed.currentState));
  verifySmtProof(
    proof.currentRoot,
    statechainKey(coin3.statechainId),
    proof.currentLeaf,
    proof.currentProof!,
  );
});

function backupFor(coin: OwnedCoin, owner: number) {
  return buildBackupTx({
    mode: "absolute",
    spend: { txid: coin.statechainId.txid, vout: coin.statechainId.vout },
    spendAmountSat: coin.amountSat,
    backupKey: newIdentity().address.backupKey,
    lock: coin.initialLock - (owner - 1) * coin.interval,
    feeRateSatVb: 2,
  });
}
