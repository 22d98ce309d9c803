// An unauthenticated DepositInit flood cannot fill the enclave's fixed memory (audit #19.2): unfunded deposits
// are capped per client address and overall (host) and per proof key and overall (enclave), the proof of work
// grows with the deposits being set up, and an honest deposit still goes through.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { status } from "@grpc/grpc-js";
import { confirmDeposit, deposit, pub, randomSecret } from "../../client/owner.ts";
import { SeClient, SeError } from "../../client/se-client.ts";
import { solvePow } from "../../protocol/pow.ts";
import { systemRng } from "../../protocol/rng.ts";
import { fundedWallet, type Harness, ownerHarness } from "../helpers/owners.ts";
import { type SeProcess, startSeProcess } from "../helpers/se-process.ts";
import { queryDb } from "../host/support/db-snapshot.ts";

let se: SeProcess;
let h: Harness;
let client: SeClient;

before(async () => {
  se = await startSeProcess({
    env: {
      SE_MAINSTAY_ENABLED: "false",
      SE_POW_BITS: "2",
      SE_DEPOSIT_MAX_UNFUNDED_PER_PEER: "10",
      SE_RATE_PER_KEY: "0",
    },
  });
  h = await ownerHarness(se);
  client = new SeClient(`127.0.0.1:${se.port}`, { rng: systemRng });
});
after(async () => {
  client?.close();
  h?.close();
  await se?.stop();
});

/** DepositInit as a flooder sends it: a fresh key, the proof of work the SE asks for, nothing after. */
async function init(secret = randomSecret(systemRng)) {
  const ch = await client.call("getDepositChallenge", {});
  const proofKey = pub(secret);
  const guard = {
    $case: "pow" as const,
    value: {
      challenge: ch.challenge,
      solution: Buffer.from(solvePow(ch.challenge, proofKey, ch.difficultyBits)),
    },
  };
  await client.call(
    "depositInit",
    {
      proofKey,
      guard,
      auth: undefined,
      holderCommit: { commitment: Buffer.from(systemRng(32)) },
      keygenSessionId: Buffer.from(systemRng(16)),
    },
    secret,
  );
  return ch.difficultyBits;
}

async function refusal(p: Promise<unknown>): Promise<SeError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof SeError) return e;
    throw e;
  }
  throw new Error("expected a refusal");
}

test("one address sets up at most its share of unfunded deposits; the work asked grows with them", async () => {
  const bits: number[] = [];
  for (let i = 0; i < 10; i++) bits.push(await init());
  assert.equal(bits[0], 2, "a quiet SE asks the base difficulty");
  assert.ok(bits[9]! > 2, `past 8 open deposits the work grows (${bits})`);
  const ch = await client.call("getDepositChallenge", {});
  assert.ok(ch.difficultyBits > 2, `with 10 deposits open the SE asks more work (${ch.difficultyBits} bits)`);
  const e = await refusal(init());
  assert.equal(e.code, status.RESOURCE_EXHAUSTED, e.message);
  assert.match(e.message, /this address has 10 deposits set up and not yet funded/);
  const [row] = await queryDb<{ n: number }>(
    se.dataDir,
    "SELECT COUNT(*) AS n FROM deposits WHERE statechain_id IS NULL",
  );
  assert.equal(row!.n, 10, "the refused attempt left no row");
});

test("the enclave holds at most two unfunded deposits per proof key", async () => {
  // A fresh SE address budget is not needed: the enclave's rule is per key, checked before the host's count.
  await se.stop();
  se = await startSeProcess({
    env: { SE_MAINSTAY_ENABLED: "false", SE_POW_BITS: "0", SE_RATE_PER_KEY: "0" },
  });
  client.close();
  client = new SeClient(`127.0.0.1:${se.port}`, { rng: systemRng });
  const secret = randomSecret(systemRng);
  await init(secret);
  await init(secret);
  const e = await refusal(init(secret));
  assert.equal(e.code, status.RESOURCE_EXHAUSTED, e.message);
  assert.match(e.message, /two deposits waiting for their funding/);
  // And an honest deposit from another key goes through.
  h.close();
  h = await ownerHarness(se);
  const w = await fundedWallet(h.chain);
  const coin = await deposit(h.ctx, { amountSat: 300_000n, utxos: w.utxos, changeScript: w.script });
  await confirmDeposit(h.ctx, coin, { onWait: async () => void (await h.chain.mine(1)) });
});
