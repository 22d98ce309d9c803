// The receiver holds what it is handed to what the enclave attests (audit #18.1, #18.2, #18.13), end to end
// against a real SE: the transfer-key statement must name the backup the sender handed over, no kick-off for an
// absolute-mode coin, the enclave instance and policy whose identity the receiver verified; the deletion
// attestation must carry the transfer key t2 was encrypted to, its receipt must erase the share the statement
// named, and the coin's receipts must chain: the share erased is the one the previous key update made, and the new
// receipt forks from none of the coin's earlier ones.
//
// A host cannot alter an attested value without breaking the document (user_data, the signature): that is
// refused by the attestation check first, and shown once per document. Every other case is what a receiver sees
// of an enclave that attests something else than the truth (the statement or receipt issued again by the simulator
// CA the wallet trusts, with the enclave's own measurements), which the sender alone can no longer bring about.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { decodeDocument } from "../../attestation/document.ts";
import {
  decodeReceipt,
  encodeReceipt,
  erasedShareCommitment,
  receiptHash,
} from "../../attestation/receipt.ts";
import { enclaveIdentity } from "../../client/attested-policy.ts";
import {
  confirmDeposit,
  coSign,
  deposit,
  lockFor,
  type OwnedCoin,
  pub,
  randomSecret,
  send,
} from "../../client/owner.ts";
import {
  attestedTransferKey,
  type CheckedTransfer,
  checkTransfer,
  fetchIncoming,
  finishKeyUpdate,
  type IncomingTransfer,
  type PreparedKeyUpdate,
  prepareKeyUpdate,
  RefusedAfterKeyUpdateError,
  receive,
} from "../../client/receive.ts";
import { SignPurpose } from "../../proto/gen/common.ts";
import { GetStatechainResponse } from "../../proto/gen/statechain.ts";
import { generatePaillierKey } from "../../protocol/ecdsa2p/paillier.ts";
import { buildBackupTx } from "../../protocol/tx/build.ts";
import { parseTx, txidOf } from "../../protocol/tx/parse.ts";
import { hostile, type Intercept, restatedDeletion, restatedTransferKey } from "../helpers/hostile.ts";
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

async function newCoin(): Promise<OwnedCoin> {
  const w = await fundedWallet(h.chain);
  const coin = await deposit(h.ctx, { amountSat: 400_000n, utxos: w.utxos, changeScript: w.script });
  await confirmDeposit(h.ctx, coin, { onWait: async () => void (await h.chain.mine(1)) });
  return coin;
}

type Receiver = ReturnType<typeof newIdentity>;

/** Receives through a host that rewrites answers: refused with `code`, before the key update is sent. */
async function refusedBeforeKeyUpdate(
  what: string,
  intercept: Intercept,
  id: Receiver,
  incoming: IncomingTransfer,
  code: string,
  message: RegExp,
  check?: (e: Error & { failedChecks?: string[] }) => void,
): Promise<void> {
  const { ctx, calls } = hostile(h.ctx, intercept);
  await assert.rejects(
    receive(ctx, id, incoming),
    (e: Error & { code?: string; failedChecks?: string[] }) => {
      assert.equal(e.code, code, `${what}: ${e.code}: ${e.message}`);
      assert.match(e.message, message, what);
      check?.(e);
      return true;
    },
  );
  assert.ok(
    !calls.includes("transferReceiverKeyUpdate"),
    `${what}: refused before the key update (${calls.join(", ")})`,
  );
}

/** Steps 6 and 7 as a receiver runs them, up to the signed key-update request (not sent yet). */
async function prepared(id: Receiver, incoming: IncomingTransfer) {
  const checked = await checkTransfer(h.ctx, id, incoming);
  const { transferKey, verdict } = await attestedTransferKey(h.ctx, id, checked);
  const keys = {
    paillier: await generatePaillierKey({ rng: h.ctx.rng }),
    ringPedersen: (await enclaveIdentity(h.ctx)).ringPedersen,
  };
  return { checked, prepared: prepareKeyUpdate(h.ctx, id, checked, transferKey, keys, verdict) };
}

/** The key update (sent once; the SE answers a re-send with its stored answer) refused after it, with `code`. */
async function refusedAfterKeyUpdate(
  what: string,
  intercept: Intercept,
  id: Receiver,
  p: { checked: CheckedTransfer; prepared: PreparedKeyUpdate },
  code: string,
  message: RegExp,
): Promise<void> {
  const { ctx } = hostile(h.ctx, intercept);
  await assert.rejects(finishKeyUpdate(ctx, id, p.checked, p.prepared), (e: unknown) => {
    assert.ok(e instanceof RefusedAfterKeyUpdateError, `${what}: ${String(e)}`);
    assert.equal(e.code, code, `${what}: ${e.message}`);
    assert.match(e.message, message, what);
    return true;
  });
}

