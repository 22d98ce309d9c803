// Pure builders for every transaction the wallet makes: funding (with coin selection over its own P2WPKH
// coins), backup (absolute or kick-off mode), kick-off, withdrawal and a CPFP child. They return unsigned
// transactions whose shapes are exactly those the enclave's policy (policy.ts) accepts; fees are computed from
// the worst-case signed size, so the signed transaction pays at least the requested rate.
import { Transaction } from "bitcoinjs-lib";
import { G } from "../encoding.ts";
import { check, fail } from "../errors.ts";
import { MAX_MONEY_SAT, type Outpoint, txidFromHex, txidOf, txidToHex } from "./parse.ts";
import {
  ANCHOR_SCRIPT,
  ANCHOR_VALUE_SAT,
  ANCHOR_WITNESS_SCRIPT,
  classifyScript,
  dustThreshold,
  isPayableScript,
  opReturnScript,
  p2wpkhScript,
  sameBytes,
} from "./script.ts";
import { checkFeeRate, estimateVsize, feeForVsize, type InputKind } from "./size.ts";

/** Every statechain transaction is version 2 (BIP68 relative locks need it; bcoin never treats v2 as RBF). */
export const TX_VERSION = 2;
/** nSequence that enables nLockTime without a relative lock: absolute-mode backups. */
export const SEQUENCE_LOCKTIME_ONLY = 0xfffffffe;
/** nSequence with no lock of any kind: funding, kick-off, withdrawal, CPFP children. */
export const SEQUENCE_FINAL = 0xffffffff;
/** BIP68: relative locks in blocks use the low 16 bits with the disable (bit 31) and type (bit 22) flags clear. */
export const MAX_RELATIVE_LOCK = 0xffff;
/** nLockTime values from 500,000,000 are timestamps; backup locks are block heights. */
export const LOCKTIME_THRESHOLD = 500_000_000;

export interface WalletUtxo {
  /** Display (reversed) hex, as chain backends report it. */
  txid: string;
  vout: number;
  valueSat: bigint;
  script: Uint8Array;
}

export interface BuiltTx {
  /** Unsigned serialisation (witnesses empty unless stated otherwise). */
  raw: Uint8Array;
  /** Internal byte order; final already, since every input is segwit. */
  txid: Uint8Array;
  txidHex: string;
  feeSat: bigint;
  /** Virtual size once signed (worst-case signature sizes). */
  vsize: number;
}

function finish(tx: Transaction, kinds: InputKind[], feeSat: bigint): BuiltTx {
  const txid = txidOf(tx);
  return {
    raw: new Uint8Array(tx.toBuffer()),
    txid,
    txidHex: txidToHex(txid),
    feeSat,
    vsize: estimateVsize(tx, kinds),
  };
}

function checkAmount(amountSat: bigint, what: string): void {
  check(
    typeof amountSat === "bigint" && amountSat > 0n && amountSat <= MAX_MONEY_SAT,
    "TX_AMOUNT",
    `${what} must be a positive number of satoshis`,
  );
}

function checkOutpoint(o: Outpoint, what: string): void {
  check(o.txid instanceof Uint8Array && o.txid.length === 32, "TX_OUTPOINT", `${what} txid must be 32 bytes`);
  check(
    Number.isInteger(o.vout) && o.vout >= 0 && o.vout <= 0xffffffff,
    "TX_OUTPOINT",
    `${what} vout is invalid`,
  );
}

function checkPayable(script: Uint8Array, what: string): void {
  check(
    isPayableScript(script),
    "TX_SCRIPT",
    `${what} must be a standard P2WPKH, P2WSH, P2TR, P2PKH or P2SH script`,
  );
}

/** An output of `value` to `script`, refusing values under the script's dust limit. */
function checkNotDust(script: Uint8Array, value: bigint, what: string): void {
  const dust = dustThreshold(script);
  check(value >= dust, "TX_DUST", () => `${what} of ${value} sat is below the dust limit of ${dust} sat`);
}

function checkLock(lock: number, mode: "absolute" | "kickoff"): void {
  if (mode === "absolute") {
    check(
      Number.isInteger(lock) && lock > 0 && lock < LOCKTIME_THRESHOLD,
      "TX_LOCKTIME",
      `backup locktime ${lock} must be a block height in [1, ${LOCKTIME_THRESHOLD})`,
    );
  } else {
    check(
      Number.isInteger(lock) && lock > 0 && lock <= MAX_RELATIVE_LOCK,
      "TX_SEQUENCE",
      `relative lock ${lock} must be a number of blocks in [1, ${MAX_RELATIVE_LOCK}]`,
    );
  }
}

