// A receiver refuses a coin unless every check of DESIGN.md 3.3 steps 6 and 9 passes, and names the one that
// failed: a tampered transfer message, a backup with a wrong lock or a bad signature, a forged statechain
// signature, an attestation from an unknown or debug enclave, a stale attestation nonce. Step-6 refusals send
// nothing to the SE; attestation refusals happen before the key update is sent.
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, test } from "node:test";
import { Transaction } from "bitcoinjs-lib";
import { decodeDocument } from "../../attestation/document.ts";
import { loadPcrPolicy } from "../../attestation/pcr-policy.ts";
import { SimulatorProvider } from "../../attestation/providers/simulator.ts";
import { SimulatorCa } from "../../attestation/sim-ca.ts";
import { decodeReceiveAddress } from "../../client/address.ts";
import {
  confirmDeposit,
  coSign,
  deposit,
  type OwnedCoin,
  type OwnerContext,
  send,
} from "../../client/owner.ts";
import { fetchIncoming, type IncomingTransfer, receive } from "../../client/receive.ts";
import { type SeClient, SeError } from "../../client/se-client.ts";
import { SignPurpose, StatechainStatus } from "../../proto/gen/common.ts";
import { TransferMessage } from "../../proto/gen/statechain.ts";
import { encrypt as eciesEncrypt } from "../../protocol/ecies.ts";
import { outpointString } from "../../protocol/outpoint.ts";
import { signTransfer, verifyChain } from "../../protocol/statechain.ts";
import { buildBackupTx } from "../../protocol/tx/build.ts";
import { servicesOf, testWallet } from "../client/wallet-helpers.ts";
import { fundedWallet, type Harness, newIdentity, ownerHarness } from "../helpers/owners.ts";
import { type SeProcess, startSeProcess } from "../helpers/se-process.ts";

let se: SeProcess;
let h: Harness;

before(async () => {
  se = await startSeProcess({
    env: { SE_MAINSTAY_ENABLED: "false", SE_INIT_LOCK: "300", SE_LOCKTIME_INTERVAL: "10" },
  });
  h = await ownerHarness(se);
});
after(async () => {
  h?.close();
  await se?.stop();
});

async function newCoin(amountSat = 400_000n): Promise<OwnedCoin> {
  const w = await fundedWallet(h.chain);
  const coin = await deposit(h.ctx, { amountSat, utxos: w.utxos, changeScript: w.script });
  await confirmDeposit(h.ctx, coin, { onWait: async () => void (await h.chain.mine(1)) });
  return coin;
}

type Intercept = (method: string, res: unknown) => unknown;

/** A context whose SE client records every method called and lets a test rewrite answers. */
function spied(base: OwnerContext, intercept?: Intercept) {
  const calls: string[] = [];
  const se = Object.create(base.se) as SeClient;
  se.call = (async (method: string, req: unknown, signer?: Uint8Array, deadlineMs?: number) => {
    calls.push(method);
    const res = await base.se.call(method as "getInfo", req as never, signer, deadlineMs);
    return intercept ? intercept(method, res) : res;
  }) as SeClient["call"];
  const ctx: OwnerContext = { ...base, se };
  return { ctx, calls };
}

function tampered(genuine: IncomingTransfer, mutate: (m: TransferMessage) => void): IncomingTransfer {
  const message = TransferMessage.decode(TransferMessage.encode(genuine.message).finish());
  mutate(message);
  return { ...genuine, message };
}

function editTx(raw: Uint8Array, edit: (tx: Transaction) => void): Buffer {
  const tx = Transaction.fromBuffer(Buffer.from(raw));
  edit(tx);
  return Buffer.from(tx.toBuffer());
}

const flipLast = (b: Uint8Array): Buffer => {
  const c = Buffer.from(b);
  c[c.length - 1]! ^= 1;
  return c;
};

async function refused(
  p: Promise<unknown>,
  code: string,
  check?: (e: Error & { failedChecks?: string[] }) => void,
): Promise<void> {
  await assert.rejects(p, (e: Error & { code?: string; failedChecks?: string[] }) => {
    assert.equal(e.code, code, `${e.code}: ${e.message}`);
    check?.(e);
    return true;
  });
}

