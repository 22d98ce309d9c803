// Admission of a peer enclave into the replica set (DESIGN.md 4.1, issue #23): a member talks to a peer only once
// the peer's Nitro attestation document shows (a) a trusted root (the AWS Nitro root in `nitro` mode, only the
// simulator root we were given in `simulator` mode), (b) a fresh document, (c) the same PCR0/1/2 as ours, or a
// release named in `acceptedReleases` (the hook for upgrade records, issue #24), never a debug enclave outside
// the simulator, and (d) a binding to this handshake: public_key = the peer's Ed25519 instance key, user_data =
// the hash of the handshake transcript for the peer's role, nonce = our own ephemeral key (our challenge).
// The signature checks of the document are verifyAttestation's (attestation/verify.ts); this file only picks the
// roots, compares what it says, and names the first failure with a stable code:
//   PEER_ATTESTATION  malformed document, broken certificate chain or COSE signature
//   PEER_ROOT         the chain does not end in the root this mode trusts
//   PEER_STALE        older than maxAgeMs, dated in the future, or a certificate out of its validity
//   PEER_DEBUG        a debug enclave (all-zero PCRs) outside the simulator
//   PEER_PCRS         PCRs that are neither ours nor an accepted release's
//   PEER_BINDING      public_key, user_data or nonce do not bind this instance key and this handshake
//   ADMISSION_CONFIG  the policy itself is unusable (no simulator root in simulator mode, …)
import { isZero, matchRelease, type PcrRelease } from "../../attestation/pcr-policy.ts";
import { type CertCache, FUTURE_SKEW_MS, verifyAttestation } from "../../attestation/verify.ts";
import { equalCT } from "../../protocol/encoding.ts";
import { ProtocolError } from "../../protocol/errors.ts";

export type AdmissionCode =
  | "PEER_ATTESTATION"
  | "PEER_ROOT"
  | "PEER_STALE"
  | "PEER_DEBUG"
  | "PEER_PCRS"
  | "PEER_BINDING"
  | "ADMISSION_CONFIG";

export class AdmissionError extends ProtocolError {
  override name = "AdmissionError";
  constructor(
    override readonly code: AdmissionCode,
    message: string,
  ) {
    super(code, message, code === "ADMISSION_CONFIG" ? "internal" : "unauthenticated");
  }
}

export interface Pcrs {
  pcr0: Uint8Array;
  pcr1: Uint8Array;
  pcr2: Uint8Array;
}

/** A peer's handshake documents are made for that handshake, so they are young: minutes, not hours. */
export const DEFAULT_PEER_MAX_AGE_MS = 5 * 60_000;
/** The release name an admitted peer with our own PCRs gets. */
export const SAME_RELEASE = "self";

export interface AdmissionPolicy {
  mode: "simulator" | "nitro";
  /** Our own measurements: a peer running our code has the same. */
  pcrs: Pcrs;
  /** The one simulator root accepted (PEM); required in simulator mode, refused in nitro mode. */
  simulatorRootPem?: string;
  /**
   * Issue #24's hook: further releases a peer may run, e.g. those named by committed upgrade records. Empty by
   * default: only our own PCRs are admitted.
   */
  acceptedReleases?: readonly PcrRelease[];
  /** Maximum age of a peer's document; default DEFAULT_PEER_MAX_AGE_MS. */
  maxAgeMs?: number;
  /** Shared parsed certificates (the intermediate and root change rarely). */
  certCache?: CertCache;
}

/** What the handshake says the document must bind. */
export interface PeerEvidence {
  document: Uint8Array;
  /** The Ed25519 instance key (32 bytes) the peer claims in the handshake. */
  instanceKey: Uint8Array;
  /** The user_data the document must carry (the transcript hash for the peer's role). */
  userData: Uint8Array;
  /** The nonce the document must carry (our ephemeral public key). */
  nonce: Uint8Array;
}

export interface AdmittedPeer {
  /** The peer's verified Ed25519 instance key, 32 bytes. */
  instanceKey: Buffer;
  pcrs: Pcrs;
  /** SAME_RELEASE, or the name of the accepted release the peer runs. */
  release: string;
  /** True when the chain ends in the simulator root: no hardware guarantee. */
  simulator: boolean;
  moduleId: string;
  /** The document's time (ms). */
  timestamp: number;
}

const refuse = (code: AdmissionCode, message: string): never => {
  throw new AdmissionError(code, message);
};

/** verifyAttestation's checks by the code their failure gets, in the order they are reported. */
const CHECK_CODES: [AdmissionCode, string[]][] = [
  ["PEER_ATTESTATION", ["cose.structure", "payload.structure"]],
  ["PEER_ROOT", ["chain.root_pinned"]],
  [
    "PEER_ATTESTATION",
    [
      "chain.structure",
      "chain.signatures",
      "chain.ca_flags",
      "chain.key_usage",
      "chain.path_length",
      "cose.signature",
      "timestamp.in_leaf_validity",
    ],
  ],
  ["PEER_STALE", ["chain.validity", "timestamp.max_age"]],
  ["PEER_DEBUG", ["pcrs.not_debug"]],
];

