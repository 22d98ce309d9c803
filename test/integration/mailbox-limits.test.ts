// The transfer mailbox is bounded per receiver: at most SE_MAILBOX_MAX_ITEMS messages and SE_MAILBOX_MAX_BYTES
// bytes in all wait for one proof key (each message at most SE_MAILBOX_MAX_MESSAGE_BYTES). A sender that would
// overflow a receiver's mailbox is refused with RESOURCE_EXHAUSTED, and other receivers are not affected. Room is
// checked at TransferSenderInit, before the coin is committed (#19.5): a place and the bytes its message needs at
// most, which the transfer holds until its hand-over.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { confirmDeposit, deposit, type OwnedCoin, type OwnerContext, send } from "../../client/owner.ts";
import { fetchIncoming } from "../../client/receive.ts";
import { type SeClient, SeError } from "../../client/se-client.ts";
import { StatechainStatus } from "../../proto/gen/common.ts";
import { fundedWallet, type Harness, newIdentity, ownerHarness } from "../helpers/owners.ts";
import { type SeProcess, startSeProcess } from "../helpers/se-process.ts";

const MAX_ITEMS = 3;
const MAX_BYTES = 8192;
const MAX_MESSAGE = 5000;

let se: SeProcess;
let h: Harness;

before(async () => {
  se = await startSeProcess({
    env: {
      SE_MAINSTAY_ENABLED: "false",
      SE_INIT_LOCK: "300",
      SE_LOCKTIME_INTERVAL: "10",
      SE_MAILBOX_MAX_ITEMS: String(MAX_ITEMS),
      SE_MAILBOX_MAX_BYTES: String(MAX_BYTES),
      SE_MAILBOX_MAX_MESSAGE_BYTES: String(MAX_MESSAGE),
    },
  });
  h = await ownerHarness(se);
});
after(async () => {
  h?.close();
  await se?.stop();
});

async function newCoin(): Promise<OwnedCoin> {
  const w = await fundedWallet(h.chain);
  const coin = await deposit(h.ctx, { amountSat: 300_000n, utxos: w.utxos, changeScript: w.script });
  await confirmDeposit(h.ctx, coin, { onWait: async () => void (await h.chain.mine(1)) });
  return coin;
}

/** A sender whose hand-over carries `size` bytes of (opaque, to the host) ciphertext instead of the real message. */
function padded(size: number): OwnerContext {
  const se = Object.create(h.ctx.se) as SeClient;
  se.call = ((method: string, req: Record<string, unknown>, signer?: Uint8Array, deadlineMs?: number) =>
    h.ctx.se.call(
      method as "transferSend",
      (method === "transferSend" ? { ...req, encryptedMessage: randomBytes(size) } : req) as never,
      signer,
      deadlineMs,
    )) as SeClient["call"];
  return { ...h.ctx, se };
}

async function full(p: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof SeError, String(e));
    assert.equal(e.code, status.RESOURCE_EXHAUSTED, e.message);
    assert.match(e.message, message);
    assert.match(e.message, /wallet receive/, "the message says what unblocks it");
    return true;
  });
}

test("the (max+1)-th message to one receiver is refused; another receiver still gets its coin", async () => {
  const alice = newIdentity();
  for (let i = 0; i < MAX_ITEMS; i++) await send(h.ctx, await newCoin(), alice.address);
  assert.equal((await fetchIncoming(h.ctx, alice)).length, MAX_ITEMS);

  const extra = await newCoin();
  await full(send(h.ctx, extra, alice.address), new RegExp(`${MAX_ITEMS} of ${MAX_ITEMS} messages`));
  assert.equal((await fetchIncoming(h.ctx, alice)).length, MAX_ITEMS, "nothing was added");
  // Refused before the coin was committed to alice (#19.5): its owner still holds it, free to send it elsewhere.
  const sc = await h.ctx.se.call("getStatechain", { statechainId: extra.statechainId });
  assert.equal(sc.status, StatechainStatus.STATECHAIN_STATUS_ACTIVE, "the refused coin is not left pending");

  // Alice's full mailbox does not affect carol's.
  const carol = newIdentity();
  await send(h.ctx, await newCoin(), carol.address);
  const [forCarol] = await fetchIncoming(h.ctx, carol);
  assert.ok(forCarol, "another receiver is not affected by alice's full mailbox");
  assert.equal(forCarol.message.amountSat, 300_000n);
});

test("a message that would take a receiver's mailbox over its total bytes is refused, though under the per-message size", async () => {
  const bob = newIdentity();
  await send(padded(MAX_MESSAGE), await newCoin(), bob.address);
  const second = await newCoin();
  await full(
    send(padded(MAX_BYTES - MAX_MESSAGE + 1), second, bob.address),
    new RegExp(`${MAX_MESSAGE} of ${MAX_BYTES} bytes used`),
  );
  // What still fits is taken: the limit is the total, not a per-message size.
  await send(padded(MAX_BYTES - MAX_MESSAGE), second, bob.address);

  // One message over the per-message size is refused whatever the room.
  const dave = newIdentity();
  const third = await newCoin();
  await assert.rejects(send(padded(MAX_MESSAGE + 1), third, dave.address), (e: unknown) => {
    assert.ok(e instanceof SeError, `an oversized transfer message is refused with an SeError (${e})`);
    assert.equal(e.code, status.RESOURCE_EXHAUSTED);
    assert.match(e.message, /1 to 5000 bytes/);
    return true;
  });
  // Bob's full mailbox leaves dave's alone.
  await send(h.ctx, third, dave.address);
  assert.equal((await fetchIncoming(h.ctx, dave)).length, 1);
});

test("a mailbox full by bytes refuses an honest transfer at TransferSenderInit, before the coin is committed", async () => {
  const erin = newIdentity();
  await send(padded(MAX_MESSAGE), await newCoin(), erin.address);
  await send(padded(2_800), await newCoin(), erin.address);
  // 7,800 of 8,192 bytes taken, 2 of 3 messages: a place is free, the room for a real hand-over is not.
  const coin = await newCoin();
  await full(
    send(h.ctx, coin, erin.address),
    /7800 of 8192 bytes used .*, this coin's transfer message needs up to \d+/,
  );
  const sc = await h.ctx.se.call("getStatechain", { statechainId: coin.statechainId });
  assert.equal(
    sc.status,
    StatechainStatus.STATECHAIN_STATUS_ACTIVE,
    "refused before the commit: the coin is not left pending to a receiver whose mailbox cannot take it",
  );
});

test("the room a transfer under way holds is not taken by a later sender's larger message", async () => {
  const frank = newIdentity();
  const first = await newCoin();
  // The first sender starts (TransferSenderInit) and takes its time before the hand-over.
  await h.ctx.se.call(
    "transferSenderInit",
    {
      statechainId: first.statechainId,
      receiverProofKey: frank.address.proofKey,
      receiverBackupKey: frank.address.backupKey,
      auth: undefined,
    },
    first.proofSecret,
  );
  await send(padded(MAX_MESSAGE), await newCoin(), frank.address);
  // 5,000 bytes waiting, about 1,200 held for the first sender: 2,500 more would fit the bytes left over by the
  // waiting message alone, but not beside what the first sender holds.
  await full(
    send(padded(2_500), await newCoin(), frank.address),
    /\d+ of 8192 bytes used by messages waiting or held for transfers under way, the message has 2500/,
  );
  // The first sender's hand-over finds its room.
  await send(h.ctx, first, frank.address);
  const sc = await h.ctx.se.call("getStatechain", { statechainId: first.statechainId });
  assert.equal(
    sc.status,
    StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING,
    "handed over, waiting for frank",
  );
});