const READ_ONLY = new Set(["getInfo", "getStatechain", "getSmtProof", "getAttestation"]);

test("tampered messages, wrong backups and a forged statechain signature are refused before any SE request", async () => {
  const coin = await newCoin();
  const bob = newIdentity();
  await send(h.ctx, coin, bob.address);
  const [genuine] = await fetchIncoming(h.ctx, bob);
  assert.ok(genuine, "bob has the genuine incoming transfer");

  const cases: Array<[string, (m: TransferMessage) => void, string, RegExp]> = [
    [
      "the amount",
      (m) => {
        m.amountSat += 1n;
      },
      "AMOUNT",
      /sender says/,
    ],
    [
      "the statechain id",
      (m) => {
        m.statechainId!.vout += 1;
      },
      "MESSAGE_STATECHAIN",
      /another statechain/,
    ],
    [
      "the funding transaction",
      (m) => {
        m.fundingTx = flipLast(m.fundingTx);
      },
      "FUNDING_TX",
      /not the statechain/,
    ],
    [
      "my backup's locktime",
      (m) => {
        m.backupTx = editTx(m.backupTx, (tx) => {
          tx.locktime += 1;
        });
      },
      "BACKUP_LOCK",
      /my backup has lock \d+, expected \d+ for owner 2/,
    ],
    [
      "my backup's signature (output value changed)",
      (m) => {
        m.backupTx = editTx(m.backupTx, (tx) => {
          tx.outs[0]!.value -= 1n;
        });
      },
      "BACKUP_SIGNATURE",
      /not validly signed under the shared key/,
    ],
    [
      "the previous owner's backup lock",
      (m) => {
        m.backupHistory[0] = editTx(m.backupHistory[0]!, (tx) => {
          tx.locktime -= 10;
        });
      },
      "BACKUP_LOCK",
      /backup of owner 1 has lock/,
    ],
    [
      "the backup history",
      (m) => {
        m.backupHistory = [];
      },
      "BACKUP_HISTORY",
      /expected 1 earlier/,
    ],
    [
      "the statechain transaction's signature",
      (m) => {
        m.statechainTx!.signature = flipLast(m.statechainTx!.signature);
      },
      "STATECHAIN_SIGNATURE",
      /statechain transaction: .*signature does not verify/,
    ],
    [
      "the statechain transaction's receiver",
      (m) => {
        m.statechainTx!.nextProofKey = newIdentity().address.proofKey;
      },
      "STATECHAIN_SIGNATURE",
      /does not verify/,
    ],
    [
      "t1 (not a scalar)",
      (m) => {
        m.t1 = Buffer.alloc(32);
      },
      "INVALID_SCALAR",
      /t1/,
    ],
  ];
  for (const [what, mutate, code, message] of cases) {
    const { ctx, calls } = spied(h.ctx);
    await refused(receive(ctx, bob, tampered(genuine, mutate)), code, (e) =>
      assert.match(e.message, message, what),
    );
    assert.deepEqual(
      calls.filter((c) => !READ_ONLY.has(c)),
      [],
      `${what}: only read-only calls before refusing`,
    );
  }

  // A re-signed statechain transaction from the sender's real key, but to someone else: signed, not for us.
  const sc = await h.ctx.se.call("getStatechain", { statechainId: coin.statechainId });
  const state = verifyChain(sc.depositProofKey, sc.chain).currentState;
  const other = signTransfer(coin.proofSecret, state, newIdentity().address.proofKey, h.ctx.rng);
  await refused(
    receive(
      h.ctx,
      bob,
      tampered(genuine, (m) => {
        m.statechainTx = other;
      }),
    ),
    "SCTX_RECEIVER",
  );

  // None of it disturbed the transfer: the genuine message still completes it.
  const received = await receive(h.ctx, bob, genuine);
  assert.equal(received.ownerIndex, 2);
});

