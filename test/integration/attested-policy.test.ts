// Where a wallet takes the SE's protocol parameters and its trust in the enclave from (audit #18.5, #18.11), end
// to end against a real SE whose enclave attests depositConfirmations 3, initLock 300, locktimeInterval 10:
// - a host whose GetInfo announces other parameters (0 confirmations, another interval, lock and margin) changes
//   nothing: the depositor and the receiver follow the attested policy, and a funding reorganised down to 1
//   confirmation is refused although GetInfo says 0 are needed;
// - a policy document that is not the one the identity statement hashes is refused (POLICY_HASH);
// - allowDebug without a PCR policy pins nothing, so the wallet refuses to judge an enclave at all
//   (NO_PCR_POLICY), at deposit, at receive and when it finishes a key update, before it sends anything.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { decodeReceiveAddress } from "../../client/address.ts";
import { attestedPolicy } from "../../client/attested-policy.ts";
import {
  confirmDeposit,
  deposit,
  lockFor,
  type OwnedCoin,
  type OwnerContext,
  send,
} from "../../client/owner.ts";
import {
  attestedTransferKey,
  checkTransfer,
  fetchIncoming,
  finishKeyUpdate,
  prepareKeyUpdate,
  receive,
} from "../../client/receive.ts";
import { SeError } from "../../client/se-client.ts";
import { GetAttestationResponse, GetInfoResponse } from "../../proto/gen/statechain.ts";
import { generatePaillierKey } from "../../protocol/ecdsa2p/paillier.ts";
import { parseTx, txidToHex } from "../../protocol/tx/parse.ts";
import { servicesOf, testWallet } from "../client/wallet-helpers.ts";
import { hostile, type Intercept } from "../helpers/hostile.ts";
import { fundedWallet, type Harness, newIdentity, ownerHarness } from "../helpers/owners.ts";
import { type SeProcess, startSeProcess } from "../helpers/se-process.ts";

let se: SeProcess;
let h: Harness;

before(async () => {
  se = await startSeProcess({
    env: {
      SE_MAINSTAY_ENABLED: "false",
      SE_DEPOSIT_CONFIRMATIONS: "3",
      SE_INIT_LOCK: "300",
      SE_LOCKTIME_INTERVAL: "10",
    },
  });
  h = await ownerHarness(se);
});
after(async () => {
  h?.close();
  await se?.stop();
});

async function newCoin(ctx: OwnerContext = h.ctx): Promise<OwnedCoin> {
  const w = await fundedWallet(h.chain);
  const coin = await deposit(ctx, { amountSat: 400_000n, utxos: w.utxos, changeScript: w.script });
  await confirmDeposit(ctx, coin, { onWait: async () => void (await h.chain.mine(1)) });
  return coin;
}

/** GetInfo as a host that announces parameters of its own: 0 confirmations, interval 25, lock 5, margin 0. */
const lyingInfo: Intercept = (method, res) => {
  if (method !== "getInfo") return res;
  const info = GetInfoResponse.decode(GetInfoResponse.encode(res as GetInfoResponse).finish());
  info.depositConfirmations = 0;
  info.locktimeInterval = 25;
  info.initLock = 5;
  info.lockSafetyMargin = 0;
  return info;
};

const refusedWith = (code: string, message: RegExp) => (e: Error & { code?: string }) => {
  assert.equal(e.code, code, `${e.code}: ${e.message}`);
  assert.match(e.message, message);
  return true;
};

test("#18.5: a GetInfo that disagrees with the attested policy changes nothing for the depositor and the receiver", async () => {
  const { ctx, calls } = hostile(h.ctx, lyingInfo);
  const info = await ctx.se.call("getInfo", {});
  assert.equal(info.depositConfirmations, 0, "the host announces 0 confirmations");
  const p = await attestedPolicy(ctx);
  assert.deepEqual(
    [p.depositConfirmations, p.initLock, p.locktimeInterval, p.lockSafetyMargin],
    [3, 300, 10, 6],
    "the enclave attests its own",
  );

  // The depositor checks h0 against the attested initLock (GetInfo's 5 would refuse h0 ≈ tip + 300) and keeps
  // the attested interval.
  const coin = await newCoin(ctx);
  assert.ok(calls.includes("getInfo"), "the depositor read GetInfo");
  assert.equal(coin.interval, 10);
  const tip = await h.chain.tipHeight();
  assert.ok(coin.initialLock > tip + 250, `h0 = ${coin.initialLock} is about the deposit's tip + 300`);

  // The receiver checks its backup's lock with the attested interval (GetInfo's 25 would refuse it).
  const bob = newIdentity();
  await send(ctx, coin, bob.address);
  const [incoming] = await fetchIncoming(ctx, bob);
  assert.ok(incoming, "bob has an incoming transfer");
  const got = await receive(ctx, bob, incoming);
  assert.equal(got.ownerIndex, 2);
  assert.equal(got.interval, 10);
  assert.equal(parseTx(got.backupTx).locktime, lockFor(coin.initialLock, 10, 2));
});

