// The co-signing policy of DESIGN.md §3.6, as pure functions the enclave calls on every transaction it is
// asked to sign. Each parses the raw transaction itself, checks its exact shape, and only then returns the
// BIP143 digest to sign: nothing signs a digest the enclave did not compute. Shapes are listed in index.ts.

import type { Transaction } from "bitcoinjs-lib";
import { parsePoint } from "../encoding.ts";
import { check, fail } from "../errors.ts";
import {
  LOCKTIME_THRESHOLD,
  MAX_RELATIVE_LOCK,
  minKickoffOutputSat,
  SEQUENCE_FINAL,
  SEQUENCE_LOCKTIME_ONLY,
  TX_VERSION,
} from "./build.ts";
import {
  inputOutpoint,
  MAX_MONEY_SAT,
  type Outpoint,
  outpointString,
  parseTx,
  sameOutpoint,
  txidOf,
  txidToHex,
} from "./parse.ts";
import {
  ANCHOR_SCRIPT,
  ANCHOR_VALUE_SAT,
  dustThreshold,
  isPayableScript,
  p2wpkhScript,
  sameBytes,
} from "./script.ts";
import { bip143Digest } from "./sign.ts";
import { checkFeeRate, estimateVsize, feeForVsize } from "./size.ts";

/** Above this a fee is "absurdly high" unless the context sets maxFeeSat (bcoin refuses 10,000× the minimum). */
export const MAX_FEE_RATE_SAT_VB = 1000;

/**
 * The shallowest withdrawal burial depth (confirmations before the SE erases a withdrawn coin's share and stops
 * watching it, #19.4) accepted outside regtest, and the default there.
 */
export const MIN_BURIAL_DEPTH = 6;

export interface CoinPolicyContext {
  /** The statechain outpoint (the funding output). */
  outpoint: Outpoint;
  amountSat: bigint;
  /** P, 33 bytes. */
  sharedPublicKey: Uint8Array;
  mode: "absolute" | "kickoff";
  /** Absolute: h0, owner 1's nLockTime (block height). Kick-off: owner 1's relative lock in blocks. */
  initialLock: number;
  /** c: each transfer lowers the lock by this many blocks. */
  interval: number;
  /** A backup lock must stay more than this many blocks ahead of the tip. */
  safetyMargin: number;
  minFeeRateSatVb: number;
  /** Upper bound on any co-signed transaction's fee (default: MAX_FEE_RATE_SAT_VB × its vsize). */
  maxFeeSat?: bigint;
  /** Fee-rate ceiling for backups and kick-offs (a receiver's wallet sets its own; CPFP can add to them). */
  maxBackupFeeRateSatVb?: number;
  /** Set once the kick-off transaction is co-signed (kick-off mode). */
  kickoff?: { txid: Uint8Array; amountSat: bigint };
}

export function checkContext(ctx: CoinPolicyContext): void {
  check(
    ctx.outpoint?.txid instanceof Uint8Array && ctx.outpoint.txid.length === 32,
    "POLICY_CONTEXT",
    "statechain outpoint txid must be 32 bytes",
  );
  check(
    Number.isInteger(ctx.outpoint.vout) && ctx.outpoint.vout >= 0,
    "POLICY_CONTEXT",
    "statechain outpoint vout is invalid",
  );
  check(
    ctx.amountSat > 0n && ctx.amountSat <= MAX_MONEY_SAT,
    "POLICY_CONTEXT",
    "coin amount is out of range",
  );
  parsePoint(ctx.sharedPublicKey, "shared public key");
  check(
    ctx.mode === "absolute" || ctx.mode === "kickoff",
    "POLICY_CONTEXT",
    `unknown backup mode ${ctx.mode}`,
  );
  const maxLock = ctx.mode === "absolute" ? LOCKTIME_THRESHOLD - 1 : MAX_RELATIVE_LOCK;
  check(
    Number.isInteger(ctx.initialLock) && ctx.initialLock > 0 && ctx.initialLock <= maxLock,
    "POLICY_CONTEXT",
    `initial lock ${ctx.initialLock} is out of range [1, ${maxLock}] for ${ctx.mode} mode`,
  );
  check(
    Number.isInteger(ctx.interval) && ctx.interval > 0,
    "POLICY_CONTEXT",
    "locktime interval must be a positive integer",
  );
  check(
    Number.isInteger(ctx.safetyMargin) && ctx.safetyMargin >= 0,
    "POLICY_CONTEXT",
    "safety margin must be a non-negative integer",
  );
  checkFeeRate(ctx.minFeeRateSatVb, "minimum fee rate");
  check(
    ctx.minFeeRateSatVb <= MAX_FEE_RATE_SAT_VB,
    "POLICY_CONTEXT",
    "minimum fee rate is above the absurd-fee bound",
  );
  if (ctx.maxFeeSat !== undefined) check(ctx.maxFeeSat > 0n, "POLICY_CONTEXT", "maxFeeSat must be positive");
  if (ctx.kickoff) {
    check(ctx.mode === "kickoff", "POLICY_CONTEXT", "a kick-off is only used in kick-off mode");
    check(
      ctx.kickoff.txid instanceof Uint8Array && ctx.kickoff.txid.length === 32,
      "POLICY_CONTEXT",
      "kick-off txid must be 32 bytes",
    );
    check(
      ctx.kickoff.amountSat > 0n && ctx.kickoff.amountSat < ctx.amountSat,
      "POLICY_CONTEXT",
      "kick-off output amount must be positive and below the coin amount",
    );
  }
}

