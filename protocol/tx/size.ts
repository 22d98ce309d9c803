// Virtual sizes and fees. Fees are fixed when a transaction is signed, before its witness exists, so sizes are
// estimated with the largest witness each input can have: a P2WPKH signature is at most 72 bytes with its
// sighash byte (a low-S DER signature: 0x30 len 0x02 ≤33 0x02 ≤32 = 71, plus 1), the key 33 bytes.
import type { Transaction } from "bitcoinjs-lib";
import { check } from "../errors.ts";

export type InputKind = "p2wpkh" | "anchor";

/** Witness bytes of one input: item count, then each item with its length prefix. */
const WITNESS_BYTES: Record<InputKind, number> = {
  p2wpkh: 1 + (1 + 72) + (1 + 33),
  anchor: 1 + (1 + 1),
};

/** Weight of `tx` once every input carries its largest witness (inputs listed by kind, in order). */
export function estimateWeight(tx: Transaction, kinds: readonly InputKind[]): number {
  check(kinds.length === tx.ins.length, "TX_SIZE", "one input kind per input is needed to estimate the size");
  const base = tx.byteLength(false);
  // Marker and flag bytes, then each input's witness.
  const witness = 2 + kinds.reduce((sum, k) => sum + WITNESS_BYTES[k], 0);
  return base * 4 + witness;
}

export function estimateVsize(tx: Transaction, kinds: readonly InputKind[]): number {
  return Math.ceil(estimateWeight(tx, kinds) / 4);
}

/** Bounds for a fee rate given in sat/vB (fractions allowed, e.g. 1.5). */
export function checkFeeRate(rate: number, what = "fee rate"): void {
  check(
    Number.isFinite(rate) && rate > 0 && rate <= 100_000,
    "TX_FEE_RATE",
    `${what} must be a number of sat/vB in (0, 100000], got ${rate}`,
  );
}

/** ceil(vsize × rate) in satoshis, computed in millisatoshis so 1.1 sat/vB does not round the wrong way. */
export function feeForVsize(vsize: number, rateSatVb: number): bigint {
  checkFeeRate(rateSatVb);
  const milli = BigInt(Math.round(rateSatVb * 1000)) * BigInt(vsize);
  return (milli + 999n) / 1000n;
}