test("attestations from an unknown release, a debug enclave, or for an earlier nonce are refused before the key update", async () => {
  const coin = await newCoin();
  const bob = newIdentity();
  await send(h.ctx, coin, bob.address);
  const [incoming] = await fetchIncoming(h.ctx, bob);
  assert.ok(incoming, "bob has an incoming transfer");

  // A PCR policy that does not list the running enclave's measurements.
  const foreign = loadPcrPolicy({
    releases: [{ name: "v9", pcr0: "11".repeat(48), pcr1: "22".repeat(48), pcr2: "33".repeat(48) }],
  });
  let earlier: unknown;
  // Refused at the enclave's identity (step 6), before anything is said to the SE about the coin.
  const unknownRelease = spied({ ...h.ctx, trust: { ...h.ctx.trust, pcrPolicy: foreign } }, (_m, res) => res);
  await refused(receive(unknownRelease.ctx, bob, incoming), "IDENTITY_ATTESTATION", (e) =>
    assert.deepEqual(e.failedChecks, ["pcrs.policy"]),
  );
  assert.ok(
    !unknownRelease.calls.includes("transferReceiverInit"),
    "a document from an unknown release is refused before transferReceiverInit",
  );
  assert.ok(
    !unknownRelease.calls.includes("transferReceiverKeyUpdate"),
    "a document from an unknown release is refused before the key update",
  );

  // The policy loader refuses the all-zero measurements of a debug enclave outright…
  assert.throws(
    () =>
      loadPcrPolicy({
        releases: [{ name: "dbg", pcr0: "00".repeat(48), pcr1: "00".repeat(48), pcr2: "00".repeat(48) }],
      }),
    (e: Error & { code?: string }) => e.code === "PCR_POLICY_INVALID" && /debug/.test(e.message),
  );
  // …and a document from a debug enclave (PCRs zero), properly signed by the trusted simulator CA, is refused.
  const ca = SimulatorCa.open(path.join(se.dataDir, "sim-ca"));
  const zero = new Uint8Array(48);
  const debugEnclave = new SimulatorProvider({ ca, pcrs: { pcr0: zero, pcr1: zero, pcr2: zero } });
  const debug = spied(h.ctx, async (m, res) => {
    if (m !== "transferReceiverInit") return res;
    earlier = res;
    const r = res as { attestationDocument: Buffer; transferContext: Buffer };
    const d = decodeDocument(r.attestationDocument);
    const doc = await debugEnclave.attest({
      nonce: d.nonce ?? undefined,
      userData: d.userData ?? undefined,
      publicKey: d.publicKey ?? undefined,
    });
    return { ...r, attestationDocument: Buffer.from(doc) };
  });
  await refused(receive(debug.ctx, bob, incoming), "TRANSFER_KEY_ATTESTATION", (e) => {
    assert.ok(e.failedChecks!.includes("pcrs.not_debug"), String(e.failedChecks));
    assert.match(e.message, /debug enclave/);
  });
  assert.ok(
    !debug.calls.includes("transferReceiverKeyUpdate"),
    "a debug enclave's document is refused before the key update",
  );

  // A genuine document, but the one answering an earlier request: its nonce is not ours.
  assert.ok(earlier, "the answer to the earlier transferReceiverInit was kept");
  const stale = spied(h.ctx, (m, res) => (m === "transferReceiverInit" ? earlier : res));
  await refused(receive(stale.ctx, bob, incoming), "TRANSFER_KEY_ATTESTATION", (e) =>
    assert.deepEqual(e.failedChecks, ["nonce"]),
  );
  assert.ok(
    !stale.calls.includes("transferReceiverKeyUpdate"),
    "a document for an earlier nonce is refused before the key update",
  );

  // A wrong t1 cannot be seen before the key update: the enclave refuses it (s2·O2 ≠ P) and erases nothing.
  const flipped = tampered(incoming, (m) => {
    m.t1 = flipLast(m.t1);
  });
  await refused(receive(h.ctx, bob, flipped), "KEY_UPDATE_REFUSED", (e) =>
    assert.match(e.message, /refused the key update/),
  );
  const sc = await h.ctx.se.call("getStatechain", { statechainId: coin.statechainId });
  assert.equal(sc.status, StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING);
  assert.equal(sc.ownerIndex, 1);

  const received = await receive(h.ctx, bob, incoming);
  assert.equal(received.ownerIndex, 2);
});

