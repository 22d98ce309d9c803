// An interrupted withdrawal can be finished (audit #19.3): the wallet keeps the WITHDRAW statement it signed
// before sending it and sends the same one again, which host and enclave accept again; a fresh statement (new
// BIP340 randomness) is what they refuse as "a different withdrawal".
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { SeError } from "../../client/se-client.ts";
import { StatechainStatus } from "../../proto/gen/common.ts";
import { parseOutpointString } from "../../protocol/outpoint.ts";
import { servicesOf, testWallet } from "../client/wallet-helpers.ts";
import { type Harness, ownerHarness } from "../helpers/owners.ts";
import { type SeProcess, startSeProcess } from "../helpers/se-process.ts";
import { SteppingClient } from "../host/support/calls.ts";

let se: SeProcess;
let h: Harness;
const mine = () => async () => void (await h.chain.mine(1));

before(async () => {
  se = await startSeProcess({ env: { SE_MAINSTAY_ENABLED: "false" } });
  h = await ownerHarness(se);
});
after(async () => {
  h?.close();
  await se?.stop();
});

test("a withdrawal cut off right after WithdrawInit is finished by running withdraw again", async () => {
  const { wallet } = await testWallet(h);
  await wallet.faucet(1);
  const coin = await wallet.deposit(400_000n, { onWait: mine() });
  const to = await wallet.fundingAddress();
  // Cut off after the SE started the withdrawal, before any co-signing (Ctrl-C, a crash, a lost connection).
  const cut = new SteppingClient(`127.0.0.1:${se.port}`);
  cut.around = async (step, send) => {
    if (step.method === "signFirst") throw new SeError("SignFirst", 14, "connection lost (test)");
    return send();
  };
  wallet.connect({ ...servicesOf(h), se: cut });
  await assert.rejects(wallet.withdraw(coin.number, to, { onWait: mine() }), /connection lost/);
  cut.close();
  const sc = await h.ctx.se.call("getStatechain", { statechainId: parseOutpointString(coin.statechainId) });
  assert.equal(
    sc.status,
    StatechainStatus.STATECHAIN_STATUS_WITHDRAWING,
    "the SE has started the withdrawal",
  );

  wallet.connect(servicesOf(h));
  const w = await wallet.withdraw(coin.number, to, { onWait: mine() });
  assert.equal(w.coin.status, "withdrawn");
});
