// Builders, sizes, fees and signatures (pure: no chain here; see regtest.test.ts for consensus and mempool).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { Transaction } from "bitcoinjs-lib";
import { N } from "../../../protocol/encoding.ts";
import { ProtocolError } from "../../../protocol/errors.ts";
import {
  ANCHOR_SCRIPT,
  backupFeeSat,
  bip143Digest,
  buildBackupTx,
  buildCpfpChild,
  buildFundingTx,
  buildKickoffTx,
  checkP2wpkhWitness,
  classifyScript,
  decodeDerSignature,
  dustThreshold,
  encodeWitnessSignature,
  feeForVsize,
  finalizeP2wpkhInput,
  isLowS,
  kickoffFeeSat,
  minCoinAmountSat,
  p2wpkhScript,
  signP2wpkhInputs,
  txidFromHex,
  txidToHex,
  verifyDerSignature,
  type WalletUtxo,
} from "../../../protocol/tx/index.ts";
import { key, shared, signDigest } from "./helpers.ts";

const root = path.resolve(import.meta.dirname, "../../..");
const wallet = key("wallet");
const walletScript = p2wpkhScript(wallet.pk);
const utxo = (n: number, valueSat: bigint): WalletUtxo => ({
  txid: Buffer.from(sha256(Uint8Array.of(n))).toString("hex"),
  vout: n % 3,
  valueSat,
  script: walletScript,
});

const code = (c: string) => (err: unknown) => err instanceof ProtocolError && err.code === c;

describe("scripts and dust", () => {
  test("dust limits match Bitcoin Core and bcoin (294 / 330 / 546 sat)", () => {
    assert.equal(dustThreshold(walletScript), 294n);
    assert.equal(dustThreshold(ANCHOR_SCRIPT), 330n);
    const p2pkh = Uint8Array.from([0x76, 0xa9, 20, ...new Uint8Array(20), 0x88, 0xac]);
    assert.equal(classifyScript(p2pkh), "p2pkh");
    assert.equal(dustThreshold(p2pkh), 546n);
    assert.equal(dustThreshold(Uint8Array.from([0x6a, 1, 0])), 0n);
  });

  test("txid hex is the reverse of the internal bytes", () => {
    const hex = `${"00".repeat(31)}ff`;
    assert.equal(txidFromHex(hex)[0], 0xff);
    assert.equal(txidToHex(txidFromHex(hex)), hex);
    assert.throws(() => txidFromHex("zz"), code("TX_TXID"));
  });

  test("fee reserves: backup 110 vB, kick-off 153 vB; the smallest coin per mode", () => {
    assert.equal(backupFeeSat(1), 110n);
    assert.equal(kickoffFeeSat(1), 153n);
    assert.equal(feeForVsize(110, 1.1), 121n);
    assert.equal(feeForVsize(3, 0.5), 2n);
    assert.equal(minCoinAmountSat("absolute", 1), 110n + 294n);
    assert.equal(minCoinAmountSat("kickoff", 2), 220n + 294n + 306n + 330n);
  });
});