test("the wallet reports each refused transfer with its reason and keeps nothing of it", async () => {
  const { wallet: bob } = await testWallet(h);
  const { address } = await bob.receiveAddress();
  const to = decodeReceiveAddress(address, "regtest");

  // A malicious sender hands over a message that is not encrypted to the receiver's key at all.
  const coin = await newCoin();
  const init = await h.ctx.se.call(
    "transferSenderInit",
    {
      statechainId: coin.statechainId,
      receiverProofKey: Buffer.from(to.proofKey),
      receiverBackupKey: Buffer.from(to.backupKey),
      auth: undefined,
    },
    coin.proofSecret,
  );
  assert.equal(init.newOwnerIndex, 2);
  // The SE takes a hand-over only once the receiver's backup is co-signed.
  const backup = buildBackupTx({
    mode: "absolute",
    spend: { txid: coin.statechainId.txid, vout: coin.statechainId.vout },
    spendAmountSat: coin.amountSat,
    backupKey: to.backupKey,
    lock: init.backupLock,
    feeRateSatVb: h.ctx.feeRateSatVb,
  });
  await coSign(h.ctx, coin, SignPurpose.SIGN_PURPOSE_BACKUP, backup.raw, coin.amountSat);
  const sc = await h.ctx.se.call("getStatechain", { statechainId: coin.statechainId });
  const sctx = signTransfer(coin.proofSecret, sc.stateHash, to.proofKey, h.ctx.rng);
  await h.ctx.se.call(
    "transferSend",
    {
      statechainId: coin.statechainId,
      statechainTx: sctx,
      encryptedMessage: Buffer.from(eciesEncrypt(newIdentity().address.proofKey, Buffer.from("not for you"))),
      auth: undefined,
    },
    coin.proofSecret,
  );
  let r = await bob.receive();
  assert.deepEqual(r.received, []);
  assert.equal(r.refused.length, 1);
  assert.equal(r.refused[0]!.code, "MESSAGE_DECRYPT");
  assert.equal(r.refused[0]!.statechainId, outpointString(coin.statechainId));
  assert.match(r.refused[0]!.reason, /does not decrypt/);

  // The sender does it properly, but the wallet's PCR policy does not know this enclave.
  await send(h.ctx, coin, to);
  const foreign = loadPcrPolicy({
    releases: [{ name: "v9", pcr0: "11".repeat(48), pcr1: "22".repeat(48), pcr2: "33".repeat(48) }],
  });
  bob.connect({ ...servicesOf(h), trust: { ...h.ctx.trust, pcrPolicy: foreign } });
  r = await bob.receive();
  assert.deepEqual(r.received, []);
  assert.deepEqual(
    r.refused.map((x) => [x.code, x.failedChecks]),
    [["IDENTITY_ATTESTATION", ["pcrs.policy"]]],
  );
  assert.deepEqual(await bob.coins(), []);

  // Without any PCR policy the wallet refuses to judge an enclave at all.
  bob.connect({ ...servicesOf(h), trust: { aws: false, simulatorRootPem: h.ctx.trust.simulatorRootPem } });
  r = await bob.receive();
  assert.equal(r.refused[0]?.code, "NO_PCR_POLICY");

  // With the right policy the same transfer goes through.
  bob.connect(servicesOf(h));
  r = await bob.receive();
  assert.deepEqual(r.refused, []);
  assert.equal(r.received.length, 1);
  await bob.close();
});

