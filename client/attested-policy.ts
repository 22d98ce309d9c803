// The SE's protocol parameters as its enclave attests them (audit #18.5): a fresh attestation of the enclave's
// identity statement, whose policy hash must be the SHA-256 of the policy JSON served with it. Wallets take
// confirmations, locks and fee ceilings from here, never from the host's GetInfo, and add floors of their own.
import { createHash, type KeyObject } from "node:crypto";
import { decodeIdentityStatement } from "../attestation/statements.ts";
import { CertCache, type VerificationResult, verifyAttestation } from "../attestation/verify.ts";
import { instancePublicKey } from "../protocol/ecdsa2p/partial-statement.ts";
import {
  RingPedersenCache,
  readRingPedersen,
  type VerifiedRingPedersen,
  verifyRingPedersen,
} from "../protocol/ecdsa2p/ring-pedersen.ts";
import { ProtocolError } from "../protocol/errors.ts";
import type { OwnerContext } from "./owner.ts";
import { refuse } from "./se-client.ts";

export interface AttestedPolicy {
  /** The enclave instance the identity statement names. */
  instance: Buffer;
  policyHash: Buffer;
  network: string;
  backupMode: "absolute" | "kickoff";
  initLock: number;
  locktimeInterval: number;
  lockSafetyMargin: number;
  depositConfirmations: number;
  withdrawConfirmations: number;
  /** Confirmations before the SE erases a withdrawn coin's share and stops watching it (#19.4). */
  withdrawBurialDepth: number;
  minFeeRateSatVb: number;
  maxBackupFeeRateSatVb: number;
  /** The enclave instance's Ed25519 key, which signs every partial signature c3 it releases. */
  instanceKey: KeyObject;
  /** The instance's ring-Pedersen parameters, Π^prm checked: the owner proves its Paillier keys against them. */
  ringPedersen: VerifiedRingPedersen;
  verdict: VerificationResult;
}

/** Verified ring-Pedersen parameters by id: Π^prm (~0.3 s) is checked once per enclave instance. */
export const ringPedersenCache = new RingPedersenCache(16);

/** An attestation document failed verification: `failures` names every check that failed. */
export class AttestationRefusedError extends ProtocolError {
  override name = "AttestationRefusedError";
  constructor(
    code: string,
    what: string,
    readonly verdict: VerificationResult,
  ) {
    super(
      code,
      `${what} fails: ${[
        ...verdict.failures.map((f) => `${f.check} (${f.message})`),
        ...verdict.notChecked.map((c) => `${c} (not checked)`),
      ].join(", ")}`,
      "precondition",
    );
  }

  get failedChecks(): string[] {
    return this.verdict.failures.map((f) => f.check);
  }
}

/** Parsed (public) certificates shared by every verification: a chain's CA certificates are parsed once. */
export const certificateCache = new CertCache();

/**
 * How the wallet verifies every attestation document: its trusted roots and PCR policy. Without a PCR policy it
 * refuses to judge at all (NO_PCR_POLICY), whatever else the trust allows (allowDebug included): a trusted root
 * signs any enclave's code, so the measurements are what identify the enclave (audit #18.11).
 */
export function attestationOptions(ctx: OwnerContext) {
  const t = ctx.trust;
  refuse(
    t.pcrPolicy,
    "NO_PCR_POLICY",
    "no PCR policy: the wallet cannot tell which enclave code it would trust (give --pcrs, or trust the simulator)",
  );
  return {
    certCache: certificateCache,
    roots: { aws: t.aws ?? true, simulatorRootPem: t.simulatorRootPem },
    pcrPolicy: t.pcrPolicy,
    allowDebug: t.allowDebug,
    at: ctx.now(),
  };
}

/** Wallet floors whatever the SE attests: a coin counts as there only once buried this deep (0 only on regtest). */
export function minConfirmations(ctx: OwnerContext): number {
  const regtest = ctx.network.bech32 === "bcrt";
  const floor = ctx.minConfirmations ?? (ctx.network.bech32 === "bc" ? 3 : 1);
  return regtest ? Math.max(0, floor) : Math.max(1, floor);
}