describe("funding", () => {
  const params = {
    amountSat: 100_000n,
    sharedPublicKey: shared.pk,
    changeScript: walletScript,
    feeRateSatVb: 3,
  };

  test("largest coins first, change back to the wallet, fee at the requested rate once signed", () => {
    const utxos = [utxo(1, 60_000n), utxo(2, 80_000n), utxo(3, 10_000n)];
    const f = buildFundingTx({ ...params, utxos });
    assert.deepEqual(
      f.inputs.map((u) => u.valueSat),
      [80_000n, 60_000n],
    );
    assert.equal(f.fundingVout, 0);
    assert.equal(f.changeSat, 140_000n - 100_000n - f.feeSat);
    const signed = signP2wpkhInputs(
      f.raw,
      f.inputs.map((u, i) => ({ inputIndex: i, prevout: u, privateKey: wallet.sk })),
    );
    const tx = Transaction.fromBuffer(signed);
    assert.deepEqual(tx.outs[0]!.script, p2wpkhScript(shared.pk));
    assert.equal(tx.getId(), f.txidHex, "segwit inputs: signing does not change the txid");
    assert.ok(tx.virtualSize() <= f.vsize, "the estimate is an upper bound");
    assert.ok(
      f.feeSat >= BigInt(tx.virtualSize() * 3),
      `the fee pays at least 3 sat/vB of the signed size (${f.feeSat} sat for ${tx.virtualSize()} vB)`,
    );
    for (let i = 0; i < 2; i++) checkP2wpkhWitness(tx, i, wallet.pk, f.inputs[i]!.valueSat);
  });

  test("a remainder below the dust limit goes to the fee instead of a change output", () => {
    const f = buildFundingTx({ ...params, utxos: [utxo(1, 100_000n + 400n + 200n)] });
    assert.equal(Transaction.fromBuffer(f.raw).outs.length, 1);
    assert.equal(f.changeSat, 0n);
    assert.equal(f.feeSat, 600n);
  });

  test("not enough coins, or coins that are not P2WPKH, are refused", () => {
    assert.throws(
      () => buildFundingTx({ ...params, utxos: [utxo(1, 100_100n)] }),
      code("INSUFFICIENT_FUNDS"),
    );
    const legacy = {
      ...utxo(1, 1_000_000n),
      script: Uint8Array.from([0x76, 0xa9, 20, ...new Uint8Array(20), 0x88, 0xac]),
    };
    assert.throws(() => buildFundingTx({ ...params, utxos: [legacy] }), code("TX_WALLET_INPUT"));
    assert.throws(
      () => buildFundingTx({ ...params, amountSat: 200n, utxos: [utxo(1, 9999n)] }),
      code("TX_DUST"),
    );
  });
});

