// The transfer mailbox is bounded per receiver: at most SE_MAILBOX_MAX_ITEMS messages and SE_MAILBOX_MAX_BYTES
// bytes in all wait for one proof key (each message at most SE_MAILBOX_MAX_MESSAGE_BYTES). A sender that would
// overflow a receiver's mailbox is refused with RESOURCE_EXHAUSTED, and other receivers are not affected.
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
