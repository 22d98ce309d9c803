// What a receiver takes from whom (audit #18.4, #18.5): the fees of the backup a sender built for it are held to
// the wallet's own ceiling, and the funding's depth to the wallet's own floor, whatever the SE allows; the
// protocol parameters come from the enclave's attested policy, not from GetInfo.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { attestedPolicy } from "../../client/attested-policy.ts";
import { confirmDeposit, deposit, send } from "../../client/owner.ts";
import { fetchIncoming, receive } from "../../client/receive.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import { fundedWallet, type Harness, newIdentity, ownerHarness } from "../helpers/owners.ts";
import { type SeProcess, startSeProcess } from "../helpers/se-process.ts";

let se: SeProcess;
let h: Harness;

before(async () => {
  // An SE that counts a deposit as there at 0 confirmations (regtest only) and allows 100 sat/vB backups.
  se = await startSeProcess({
    env: { SE_MAINSTAY_ENABLED: "false", SE_DEPOSIT_CONFIRMATIONS: "0", SE_INIT_LOCK: "200" },
  });
  h = await ownerHarness(se);
});
after(async () => {
  h?.close();
  await se?.stop();
});

const refusedFor = (code: string) => (e: unknown) => {
  assert.ok(e instanceof ProtocolError, String(e));
  assert.equal(e.code, code, e.message);
  return true;
};

async function activeCoin(mine: boolean) {
  const w = await fundedWallet(h.chain);
  const coin = await deposit(h.ctx, { amountSat: 400_000n, utxos: w.utxos, changeScript: w.script });
  await confirmDeposit(h.ctx, coin);
  if (mine) await h.chain.mine(1);
  return coin;
}

test("the depositor and receiver read confirmations and locks from the attested policy", async () => {
  const p = await attestedPolicy(h.ctx);
  assert.equal(p.depositConfirmations, 0, "the enclave attests the SE's depositConfirmations");
  assert.equal(p.initLock, 200);
  assert.equal(p.instance.length, 16);
});

test("#18.5: a coin whose funding is still unconfirmed is refused, though the SE counts it at 0 confirmations", async () => {
  const coin = await activeCoin(false);
  const bob = newIdentity();
  await send(h.ctx, coin, bob.address);
  const [incoming] = await fetchIncoming(h.ctx, bob);
  await assert.rejects(receive(h.ctx, bob, incoming!), refusedFor("FUNDING_UNCONFIRMED"));
  // Once buried as deep as the wallet's own floor (1 on regtest), the same transfer goes through.
  await h.chain.mine(1);
  const got = await receive(h.ctx, bob, incoming!);
  assert.equal(got.ownerIndex, 2);
});

test("#18.4: a backup whose fee the sender set above the wallet's ceiling is refused", async () => {
  const coin = await activeCoin(true);
  const bob = newIdentity();
  // 80 sat/vB: within the enclave's ceiling (100), above the wallet's default (50).
  await send({ ...h.ctx, feeRateSatVb: 80 }, coin, bob.address);
  const [incoming] = await fetchIncoming(h.ctx, bob);
  await assert.rejects(receive(h.ctx, bob, incoming!), refusedFor("FEE_TOO_HIGH"));
  // A wallet that chose a higher ceiling takes it.
  const got = await receive({ ...h.ctx, maxBackupFeeRateSatVb: 90 }, bob, incoming!);
  assert.equal(got.ownerIndex, 2);
});