test("#18.5: a funding reorganised down to 1 confirmation is refused, though GetInfo says 0 are needed", async () => {
  const coin = await newCoin();
  const bob = newIdentity();
  await send(h.ctx, coin, bob.address);
  const [incoming] = await fetchIncoming(h.ctx, bob);
  assert.ok(incoming, "bob has an incoming transfer");
  // A reorganisation takes away every block after the funding's: it keeps 1 confirmation.
  const funding = await h.chain.getTxStatus(txidToHex(coin.statechainId.txid));
  assert.ok(funding && funding.confirmations >= 3, "the SE counted the deposit at 3 confirmations");
  const next = (await h.chain.rpc("getblockhash", [funding.blockHeight! + 1])) as string;
  await h.chain.rpc("invalidateblock", [next]);
  assert.equal((await h.chain.getTxStatus(txidToHex(coin.statechainId.txid)))?.confirmations, 1);

  const { ctx, calls } = hostile(h.ctx, lyingInfo);
  await assert.rejects(
    receive(ctx, bob, incoming),
    refusedWith("FUNDING_UNCONFIRMED", /the funding has 1 confirmations, 3 required/),
  );
  assert.ok(!calls.includes("transferReceiverInit"), "refused before the SE is told about the coin");
  // Buried 3 deep again, the same transfer goes through.
  await h.chain.mine(2);
  const got = await receive(ctx, bob, incoming);
  assert.equal(got.ownerIndex, 2);
});

test("#18.5: a policy document other than the one the enclave's identity statement hashes is refused (POLICY_HASH)", async () => {
  // The host serves a policy of its own beside the genuine attested identity: 0 confirmations.
  const swapped: Intercept = (method, res) => {
    if (method !== "getAttestation") return res;
    const r = GetAttestationResponse.decode(
      GetAttestationResponse.encode(res as GetAttestationResponse).finish(),
    );
    const policy = JSON.parse(r.policyJson);
    assert.equal(policy.depositConfirmations, 3, "the genuine policy says 3 confirmations");
    r.policyJson = JSON.stringify({ ...policy, depositConfirmations: 0 });
    return r;
  };
  const bad = /the policy the SE serves is not the one its enclave attests/;
  const { ctx, calls } = hostile(h.ctx, swapped);
  await assert.rejects(attestedPolicy(ctx), refusedWith("POLICY_HASH", bad));
  // The depositor: before any key is generated with the SE.
  const w = await fundedWallet(h.chain);
  await assert.rejects(
    deposit(ctx, { amountSat: 400_000n, utxos: w.utxos, changeScript: w.script }),
    refusedWith("POLICY_HASH", bad),
  );
  assert.ok(!calls.includes("depositKeyGen"), "no deposit key generation");
  // The receiver: before the SE is told about the coin.
  const coin = await newCoin();
  const bob = newIdentity();
  await send(h.ctx, coin, bob.address);
  const [incoming] = await fetchIncoming(h.ctx, bob);
  assert.ok(incoming, "bob has an incoming transfer");
  await assert.rejects(receive(ctx, bob, incoming), refusedWith("POLICY_HASH", bad));
  assert.ok(!calls.includes("transferReceiverInit"), "no transfer key asked for");
  const got = await receive(h.ctx, bob, incoming);
  assert.equal(got.ownerIndex, 2);
});

