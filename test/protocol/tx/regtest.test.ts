// The statechain's transactions on a real chain: bcoin's regtest node with mainnet standardness rules, fed
// through the embedded backend (consensus, finality, BIP68, mempool policy as a node applies them).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Transaction } from "bitcoinjs-lib";
import { ChainError, type Utxo } from "../../../chain/backend.ts";
import { EmbeddedChain } from "../../../chain/embedded.ts";
import type { RegtestNode } from "../../../chain/regtest-node.ts";
import {
  ANCHOR_SCRIPT,
  type BuiltTx,
  buildBackupTx,
  buildCpfpChild,
  buildFundingTx,
  buildKickoffTx,
  buildWithdrawalTx,
  type CoinPolicyContext,
  checkBackupTx,
  checkKickoffTx,
  checkP2wpkhWitness,
  checkWithdrawalTx,
  finalizeP2wpkhInput,
  isLowS,
  p2wpkhScript,
  signP2wpkhInputs,
  txidFromHex,
} from "../../../protocol/tx/index.ts";
import { startRegtest, TestWallet } from "../../chain/regtest-wallet.ts";
import { key, shared, signDigest } from "./helpers.ts";

let node: RegtestNode;
let chain: EmbeddedChain;
const wallet = new TestWallet("tx-regtest");
let coins: Utxo[] = [];

before(async () => {
  node = await startRegtest();
  chain = new EmbeddedChain(node);
  // One coin per deposit below and one for the CPFP child's fee: each test spends only its own, so no test takes a
  // coin a later one needs (findUtxos sorts by txid, and coinbase txids differ from run to run).
  coins = await wallet.mineCoins(chain, 5);
});
after(() => node?.close());

async function rejects(p: Promise<unknown>, code: ChainError["code"]): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof ChainError && err.code === code);
}

/** Broadcasts and checks what the policy promises: low-S strict-DER signatures, fee ≥ relay minimum. */
async function send(raw: Uint8Array, feeSat: bigint): Promise<string> {
  const tx = Transaction.fromBuffer(raw);
  for (const input of tx.ins) {
    const der = input.witness[0]!;
    assert.ok(der.length <= 72, "DER signature + sighash byte fits 72 bytes");
  }
  assert.ok(feeSat >= BigInt(tx.virtualSize()), `fee ${feeSat} below 1 sat/vB for ${tx.virtualSize()} vB`);
  return chain.broadcast(raw);
}

/** A deposit: funding (not yet broadcast) and the context the enclave would hold. */
function deposit(
  coin: Utxo,
  mode: "absolute" | "kickoff",
  initialLock: number,
): {
  funding: BuiltTx;
  ctx: CoinPolicyContext;
} {
  const funding = buildFundingTx({
    utxos: [coin],
    amountSat: 100_000_000n,
    sharedPublicKey: shared.pk,
    changeScript: wallet.script,
    feeRateSatVb: 2,
  });
  const signed = signP2wpkhInputs(funding.raw, [{ inputIndex: 0, prevout: coin, privateKey: wallet.sk }]);
  return {
    funding: { ...funding, raw: signed },
    ctx: {
      outpoint: { txid: funding.txid, vout: 0 },
      amountSat: 100_000_000n,
      sharedPublicKey: shared.pk,
      mode,
      initialLock,
      interval: 5,
      safetyMargin: 2,
      minFeeRateSatVb: 1,
    },
  };
}

/** Co-signs under P after the policy check, as the enclave would: digest from the policy, 64-byte low-S sig. */
function cosign(raw: Uint8Array, digest: Uint8Array, amountSat: bigint): Uint8Array {
  const sig = signDigest(digest);
  assert.ok(isLowS(sig), "the signature has a low s");
  return finalizeP2wpkhInput(raw, 0, sig, shared.pk, amountSat);
}