function checkOwnerIndex(n: number): void {
  check(Number.isInteger(n) && n >= 1, "OWNER_INDEX", `owner index ${n} must be an integer ≥ 1`);
}

/**
 * The lock owner n's backup must carry: h0 − (n−1)·c (absolute nLockTime), or L1 − (n−1)·c (kick-off mode,
 * BIP68 relative lock in blocks). Throws when the coin has run out of locks for that owner.
 */
export function backupLock(ctx: CoinPolicyContext, ownerIndex: number): number {
  checkContext(ctx);
  return lockFor(ctx, ownerIndex);
}

/** backupLock for a context already checked. */
function lockFor(ctx: CoinPolicyContext, ownerIndex: number): number {
  checkOwnerIndex(ownerIndex);
  const lock = ctx.initialLock - (ownerIndex - 1) * ctx.interval;
  check(
    lock > 0,
    "BACKUP_LOCK_EXHAUSTED",
    `no backup lock is left for owner ${ownerIndex}: ${ctx.initialLock} − ${ownerIndex - 1}·${ctx.interval} = ${lock}`,
    "precondition",
  );
  return lock;
}

// --- shared shape checks --------------------------------------------------------------------------------------

function checkCommon(tx: Transaction, what: string): void {
  check(tx.version === TX_VERSION, "TX_VERSION", `${what} version ${tx.version} ≠ ${TX_VERSION}`);
  check(tx.ins.length === 1, "TX_INPUTS", `${what} has ${tx.ins.length} inputs, expected exactly 1`);
  check(
    tx.ins[0]!.script.length === 0,
    "TX_SCRIPTSIG",
    `${what} input has a scriptSig (a P2WPKH spend has none)`,
  );
}

function checkSpends(tx: Transaction, expected: Outpoint, what: string, expectedName: string): void {
  const got = inputOutpoint(tx, 0);
  check(
    sameOutpoint(got, expected),
    "TX_OUTPOINT",
    () => `${what} spends ${outpointString(got)}, not ${expectedName} ${outpointString(expected)}`,
  );
}

function checkSequence(tx: Transaction, expected: number, what: string): void {
  const seq = tx.ins[0]!.sequence;
  check(
    seq === expected,
    "TX_SEQUENCE",
    () => `${what} nSequence 0x${hex32(seq)} ≠ expected 0x${hex32(expected)}`,
  );
}

const hex32 = (n: number) => n.toString(16).padStart(8, "0");

