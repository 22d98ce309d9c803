// The co-signing policy parameters the enclave enforces (DESIGN.md 3.6). They are part of the enclave's
// identity: their canonical JSON is hashed into every identity statement, so an owner can compare the policy an
// enclave attests with the one the operator publishes. On Nitro they are baked into the image (measured);
// in simulator mode the host passes them at start.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { check } from "../protocol/errors.ts";
import { type CoinPolicyContext, MIN_BURIAL_DEPTH } from "../protocol/tx/policy.ts";
import { isPayableScript } from "../protocol/tx/script.ts";

export interface EnclavePolicy {
  network: "regtest" | "testnet" | "signet" | "bitcoin";
  backupMode: "absolute" | "kickoff";
  /** Absolute: h0 = tip + initLock. Kick-off: owner 1's relative lock in blocks. */
  initLock: number;
  locktimeInterval: number;
  lockSafetyMargin: number;
  minFeeRateSatVb: number;
  minDepositSat: number;
  maxDepositSat: number;
  withdrawFeeBps: number;
  /** Hex scriptPubKey the SE fee is paid to; empty when withdrawFeeBps is 0. */
  feeScript: string;
  /** Unfunded deposits are forgotten after this long (their keygen holds a Paillier key). */
  depositTtlMs: number;
  /** At most this many deposits held unfunded at once (each holds keygen state and a Paillier key: #19.2). */
  maxUnfundedDeposits: number;
  /** Confirmations the SE waits for before a deposit is active / a withdrawal closes the coin. Not enforced by
   * the enclave (the host reports the chain) but attested, so wallets take them from here, not from the host. */
  depositConfirmations: number;
  withdrawConfirmations: number;
  /** Confirmations after which a withdrawal counts as buried (#19.4): only then does the enclave erase the share
   * and the host drop the watchtower entry and stop watching. A shallower reorg can take the withdrawal out of
   * the chain, and then the coin needs its backup (and its newest owner) protected again. At least
   * withdrawConfirmations; at least MIN_BURIAL_DEPTH outside regtest. Not given: 6 (regtest: withdrawConfirmations). */
  withdrawBurialDepth: number;
  /** Fee-rate ceiling for backups and kick-offs (lower than a withdrawal's: a backup can be sped up by CPFP). */
  maxBackupFeeRateSatVb: number;
  /** How far the host's chain tip may rise at once: tipSlackBlocks + tipBlocksPerHour × hours since the last rise. */
  tipSlackBlocks: number;
  tipBlocksPerHour: number;
  /** Set (never by a policy file) when the enclave runs on a seeded test RNG: visible in every identity. */
  insecureTestRng?: boolean;
}

export const DEFAULT_POLICY: EnclavePolicy = {
  network: "regtest",
  backupMode: "absolute",
  initLock: 1000,
  locktimeInterval: 10,
  lockSafetyMargin: 6,
  minFeeRateSatVb: 1,
  minDepositSat: 10_000,
  maxDepositSat: 100_000_000,
  withdrawFeeBps: 0,
  feeScript: "",
  depositTtlMs: 10 * 60_000,
  maxUnfundedDeposits: 256,
  depositConfirmations: 1,
  withdrawConfirmations: 1,
  withdrawBurialDepth: 1,
  maxBackupFeeRateSatVb: 100,
  tipSlackBlocks: 100_000,
  tipBlocksPerHour: 1_000_000,
};

/**
 * Tip-step defaults by network: mainnet and signet find ~6 blocks an hour (30 allows for bursts and a node
 * catching up a day: slack), testnet has minimum-difficulty storms; regtest mines at will.
 */
const TIP_STEP: Record<EnclavePolicy["network"], { tipSlackBlocks: number; tipBlocksPerHour: number }> = {
  bitcoin: { tipSlackBlocks: 144, tipBlocksPerHour: 30 },
  signet: { tipSlackBlocks: 144, tipBlocksPerHour: 30 },
  testnet: { tipSlackBlocks: 10_000, tipBlocksPerHour: 20_000 },
  regtest: { tipSlackBlocks: 100_000, tipBlocksPerHour: 1_000_000 },
};

const int = (v: unknown, min: number, max: number, key: string): number => {
  check(
    typeof v === "number" && Number.isInteger(v) && v >= min && v <= max,
    "POLICY_INVALID",
    `policy ${key} must be an integer in [${min}, ${max}]`,
  );
  return v;
};