const otherPoint = () => pub(randomSecret(h.ctx.rng));
const flipped = (b: Uint8Array) => {
  const c = Buffer.from(b);
  c[0]! ^= 1;
  return c;
};

let bobCoin: OwnedCoin | undefined;

test("the transfer-key statement must name the handed backup, no kick-off, the attested instance and policy; the deletion its key and share", async () => {
  const coin = await newCoin();
  const bob = newIdentity();
  await send(h.ctx, coin, bob.address);
  const [incoming] = await fetchIncoming(h.ctx, bob);
  assert.ok(incoming, "bob has an incoming transfer");

  // The sender cannot get a second backup to bob co-signed (#18.2): the one the statement names is the only one.
  const second = buildBackupTx({
    mode: "absolute",
    spend: coin.statechainId,
    spendAmountSat: coin.amountSat,
    backupKey: bob.address.backupKey,
    lock: lockFor(coin.initialLock, coin.interval, 2),
    feeRateSatVb: 3,
  });
  await assert.rejects(
    coSign(h.ctx, coin, SignPurpose.SIGN_PURPOSE_BACKUP, second.raw, coin.amountSat),
    /a different backup is already co-signed for the receiver/,
  );

  // A host that edits the statement beside the genuine document: its user_data gives it away.
  await refusedBeforeKeyUpdate(
    "the statement's backup edited beside the genuine document",
    restatedTransferKey(
      se,
      (s) => {
        s.backup = flipped(s.backup);
      },
      { attested: false },
    ),
    bob,
    incoming,
    "TRANSFER_KEY_ATTESTATION",
    /user_data/,
    (e) => assert.deepEqual(e.failedChecks, ["user_data"]),
  );
  // Attested statements that disagree with what the receiver holds.
  const handedBackup = Buffer.from(txidOf(parseTx(incoming.message.backupTx)));
  const cases: Array<[string, Parameters<typeof restatedTransferKey>[1], string, RegExp]> = [
    [
      "another backup co-signed for this transfer",
      (s) => {
        assert.deepEqual(
          Buffer.from(s.backup),
          handedBackup,
          "the genuine statement names the handed backup",
        );
        s.backup = flipped(s.backup);
      },
      "TRANSFER_KEY_BACKUP",
      /co-signed another backup for this transfer/,
    ],
    [
      "a kick-off for an absolute-mode coin",
      (s) => {
        s.kickoff = Buffer.from(h.ctx.rng(32));
      },
      "TRANSFER_KEY_KICKOFF",
      /recorded another kick-off/,
    ],
    [
      "another enclave instance",
      (s) => {
        s.instance = flipped(s.instance);
      },
      "TRANSFER_KEY_INSTANCE",
      /another enclave instance than the one whose identity was attested/,
    ],
    [
      "another policy",
      (s) => {
        s.policy = flipped(s.policy);
      },
      "TRANSFER_KEY_POLICY",
      /attested under another policy/,
    ],
  ];
  const transferKeys: Buffer[] = [];
  for (const [what, edit, code, message] of cases)
    await refusedBeforeKeyUpdate(
      what,
      async (method, res) => {
        const r = await restatedTransferKey(se, edit)(method, res);
        if (method === "transferReceiverInit")
          transferKeys.push(
            Buffer.from(
              decodeDocument((r as { attestationDocument: Buffer }).attestationDocument).publicKey!,
            ),
          );
        return r;
      },
      bob,
      incoming,
      code,
      message,
    );

  // The key update goes out; the deletion evidence must match the statement.
  const p = await prepared(bob, incoming);
  // An earlier transfer key of this transfer (the enclave hands out a fresh one per TransferReceiverInit).
  const earlierKey = transferKeys[0]!;
  assert.ok(
    !earlierKey.equals(p.checked.attested!.transferKey),
    "an earlier transfer key, not the one t2 went to",
  );
  await refusedAfterKeyUpdate(
    "the deletion attested under an earlier transfer key",
    restatedDeletion(se, () => {}, { publicKey: earlierKey }),
    bob,
    p,
    "DELETION_KEY",
    /names another public key than the transfer key t2 was encrypted to/,
  );
  await refusedAfterKeyUpdate(
    "a receipt erasing another share",
    restatedDeletion(se, (r) => {
      r.erased = erasedShareCommitment(otherPoint());
    }),
    bob,
    p,
    "RECEIPT_ERASED",
    /erases another SE share than the one attested with the transfer key/,
  );
  // The genuine answer (the SE's stored one for the same request) is taken.
  bobCoin = await finishKeyUpdate(h.ctx, bob, p.checked, p.prepared);
  assert.equal(bobCoin.ownerIndex, 2);
});