/** Miner fee = input − outputs, between the relay minimum at the context's rate and the absurd-fee bound. */
function checkFee(
  tx: Transaction,
  ctx: CoinPolicyContext,
  spendAmountSat: bigint,
  what: string,
  maxRateSatVb = MAX_FEE_RATE_SAT_VB,
): bigint {
  const out = tx.outs.reduce((s, o) => s + o.value, 0n);
  const fee = spendAmountSat - out;
  check(
    fee >= 0n,
    "TX_FEE_NEGATIVE",
    () => `${what} pays out ${out} sat but spends only ${spendAmountSat} sat`,
  );
  const vsize = estimateVsize(tx, ["p2wpkh"]);
  const min = feeForVsize(vsize, ctx.minFeeRateSatVb);
  check(
    fee >= min,
    "TX_FEE_LOW",
    () =>
      `${what} fee ${fee} sat is below the relay minimum ${min} sat (${vsize} vB at ${ctx.minFeeRateSatVb} sat/vB)`,
  );
  const rateMax = feeForVsize(vsize, maxRateSatVb);
  const max = ctx.maxFeeSat !== undefined && ctx.maxFeeSat < rateMax ? ctx.maxFeeSat : rateMax;
  check(
    fee <= max,
    "TX_FEE_HIGH",
    () => `${what} fee ${fee} sat is too high (limit ${max} sat: ${maxRateSatVb} sat/vB × ${vsize} vB)`,
  );
  return fee;
}

/** Backups and kick-offs: the context's ceiling, never above the absurd-fee bound (audit #18.4). */
function backupFeeCeiling(ctx: CoinPolicyContext): number {
  const r = ctx.maxBackupFeeRateSatVb;
  return r !== undefined && r < MAX_FEE_RATE_SAT_VB ? r : MAX_FEE_RATE_SAT_VB;
}

function checkOutputNotDust(tx: Transaction, index: number, what: string): void {
  const o = tx.outs[index]!;
  const dust = dustThreshold(o.script);
  check(o.value >= dust, "TX_DUST", () => `${what} of ${o.value} sat is below the dust limit of ${dust} sat`);
}

function checkTip(tip: number): void {
  check(Number.isInteger(tip) && tip >= 0, "POLICY_TIP", `chain tip ${tip} must be a non-negative integer`);
}

// --- backup -----------------------------------------------------------------------------------------------------

export interface BackupCheck {
  ownerIndex: number;
  /** B_n, 33 bytes. */
  backupKey: Uint8Array;
  /** The chain tip (from the host; the enclave never lets it go down). */
  tip: number;
  /** Kick-off mode: the kick-off's confirmation height if the host has seen it confirm. */
  kickoffHeight?: number;
}

export interface Checked {
  /** The BIP143 SIGHASH_ALL digest to co-sign under P. */
  digest: Uint8Array;
  /** Internal byte order. */
  txid: Uint8Array;
  feeSat: bigint;
}

/**
 * Absolute mode: v2; one input spending the statechain outpoint with nSequence 0xFFFFFFFE; nLockTime exactly
 * h0 − (n−1)·c and above tip + safety margin; one output P2WPKH(B_n) of amount − fee.
 * Kick-off mode: v2; one input spending kick-off output 0 with nSequence = L1 − (n−1)·c (> safety margin, and
 * kick-off height + lock > tip + margin once the kick-off confirmed); nLockTime 0; one output P2WPKH(B_n).
 */