function checkPolicy(policy: AdmissionPolicy): void {
  const { pcr0, pcr1, pcr2 } = policy.pcrs;
  if (![pcr0, pcr1, pcr2].every((p) => p.length === 48))
    refuse("ADMISSION_CONFIG", "our own PCR0/1/2 must be 48 bytes each (SHA-384)");
  if (policy.mode === "simulator") {
    if (!policy.simulatorRootPem)
      refuse("ADMISSION_CONFIG", "simulator mode admits peers only under a simulator root given explicitly");
  } else if (policy.mode === "nitro") {
    if (policy.simulatorRootPem !== undefined)
      refuse("ADMISSION_CONFIG", "nitro mode never trusts a simulator root");
    if (isZero(pcr0))
      refuse("ADMISSION_CONFIG", "a debug enclave (PCR0 zero) admits no peers outside the simulator");
  } else refuse("ADMISSION_CONFIG", `unknown attestation mode ${String(policy.mode)}`);
}

/**
 * Decides whether the peer that sent `evidence` may join: returns its verified instance key and PCRs, or throws
 * AdmissionError naming the first check that failed. `now` is the verification time (ms).
 */
export function admitPeer(evidence: PeerEvidence, policy: AdmissionPolicy, now: number): AdmittedPeer {
  checkPolicy(policy);
  const simulatorMode = policy.mode === "simulator";
  const verdict = verifyAttestation(evidence.document, {
    at: now,
    roots: simulatorMode ? { aws: false, simulatorRootPem: policy.simulatorRootPem! } : { aws: true },
    allowDebug: simulatorMode,
    maxAgeMs: policy.maxAgeMs ?? DEFAULT_PEER_MAX_AGE_MS,
    ...(policy.certCache ? { certCache: policy.certCache } : {}),
  });
  for (const [code, checks] of CHECK_CODES) {
    const failure = verdict.failures.find((f) => checks.includes(f.check));
    if (failure) refuse(code, `peer attestation: ${failure.message}`);
  }
  const doc = verdict.document;
  if (!verdict.valid || !doc) {
    const what = [
      ...verdict.failures.map((f) => f.message),
      ...verdict.notChecked.map((c) => `${c} not run`),
    ];
    return refuse("PEER_ATTESTATION", `peer attestation did not verify: ${what.join("; ") || "no document"}`);
  }
  if (doc.timestamp > now + FUTURE_SKEW_MS)
    refuse(
      "PEER_STALE",
      `peer attestation is dated ${Math.round((doc.timestamp - now) / 1000)} s in the future (a clock is off)`,
    );

  // Measurements: our own release, or one accepted explicitly.
  if (doc.digest !== "SHA384") refuse("PEER_PCRS", `peer PCR digest is ${doc.digest}, not SHA384`);
  const pcrs: Pcrs = { pcr0: doc.pcrs.get(0)!, pcr1: doc.pcrs.get(1)!, pcr2: doc.pcrs.get(2)! };
  if (!pcrs.pcr0 || !pcrs.pcr1 || !pcrs.pcr2)
    refuse("PEER_PCRS", "peer attestation lacks PCR0, PCR1 or PCR2");
  if (!simulatorMode && isZero(pcrs.pcr0))
    refuse("PEER_DEBUG", "peer is a debug enclave (PCR0 zero): refused outside the simulator");
  const releases: PcrRelease[] = [{ name: SAME_RELEASE, ...policy.pcrs }, ...(policy.acceptedReleases ?? [])];
  const release = matchRelease({ releases }, doc.pcrs);
  if (!release)
    refuse(
      "PEER_PCRS",
      `peer PCR0 ${Buffer.from(pcrs.pcr0).toString("hex").slice(0, 16)}… (with PCR1/2) is neither ours nor an accepted release's`,
    );

  // Binding to this handshake.
  if (evidence.instanceKey.length !== 32) refuse("PEER_BINDING", "a peer instance key is 32 bytes (Ed25519)");
  if (!doc.publicKey || !equalCT(doc.publicKey, evidence.instanceKey))
    refuse("PEER_BINDING", "peer attestation's public_key is not the instance key the peer presents");
  if (!doc.userData || !equalCT(doc.userData, evidence.userData))
    refuse("PEER_BINDING", "peer attestation's user_data does not bind this handshake transcript");
  if (!doc.nonce || !equalCT(doc.nonce, evidence.nonce))
    refuse("PEER_BINDING", "peer attestation's nonce is not our handshake challenge");

  return {
    instanceKey: Buffer.from(evidence.instanceKey),
    pcrs: { pcr0: Buffer.from(pcrs.pcr0), pcr1: Buffer.from(pcrs.pcr1), pcr2: Buffer.from(pcrs.pcr2) },
    release: release!.name,
    simulator: verdict.simulator,
    moduleId: doc.moduleId,
    timestamp: doc.timestamp,
  };
}