/** GetStatechain's answer (a copy) with its key-update records edited. */
const keyUpdates =
  (edit: (r: GetStatechainResponse) => void): Intercept =>
  (method, res) => {
    if (method !== "getStatechain") return res;
    const r = GetStatechainResponse.decode(
      GetStatechainResponse.encode(res as GetStatechainResponse).finish(),
    );
    edit(r);
    return r;
  };

test("RECEIPT_CHAIN: the coin's receipts must chain, from the last one the SE serves (attested) to the new one", async () => {
  assert.ok(bobCoin, "runs after the first test (its receipt comes before this coin's)");
  // A coin moved once (alice → dave), about to move again (dave → carol). Dave's receipt follows bob's.
  const coin = await newCoin();
  const dave = newIdentity();
  await send(h.ctx, coin, dave.address);
  const daveCoin = await receive(h.ctx, dave, (await fetchIncoming(h.ctx, dave))[0]!);
  const carol = newIdentity();
  await send(h.ctx, daveCoin, carol.address);
  const [incoming] = await fetchIncoming(h.ctx, carol);
  assert.ok(incoming, "carol has an incoming transfer");
  const sc = await h.ctx.se.call("getStatechain", { statechainId: coin.statechainId });
  const daveReceipt = decodeReceipt(sc.keyUpdates[0]!.receipt);
  assert.ok(
    daveReceipt.prev.some((b) => b !== 0),
    "dave's receipt follows an earlier one of the enclave",
  );

  // What the host serves of the coin's history: a record left out, or altered.
  await refusedBeforeKeyUpdate(
    "owner 2's key update left out",
    keyUpdates((r) => {
      r.keyUpdates = [];
    }),
    carol,
    incoming,
    "RECEIPT_CHAIN",
    /key updates to owners \[\] of a coin at owner 2: expected one to each of owners 2…2/,
  );
  await refusedBeforeKeyUpdate(
    "owner 2's receipt with another S2, its document unchanged",
    keyUpdates((r) => {
      const k = r.keyUpdates[0]!;
      const { v: _v, ...fields } = decodeReceipt(k.receipt);
      k.receipt = Buffer.from(encodeReceipt({ ...fields, S2: otherPoint() }));
    }),
    carol,
    incoming,
    "RECEIPT_CHAIN",
    /deletion attestation of the coin's key update to owner 2 fails: user_data\.receipt/,
  );
  // An enclave that now holds another share for the coin than the one it made at dave's key update (an old one
  // restored, a key replaced), and says so in the attested statement: every other check agrees with it.
  await refusedBeforeKeyUpdate(
    "a statement naming another share than dave's receipt made",
    restatedTransferKey(se, (s) => {
      s.share = otherPoint();
    }),
    carol,
    incoming,
    "RECEIPT_CHAIN",
    /is to erase another share than the one it made at the coin's key update to owner 2/,
  );

  // The key update goes out; its receipt must not fork from the coin's earlier ones, nor go back in time.
  const p = await prepared(carol, incoming);
  assert.equal(p.checked.receipts?.length, 1, "carol checked dave's receipt");
  await refusedAfterKeyUpdate(
    "a receipt following the receipt dave's already follows",
    restatedDeletion(se, (r) => {
      r.prev = daveReceipt.prev;
    }),
    carol,
    p,
    "RECEIPT_CHAIN",
    /follows a receipt that another of the coin's receipts already follows: the enclave's receipt chain forked/,
  );
  await refusedAfterKeyUpdate(
    "a receipt dated before dave's",
    restatedDeletion(se, (r) => {
      r.time = daveReceipt.time - 1;
    }),
    carol,
    p,
    "RECEIPT_CHAIN",
    /dated before the coin's previous one/,
  );
  const got = await finishKeyUpdate(h.ctx, carol, p.checked, p.prepared);
  assert.equal(got.ownerIndex, 3);
  // Nothing else happened in between on this enclave: carol's receipt follows dave's directly.
  const after = await h.ctx.se.call("getStatechain", { statechainId: coin.statechainId });
  assert.deepEqual(
    Buffer.from(decodeReceipt(after.keyUpdates[1]!.receipt).prev),
    Buffer.from(receiptHash(sc.keyUpdates[0]!.receipt)),
  );
});
