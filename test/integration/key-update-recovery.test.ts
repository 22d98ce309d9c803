// A key update lost by a host crash is finished, never neither (DESIGN.md 3.3; audit #19.1): the host is killed
// after the enclave moved the coin to the receiver and before it wrote that; at start-up it learns the outcome
// from the enclave and writes it. The receiver's retry gets the same answer, and after its request's window has
// closed it fetches the answer (GetKeyUpdateResult) and checks it exactly as a first answer.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { confirmDeposit, deposit, type OwnedCoin, send } from "../../client/owner.ts";
import {
  type CheckedTransfer,
  fetchIncoming,
  fetchKeyUpdateAnswer,
  finishKeyUpdate,
  type PreparedKeyUpdate,
  receive,
} from "../../client/receive.ts";
import { loadConfig } from "../../host/config.ts";
import { enclavePolicy } from "../../host/main.ts";
import { StatechainStatus } from "../../proto/gen/common.ts";
import { fundedWallet, newIdentity } from "../helpers/owners.ts";
import { type DurableSe, startDurableSe } from "../helpers/se-process.ts";
import { refused } from "../host/support/calls.ts";
import { type SteppingHarness, steppingHarness, tryCoSign } from "../host/support/coins.ts";

const ENV = { SE_MAINSTAY_ENABLED: "false", SE_INIT_LOCK: "200", SE_LOCKTIME_INTERVAL: "10" };

let se: DurableSe;
let h: SteppingHarness;
let coin: OwnedCoin;

before(async () => {
  se = await startDurableSe({ env: ENV, policy: enclavePolicy(loadConfig({ env: ENV })) });
  h = await steppingHarness(se.host);
  const w = await fundedWallet(h.chain);
  coin = await deposit(h.ctx, { amountSat: 500_000n, utxos: w.utxos, changeScript: w.script });
  await confirmDeposit(h.ctx, coin, { onWait: async () => void (await h.chain.mine(1)) });
});
after(async () => {
  h?.close();
  await se?.stop();
});

async function killedDuringKeyUpdate(from: OwnedCoin) {
  const bob = newIdentity();
  await send(h.ctx, from, bob.address);
  const [incoming] = await fetchIncoming(h.ctx, bob);
  let checked: CheckedTransfer | undefined;
  let prepared: PreparedKeyUpdate | undefined;
  se.crashAt("TransferReceiverKeyUpdate", "before-commit");
  await assert.rejects(
    receive(h.ctx, bob, incoming!, {
      beforeKeyUpdate: async (c, p) => {
        checked = c;
        prepared = p;
      },
    }),
    (e: Error & { code?: string }) => e.code === "KEY_UPDATE_UNANSWERED",
  );
  h.follow(await se.restart());
  assert.ok(checked && prepared, "the key update was prepared and sent");
  return { bob, checked, prepared };
}

test("killed after the enclave's key update and before its commit, the host writes it at start-up", async () => {
  const { bob, checked, prepared } = await killedDuringKeyUpdate(coin);
  const sc = await h.client.current.call("getStatechain", { statechainId: coin.statechainId });
  assert.equal(sc.status, StatechainStatus.STATECHAIN_STATUS_ACTIVE, "the transfer is not left pending");
  assert.equal(sc.ownerIndex, 2);
  assert.deepEqual(
    Buffer.from(sc.currentProofKey),
    Buffer.from(checked.incoming.message.statechainTx!.nextProofKey),
  );
  // The receiver's retry of the exact request gets the answer, checked as any first answer.
  const received = await finishKeyUpdate(h.ctx, bob, checked, prepared);
  assert.equal(received.ownerIndex, 2);
  assert.equal(await tryCoSign(h, received), true, "the receiver co-signs");
  assert.equal(await tryCoSign(h, coin), status.UNAUTHENTICATED, "the sender no longer does");
  coin = received;
});

test("after its request's window, the receiver fetches the lost answer and finishes the key update", async () => {
  const { bob, checked, prepared } = await killedDuringKeyUpdate(coin);
  // As if the retry came too late (stale signature): the answer is fetched with a fresh request instead.
  const answer = await fetchKeyUpdateAnswer(h.ctx, bob, checked.statechainId);
  const received = await finishKeyUpdate(h.ctx, bob, checked, prepared, answer);
  assert.equal(received.ownerIndex, 3);
  assert.equal(await tryCoSign(h, received), true);
  // Only the owner may fetch it.
  const other = newIdentity();
  await refused(fetchKeyUpdateAnswer(h.ctx, other, checked.statechainId), status.UNAUTHENTICATED);
});
