// withFreshPaillierKey (client/owner.ts): a keygen flow's Paillier key is wiped when the flow fails before it
// hands the key over, and left to the caller after (an unanswered key update is finished with that very key).
import assert from "node:assert/strict";
import { test } from "node:test";
import { type OwnerContext, withFreshPaillierKey } from "../../client/owner.ts";
import { generatePaillierKey, type PaillierKey } from "../../protocol/ecdsa2p/paillier.ts";
import { systemRng as rng } from "../../protocol/rng.ts";

const allZero = (b: Uint8Array) => b.every((x) => x === 0);

async function run(handOverFirst: boolean): Promise<PaillierKey & { share: Uint8Array }> {
  const key = await generatePaillierKey({ rng });
  const share = Uint8Array.from(rng(32));
  const ctx = { paillierKey: async () => ({ paillier: key, share }) } as unknown as OwnerContext;
  await assert.rejects(
    withFreshPaillierKey(ctx, async (k, handOver) => {
      await k();
      if (handOverFirst) handOver();
      throw new Error("refused by the SE");
    }),
    /refused by the SE/,
  );
  await new Promise((r) => setImmediate(r)); // the wipe runs once the key promise settles
  return Object.assign(key, { share });
}

test("a flow that fails before it hands its key over leaves the key wiped", async () => {
  const key = await run(false);
  assert.ok(allZero(key.secret.p) && allZero(key.secret.q), "the failed flow's primes are zero");
  assert.equal(key.nonces.length, 0, "its encryption nonces are gone");
  assert.ok(allZero(key.share), "and the share o derived with it");
});

test("a flow that failed after handing its key over leaves it whole for the caller", async () => {
  const key = await run(true);
  assert.ok(!allZero(key.secret.p), "the caller's key is not wiped");
  assert.ok(!allZero(key.share), "nor its share");
});

test("a wallet's key is prepared when the flow starts and claimed only where the flow asks for it", async () => {
  const calls: string[] = [];
  const key = await generatePaillierKey({ rng });
  const ctx = {
    preparePaillierKey: () => void calls.push("prepare"),
    paillierKey: async () => {
      calls.push("take");
      return { paillier: key };
    },
  } as unknown as OwnerContext;
  await assert.rejects(
    withFreshPaillierKey(ctx, async () => {
      throw new Error("refused by a check");
    }),
    /refused by a check/,
  );
  assert.deepEqual(calls, ["prepare"], "a flow refused before it needs the key claims none");
  await new Promise((r) => setImmediate(r));
  assert.ok(!allZero(key.secret.p), "an unclaimed key is not the flow's to wipe");
  calls.length = 0;
  const got = await withFreshPaillierKey(ctx, async (k) => k());
  assert.equal(got.paillier, key);
  assert.deepEqual(calls, ["prepare", "take"]);
});
