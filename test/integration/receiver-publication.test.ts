// The receiver against a hostile host that rewrites its answers (DESIGN.md 3.3 steps 6 and 9, 3.7), with the
// wallet's default of refusing unpublished coins and the Mainstay key and slot taken from its trust store (here
// recorded at first contact, as `wallet trust-simulator` does), never from the GetInfo of each call:
// - a publication left out (no Mainstay proof, no published leaf) or in another slot is refused, and so is a
//   wrong (a sibling altered), stale (an earlier state's answer) or absent SMT proof — before the SE is told
//   anything about the coin;
// - a GetInfo announcing another Mainstay key and slot changes nothing: the trusted ones are checked;
// - a deletion attestation carrying the nonce of an earlier key update is refused (the receiver's own nonce is
//   checked), both replayed as it was and re-issued for this key update's receipt.
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import { decodeDocument } from "../../attestation/document.ts";
import { SimulatorProvider } from "../../attestation/providers/simulator.ts";
import { SimulatorCa } from "../../attestation/sim-ca.ts";
import { decodeReceiveAddress } from "../../client/address.ts";
import { enclaveIdentity } from "../../client/attested-policy.ts";
import { confirmDeposit, deposit, type OwnedCoin, type OwnerContext, send } from "../../client/owner.ts";
import {
  attestedTransferKey,
  checkTransfer,
  fetchIncoming,
  finishKeyUpdate,
  prepareKeyUpdate,
  RefusedAfterKeyUpdateError,
  receive,
} from "../../client/receive.ts";
import type { SeClient } from "../../client/se-client.ts";
import { Wallet } from "../../client/wallet.ts";
import type { Outpoint } from "../../proto/gen/common.ts";
import { GetInfoResponse, GetSmtProofResponse } from "../../proto/gen/statechain.ts";
import { generatePaillierKey } from "../../protocol/ecdsa2p/paillier.ts";
import { PASSPHRASE, testWallet } from "../client/wallet-helpers.ts";
import { fundedWallet, type Harness, newIdentity, ownerHarness } from "../helpers/owners.ts";
import { type SeProcess, startSeProcess } from "../helpers/se-process.ts";
import { runWallet } from "../helpers/wallet-cli.ts";

let se: SeProcess;
let h: Harness;
/** The receiver's context: unpublished coins refused (the default), Mainstay key and slot trusted. */
let trusted: OwnerContext;

before(async () => {
  se = await startSeProcess({
    env: { SE_MAINSTAY_INTERVAL_S: "1", SE_INIT_LOCK: "300", SE_LOCKTIME_INTERVAL: "10" },
  });
  h = await ownerHarness(se, { allowUnpublished: false });
  const { mainstay } = await h.ctx.se.call("getInfo", {});
  assert.ok(
    mainstay?.enabled && mainstay.servicePublicKey.length === 33,
    "GetInfo says Mainstay is enabled and gives a 33-byte service key",
  );
  trusted = {
    ...h.ctx,
    mainstayKey: { basePubkey: mainstay.servicePublicKey, chainCode: mainstay.serviceChainCode },
    mainstaySlot: mainstay.slot,
  };
});
after(async () => {
  h?.close();
  await se?.stop();
});

async function newCoin(): Promise<OwnedCoin> {
  const w = await fundedWallet(h.chain);
  const coin = await deposit(h.ctx, { amountSat: 400_000n, utxos: w.utxos, changeScript: w.script });
  await confirmDeposit(h.ctx, coin, { onWait: async () => void (await h.chain.mine(1)) });
  return coin;
}

/** Mines until the SE's Mainstay proof covers the statechain (the local service attests on confirmed blocks). */
async function waitForMainstay(sid: Outpoint): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const p = await h.ctx.se.call("getSmtProof", { statechainId: sid });
    if (p.mainstay && p.leaf.length > 0) return;
    await h.chain.mine(1);
    await new Promise((r) => setTimeout(r, 150));
  }
  assert.fail("the statechain was never published to Mainstay");
}

type Intercept = (method: string, res: unknown) => unknown;

