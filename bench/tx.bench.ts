// protocol/tx: the enclave's policy check per co-signature, the BIP143 digest beside bcoin's, building a
// funding transaction over many coins, and finalising a witness (signature verification included).
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { sha256 } from "@noble/hashes/sha2.js";
import bcoin from "bcoin";
import {
  bip143Digest,
  buildBackupTx,
  buildFundingTx,
  type CoinPolicyContext,
  checkBackupTx,
  finalizeP2wpkhInput,
  p2wpkhScript,
  p2wpkhScriptCode,
} from "../protocol/tx/index.ts";
import { report, time } from "./harness.ts";

const BATCH = 50;

/** Times `BATCH` calls per sample and reports the per-call median in microseconds. */
async function perCall(
  name: string,
  fn: () => unknown,
  peer?: { name: string; fn: () => unknown },
): Promise<void> {
  const batch = () => {
    for (let i = 0; i < BATCH; i++) fn();
  };
  const ours = await time(batch, { runs: 30, warmup: 3 });
  const us = (ms: number) => Math.round((ms * 1000 * 100) / BATCH) / 100;
  const result = {
    bench: name,
    unit: "us" as const,
    median: us(ours.median),
    p95: us(ours.p95),
    runs: ours.runs,
  };
  if (!peer) {
    report(result);
    return;
  }
  const theirs = await time(
    () => {
      for (let i = 0; i < BATCH; i++) peer.fn();
    },
    { runs: 30, warmup: 3 },
  );
  report({
    ...result,
    peer: peer.name,
    peer_median: us(theirs.median),
    ratio: Math.round((ours.median / theirs.median) * 1000) / 1000,
  });
}

export async function run(): Promise<void> {
  const sk = sha256(new TextEncoder().encode("bench/shared"));
  const P = secp256k1.getPublicKey(sk, true);
  const B = secp256k1.getPublicKey(sha256(new TextEncoder().encode("bench/backup")), true);
  const ctx: CoinPolicyContext = {
    outpoint: { txid: new Uint8Array(32).fill(3), vout: 0 },
    amountSat: 50_000_000n,
    sharedPublicKey: P,
    mode: "absolute",
    initialLock: 900_000,
    interval: 10,
    safetyMargin: 6,
    minFeeRateSatVb: 1,
  };
  const backup = buildBackupTx({
    mode: "absolute",
    spend: ctx.outpoint,
    spendAmountSat: ctx.amountSat,
    backupKey: B,
    lock: 899_990,
    feeRateSatVb: 3,
  });

  await perCall("tx.checkBackupTx", () =>
    checkBackupTx(backup.raw, ctx, { ownerIndex: 2, backupKey: B, tip: 850_000 }),
  );

  const code = bcoin.Script.fromRaw(Buffer.from(p2wpkhScriptCode(P)));
  await perCall("tx.bip143Digest", () => bip143Digest(backup.raw, 0, P, ctx.amountSat), {
    name: "bcoin.signatureHash(fromRaw)",
    fn: () => bcoin.TX.fromRaw(Buffer.from(backup.raw)).signatureHash(0, code, 50_000_000, 1, 1),
  });

  const wallet = p2wpkhScript(B);
  const utxos = Array.from({ length: 200 }, (_, i) => ({
    txid: Buffer.from(sha256(Uint8Array.of(i & 0xff, i >> 8))).toString("hex"),
    vout: i % 4,
    valueSat: BigInt(10_000 + ((i * 7919) % 90_000)),
    script: wallet,
  }));
  const t = await time(
    () =>
      buildFundingTx({
        utxos,
        amountSat: 1_000_000n,
        sharedPublicKey: P,
        changeScript: wallet,
        feeRateSatVb: 5,
      }),
    { runs: 20, warmup: 2 },
  );
  report({ bench: "tx.buildFundingTx.200coins", unit: "ms", median: t.median, p95: t.p95, runs: t.runs });

  const digest = bip143Digest(backup.raw, 0, P, ctx.amountSat);
  const sig = secp256k1.sign(digest, sk, { prehash: false, lowS: true });
  await perCall("tx.finalizeP2wpkhInput", () => finalizeP2wpkhInput(backup.raw, 0, sig, P, ctx.amountSat));
}