describe("absolute mode", () => {
  test("backups are non-final before their locktime; the newest owner's confirms first", async () => {
    const tip = node.height();
    const { funding, ctx } = deposit(coins[0]!, "absolute", tip + 20);
    const owners = [1, 2, 3].map((n) => {
      const b = key(`abs-owner-${n}`);
      const built = buildBackupTx({
        mode: "absolute",
        spend: ctx.outpoint,
        spendAmountSat: ctx.amountSat,
        backupKey: b.pk,
        lock: tip + 20 - (n - 1) * 5,
        feeRateSatVb: 1,
      });
      const checked = checkBackupTx(built.raw, ctx, { ownerIndex: n, backupKey: b.pk, tip });
      return { b, built, raw: cosign(built.raw, checked.digest, ctx.amountSat), lock: checked.lock };
    });
    // Backups are signed before the funding is broadcast: segwit inputs keep the funding txid fixed.
    assert.equal(await send(funding.raw, funding.feeSat), funding.txidHex);
    await chain.mine(1);
    for (const o of owners) checkP2wpkhWitness(Transaction.fromBuffer(o.raw), 0, shared.pk, ctx.amountSat);

    const newest = owners[2]!;
    await chain.mine(newest.lock - 1 - node.height());
    assert.equal(node.height(), newest.lock - 1);
    for (const o of owners) await rejects(chain.broadcast(o.raw), "non-final");
    await chain.mine(1); // tip = lock: the next block may include it
    assert.equal(await send(newest.raw, newest.built.feeSat), newest.built.txidHex);
    await rejects(chain.broadcast(owners[1]!.raw), "non-final");
    await chain.mine(1);
    assert.equal((await chain.getTxStatus(newest.built.txidHex))?.confirmations, 1);
    // When the older owners' locks come, the coin is gone.
    await chain.mine(owners[0]!.lock - node.height());
    await rejects(chain.broadcast(owners[1]!.raw), "missing-inputs");
    await rejects(chain.broadcast(owners[0]!.raw), "missing-inputs");

    // The owner can bump its backup's fee from its own output (CPFP).
    const out = Transaction.fromBuffer(newest.raw).outs[0]!;
    const child = buildCpfpChild({
      parent: { txid: newest.built.txid, vout: 0, valueSat: out.value, kind: "p2wpkh", script: out.script },
      parentVsize: newest.built.vsize,
      parentFeeSat: newest.built.feeSat,
      feeUtxos: [],
      changeScript: wallet.script,
      packageFeeRateSatVb: 5,
    });
    const signed = signP2wpkhInputs(child.raw, [{ ...child.inputs[0]!, privateKey: newest.b.sk }]);
    await send(signed, child.feeSat);
  });

  test("a cooperative withdrawal (with the SE fee) spends the coin; its backups are then void", async () => {
    const tip = node.height();
    const { funding, ctx } = deposit(coins[1]!, "absolute", tip + 8);
    const b1 = key("wd-owner-1");
    const backup = buildBackupTx({
      mode: "absolute",
      spend: ctx.outpoint,
      spendAmountSat: ctx.amountSat,
      backupKey: b1.pk,
      lock: tip + 8,
      feeRateSatVb: 1,
    });
    const backupRaw = cosign(
      backup.raw,
      checkBackupTx(backup.raw, ctx, { ownerIndex: 1, backupKey: b1.pk, tip }).digest,
      ctx.amountSat,
    );
    await send(funding.raw, funding.feeSat);
    await chain.mine(1);

    const W = p2wpkhScript(key("withdraw-to").pk);
    const FEE = p2wpkhScript(key("se-fee").pk);
    const wd = buildWithdrawalTx({
      spend: ctx.outpoint,
      spendAmountSat: ctx.amountSat,
      withdrawScript: W,
      seFee: { script: FEE, amountSat: 50_000n },
      feeRateSatVb: 3,
    });
    const checked = checkWithdrawalTx(wd.raw, ctx, {
      withdrawScript: W,
      feeScript: FEE,
      minSeFeeSat: 50_000n,
    });
    const raw = cosign(wd.raw, checked.digest, ctx.amountSat);
    await send(raw, checked.feeSat);
    await chain.mine(1);
    assert.equal((await chain.findUtxos(FEE))[0]?.valueSat, 50_000n);
    assert.equal((await chain.findUtxos(W))[0]?.valueSat, ctx.amountSat - 50_000n - checked.feeSat);
    await chain.mine(8);
    await rejects(chain.broadcast(backupRaw), "missing-inputs");
  });
});