// --- the coin's own transactions -----------------------------------------------------------------------------

/** Backup skeleton (no fee yet): one input, one output to P2WPKH(B_n). Shared with the size helpers. */
function backupSkeleton(
  mode: "absolute" | "kickoff",
  spend: Outpoint,
  backupScript: Uint8Array,
  lock: number,
  value: bigint,
): Transaction {
  const tx = new Transaction();
  tx.version = TX_VERSION;
  tx.addInput(spend.txid, spend.vout, mode === "absolute" ? SEQUENCE_LOCKTIME_ONLY : lock);
  tx.locktime = mode === "absolute" ? lock : 0;
  tx.addOutput(backupScript, value);
  return tx;
}

export interface BackupParams {
  mode: "absolute" | "kickoff";
  /** Absolute mode: the statechain outpoint. Kick-off mode: output 0 of the kick-off transaction. */
  spend: Outpoint;
  spendAmountSat: bigint;
  /** B_n, 33 bytes. */
  backupKey: Uint8Array;
  /** Absolute: nLockTime (block height). Kick-off: the BIP68 relative lock in blocks. */
  lock: number;
  feeRateSatVb: number;
}

export function buildBackupTx(p: BackupParams): BuiltTx {
  checkOutpoint(p.spend, "backup input");
  checkAmount(p.spendAmountSat, "backup input amount");
  checkLock(p.lock, p.mode);
  checkFeeRate(p.feeRateSatVb);
  const script = p2wpkhScript(p.backupKey, "backup key");
  const tx = backupSkeleton(p.mode, p.spend, script, p.lock, 0n);
  const fee = feeForVsize(estimateVsize(tx, ["p2wpkh"]), p.feeRateSatVb);
  tx.outs[0]!.value = p.spendAmountSat - fee;
  checkNotDust(script, tx.outs[0]!.value, "backup output");
  return finish(tx, ["p2wpkh"], fee);
}

function kickoffSkeleton(outpoint: Outpoint, sharedScript: Uint8Array, value: bigint): Transaction {
  const tx = new Transaction();
  tx.version = TX_VERSION;
  tx.addInput(outpoint.txid, outpoint.vout, SEQUENCE_FINAL);
  tx.addOutput(sharedScript, value);
  tx.addOutput(ANCHOR_SCRIPT, ANCHOR_VALUE_SAT);
  return tx;
}

export interface KickoffParams {
  outpoint: Outpoint;
  amountSat: bigint;
  /** P, 33 bytes: output 0 pays P2WPKH(P) again, so backups and withdrawals still need both parties. */
  sharedPublicKey: Uint8Array;
  feeRateSatVb: number;
}

/** The kick-off: [P2WPKH(P), P2WSH(OP_TRUE) anchor of 330 sat], paying its own relay fee. */
export function buildKickoffTx(p: KickoffParams): BuiltTx & { outputAmountSat: bigint } {
  checkOutpoint(p.outpoint, "statechain outpoint");
  checkAmount(p.amountSat, "coin amount");
  checkFeeRate(p.feeRateSatVb);
  const script = p2wpkhScript(p.sharedPublicKey, "shared public key");
  const tx = kickoffSkeleton(p.outpoint, script, 0n);
  const fee = feeForVsize(estimateVsize(tx, ["p2wpkh"]), p.feeRateSatVb);
  const out = p.amountSat - ANCHOR_VALUE_SAT - fee;
  const floor = minKickoffOutputSat(p.feeRateSatVb);
  check(
    out >= floor,
    "TX_DUST",
    () => `kick-off output of ${out} sat cannot fund a backup (needs ${floor} sat)`,
  );
  tx.outs[0]!.value = out;
  return { ...finish(tx, ["p2wpkh"], fee), outputAmountSat: out };
}

export interface WithdrawalParams {
  /** The statechain outpoint, or kick-off output 0 once the kick-off is on chain. */
  spend: Outpoint;
  spendAmountSat: bigint;
  withdrawScript: Uint8Array;
  /** The SE's fee output, when the SE charges one. */
  seFee?: { script: Uint8Array; amountSat: bigint };
  feeRateSatVb: number;
}

