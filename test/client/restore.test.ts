// The recovery scan (client/restore.ts) against a scripted SE: which key slots it asks about, when it stops (the
// gap limit), that each request is signed by the key it asks about, and the pauses of --one-at-a-time.
import assert from "node:assert/strict";
import { test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import type { OwnerContext } from "../../client/owner.ts";
import { type RecoveryKeys, recoverCoins } from "../../client/restore.ts";
import { RecoveredRole } from "../../proto/gen/statechain.ts";
import { outpointBytes } from "../../protocol/outpoint.ts";
import { systemRng } from "../../protocol/rng.ts";

const secretOf = (slot: number) => {
  const k = new Uint8Array(32);
  k[31] = slot + 1;
  return k;
};
const pubOf = (slot: number) => Buffer.from(secp256k1.getPublicKey(secretOf(slot), true)).toString("hex");
const keys: RecoveryKeys = {
  proofSecret: secretOf,
  backupKey: (slot) => secp256k1.getPublicKey(secretOf(slot + 100), true),
  ownerShare: () => assert.fail("no coin is rebuilt here"),
  paillierKey: () => assert.fail("no coin is rebuilt here"),
};

/** An SE holding one coin on each of `slots`; records which keys were asked about and who signed. */
function scriptedSe(slots: number[]) {
  const asked: number[] = [];
  const coinOf = (slot: number) => ({
    statechainId: { txid: Buffer.alloc(32, slot + 1), vout: 0 },
    ownerIndex: 1,
    role: RecoveredRole.RECOVERED_ROLE_OWNER,
    fundingTx: Buffer.alloc(0),
    backupTxs: [],
    kickoffTx: Buffer.alloc(0),
    key: undefined,
  });
  const se = {
    call: async (method: string, req: { proofKey: Uint8Array }, signer: Uint8Array) => {
      assert.equal(method, "recoverCoins");
      const hex = Buffer.from(req.proofKey).toString("hex");
      const slot = [...Array(64).keys()].find((i) => pubOf(i) === hex)!;
      assert.equal(
        Buffer.from(secp256k1.getPublicKey(signer, true)).toString("hex"),
        hex,
        "each request is signed by the key it asks about",
      );
      asked.push(slot);
      return { coins: slots.includes(slot) ? [coinOf(slot)] : [] };
    },
  };
  const known = new Set(slots.map((s) => outpointBytes(coinOf(s).statechainId).toString("hex")));
  return { ctx: { se, rng: systemRng } as unknown as OwnerContext, asked, known };
}

test("the scan asks slot after slot until `gap` slots in a row own nothing", async () => {
  const a = scriptedSe([0, 3]);
  const r = await recoverCoins(a.ctx, keys, { gap: 2, known: a.known });
  assert.deepEqual(a.asked, [0, 1, 2], "slot 3 lies beyond a gap of 2");
  assert.equal(r.scanned, 3);
  assert.deepEqual(r.usedSlots, [0]);
  const b = scriptedSe([0, 3]);
  const r3 = await recoverCoins(b.ctx, keys, { gap: 3, known: b.known });
  assert.deepEqual(b.asked, [0, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual(r3.usedSlots, [0, 3]);
  assert.deepEqual(r3.coins, [], "coins the wallet holds already are left alone");
  const none = scriptedSe([]);
  assert.equal((await recoverCoins(none.ctx, keys)).scanned, 20, "the default gap is 20");
});

test("--one-at-a-time pauses a random while (below the maximum) before every request but the first", async () => {
  const a = scriptedSe([1]);
  const pauses: number[] = [];
  const events: string[] = [];
  await recoverCoins(
    a.ctx,
    keys,
    { gap: 4, oneAtATime: true, maxPauseMs: 5000, known: a.known, sleep: async (ms) => void pauses.push(ms) },
    (e) => events.push(e),
  );
  assert.deepEqual(a.asked, [0, 1, 2, 3, 4, 5]);
  assert.equal(pauses.length, a.asked.length - 1);
  assert.ok(
    pauses.every((p) => p >= 0 && p < 5000),
    `pauses below the maximum: ${pauses}`,
  );
  assert.ok(new Set(pauses).size > 1, `the pauses vary: ${pauses}`);
  assert.equal(events.filter((e) => e === "recover-scan").length, a.asked.length, "progress per slot");
  const quick = scriptedSe([1]);
  let slept = 0;
  await recoverCoins(quick.ctx, keys, { gap: 4, known: quick.known, sleep: async () => void slept++ });
  assert.equal(slept, 0, "without --one-at-a-time nothing waits");
});
