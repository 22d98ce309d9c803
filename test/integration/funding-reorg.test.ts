// A coin whose funding a reorg takes away (issue #19.8), on the embedded regtest chain with real processes. Three
// coins are funded in one block, which is invalidated: all three fundings go back to the mempool. The inputs of
// two of them are then spent by other transactions, mined (generateblock, as bitcoind's) in place of the fundings:
// those two coins are marked double spent, the SE refuses to co-sign or transfer them naming why, and the wallet
// and `se status` say so; the third, merely reorged out, is looked at in the same pass, is not marked and still
// co-signs. When the fundings come back (the double spends reorged out in turn) the marks are lifted.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { after, before, test } from "node:test";
import { status } from "@grpc/grpc-js";
import * as bitcoin from "bitcoinjs-lib";
import { confirmDeposit, coSign, deposit, lockFor, type OwnedCoin, pub, send } from "../../client/owner.ts";
import { SeError } from "../../client/se-client.ts";
import type { SpendableUtxo } from "../../client/wallet.ts";
import { FundingState, SignPurpose } from "../../proto/gen/common.ts";
import { outpointString } from "../../protocol/outpoint.ts";
import { buildBackupTx, p2wpkhScript, signP2wpkhInputs, txidToHex } from "../../protocol/tx/index.ts";
import { testWallet } from "../client/wallet-helpers.ts";
import { fundedWallet, type Harness, newIdentity, ownerHarness } from "../helpers/owners.ts";
import { ROOT, type SeProcess, startSeProcess } from "../helpers/se-process.ts";
import { tryCoSign } from "../host/support/coins.ts";

let se: SeProcess;
let h: Harness;
let wallet: Awaited<ReturnType<typeof testWallet>>["wallet"];
/** Owner-level coins: A is double spent, C only reorged out. W is the wallet's, double spent too. */
let coinA: OwnedCoin;
let coinC: OwnedCoin;
let walletCoin: { number: number; statechainId: string };
let fundings: { a: Uint8Array; w: Uint8Array };
/** The block holding the double spends. */
let doubleSpendBlock: string;

const throwaway = newIdentity();
const COINBASE_TO = bitcoin.address.fromOutputScript(
  Buffer.from(p2wpkhScript(throwaway.address.proofKey)),
  bitcoin.networks.regtest,
);
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

before(async () => {
  se = await startSeProcess({ env: { SE_MAINSTAY_ENABLED: "false", SE_FUNDING_GRACE_BLOCKS: "3" } });
  h = await ownerHarness(se);
  ({ wallet } = await testWallet(h));
  await wallet.faucet(1);
  const walletUtxos = await wallet.onchainUtxos();
  const [wa, wc] = [await fundedWallet(h.chain), await fundedWallet(h.chain)];
  // A's and C's fundings are broadcast; the wallet's deposit mines the block that confirms all three.
  coinA = await deposit(h.ctx, { amountSat: 500_000n, utxos: wa.utxos, changeScript: wa.script });
  coinC = await deposit(h.ctx, { amountSat: 300_000n, utxos: wc.utxos, changeScript: wc.script });
  const w = await wallet.deposit(400_000n, { onWait: async () => void (await h.chain.mine(1)) });
  walletCoin = { number: w.number, statechainId: w.statechainId };
  await confirmDeposit(h.ctx, coinA, { onWait: async () => void (await h.chain.mine(1)) });
  await confirmDeposit(h.ctx, coinC, { onWait: async () => void (await h.chain.mine(1)) });
  const txidA = txidToHex(coinA.statechainId.txid);
  const txidW = w.statechainId.split(":")[0]!;
  const block = (await h.chain.getTxStatus(txidA))?.blockHash;
  assert.ok(block, "A's funding is mined");
  const txidC = txidToHex(coinC.statechainId.txid);
  assert.equal((await h.chain.getTxStatus(txidC))?.blockHash, block, "C's funding in the same block");
  assert.equal(
    (await h.chain.getTxStatus(txidW))?.blockHash,
    block,
    "the wallet's funding in the same block",
  );
  fundings = { a: coinA.fundingTx, w: (await h.chain.getTx(txidW))!.raw };
  assert.equal(await tryCoSign(h, coinA), true, "before the reorg the SE co-signs");

  // The reorg: the fundings leave the chain for the mempool; A's and W's inputs are spent elsewhere instead.
  await h.chain.rpc("invalidateblock", [block]);
  assert.equal((await h.chain.getTxStatus(txidA))?.confirmations, 0, "A's funding is back in the mempool");
  const spendA = doubleSpend(
    fundings.a,
    wa.utxos.map((u) => ({ ...u, privateKey: wa.privateKey })),
  );
  const spendW = doubleSpend(fundings.w, walletUtxos);
  const mined = (await h.chain.rpc("generateblock", [COINBASE_TO, [hex(spendA), hex(spendW)]])) as {
    hash: string;
  };
  doubleSpendBlock = mined.hash;
  assert.equal(await h.chain.getTxStatus(txidA), undefined, "the double spend pushed A's funding out");
  await untilFunding(coinA, FundingState.FUNDING_STATE_DOUBLE_SPENT);
});
after(async () => {
  h?.close();
  await wallet?.close();
  await se?.stop();
});