/** The cooperative withdrawal: [withdraw output (amount − SE fee − miner fee), SE fee output?]. */
export function buildWithdrawalTx(p: WithdrawalParams): BuiltTx {
  checkOutpoint(p.spend, "withdrawal input");
  checkAmount(p.spendAmountSat, "withdrawal input amount");
  checkFeeRate(p.feeRateSatVb);
  checkPayable(p.withdrawScript, "withdraw script");
  const tx = new Transaction();
  tx.version = TX_VERSION;
  tx.addInput(p.spend.txid, p.spend.vout, SEQUENCE_FINAL);
  tx.addOutput(p.withdrawScript, 0n);
  let seFee = 0n;
  if (p.seFee) {
    checkPayable(p.seFee.script, "SE fee script");
    checkNotDust(p.seFee.script, p.seFee.amountSat, "SE fee output");
    seFee = p.seFee.amountSat;
    tx.addOutput(p.seFee.script, seFee);
  }
  const fee = feeForVsize(estimateVsize(tx, ["p2wpkh"]), p.feeRateSatVb);
  tx.outs[0]!.value = p.spendAmountSat - seFee - fee;
  checkNotDust(p.withdrawScript, tx.outs[0]!.value, "withdrawal output");
  return finish(tx, ["p2wpkh"], fee);
}

// --- fee reserves ----------------------------------------------------------------------------------------------

// Any valid key gives the same sizes: the generator's compressed encoding.
const DUMMY_KEY = G.toBytes(true);
const DUMMY_OUTPOINT: Outpoint = { txid: new Uint8Array(32), vout: 0 };

/** Fee of a backup at `feeRateSatVb` (its size does not depend on the mode: 110 vB). */
export function backupFeeSat(feeRateSatVb: number): bigint {
  const tx = backupSkeleton("absolute", DUMMY_OUTPOINT, p2wpkhScript(DUMMY_KEY), 1, 0n);
  return feeForVsize(estimateVsize(tx, ["p2wpkh"]), feeRateSatVb);
}

/** Fee of a kick-off at `feeRateSatVb` (153 vB). */
export function kickoffFeeSat(feeRateSatVb: number): bigint {
  const tx = kickoffSkeleton(DUMMY_OUTPOINT, p2wpkhScript(DUMMY_KEY), 0n);
  return feeForVsize(estimateVsize(tx, ["p2wpkh"]), feeRateSatVb);
}

/** The smallest kick-off output that still pays a backup at `feeRateSatVb` and leaves a non-dust output. */
export function minKickoffOutputSat(feeRateSatVb: number): bigint {
  return backupFeeSat(feeRateSatVb) + dustThreshold(p2wpkhScript(DUMMY_KEY));
}

/**
 * The smallest coin that can carry its exit transactions at `feeRateSatVb`: the backup fee plus a non-dust
 * backup output, and in kick-off mode also the kick-off's fee and its anchor. Deposits below it are refused.
 */
export function minCoinAmountSat(mode: "absolute" | "kickoff", feeRateSatVb: number): bigint {
  const backup = minKickoffOutputSat(feeRateSatVb);
  return mode === "absolute" ? backup : backup + kickoffFeeSat(feeRateSatVb) + ANCHOR_VALUE_SAT;
}

// --- wallet transactions -------------------------------------------------------------------------------------

function sortForSelection(utxos: readonly WalletUtxo[]): WalletUtxo[] {
  // Largest first keeps the input count (and so the fee) small; ties broken by outpoint for determinism.
  return [...utxos].sort((a, b) =>
    a.valueSat !== b.valueSat
      ? a.valueSat > b.valueSat
        ? -1
        : 1
      : a.txid !== b.txid
        ? a.txid < b.txid
          ? -1
          : 1
        : a.vout - b.vout,
  );
}

function checkWalletUtxo(u: WalletUtxo): void {
  check(
    classifyScript(u.script) === "p2wpkh",
    "TX_WALLET_INPUT",
    () => `wallet coin ${u.txid}:${u.vout} is not P2WPKH`,
  );
  checkAmount(u.valueSat, `wallet coin ${u.txid}:${u.vout}`);
}

export interface FundingParams {
  /** The wallet's own P2WPKH coins. Segwit-only inputs keep the funding txid fixed before signing, which the
   * backup (signed before the funding is broadcast) depends on. */
  utxos: readonly WalletUtxo[];
  amountSat: bigint;
  /** P, 33 bytes: the coin is paid to P2WPKH(P). */
  sharedPublicKey: Uint8Array;
  changeScript: Uint8Array;
  feeRateSatVb: number;
}

export interface FundingTx extends BuiltTx {
  /** Always 0: the coin is the first output. */
  fundingVout: number;
  /** Selected coins, in input order (to sign with signP2wpkhInputs). */
  inputs: WalletUtxo[];
  /** 0 when the remainder was below the dust limit and went to the fee. */
  changeSat: bigint;
}

/**
 * The largest funding transaction (signed, bytes) a deposit may use (#19.5): every transfer message carries the
 * funding transaction and a mailbox message is at most 64 KiB, so a larger one could never be handed over. This
 * leaves room for the backup history of many owners. About 150 P2WPKH inputs.
 */