/** The wallet's own ceiling for the fee rate of a backup or kick-off it is handed (sat/vB). */
export const DEFAULT_MAX_BACKUP_FEE_RATE = 50;

const nat = (o: Record<string, unknown>, k: string): number => {
  const v = o[k];
  refuse(
    typeof v === "number" && Number.isFinite(v) && v >= 0,
    "POLICY_ATTESTED",
    `the attested policy has no valid ${k}`,
  );
  return v;
};

export async function attestedPolicy(ctx: OwnerContext): Promise<AttestedPolicy> {
  const options = attestationOptions(ctx); // NO_PCR_POLICY before anything is asked of the SE
  const nonce = Buffer.from(ctx.rng(32));
  const res = await ctx.se.call("getAttestation", { nonce });
  refuse(res.identity.length > 0, "IDENTITY_MISSING", "the SE served no attested identity statement");
  const verdict = verifyAttestation(res.document, {
    ...options,
    expectedNonce: nonce,
    expectedUserData: createHash("sha256").update(res.identity).digest(),
  });
  if (!verdict.valid)
    throw new AttestationRefusedError("IDENTITY_ATTESTATION", "the enclave's identity attestation", verdict);
  const identity = decodeIdentityStatement(res.identity);
  const policyHash = createHash("sha256").update(res.policyJson).digest();
  refuse(
    policyHash.equals(Buffer.from(identity.policy)),
    "POLICY_HASH",
    "the policy the SE serves is not the one its enclave attests",
  );
  let p: Record<string, unknown>;
  try {
    p = JSON.parse(res.policyJson);
  } catch {
    throw new ProtocolError("POLICY_ATTESTED", "the attested policy is not JSON", "precondition");
  }
  refuse(
    p.backupMode === "absolute" || p.backupMode === "kickoff",
    "POLICY_ATTESTED",
    "the attested policy has no valid backupMode",
  );
  // The parameters served beside the statement must be the ones it names (the host cannot swap in its own).
  const rpPublic = readRingPedersen(res.ringPedersen);
  refuse(
    Buffer.from(rpPublic.id, "hex").equals(Buffer.from(identity.rp)),
    "RING_PEDERSEN_ATTESTED",
    "the ring-Pedersen parameters the SE serves are not the ones its enclave attests",
  );
  return {
    instance: Buffer.from(identity.instance),
    policyHash,
    network: String(p.network),
    backupMode: p.backupMode,
    initLock: nat(p, "initLock"),
    locktimeInterval: nat(p, "locktimeInterval"),
    lockSafetyMargin: nat(p, "lockSafetyMargin"),
    depositConfirmations: nat(p, "depositConfirmations"),
    withdrawConfirmations: nat(p, "withdrawConfirmations"),
    withdrawBurialDepth: nat(p, "withdrawBurialDepth"),
    minFeeRateSatVb: nat(p, "minFeeRateSatVb"),
    maxBackupFeeRateSatVb: nat(p, "maxBackupFeeRateSatVb"),
    instanceKey: instancePublicKey(identity.key),
    ringPedersen: verifyRingPedersen(res.ringPedersen, ringPedersenCache),
    verdict,
  };
}

const identities = new WeakMap<object, Promise<AttestedPolicy>>();

/**
 * The attested identity of the enclave behind `ctx.se`, verified once per client and kept: its instance key and
 * ring-Pedersen parameters are what signing and key generation need. `fresh` verifies again (a restarted enclave
 * is a new instance).
 */
export function enclaveIdentity(ctx: OwnerContext, opts: { fresh?: boolean } = {}): Promise<AttestedPolicy> {
  let p = opts.fresh ? undefined : identities.get(ctx.se);
  if (!p) {
    p = attestedPolicy(ctx);
    identities.set(ctx.se, p);
    p.catch(() => identities.delete(ctx.se));
  }
  return p;
}