describe("kick-off mode", () => {
  test("kick-off + CPFP child confirm; backups wait out their relative lock; the old owner loses", async () => {
    const { funding, ctx: base } = deposit(coins[2]!, "kickoff", 10);
    const k = buildKickoffTx({
      outpoint: base.outpoint,
      amountSat: base.amountSat,
      sharedPublicKey: shared.pk,
      feeRateSatVb: 1,
    });
    const kc = checkKickoffTx(k.raw, base);
    const kickoffRaw = cosign(k.raw, kc.digest, base.amountSat);
    const ctx: CoinPolicyContext = { ...base, kickoff: { txid: kc.txid, amountSat: kc.outputAmountSat } };
    const owners = [1, 2].map((n) => {
      const b = key(`ko-owner-${n}`);
      const built = buildBackupTx({
        mode: "kickoff",
        spend: { txid: kc.txid, vout: 0 },
        spendAmountSat: kc.outputAmountSat,
        backupKey: b.pk,
        lock: 10 - (n - 1) * 5,
        feeRateSatVb: 1,
      });
      const checked = checkBackupTx(built.raw, ctx, { ownerIndex: n, backupKey: b.pk, tip: node.height() });
      return { built, raw: cosign(built.raw, checked.digest, kc.outputAmountSat), lock: checked.lock };
    });
    await send(funding.raw, funding.feeSat);
    await chain.mine(1);

    // Nobody can use a backup before the kick-off is even in the mempool.
    await rejects(chain.broadcast(owners[1]!.raw), "missing-inputs");
    // Kick-off (pays its own relay fee), then a child on its anchor plus a wallet coin, at 10 sat/vB together.
    await send(kickoffRaw, kc.feeSat);
    const feeCoin = coins[4]!;
    const child = buildCpfpChild({
      parent: { txid: kc.txid, vout: 1, valueSat: 330n, kind: "anchor", script: ANCHOR_SCRIPT },
      parentVsize: k.vsize,
      parentFeeSat: kc.feeSat,
      feeUtxos: [feeCoin],
      changeScript: wallet.script,
      packageFeeRateSatVb: 10,
    });
    assert.ok(
      child.packageFeeRateSatVb >= 10,
      `the package pays at least 10 sat/vB (${child.packageFeeRateSatVb})`,
    );
    const childRaw = signP2wpkhInputs(child.raw, [{ ...child.inputs[1]!, privateKey: wallet.sk }]);
    await send(childRaw, child.feeSat);
    // In the mempool the kick-off's outputs have no depth yet: BIP68 refuses the backup.
    await rejects(chain.broadcast(owners[1]!.raw), "non-final");
    await chain.mine(1);
    const hk = node.height();
    assert.equal((await chain.getTxStatus(k.txidHex))?.blockHeight, hk);
    assert.equal((await chain.getTxStatus(child.txidHex))?.blockHeight, hk);

    const newest = owners[1]!; // lock 5: valid in block hk + 5, i.e. accepted once the tip is hk + 4
    await chain.mine(3);
    await rejects(chain.broadcast(newest.raw), "non-final");
    await chain.mine(1);
    assert.equal(node.height(), hk + newest.lock - 1);
    await rejects(chain.broadcast(owners[0]!.raw), "non-final");
    await send(newest.raw, newest.built.feeSat);
    await chain.mine(1);
    assert.equal((await chain.getTxStatus(newest.built.txidHex))?.confirmations, 1);
    await chain.mine(owners[0]!.lock);
    await rejects(chain.broadcast(owners[0]!.raw), "missing-inputs");
  });

  test("a withdrawal may spend the confirmed kick-off's output", async () => {
    const { funding, ctx: base } = deposit(coins[3]!, "kickoff", 10);
    const k = buildKickoffTx({
      outpoint: base.outpoint,
      amountSat: base.amountSat,
      sharedPublicKey: shared.pk,
      feeRateSatVb: 1,
    });
    const kc = checkKickoffTx(k.raw, base);
    const ctx: CoinPolicyContext = { ...base, kickoff: { txid: kc.txid, amountSat: kc.outputAmountSat } };
    await send(funding.raw, funding.feeSat);
    await chain.mine(1);
    await send(cosign(k.raw, kc.digest, base.amountSat), kc.feeSat);
    await chain.mine(1);
    const W = p2wpkhScript(key("withdraw-after-kickoff").pk);
    const wd = buildWithdrawalTx({
      spend: { txid: kc.txid, vout: 0 },
      spendAmountSat: kc.outputAmountSat,
      withdrawScript: W,
      feeRateSatVb: 1,
    });
    const checked = checkWithdrawalTx(wd.raw, ctx, { withdrawScript: W, minSeFeeSat: 0n });
    assert.deepEqual(checked.spend.txid, txidFromHex(k.txidHex));
    await send(cosign(wd.raw, checked.digest, kc.outputAmountSat), checked.feeSat);
    await chain.mine(1);
    assert.equal((await chain.findUtxos(W)).length, 1);
  });
});

test("the anchor is P2WSH(OP_TRUE): a bare OP_TRUE output is non-standard on the node", async () => {
  const coin = (await chain.findUtxos(wallet.script)).find((u) => !u.coinbase)!;
  const bare = wallet.pay([coin], [{ script: Uint8Array.of(0x51), valueSat: 330n }], 1);
  await rejects(chain.broadcast(bare.raw), "nonstandard");
  const anchor = wallet.pay([coin], [{ script: ANCHOR_SCRIPT, valueSat: 330n }], 1);
  await send(anchor.raw, anchor.feeSat);
  await chain.mine(1);
  // Anyone can sweep it with the witness [OP_TRUE] (here into an OP_RETURN: 330 sat is all fee).
  const sweep = buildCpfpChild({
    parent: {
      txid: txidFromHex(anchor.txid),
      vout: 0,
      valueSat: 330n,
      kind: "anchor",
      script: ANCHOR_SCRIPT,
    },
    parentVsize: 1,
    parentFeeSat: 1000n,
    feeUtxos: [],
    changeScript: wallet.script,
    packageFeeRateSatVb: 1,
  });
  assert.equal(await chain.broadcast(sweep.raw), sweep.txidHex);
});