/** A context whose SE (the host in front of the enclave) records the methods called and rewrites answers. */
function hostile(base: OwnerContext, intercept: Intercept) {
  const calls: string[] = [];
  const se = Object.create(base.se) as SeClient;
  se.call = (async (method: string, req: unknown, signer?: Uint8Array, deadlineMs?: number) => {
    calls.push(method);
    const res = await base.se.call(method as "getInfo", req as never, signer, deadlineMs);
    return intercept(method, res);
  }) as SeClient["call"];
  return { ctx: { ...base, se } as OwnerContext, calls };
}

/** Rewrites the GetSmtProof answer (a copy of it). */
const smtProof = (edit: (p: GetSmtProofResponse) => void): Intercept => {
  return (method, res) => {
    if (method !== "getSmtProof") return res;
    const p = GetSmtProofResponse.decode(GetSmtProofResponse.encode(res as GetSmtProofResponse).finish());
    edit(p);
    return p;
  };
};

const READ_ONLY = new Set(["getInfo", "getStatechain", "getSmtProof", "getAttestation"]);

async function refusedBeforeAnyRequest(
  what: string,
  intercept: Intercept,
  incoming: Parameters<typeof receive>[2],
  id: Parameters<typeof receive>[1],
  code: string,
  message: RegExp,
) {
  const { ctx, calls } = hostile(trusted, intercept);
  await assert.rejects(receive(ctx, id, incoming), (e: Error & { code?: string }) => {
    assert.equal(e.code, code, `${what}: ${e.code}: ${e.message}`);
    assert.match(e.message, message, what);
    return true;
  });
  assert.ok(
    calls.every((m) => READ_ONLY.has(m)),
    `${what}: only read-only calls before the refusal (${calls.join(", ")})`,
  );
}

let bobCoin: OwnedCoin | undefined;
let bobsProofAnswer: GetSmtProofResponse | undefined;

test("a receiver refuses a coin whose publication the host leaves out, moves or falsifies; published, it is taken", async () => {
  // Another coin first, so that the tree's proofs of ours carry a sibling that is not a default hash.
  await newCoin();
  const coin = await newCoin();
  const bob = newIdentity();
  await send(h.ctx, coin, bob.address);
  await waitForMainstay(coin.statechainId);
  const [incoming] = await fetchIncoming(h.ctx, bob);
  assert.ok(incoming, "bob has an incoming transfer");

  const cases: Array<[string, Intercept, string, RegExp]> = [
    [
      "the Mainstay proof left out",
      smtProof((p) => {
        p.mainstay = undefined;
      }),
      "UNPUBLISHED",
      /not provably published: .*no Mainstay proof.*--allow-unpublished/,
    ],
    [
      "the published leaf left out",
      smtProof((p) => {
        p.leaf = Buffer.alloc(0);
        p.mainstay = undefined;
      }),
      "UNPUBLISHED",
      /no published root .* holds this statechain/,
    ],
    [
      "the Mainstay proof of another slot",
      smtProof((p) => {
        p.mainstay!.position += 1;
      }),
      "MAINSTAY_SLOT",
      /but this wallet trusts slot/,
    ],
    [
      "a sibling of the current state's SMT proof altered",
      smtProof((p) => {
        const s = Buffer.from(p.currentProof!.siblings[0]!);
        s[0]! ^= 1;
        p.currentProof!.siblings[0] = s;
      }),
      "SMT_PROOF_MISMATCH",
      /SMT proof of the current state does not verify/,
    ],
    [
      "a sibling of the published root's SMT proof altered",
      smtProof((p) => {
        const s = Buffer.from(p.proof!.siblings[0]!);
        s[31]! ^= 1;
        p.proof!.siblings[0] = s;
      }),
      "SMT_PROOF_MISMATCH",
      /SMT proof under the published root does not verify/,
    ],
    [
      "the current state's SMT proof left out",
      smtProof((p) => {
        p.currentProof = undefined;
      }),
      "SMT_PROOF_MISSING",
      /no SMT proof of the coin's current state/,
    ],
  ];
  for (const [what, intercept, code, message] of cases)
    await refusedBeforeAnyRequest(what, intercept, incoming, bob, code, message);

  // The host's GetInfo now names another Mainstay key and slot: the wallet checks the ones it trusts, and the
  // genuine publication passes every check.
  const { ctx } = hostile(trusted, (method, res) => {
    if (method === "getSmtProof") bobsProofAnswer = res as GetSmtProofResponse;
    if (method !== "getInfo") return res;
    const info = GetInfoResponse.decode(GetInfoResponse.encode(res as GetInfoResponse).finish());
    info.mainstay!.slot += 7;
    info.mainstay!.serviceChainCode = Buffer.alloc(32, 9);
    return info;
  });
  bobCoin = await receive(ctx, bob, incoming);
  assert.equal(bobCoin.ownerIndex, 2);
  assert.equal(bobCoin.publication, "published");
});