test("a key update whose answer is lost is finished by re-sending it, or, too late for that, kept exit-only", async () => {
  const { wallet: bob } = await testWallet(h);
  const to = async () => decodeReceiveAddress((await bob.receiveAddress()).address, "regtest");
  // The SE does the key update, but its answer never reaches the wallet.
  const cut = spied(h.ctx, (method, res) => {
    if (method === "transferReceiverKeyUpdate")
      throw new SeError("TransferReceiverKeyUpdate", 14, "connection reset by peer");
    return res;
  });

  const first = await newCoin();
  await send(h.ctx, first, await to());
  bob.connect({ ...servicesOf(h), se: cut.ctx.se });
  let r = await bob.receive();
  assert.deepEqual(
    r.refused.map((x) => x.code),
    ["KEY_UPDATE_UNANSWERED"],
  );
  assert.deepEqual(await bob.coins(), []);
  // Receiving again re-sends the very same signed request; the SE answers a repeat with its stored response.
  bob.connect(servicesOf(h));
  r = await bob.receive();
  assert.deepEqual(r.refused, []);
  assert.equal(r.received.length, 1);
  assert.equal(r.received[0]!.status, "active");
  assert.deepEqual(
    r.received[0]!.attestations.map((a) => [a.what, a.valid]),
    [["deletion", true]],
  );

  // Once the SE no longer answers the repeat (its replay window passed), the wallet, the owner now, fetches the
  // answer with a fresh request (GetKeyUpdateResult) and checks it as a first answer (#19.1).
  const expiredSe = (alsoLost: boolean) => {
    const expired = spied(h.ctx);
    const callThrough = expired.ctx.se.call;
    expired.ctx.se.call = (async (method: string, req: unknown, signer?: Uint8Array, d?: number) => {
      if (method === "transferReceiverKeyUpdate")
        throw new SeError("TransferReceiverKeyUpdate", 16, "this request was already used (nonce replay)");
      if (alsoLost && method === "getKeyUpdateResult")
        throw new SeError("GetKeyUpdateResult", 5, "the SE keeps no key update answer for this owner");
      return callThrough(method as "getInfo", req as never, signer, d);
    }) as SeClient["call"];
    return expired.ctx.se;
  };
  const second = await newCoin();
  await send(h.ctx, second, await to());
  bob.connect({ ...servicesOf(h), se: cut.ctx.se });
  assert.equal((await bob.receive()).refused[0]?.code, "KEY_UPDATE_UNANSWERED");
  bob.connect({ ...servicesOf(h), se: expiredSe(false) });
  r = await bob.receive();
  assert.deepEqual(r.refused, []);
  assert.equal(r.received[0]?.status, "active", "the lost answer was fetched and checked");

  // And if even that answer cannot be had, the wallet is the owner without the SE's new share: the coin is kept,
  // exit only, and its backup takes it out.
  const third = await newCoin();
  await send(h.ctx, third, await to());
  bob.connect({ ...servicesOf(h), se: cut.ctx.se });
  assert.equal((await bob.receive()).refused[0]?.code, "KEY_UPDATE_UNANSWERED");
  bob.connect({ ...servicesOf(h), se: expiredSe(true) });
  r = await bob.receive();
  assert.deepEqual(
    r.refused.map((x) => x.code),
    ["KEY_UPDATE_LOST"],
  );
  const kept = await bob.coin(r.refused[0]!.exitOnlyCoin!);
  assert.equal(kept.status, "exit-only");
  assert.equal(kept.ownerIndex, 2);
  await assert.rejects(bob.send(kept.number, (await bob.receiveAddress()).address), /only an active coin/);
  bob.connect(servicesOf(h));
  const out = await bob.exit(kept.number, { onWait: async () => void (await h.chain.mine(25)) });
  assert.equal(out.state.stage, "confirmed");

  // The SE answers, but the deletion receipt does not match its attestation: refused, kept for its backup.
  const bad = await newCoin();
  await send(h.ctx, bad, decodeReceiveAddress((await bob.receiveAddress()).address, "regtest"));
  const forged = spied(h.ctx, (method, res) => {
    if (method !== "transferReceiverKeyUpdate") return res;
    const u = res as { keyUpdate: { receipt: Buffer } };
    return { ...u, keyUpdate: { ...u.keyUpdate, receipt: flipLast(u.keyUpdate.receipt) } };
  });
  bob.connect({ ...servicesOf(h), se: forged.ctx.se });
  r = await bob.receive();
  assert.equal(r.received.length, 0);
  assert.equal(r.refused[0]?.code, "DELETION_ATTESTATION");
  assert.ok(r.refused[0]!.failedChecks!.includes("user_data.receipt"), String(r.refused[0]!.failedChecks));
  assert.match(r.refused[0]!.reason, /its backup takes it out/);
  assert.equal((await bob.coin(r.refused[0]!.exitOnlyCoin!)).status, "exit-only");
  await bob.close();
});