export const MAX_FUNDING_TX_BYTES = 16 * 1024;

/** Witness bytes a signed P2WPKH input adds at most: item count, a 72-byte DER signature and a 33-byte key. */
const P2WPKH_WITNESS_MAX = 1 + 1 + 72 + 1 + 33;

/** The signed size of a funding transaction built unsigned as `raw` with `inputs` P2WPKH inputs, at most. */
export function signedFundingSize(unsignedBytes: number, inputs: number): number {
  return unsignedBytes + 2 + inputs * P2WPKH_WITNESS_MAX;
}

export function buildFundingTx(p: FundingParams): FundingTx {
  checkAmount(p.amountSat, "deposit amount");
  checkFeeRate(p.feeRateSatVb);
  checkPayable(p.changeScript, "change script");
  const fundingScript = p2wpkhScript(p.sharedPublicKey, "shared public key");
  checkNotDust(fundingScript, p.amountSat, "deposit");
  p.utxos.forEach(checkWalletUtxo);
  const selected: WalletUtxo[] = [];
  let total = 0n;
  for (const utxo of sortForSelection(p.utxos)) {
    selected.push(utxo);
    total += utxo.valueSat;
    const withChange = fundingSkeleton(selected, fundingScript, p.amountSat, p.changeScript, 0n);
    const feeWith = feeForVsize(estimateVsize(withChange, kindsOf(selected)), p.feeRateSatVb);
    const change = total - p.amountSat - feeWith;
    if (change >= dustThreshold(p.changeScript)) {
      withChange.outs[1]!.value = change;
      return {
        ...finish(withChange, kindsOf(selected), feeWith),
        fundingVout: 0,
        inputs: selected,
        changeSat: change,
      };
    }
    const noChange = fundingSkeleton(selected, fundingScript, p.amountSat, undefined, 0n);
    const feeWithout = feeForVsize(estimateVsize(noChange, kindsOf(selected)), p.feeRateSatVb);
    if (total - p.amountSat >= feeWithout) {
      return {
        ...finish(noChange, kindsOf(selected), total - p.amountSat),
        fundingVout: 0,
        inputs: selected,
        changeSat: 0n,
      };
    }
  }
  return fail(
    "INSUFFICIENT_FUNDS",
    `wallet coins total ${total} sat, not enough for ${p.amountSat} sat plus the fee at ${p.feeRateSatVb} sat/vB`,
    "precondition",
  );
}

const kindsOf = (inputs: readonly unknown[]): InputKind[] => inputs.map(() => "p2wpkh");

function fundingSkeleton(
  inputs: readonly WalletUtxo[],
  fundingScript: Uint8Array,
  amountSat: bigint,
  changeScript: Uint8Array | undefined,
  change: bigint,
): Transaction {
  const tx = new Transaction();
  tx.version = TX_VERSION;
  for (const u of inputs) tx.addInput(txidFromHex(u.txid), u.vout, SEQUENCE_FINAL);
  tx.addOutput(fundingScript, amountSat);
  if (changeScript) tx.addOutput(changeScript, change);
  return tx;
}

export interface CpfpParent {
  txid: Uint8Array;
  vout: number;
  valueSat: bigint;
  /** "anchor": the kick-off's P2WSH(OP_TRUE) output (witness filled in here); "p2wpkh": an output the wallet
   * owns outright, e.g. its backup output B_n (signed afterwards with signP2wpkhInputs). */
  kind: "anchor" | "p2wpkh";
  /** The parent output's script (needed to sign a p2wpkh parent output). */
  script: Uint8Array;
}

export interface CpfpParams {
  parent: CpfpParent;
  /** The parent's virtual size and fee: the child pays for both at the package rate. */
  parentVsize: number;
  parentFeeSat: bigint;
  /** Wallet coins to add when the parent output alone cannot pay. */
  feeUtxos: readonly WalletUtxo[];
  changeScript: Uint8Array;
  packageFeeRateSatVb: number;
  /** The child must also meet the relay minimum on its own (no package relay on bcoin 1.0.2). */
  minRelayFeeRateSatVb?: number;
}

export interface CpfpChild extends BuiltTx {
  /** Inputs in order; p2wpkh ones still need signing (anchor witnesses are already set). */
  inputs: {
    inputIndex: number;
    kind: "anchor" | "p2wpkh";
    prevout: { script: Uint8Array; valueSat: bigint };
  }[];
  changeSat: bigint;
  /** The fee rate of parent and child together. */
  packageFeeRateSatVb: number;
}