test("a stale SMT proof is refused; a deletion attestation with an earlier key update's nonce is refused", async () => {
  assert.ok(bobCoin && bobsProofAnswer, "runs after the first test");
  const sid = bobCoin.statechainId;
  const carol = newIdentity();
  await send(h.ctx, bobCoin, carol.address);
  const [incoming] = await fetchIncoming(h.ctx, carol);
  assert.ok(incoming, "carol has an incoming transfer");

  // The host answers with its proof from before bob's key update: the tree then held the previous state.
  await refusedBeforeAnyRequest(
    "the SMT answer of an earlier state",
    (method, res) => (method === "getSmtProof" ? bobsProofAnswer : res),
    incoming,
    carol,
    "SMT_LEAF",
    /does not hold the statechain's current state/,
  );

  // Steps 6 and 7 pass; the key update is sent once, and its stored answer comes back on every re-send.
  const checked = await checkTransfer(trusted, carol, incoming);
  assert.equal(checked.publication, "published");
  const { transferKey, verdict } = await attestedTransferKey(trusted, carol, checked);
  const keys = {
    paillier: await generatePaillierKey({ rng: trusted.rng }),
    ringPedersen: (await enclaveIdentity(trusted)).ringPedersen,
  };
  const prepared = prepareKeyUpdate(trusted, carol, checked, transferKey, keys, verdict);

  // The deletion attestation of bob's key update, as the host keeps it: another nonce, another receipt.
  const sc = await h.ctx.se.call("getStatechain", { statechainId: sid });
  const earlier = sc.keyUpdates.find((k) => k.ownerIndex === 2) ?? sc.keyUpdates[0];
  assert.ok(earlier, "bob's key update record");
  const earlierNonce = decodeDocument(earlier.attestationDocument).nonce;
  assert.ok(
    earlierNonce && !Buffer.from(earlierNonce).equals(prepared.nonce),
    "bob's key update was attested for another nonce than carol's",
  );

  type KeyUpdateAnswer = { keyUpdate?: { attestationDocument: Uint8Array; receipt: Uint8Array } };
  const onKeyUpdate =
    (edit: (res: KeyUpdateAnswer) => Promise<KeyUpdateAnswer> | KeyUpdateAnswer): Intercept =>
    (method, res) =>
      method === "transferReceiverKeyUpdate" ? edit(res as KeyUpdateAnswer) : res;
  const refusedAfter = async (what: string, intercept: Intercept, expectChecks?: string[]) => {
    const { ctx } = hostile(trusted, intercept);
    await assert.rejects(finishKeyUpdate(ctx, carol, checked, prepared), (e: unknown) => {
      assert.ok(e instanceof RefusedAfterKeyUpdateError, `${what}: ${String(e)}`);
      assert.equal(e.code, "DELETION_ATTESTATION", `${what}: ${e.message}`);
      if (expectChecks) assert.deepEqual(e.failedChecks, expectChecks, what);
      else assert.ok(e.failedChecks.includes("nonce"), `${what}: ${e.failedChecks}`);
      return true;
    });
  };

  // The earlier nonce on a document otherwise right for this key update (this receipt, the enclave's
  // measurements, the simulator CA the host holds in simulator mode): only the nonce tells it apart.
  const ca = SimulatorCa.open(path.join(se.dataDir, "sim-ca"));
  await refusedAfter(
    "this key update's receipt attested for the earlier nonce",
    onKeyUpdate(async (res) => {
      const d = decodeDocument(res.keyUpdate!.attestationDocument);
      const others = new Map([...d.pcrs].filter(([i]) => i > 2));
      const enclave = new SimulatorProvider({
        ca,
        moduleId: d.moduleId,
        pcrs: { pcr0: d.pcrs.get(0)!, pcr1: d.pcrs.get(1)!, pcr2: d.pcrs.get(2)!, others },
      });
      const doc = await enclave.attest({
        nonce: earlierNonce,
        userData: d.userData ?? undefined,
        publicKey: d.publicKey ?? undefined,
      });
      return { ...res, keyUpdate: { ...res.keyUpdate!, attestationDocument: Buffer.from(doc) } };
    }),
    ["nonce"],
  );
  // Replayed as it is (document and receipt of bob's key update).
  await refusedAfter(
    "the earlier key update's record",
    onKeyUpdate((res) => ({ ...res, keyUpdate: { ...res.keyUpdate!, ...earlier } })),
  );
  // The genuine answer (the host's stored one, for the very same request) is accepted.
  const coin = await finishKeyUpdate(trusted, carol, checked, prepared);
  assert.equal(coin.ownerIndex, 3);
});