describe("signatures", () => {
  const outpoint = { txid: new Uint8Array(32).fill(5), vout: 0 };
  const backup = buildBackupTx({
    mode: "absolute",
    spend: outpoint,
    spendAmountSat: 50_000n,
    backupKey: key("b1").pk,
    lock: 700,
    feeRateSatVb: 1,
  });
  const digest = bip143Digest(backup.raw, 0, shared.pk, 50_000n);

  test("finalize puts [DER sig ‖ SIGHASH_ALL, P] in the witness and the result verifies", () => {
    const sig = signDigest(digest);
    const raw = finalizeP2wpkhInput(backup.raw, 0, sig, shared.pk, 50_000n);
    const tx = Transaction.fromBuffer(raw);
    assert.equal(tx.ins[0]!.witness.length, 2);
    assert.equal(tx.ins[0]!.witness[0]!.at(-1), 1);
    assert.ok(
      tx.ins[0]!.witness[0]!.length <= 72,
      "the DER signature with its sighash byte is at most 72 bytes",
    );
    checkP2wpkhWitness(tx, 0, shared.pk, 50_000n);
    assert.ok(tx.virtualSize() <= backup.vsize, "the backup's estimated size is an upper bound");
    // The wrong amount changes the digest: the witness no longer verifies.
    assert.throws(() => checkP2wpkhWitness(tx, 0, shared.pk, 50_001n), code("TX_WITNESS"));
    assert.throws(
      () => checkP2wpkhWitness(Transaction.fromBuffer(backup.raw), 0, shared.pk, 50_000n),
      code("TX_WITNESS"),
    );
  });

  test("high-S, wrong-key and wrong-length signatures never reach a witness", () => {
    const sig = signDigest(digest);
    const s = BigInt(`0x${Buffer.from(sig.subarray(32)).toString("hex")}`);
    const high = Uint8Array.from([
      ...sig.subarray(0, 32),
      ...Buffer.from((N - s).toString(16).padStart(64, "0"), "hex"),
    ]);
    assert.equal(isLowS(sig), true);
    assert.equal(isLowS(high), false);
    assert.throws(() => finalizeP2wpkhInput(backup.raw, 0, high, shared.pk, 50_000n), code("TX_SIGNATURE"));
    assert.throws(() => encodeWitnessSignature(sig.subarray(1)), code("TX_SIGNATURE"));
    const other = signDigest(digest, key("x").sk);
    assert.throws(() => finalizeP2wpkhInput(backup.raw, 0, other, shared.pk, 50_000n), /does not verify/);
    assert.throws(() => finalizeP2wpkhInput(backup.raw, 1, sig, shared.pk, 50_000n), code("TX_INPUT_INDEX"));
  });

  test("signing a wallet input with a key that does not own it is refused", () => {
    assert.throws(
      () =>
        signP2wpkhInputs(backup.raw, [
          {
            inputIndex: 0,
            prevout: { script: p2wpkhScript(shared.pk), valueSat: 50_000n },
            privateKey: wallet.sk,
          },
        ]),
      code("TX_WRONG_KEY"),
    );
  });

  test("strict DER + low-S verification agrees with Wycheproof's Bitcoin vectors", () => {
    const file = path.resolve(root, "../shared/fixtures/wycheproof/ecdsa_secp256k1_sha256_bitcoin_test.json");
    const suite = JSON.parse(readFileSync(file, "utf8")) as {
      testGroups: {
        publicKey: { uncompressed: string };
        tests: { tcId: number; msg: string; sig: string; result: string }[];
      }[];
    };
    let checked = 0;
    for (const group of suite.testGroups) {
      const pk = secp256k1.Point.fromHex(group.publicKey.uncompressed).toBytes(true);
      for (const t of group.tests) {
        const msgDigest = sha256(Buffer.from(t.msg, "hex"));
        const ok = verifyDerSignature(Buffer.from(t.sig, "hex"), msgDigest, pk);
        assert.equal(ok, t.result === "valid", `tcId ${t.tcId}`);
        checked++;
      }
    }
    assert.equal(checked, 463);
    assert.throws(() => decodeDerSignature(Uint8Array.of(0x30, 0)), code("TX_SIGNATURE"));
  });
});