export function parsePolicy(json: unknown): EnclavePolicy {
  check(
    typeof json === "object" && json !== null && !Array.isArray(json),
    "POLICY_INVALID",
    "policy must be a JSON object",
  );
  const given = json as Partial<EnclavePolicy>;
  const network = (given.network ?? DEFAULT_POLICY.network) as EnclavePolicy["network"];
  const o = { ...DEFAULT_POLICY, ...(TIP_STEP[network] ?? {}), ...given };
  if (given.withdrawBurialDepth === undefined)
    o.withdrawBurialDepth =
      network === "regtest" ? o.withdrawConfirmations : Math.max(MIN_BURIAL_DEPTH, o.withdrawConfirmations);
  for (const k of Object.keys(json as object))
    check(k in DEFAULT_POLICY, "POLICY_INVALID", `unknown policy setting "${k}"`);
  check(
    ["regtest", "testnet", "signet", "bitcoin"].includes(o.network),
    "POLICY_INVALID",
    "policy network is unknown",
  );
  check(
    o.backupMode === "absolute" || o.backupMode === "kickoff",
    "POLICY_INVALID",
    "policy backupMode must be absolute or kickoff",
  );
  int(o.initLock, 1, o.backupMode === "kickoff" ? 0xffff : 100_000, "initLock");
  int(o.locktimeInterval, 1, 10_000, "locktimeInterval");
  int(o.lockSafetyMargin, 0, 10_000, "lockSafetyMargin");
  check(
    typeof o.minFeeRateSatVb === "number" && o.minFeeRateSatVb >= 1 && o.minFeeRateSatVb <= 1000,
    "POLICY_INVALID",
    "policy minFeeRateSatVb must be in [1, 1000]",
  );
  int(o.minDepositSat, 1, 21e14, "minDepositSat");
  int(o.maxDepositSat, o.minDepositSat, 21e14, "maxDepositSat");
  int(o.withdrawFeeBps, 0, 10_000, "withdrawFeeBps");
  int(o.depositTtlMs, 1000, 7 * 24 * 3600_000, "depositTtlMs");
  int(o.maxUnfundedDeposits, 1, 1_000_000, "maxUnfundedDeposits");
  int(o.depositConfirmations, o.network === "regtest" ? 0 : 1, 1000, "depositConfirmations");
  int(o.withdrawConfirmations, o.network === "regtest" ? 0 : 1, 1000, "withdrawConfirmations");
  int(
    o.withdrawBurialDepth,
    Math.max(o.withdrawConfirmations, o.network === "regtest" ? 0 : MIN_BURIAL_DEPTH),
    1000,
    "withdrawBurialDepth",
  );
  int(o.maxBackupFeeRateSatVb, Math.ceil(o.minFeeRateSatVb), 1000, "maxBackupFeeRateSatVb");
  int(o.tipSlackBlocks, 1, 10_000_000, "tipSlackBlocks");
  int(o.tipBlocksPerHour, 1, 100_000_000, "tipBlocksPerHour");
  check(
    typeof o.feeScript === "string" && /^([0-9a-f]{2})*$/.test(o.feeScript),
    "POLICY_INVALID",
    "policy feeScript must be lowercase hex",
  );
  if (o.withdrawFeeBps > 0) {
    check(
      o.feeScript.length > 0 && isPayableScript(Buffer.from(o.feeScript, "hex")),
      "POLICY_INVALID",
      "a withdrawal fee needs a standard feeScript",
    );
  }
  return o;
}

export function loadPolicy(file: string | undefined): EnclavePolicy {
  if (!file) return parsePolicy({});
  return parsePolicy(JSON.parse(readFileSync(file, "utf8")));
}

/** Canonical JSON: keys in sorted order, no whitespace. */
export function policyJson(p: EnclavePolicy): string {
  return JSON.stringify(Object.fromEntries(Object.entries(p).sort(([a], [b]) => a.localeCompare(b))));
}

export function policyHash(p: EnclavePolicy): Buffer {
  return createHash("sha256").update(policyJson(p)).digest();
}

/** The per-coin context the transaction policy functions (protocol/tx/policy.ts) take. */
export function coinContext(
  p: EnclavePolicy,
  coin: {
    outpoint: { txid: Uint8Array; vout: number };
    amountSat: bigint;
    sharedPublicKey: Uint8Array;
    initialLock: number;
    kickoff?: { txid: Uint8Array; amountSat: bigint };
  },
): CoinPolicyContext {
  return {
    outpoint: coin.outpoint,
    amountSat: coin.amountSat,
    sharedPublicKey: coin.sharedPublicKey,
    mode: p.backupMode,
    initialLock: coin.initialLock,
    interval: p.locktimeInterval,
    safetyMargin: p.lockSafetyMargin,
    minFeeRateSatVb: p.minFeeRateSatVb,
    maxBackupFeeRateSatVb: p.maxBackupFeeRateSatVb,
    kickoff: coin.kickoff,
  };
}