/** A transaction spending every input of `funding` to a throwaway key instead. */
function doubleSpend(funding: Uint8Array, keys: readonly SpendableUtxo[]): Uint8Array {
  const f = bitcoin.Transaction.fromBuffer(Buffer.from(funding));
  const tx = new bitcoin.Transaction();
  tx.version = 2;
  const inputs = f.ins.map((input, i) => {
    const txid = txidToHex(input.hash);
    const utxo = keys.find((u) => u.txid === txid && u.vout === input.index);
    assert.ok(utxo, `the key of the funding's input ${i} is known`);
    tx.addInput(input.hash, input.index);
    return { inputIndex: i, prevout: utxo, privateKey: utxo.privateKey };
  });
  const total = inputs.reduce((s, i) => s + i.prevout.valueSat, 0n);
  tx.addOutput(Buffer.from(p2wpkhScript(throwaway.address.backupKey)), total - 2_000n);
  return signP2wpkhInputs(new Uint8Array(tx.toBuffer()), inputs);
}

async function statechain(coin: OwnedCoin) {
  return h.ctx.se.call("getStatechain", { statechainId: coin.statechainId });
}

/** Waits (up to 30 s) until the SE's funding watch reports `want` for the coin (it looks at each block). */
async function untilFunding(coin: OwnedCoin, want: FundingState) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const sc = await statechain(coin);
    if (sc.fundingState === want) return sc;
    assert.ok(
      Date.now() < deadline,
      `the SE reports ${FundingState[sc.fundingState]} for ${outpointString(coin.statechainId)}, not ${FundingState[want]}`,
    );
    await new Promise((r) => setTimeout(r, 100));
  }
}

function seStatus(): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) =>
    execFile(
      process.execPath,
      [path.join(ROOT, "bin/se.js"), "status", "--endpoint", `127.0.0.1:${se.port}`, "--json"],
      { cwd: ROOT, timeout: 20_000 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`se status: ${stderr}`)) : resolve(JSON.parse(stdout)),
    ),
  );
}

const refusedFor = (what: RegExp) => (e: unknown) => {
  assert.ok(e instanceof SeError, `an SE refusal, not ${String(e)}`);
  assert.equal(e.code, status.FAILED_PRECONDITION, e.message);
  assert.match(e.message, what);
  return true;
};