/** Runs `wallet …` in this process against the test's SE. */
const cli = (args: string[]) =>
  runWallet(args, {
    env: {
      ...process.env,
      WALLET_SE: `127.0.0.1:${se.port}`,
      SE_DATA_DIR: se.dataDir,
      WALLET_PASSPHRASE: PASSPHRASE,
    },
  });

test("the CLI records the Mainstay key and slot when it trusts the SE, receives fully checked by default, refuses a change", async () => {
  const { wallet: w, file } = await testWallet();
  const { address } = await w.receiveAddress();
  await w.close();
  const W = ["--wallet", file];
  const t = await cli(["trust-simulator", ...W, "--confirm", "--json"]);
  assert.equal(t.code, 0, t.stderr);
  const trust = JSON.parse(t.stdout);
  const { mainstay } = await h.ctx.se.call("getInfo", {});
  assert.equal(trust.mainstaySlot, mainstay!.slot, "the slot is recorded at trust time");
  assert.equal(
    trust.mainstayKey,
    `${Buffer.from(mainstay!.servicePublicKey).toString("hex")}:${Buffer.from(mainstay!.serviceChainCode).toString("hex")}`,
  );

  const coin = await newCoin();
  await send(h.ctx, coin, decodeReceiveAddress(address, "regtest"));
  const p = await h.ctx.se.call("getSmtProof", { statechainId: coin.statechainId });
  if (!p.mainstay || p.leaf.length === 0) {
    // Not published yet (no block since the deposit confirmed): refused, and left in the mailbox…
    const early = await cli(["receive", ...W]);
    assert.equal(early.code, 1, early.stdout);
    assert.match(early.stdout, /REFUSED .*not provably published.*\[UNPUBLISHED\]/);
  }
  // …and `receive --wait` waits for the SE's next Mainstay commitment (blocks mined meanwhile), then takes it.
  const mining = setInterval(() => void h.chain.mine(1).catch(() => {}), 300);
  const got = await cli(["receive", ...W, "--wait", "--poll-ms", "200", "--timeout", "60"]).finally(() =>
    clearInterval(mining),
  );
  assert.equal(got.code, 0, `${got.stdout}${got.stderr}`);
  assert.match(got.stdout, /received #1 /);
  assert.doesNotMatch(got.stdout, /UNPUBLISHED/, "published: no --allow-unpublished needed");
  const verified = await cli(["verify", "1", ...W]);
  assert.equal(verified.code, 0, verified.stdout);
  assert.match(verified.stdout, /✔ mainstay\.commitment/);

  // The wallet trusted another slot than the SE announces now: trusting again is refused, not followed, and the
  // checks keep using the recorded slot.
  const wallet = await Wallet.open(file, PASSPHRASE);
  const stored = (await wallet.getConfig<{ mainstaySlot: number }>("trust.simulator"))!;
  await wallet.setConfig("trust.simulator", { ...stored, mainstaySlot: stored.mainstaySlot + 1 });
  await wallet.close();
  const again = await cli(["trust-simulator", ...W, "--confirm"]);
  assert.equal(again.code, 1, again.stderr);
  assert.match(
    again.stderr,
    /this wallet trusted .*slot .*refused.*trust-simulator --forget.*\[MAINSTAY_CHANGED\]/,
  );
  const moved = await cli(["verify", "1", ...W]);
  assert.equal(moved.code, 1, moved.stdout);
  assert.match(moved.stdout, /✘ mainstay\.slot_proof .*MAINSTAY_SLOT/);
});