describe("kick-off and CPFP child", () => {
  const outpoint = { txid: new Uint8Array(32).fill(6), vout: 2 };
  const kickoff = buildKickoffTx({
    outpoint,
    amountSat: 200_000n,
    sharedPublicKey: shared.pk,
    feeRateSatVb: 1,
  });
  const parent = {
    txid: kickoff.txid,
    vout: 1,
    valueSat: 330n,
    kind: "anchor" as const,
    script: ANCHOR_SCRIPT,
  };

  test("the anchor alone pays a 1 sat/vB package: no change, an OP_RETURN output", () => {
    const child = buildCpfpChild({
      parent,
      parentVsize: kickoff.vsize,
      parentFeeSat: kickoff.feeSat,
      feeUtxos: [],
      changeScript: walletScript,
      packageFeeRateSatVb: 1,
    });
    const tx = Transaction.fromBuffer(child.raw);
    assert.equal(tx.ins.length, 1);
    assert.equal(classifyScript(tx.outs[0]!.script), "nulldata");
    assert.equal(child.feeSat, 330n);
    assert.deepEqual(tx.ins[0]!.witness, [Uint8Array.of(0x51)]);
    assert.ok(tx.byteLength(false) >= 65, "at least 65 bytes without witness");
  });

  test("a higher package rate adds wallet coins and returns change; the package reaches the rate", () => {
    const child = buildCpfpChild({
      parent,
      parentVsize: kickoff.vsize,
      parentFeeSat: kickoff.feeSat,
      feeUtxos: [utxo(4, 3_000n), utxo(5, 20_000n)],
      changeScript: walletScript,
      packageFeeRateSatVb: 25,
    });
    assert.equal(child.inputs.length, 2);
    assert.equal(child.inputs[1]!.prevout.valueSat, 20_000n);
    assert.ok(
      child.packageFeeRateSatVb >= 25,
      `the package pays at least 25 sat/vB (${child.packageFeeRateSatVb})`,
    );
    assert.equal(child.changeSat, 20_330n - child.feeSat);
    const signed = signP2wpkhInputs(child.raw, [{ ...child.inputs[1]!, privateKey: wallet.sk }]);
    const tx = Transaction.fromBuffer(signed);
    assert.ok(tx.virtualSize() <= child.vsize, "the CPFP child's estimated size is an upper bound");
    checkP2wpkhWitness(tx, 1, wallet.pk, 20_000n);
    assert.throws(
      () =>
        buildCpfpChild({
          parent,
          parentVsize: kickoff.vsize,
          parentFeeSat: kickoff.feeSat,
          feeUtxos: [utxo(4, 3_000n)],
          changeScript: walletScript,
          packageFeeRateSatVb: 100,
        }),
      code("INSUFFICIENT_FUNDS"),
    );
    assert.throws(
      () =>
        buildCpfpChild({
          parent: { ...parent, script: walletScript },
          parentVsize: 1,
          parentFeeSat: 0n,
          feeUtxos: [],
          changeScript: walletScript,
          packageFeeRateSatVb: 1,
        }),
      code("TX_SCRIPT"),
    );
  });

  test("an owner's own backup output can be the CPFP parent", () => {
    const b = key("b2");
    const backup = buildBackupTx({
      mode: "kickoff",
      spend: { txid: kickoff.txid, vout: 0 },
      spendAmountSat: kickoff.outputAmountSat,
      backupKey: b.pk,
      lock: 20,
      feeRateSatVb: 1,
    });
    const out = Transaction.fromBuffer(backup.raw).outs[0]!;
    const child = buildCpfpChild({
      parent: { txid: backup.txid, vout: 0, valueSat: out.value, kind: "p2wpkh", script: out.script },
      parentVsize: backup.vsize,
      parentFeeSat: backup.feeSat,
      feeUtxos: [],
      changeScript: walletScript,
      packageFeeRateSatVb: 10,
    });
    assert.equal(child.changeSat, out.value - child.feeSat);
    assert.equal(child.feeSat, feeForVsize(backup.vsize + child.vsize, 10) - backup.feeSat);
    const signed = signP2wpkhInputs(child.raw, [{ ...child.inputs[0]!, privateKey: b.sk }]);
    checkP2wpkhWitness(Transaction.fromBuffer(signed), 0, b.pk, out.value);
  });

  test("builders refuse dust outputs and bad locks", () => {
    const spend = { txid: kickoff.txid, vout: 0 };
    const base = {
      mode: "kickoff" as const,
      spend,
      spendAmountSat: 400n,
      backupKey: key("b").pk,
      lock: 5,
      feeRateSatVb: 1,
    };
    assert.throws(() => buildBackupTx(base), code("TX_DUST"));
    assert.throws(
      () => buildBackupTx({ ...base, spendAmountSat: 10_000n, lock: 0x10000 }),
      code("TX_SEQUENCE"),
    );
    assert.throws(
      () => buildBackupTx({ ...base, mode: "absolute", spendAmountSat: 10_000n, lock: 500_000_000 }),
      code("TX_LOCKTIME"),
    );
    assert.throws(
      () =>
        buildKickoffTx({
          outpoint,
          amountSat: 330n + 153n + 403n,
          sharedPublicKey: shared.pk,
          feeRateSatVb: 1,
        }),
      code("TX_DUST"),
    );
    assert.throws(
      () => buildBackupTx({ ...base, spendAmountSat: 10_000n, feeRateSatVb: 0 }),
      code("TX_FEE_RATE"),
    );
  });
});