test("#18.11: allowDebug without a PCR policy does not turn PCR pinning off: the wallet refuses to judge the enclave", async () => {
  // The simulator root trusted, debug enclaves allowed, no measurements pinned.
  const unpinned: OwnerContext = {
    ...h.ctx,
    trust: { aws: false, simulatorRootPem: h.ctx.trust.simulatorRootPem, allowDebug: true },
  };
  const noPolicy = /no PCR policy/;
  const a = hostile(unpinned);
  await assert.rejects(attestedPolicy(a.ctx), refusedWith("NO_PCR_POLICY", noPolicy));
  const w = await fundedWallet(h.chain);
  await assert.rejects(
    deposit(a.ctx, { amountSat: 400_000n, utxos: w.utxos, changeScript: w.script }),
    refusedWith("NO_PCR_POLICY", noPolicy),
  );
  assert.ok(!a.calls.includes("depositKeyGen"), "no deposit key generation");

  const coin = await newCoin();
  const bob = newIdentity();
  await send(h.ctx, coin, bob.address);
  const [incoming] = await fetchIncoming(h.ctx, bob);
  assert.ok(incoming, "bob has an incoming transfer");
  const b = hostile(unpinned);
  await assert.rejects(receive(b.ctx, bob, incoming), refusedWith("NO_PCR_POLICY", noPolicy));
  assert.ok(!b.calls.includes("transferReceiverInit"), "no transfer key asked for");

  // A key update checked and prepared under the pinned trust, finished (as a wallet resumes one) under the
  // unpinned one: refused before the request goes out, not judged without measurements.
  const checked = await checkTransfer(h.ctx, bob, incoming);
  const { transferKey, verdict } = await attestedTransferKey(h.ctx, bob, checked);
  const keys = {
    paillier: await generatePaillierKey({ rng: h.ctx.rng }),
    ringPedersen: (await attestedPolicy(h.ctx)).ringPedersen,
  };
  const prepared = prepareKeyUpdate(h.ctx, bob, checked, transferKey, keys, verdict);
  const c = hostile(unpinned);
  await assert.rejects(
    finishKeyUpdate(c.ctx, bob, checked, prepared),
    refusedWith("NO_PCR_POLICY", noPolicy),
  );
  assert.ok(!c.calls.includes("transferReceiverKeyUpdate"), "the key update was not sent");
  // Pinned again, the same request finishes.
  const got = await finishKeyUpdate(h.ctx, bob, checked, prepared);
  assert.equal(got.ownerIndex, 2);
});

test("#18.11: a wallet resuming a key update without a PCR policy keeps it pending; pinned again, it finishes", async () => {
  const { wallet: bob } = await testWallet(h);
  const address = decodeReceiveAddress((await bob.receiveAddress()).address, "regtest");
  const coin = await newCoin();
  await send(h.ctx, coin, address);
  // The SE does the key update, but its answer never reaches the wallet: the signed request is kept to resend.
  const cut = hostile(h.ctx, (method, res) => {
    if (method === "transferReceiverKeyUpdate")
      throw new SeError("TransferReceiverKeyUpdate", 14, "connection reset by peer");
    return res;
  });
  bob.connect({ ...servicesOf(h), se: cut.ctx.se });
  assert.deepEqual(
    (await bob.receive()).refused.map((x) => x.code),
    ["KEY_UPDATE_UNANSWERED"],
  );
  // Resumed with debug enclaves allowed and no PCR policy: refused before anything is sent, nothing given up.
  const resumed = hostile(h.ctx);
  bob.connect({
    ...servicesOf(h),
    se: resumed.ctx.se,
    trust: { aws: false, simulatorRootPem: h.ctx.trust.simulatorRootPem, allowDebug: true },
  });
  const r = await bob.receive();
  assert.deepEqual(r.received, []);
  assert.ok(
    r.refused.length > 0 && r.refused.every((x) => x.code === "NO_PCR_POLICY" && !x.exitOnlyCoin),
    JSON.stringify(r.refused),
  );
  assert.ok(!resumed.calls.includes("transferReceiverKeyUpdate"), "the key update was not sent again");
  assert.deepEqual(await bob.coins(), [], "no coin kept exit-only");
  // Pinned again: the same request is sent again and its stored answer checked.
  bob.connect(servicesOf(h));
  const done = await bob.receive();
  assert.deepEqual(done.refused, []);
  assert.equal(done.received[0]?.status, "active");
  await bob.close();
});