export function checkBackupTx(
  raw: Uint8Array,
  ctx: CoinPolicyContext,
  opts: BackupCheck,
): Checked & { lock: number } {
  checkContext(ctx);
  checkOwnerIndex(opts.ownerIndex);
  checkTip(opts.tip);
  const tx = parseTx(raw, "backup");
  const n = opts.ownerIndex;
  const lock = lockFor(ctx, n);
  checkCommon(tx, "backup");
  let spendAmount: bigint;
  if (ctx.mode === "absolute") {
    checkSpends(tx, ctx.outpoint, "backup", "the statechain outpoint");
    checkSequence(tx, SEQUENCE_LOCKTIME_ONLY, "backup");
    check(
      tx.locktime === lock,
      "TX_LOCKTIME",
      () => `backup locktime ${tx.locktime} ≠ expected ${lock} for owner ${n}`,
    );
    check(
      lock > opts.tip + ctx.safetyMargin,
      "BACKUP_LOCK_TOO_SOON",
      () =>
        `backup locktime ${lock} for owner ${n} is not above tip ${opts.tip} + safety margin ${ctx.safetyMargin}`,
      "precondition",
    );
    spendAmount = ctx.amountSat;
  } else {
    if (!ctx.kickoff)
      return fail(
        "KICKOFF_MISSING",
        "no kick-off transaction has been co-signed for this coin",
        "precondition",
      );
    checkSpends(tx, { txid: ctx.kickoff.txid, vout: 0 }, "backup", "kick-off output");
    const seq = tx.ins[0]!.sequence;
    check(seq === lock, "TX_SEQUENCE", () => `backup relative lock ${seq} ≠ expected ${lock} for owner ${n}`);
    check(tx.locktime === 0, "TX_LOCKTIME", () => `kick-off backup locktime ${tx.locktime} ≠ 0`);
    check(
      lock > ctx.safetyMargin,
      "BACKUP_LOCK_TOO_SOON",
      () => `backup relative lock ${lock} for owner ${n} is not above the safety margin ${ctx.safetyMargin}`,
      "precondition",
    );
    if (opts.kickoffHeight !== undefined) {
      checkTip(opts.kickoffHeight);
      check(
        opts.kickoffHeight + lock > opts.tip + ctx.safetyMargin,
        "BACKUP_LOCK_TOO_SOON",
        () =>
          `backup for owner ${n} matures at ${opts.kickoffHeight! + lock} (kick-off height + ${lock}), not above tip ${opts.tip} + safety margin ${ctx.safetyMargin}`,
        "precondition",
      );
    }
    spendAmount = ctx.kickoff.amountSat;
  }
  check(tx.outs.length === 1, "TX_OUTPUTS", `backup has ${tx.outs.length} outputs, expected exactly 1`);
  check(
    sameBytes(tx.outs[0]!.script, p2wpkhScript(opts.backupKey, "backup key")),
    "TX_PAYEE",
    `backup does not pay P2WPKH of owner ${n}'s backup key`,
  );
  checkOutputNotDust(tx, 0, "backup output");
  const feeSat = checkFee(tx, ctx, spendAmount, "backup", backupFeeCeiling(ctx));
  return { digest: bip143Digest(tx, 0, ctx.sharedPublicKey, spendAmount), txid: txidOf(tx), lock, feeSat };
}

// --- kick-off ---------------------------------------------------------------------------------------------------

/**
 * Kick-off mode only: v2; one input spending the statechain outpoint with nSequence 0xFFFFFFFF; nLockTime 0;
 * outputs exactly [P2WPKH(P) of K, P2WSH(OP_TRUE) of 330 sat]; K large enough to pay a backup at the minimum
 * rate; its own fee at least the relay minimum. Once one kick-off is co-signed, only that same one again.
 */
export function checkKickoffTx(
  raw: Uint8Array,
  ctx: CoinPolicyContext,
): Checked & { outputAmountSat: bigint } {
  checkContext(ctx);
  check(ctx.mode === "kickoff", "TX_MODE", "this coin uses absolute-locktime backups: it has no kick-off");
  const tx = parseTx(raw, "kick-off");
  const txid = txidOf(tx);
  if (ctx.kickoff) {
    check(
      sameBytes(ctx.kickoff.txid, txid),
      "KICKOFF_ALREADY_SIGNED",
      () => `a different kick-off (${txidToHex(ctx.kickoff!.txid)}) is already co-signed for this coin`,
      "precondition",
    );
  }
  checkCommon(tx, "kick-off");
  checkSpends(tx, ctx.outpoint, "kick-off", "the statechain outpoint");
  checkSequence(tx, SEQUENCE_FINAL, "kick-off");
  check(tx.locktime === 0, "TX_LOCKTIME", () => `kick-off locktime ${tx.locktime} ≠ 0`);
  check(tx.outs.length === 2, "TX_OUTPUTS", `kick-off has ${tx.outs.length} outputs, expected exactly 2`);
  check(
    sameBytes(tx.outs[0]!.script, p2wpkhScript(ctx.sharedPublicKey)),
    "TX_PAYEE",
    "kick-off output 0 does not pay P2WPKH of the shared key P",
  );
  const anchor = tx.outs[1]!;
  check(
    sameBytes(anchor.script, ANCHOR_SCRIPT) && anchor.value === ANCHOR_VALUE_SAT,
    "TX_ANCHOR",
    `kick-off output 1 is not the P2WSH(OP_TRUE) anchor of ${ANCHOR_VALUE_SAT} sat`,
  );
  const out = tx.outs[0]!.value;
  const floor = minKickoffOutputSat(ctx.minFeeRateSatVb);
  check(
    out >= floor,
    "TX_DUST",
    () => `kick-off output of ${out} sat cannot fund a backup (needs ${floor} sat)`,
  );
  const feeSat = checkFee(tx, ctx, ctx.amountSat, "kick-off", backupFeeCeiling(ctx));
  return {
    digest: bip143Digest(tx, 0, ctx.sharedPublicKey, ctx.amountSat),
    txid,
    feeSat,
    outputAmountSat: out,
  };
}