test("a funding reorged out and double spent: the coin is marked, co-signing and transfer are refused naming why, the wallet and se status say so", async () => {
  const sc = await statechain(coinA);
  const fundingTxid = txidToHex(coinA.statechainId.txid);
  assert.equal(sc.fundingState, FundingState.FUNDING_STATE_DOUBLE_SPENT);
  assert.match(sc.fundingProblem, new RegExp(`funding transaction ${fundingTxid} .*double spend`));
  assert.equal(sc.fundingConfirmations, 0);

  assert.equal(await tryCoSign(h, coinA), status.FAILED_PRECONDITION, "co-signing is refused");
  const why = new RegExp(
    `cannot (co-sign|start a transfer): its funding transaction ${fundingTxid} .*double spend`,
  );
  await assert.rejects(coSignBackup(coinA), refusedFor(why));
  await assert.rejects(send(h.ctx, coinA, newIdentity().address), refusedFor(why));

  // The wallet's coin: shown as funding-lost with the SE's words, out of the balance, its send refused.
  const coins = await wallet.coins();
  const mine = coins.find((c) => c.number === walletCoin.number);
  assert.ok(mine, "the wallet lists its coin");
  assert.equal(mine.seFunding, "DOUBLE_SPENT");
  assert.equal(mine.inBalance, false);
  assert.match(
    mine.hint ?? "",
    /funding transaction left the chain: the SE says its funding transaction .*double spend/,
  );
  const bal = await wallet.balance();
  assert.equal(bal.fundingLostCoins, 1);
  assert.equal(bal.fundingLostSat, 400_000n);
  const { wallet: bob } = await testWallet(h);
  const to = (await bob.receiveAddress()).address;
  await bob.close();
  await assert.rejects(wallet.send(walletCoin.number, to), /cannot start a transfer: .*double spend/);

  const out = await seStatus();
  assert.equal(out.fundingLostCoins, 2, "se status counts the two coins whose funding is lost");
});

test("a funding merely reorged out into the mempool is not marked, in the pass that marked the others, and still co-signs", async () => {
  // The pass that marked A (at the double spends' block) looked at C as well: its funding was in the mempool.
  const sc = await statechain(coinC);
  assert.equal(sc.fundingState, FundingState.FUNDING_STATE_OK);
  assert.equal(sc.fundingProblem, "");
  assert.equal(sc.fundingConfirmations, 0, "in the mempool");
  assert.equal(await tryCoSign(h, coinC), true, "the SE co-signs a coin whose funding is in the mempool");
  // Mined again: still not marked.
  await h.chain.mine(1);
  assert.equal((await statechain(coinC)).fundingConfirmations, 1);
  await untilPass();
  assert.equal((await statechain(coinC)).fundingState, FundingState.FUNDING_STATE_OK);
  assert.equal(await tryCoSign(h, coinC), true);
});

test("the fundings mined again (the double spends reorged out in turn) lift the marks", async () => {
  await h.chain.rpc("invalidateblock", [doubleSpendBlock]);
  await h.chain.rpc("generateblock", [COINBASE_TO, [hex(fundings.a), hex(fundings.w)]]);
  // As a real reorg does, the chain that brings the fundings back grows past the tip the enclave saw last (it
  // co-signs nothing for a tip below that: CHAIN_TIP_REGRESSED).
  await h.chain.mine(1);
  const sc = await untilFunding(coinA, FundingState.FUNDING_STATE_OK);
  assert.equal(sc.fundingProblem, "", "the words go with the mark");
  assert.equal(sc.fundingConfirmations, 2);
  await coSignBackup(coinA).catch((e) => assert.fail(`the SE co-signs the coin again: ${e.message}`));
  const mine = (await wallet.coins()).find((c) => c.number === walletCoin.number);
  assert.equal(mine?.seFunding, "OK");
  assert.equal(mine?.inBalance, true, "back in the balance");
  assert.equal((await seStatus()).fundingLostCoins, 0);
});

/** Asks the SE to co-sign a fresh backup for the coin's owner (as tryCoSign), throwing the refusal. */
async function coSignBackup(coin: OwnedCoin): Promise<void> {
  const backup = buildBackupTx({
    mode: "absolute",
    spend: { txid: coin.statechainId.txid, vout: coin.statechainId.vout },
    spendAmountSat: coin.amountSat,
    backupKey: pub(coin.backupSecret),
    lock: lockFor(coin.initialLock, coin.interval, coin.ownerIndex),
    feeRateSatVb: 2,
  });
  await coSign(h.ctx, coin, SignPurpose.SIGN_PURPOSE_BACKUP, backup.raw, coin.amountSat);
}

/** Waits until the funding watch has run a pass at the current tip (its metric). */
async function untilPass(): Promise<void> {
  const tip = await h.chain.tipHeight();
  const deadline = Date.now() + 30_000;
  for (;;) {
    const text = await (await fetch(String(se.info.metrics))).text();
    const m = /^se_funding_watch_height\S* (-?\d+)$/m.exec(text);
    if (m && Number(m[1]) >= tip) return;
    assert.ok(Date.now() < deadline, `the funding watch reached height ${tip} (at ${m?.[1]})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
