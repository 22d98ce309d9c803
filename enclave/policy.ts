// The co-signing policy parameters the enclave enforces (DESIGN.md 3.6). They are part of the enclave's
// identity: their canonical JSON is hashed into every identity statement, so an owner can compare the policy an
// enclave attests with the one the operator publishes. On Nitro they are baked into the image (measured);
// in simulator mode the host passes them at start.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { check } from "../protocol/errors.ts";
import type { CoinPolicyContext } from "../protocol/tx/policy.ts";
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
  depositTtlMs: 60 * 60_000,
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
  const o = { ...DEFAULT_POLICY, ...(json as Partial<EnclavePolicy>) };
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
    kickoff: coin.kickoff,
  };
}