// --- withdrawal -------------------------------------------------------------------------------------------------

export interface WithdrawalCheck {
  /** The script the owner's WITHDRAW statechain transaction commits to. */
  withdrawScript: Uint8Array;
  /** Where the SE's fee goes, when it charges one. */
  feeScript?: Uint8Array;
  minSeFeeSat: bigint;
}

/**
 * v2; one input with nSequence 0xFFFFFFFF and nLockTime 0, spending either the statechain outpoint or — in
 * kick-off mode, once a kick-off is co-signed — kick-off output 0 (whichever exists on chain: both pay P2WPKH(P),
 * and at most one of the two can ever be spent, so both forms are safe to sign). Outputs exactly
 * [withdrawScript] or, with an SE fee, [withdrawScript, feeScript ≥ minSeFeeSat]; miner fee within bounds.
 */
export function checkWithdrawalTx(
  raw: Uint8Array,
  ctx: CoinPolicyContext,
  opts: WithdrawalCheck,
): Checked & { spend: Outpoint; spendAmountSat: bigint } {
  checkContext(ctx);
  check(
    isPayableScript(opts.withdrawScript),
    "TX_SCRIPT",
    "withdraw script is not a standard payable script",
  );
  check(opts.minSeFeeSat >= 0n, "POLICY_CONTEXT", "minimum SE fee cannot be negative");
  const tx = parseTx(raw, "withdrawal");
  checkCommon(tx, "withdrawal");
  const spend = inputOutpoint(tx, 0);
  let spendAmountSat: bigint;
  if (sameOutpoint(spend, ctx.outpoint)) spendAmountSat = ctx.amountSat;
  else if (ctx.kickoff && sameOutpoint(spend, { txid: ctx.kickoff.txid, vout: 0 }))
    spendAmountSat = ctx.kickoff.amountSat;
  else
    return fail(
      "TX_OUTPOINT",
      `withdrawal spends ${outpointString(spend)}, not the statechain outpoint ${outpointString(ctx.outpoint)}${ctx.kickoff ? " or kick-off output 0" : ""}`,
    );
  checkSequence(tx, SEQUENCE_FINAL, "withdrawal");
  check(tx.locktime === 0, "TX_LOCKTIME", () => `withdrawal locktime ${tx.locktime} ≠ 0`);
  const charged = opts.feeScript !== undefined || opts.minSeFeeSat > 0n;
  if (charged) {
    check(
      opts.feeScript !== undefined,
      "POLICY_CONTEXT",
      "an SE fee is required but no fee script is configured",
    );
    check(
      isPayableScript(opts.feeScript),
      "POLICY_CONTEXT",
      "SE fee script is not a standard payable script",
    );
  }
  const expectedOutputs = charged ? 2 : 1;
  check(
    tx.outs.length === expectedOutputs,
    "TX_OUTPUTS",
    `withdrawal has ${tx.outs.length} outputs, expected exactly ${expectedOutputs}`,
  );
  check(
    sameBytes(tx.outs[0]!.script, opts.withdrawScript),
    "TX_PAYEE",
    "withdrawal output 0 does not pay the withdraw script the owner signed",
  );
  checkOutputNotDust(tx, 0, "withdrawal output");
  if (charged) {
    const feeOut = tx.outs[1]!;
    check(
      sameBytes(feeOut.script, opts.feeScript!),
      "TX_PAYEE",
      "withdrawal output 1 does not pay the SE fee script",
    );
    check(
      feeOut.value >= opts.minSeFeeSat,
      "TX_SE_FEE",
      () => `SE fee output of ${feeOut.value} sat is below the required ${opts.minSeFeeSat} sat`,
    );
    checkOutputNotDust(tx, 1, "SE fee output");
  }
  const feeSat = checkFee(tx, ctx, spendAmountSat, "withdrawal");
  return {
    digest: bip143Digest(tx, 0, ctx.sharedPublicKey, spendAmountSat),
    txid: txidOf(tx),
    feeSat,
    spend,
    spendAmountSat,
  };
}