/** A child spending a parent's output (plus wallet coins if needed) so parent + child pay the package rate. */
export function buildCpfpChild(p: CpfpParams): CpfpChild {
  checkOutpoint({ txid: p.parent.txid, vout: p.parent.vout }, "CPFP parent output");
  checkAmount(p.parent.valueSat, "CPFP parent output value");
  checkFeeRate(p.packageFeeRateSatVb, "package fee rate");
  const minRelay = p.minRelayFeeRateSatVb ?? 1;
  checkFeeRate(minRelay, "relay fee rate");
  checkPayable(p.changeScript, "change script");
  check(Number.isInteger(p.parentVsize) && p.parentVsize > 0, "TX_SIZE", "parent vsize must be positive");
  check(p.parentFeeSat >= 0n, "TX_AMOUNT", "parent fee cannot be negative");
  if (p.parent.kind === "p2wpkh") {
    check(classifyScript(p.parent.script) === "p2wpkh", "TX_SCRIPT", "CPFP parent output is not P2WPKH");
  } else {
    check(
      sameBytes(p.parent.script, ANCHOR_SCRIPT),
      "TX_SCRIPT",
      "CPFP parent output is not the P2WSH(OP_TRUE) anchor",
    );
  }
  p.feeUtxos.forEach(checkWalletUtxo);
  const parentInput = { ...p.parent, txidBytes: p.parent.txid };
  const extra: WalletUtxo[] = [];
  const pool = sortForSelection(p.feeUtxos);
  for (let i = 0; i <= pool.length; i++) {
    if (i > 0) extra.push(pool[i - 1]!);
    const kinds: InputKind[] = [p.parent.kind, ...kindsOf(extra)];
    const total = p.parent.valueSat + extra.reduce((s, u) => s + u.valueSat, 0n);
    const needFee = (vsize: number) => {
      const pkg = feeForVsize(p.parentVsize + vsize, p.packageFeeRateSatVb) - p.parentFeeSat;
      const own = feeForVsize(vsize, minRelay);
      return pkg > own ? pkg : own;
    };
    const withChange = cpfpSkeleton(parentInput, extra, p.changeScript, 0n);
    const feeWith = needFee(estimateVsize(withChange, kinds));
    if (total - feeWith >= dustThreshold(p.changeScript)) {
      withChange.outs[0]!.value = total - feeWith;
      return cpfpResult(withChange, p, extra, kinds, feeWith, total - feeWith);
    }
    // No change: an OP_RETURN output keeps the transaction valid (and ≥ 65 bytes without witness).
    const noChange = cpfpSkeleton(parentInput, extra, opReturnScript(new Uint8Array(4)), 0n);
    const feeWithout = needFee(estimateVsize(noChange, kinds));
    if (total >= feeWithout) return cpfpResult(noChange, p, extra, kinds, total, 0n);
  }
  return fail(
    "INSUFFICIENT_FUNDS",
    `the parent output and wallet coins cannot pay a child at ${p.packageFeeRateSatVb} sat/vB`,
    "precondition",
  );
}

function cpfpSkeleton(
  parent: { txidBytes: Uint8Array; vout: number },
  extra: readonly WalletUtxo[],
  outScript: Uint8Array,
  value: bigint,
): Transaction {
  const tx = new Transaction();
  tx.version = TX_VERSION;
  tx.addInput(parent.txidBytes, parent.vout, SEQUENCE_FINAL);
  for (const u of extra) tx.addInput(txidFromHex(u.txid), u.vout, SEQUENCE_FINAL);
  tx.addOutput(outScript, value);
  return tx;
}

function cpfpResult(
  tx: Transaction,
  p: CpfpParams,
  extra: readonly WalletUtxo[],
  kinds: InputKind[],
  feeSat: bigint,
  changeSat: bigint,
): CpfpChild {
  if (p.parent.kind === "anchor") tx.setWitness(0, [new Uint8Array(ANCHOR_WITNESS_SCRIPT)]);
  const built = finish(tx, kinds, feeSat);
  const pkgRate = Number(p.parentFeeSat + feeSat) / (p.parentVsize + built.vsize);
  return {
    ...built,
    changeSat,
    packageFeeRateSatVb: pkgRate,
    inputs: [
      {
        inputIndex: 0,
        kind: p.parent.kind,
        prevout: { script: p.parent.script, valueSat: p.parent.valueSat },
      },
      ...extra.map((u, i) => ({
        inputIndex: i + 1,
        kind: "p2wpkh" as const,
        prevout: { script: u.script, valueSat: u.valueSat },
      })),
    ],
  };
}
