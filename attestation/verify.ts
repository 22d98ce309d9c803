// Verifies a Nitro attestation document and reports every step by a stable name:
//   cose.structure, payload.structure        envelope and payload decode strictly
//   chain.root_pinned                        cabundle[0] is the pinned AWS root (or the simulator root given)
//   chain.structure                          every certificate parses: X.509 v3, P-384, ecdsa-with-SHA384,
//                                            no unknown critical extension
//   chain.signatures                         each certificate is issued (name and signature) by the one before
//   chain.validity                           every certificate is valid at the chosen time
//   chain.ca_flags, chain.key_usage,         issuers are CAs allowed to sign certificates, the leaf is not a CA
//   chain.path_length                        and may sign; no CA has more CAs below it than its path length
//   cose.signature                           ES384 by the leaf over the payload bytes as received
//   timestamp.in_leaf_validity, .max_age     the document was made while the leaf was valid, and recently
//   pcrs.not_debug, pcrs.policy              not a debug enclave (unless allowed); a known release
//   nonce, user_data, user_data.receipt      the caller's nonce; user_data as expected / = SHA-256(receipt)
//   receipt.structure, receipt.chain         the receipt decodes; it follows the previous receipt
import { verify } from "node:crypto";
import { equalCT } from "../protocol/encoding.ts";
import {
  type DecodedDocument,
  DocumentError,
  decodeCoseSign1,
  decodePayload,
  sigStructure,
} from "./document.ts";
import { isZero, matchRelease, type PcrPolicy } from "./pcr-policy.ts";
import { type DeletionReceipt, decodeReceipt, receiptHash, verifyReceiptChain } from "./receipt.ts";
import { AWS_NITRO_ROOT_G1_DER, pemToDer, sha256Hex } from "./roots.ts";
import { KEY_USAGE, OID, type ParsedCertificate, parseCertificate, signatureVerifies } from "./x509.ts";

/** Default maximum document age: the lifetime of a Nitro leaf certificate. */
export const DEFAULT_MAX_AGE_MS = 3 * 3600_000;
/** A document dated further than this after the verification time gets a warning (clock skew). */
export const FUTURE_SKEW_MS = 2 * 60_000;

export interface VerifyOptions {
  /** Verification time (Date or milliseconds since the epoch); default now. */
  at?: Date | number;
  /** Trusted roots: the pinned AWS Nitro root (default on) and, only if given, a simulator root. */
  roots?: { aws?: boolean; simulatorRootPem?: string };
  pcrPolicy?: PcrPolicy;
  /** Accept debug enclaves (PCR0/1/2 all zero). Default false. */
  allowDebug?: boolean;
  expectedNonce?: Uint8Array;
  /** Deletion receipt (or other statement) whose SHA-256 must be the document's user_data. */
  receipt?: Uint8Array;
  /** The receipt just before `receipt` from the same enclave instance, to check the chain link. */
  previousReceipt?: Uint8Array;
  expectedUserData?: Uint8Array;
  /** Maximum age of the document at the verification time; default DEFAULT_MAX_AGE_MS. */
  maxAgeMs?: number;
  certCache?: CertCache;
}

export interface CheckFailure {
  check: string;
  message: string;
}

export interface VerificationResult {
  valid: boolean;
  /** True when the chain ends in the simulator root: no hardware guarantee at all. */
  simulator: boolean;
  /** Every check that ran, by name, and whether it passed. */
  checks: Record<string, boolean>;
  failures: CheckFailure[];
  /** Checks that had to run but could not, because one they depend on failed. */
  notChecked: string[];
  warnings: string[];
  /** The release of the PCR policy that matched. */
  release: string | undefined;
  receipt: DeletionReceipt | undefined;
  document: DecodedDocument | null;
}

/**
 * Parsed certificates and verified issuer → subject signatures, keyed by the SHA-256 of the DER. Sharing one
 * across verifications skips re-parsing and re-verifying the chain, which changes rarely. Results depend only
 * on the bytes, so a cache cannot make a verdict differ; validity times are still checked every time.
 */
export class CertCache {
  private readonly certs = new Map<string, ParsedCertificate>();
  private readonly issued = new Set<string>();
  constructor(readonly maxEntries = 512) {}

  parse(der: Uint8Array): { key: string; cert: ParsedCertificate } {
    const key = sha256Hex(der);
    let cert = this.certs.get(key);
    if (!cert) {
      cert = parseCertificate(der);
      if (this.certs.size >= this.maxEntries) this.certs.clear();
      this.certs.set(key, cert);
    }
    return { key, cert };
  }

  signedBy(
    cert: { key: string; cert: ParsedCertificate },
    issuer: { key: string; cert: ParsedCertificate },
  ): boolean {
    const pair = `${issuer.key}>${cert.key}`;
    if (this.issued.has(pair)) return true;
    const ok = signatureVerifies(cert.cert, issuer.cert.publicKey);
    if (ok) {
      if (this.issued.size >= this.maxEntries) this.issued.clear();
      this.issued.add(pair);
    }
    return ok;
  }
}

/** The pinned root, parsed once: it is part of the verifier, not of the document. */
const AWS_ROOT_ENTRY = {
  key: sha256Hex(AWS_NITRO_ROOT_G1_DER),
  cert: parseCertificate(AWS_NITRO_ROOT_G1_DER),
};

const iso = (ms: number) => new Date(ms).toISOString();
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

function roleOf(i: number, n: number): string {
  if (i === n - 1) return "leaf certificate";
  if (i === 0) return "root certificate";
  return `certificate ${i} (intermediate)`;
}

export function verifyAttestation(doc: Uint8Array, opts: VerifyOptions = {}): VerificationResult {
  const at = opts.at === undefined ? Date.now() : typeof opts.at === "number" ? opts.at : opts.at.getTime();
  const checks: Record<string, boolean> = {};
  const failures: CheckFailure[] = [];
  const warnings: string[] = [];
  const required: string[] = ["cose.structure", "payload.structure"];
  const result = (document: DecodedDocument | null, extra: Partial<VerificationResult> = {}) => {
    const notChecked = required.filter((c) => !(c in checks));
    return {
      valid: failures.length === 0 && notChecked.length === 0,
      simulator: false,
      checks,
      failures,
      notChecked,
      warnings,
      release: undefined,
      receipt: undefined,
      document,
      ...extra,
    };
  };
  const pass = (name: string) => {
    checks[name] = true;
  };
  const fail = (name: string, message: string) => {
    checks[name] = false;
    failures.push({ check: name, message });
  };
  const outcome = (name: string, problems: string[]) => {
    if (problems.length === 0) pass(name);
    else fail(name, problems.join("; "));
  };

  // Structure.
  let document: DecodedDocument;
  try {
    const cose = decodeCoseSign1(doc);
    pass("cose.structure");
    document = { ...decodePayload(cose.payload), cose };
    pass("payload.structure");
  } catch (e) {
    if (!(e instanceof DocumentError)) throw e;
    fail(e.check, e.message);
    return result(null);
  }
  required.push(
    "chain.root_pinned",
    "chain.structure",
    "chain.signatures",
    "chain.validity",
    "chain.ca_flags",
    "chain.key_usage",
    "chain.path_length",
    "cose.signature",
    "timestamp.in_leaf_validity",
    "timestamp.max_age",
    "pcrs.not_debug",
  );

  // Root.
  const useAws = opts.roots?.aws ?? true;
  let simRoot: Uint8Array | undefined;
  if (opts.roots?.simulatorRootPem !== undefined) simRoot = pemToDer(opts.roots.simulatorRootPem);
  const anchor = document.cabundle[0]!;
  let simulator = false;
  if (useAws && sameBytes(anchor, AWS_NITRO_ROOT_G1_DER)) pass("chain.root_pinned");
  else if (simRoot && sameBytes(anchor, simRoot)) {
    simulator = true;
    pass("chain.root_pinned");
  } else {
    const trusted = [useAws ? "the AWS Nitro root G1" : "", simRoot ? "the simulator root given" : ""].filter(
      Boolean,
    );
    fail(
      "chain.root_pinned",
      trusted.length === 0
        ? "no root is trusted (AWS root disabled and no simulator root given)"
        : `cabundle[0] (SHA-256 ${sha256Hex(anchor).slice(0, 16)}…) is not ${trusted.join(" or ")}`,
    );
  }

  // Certificates: parse everything we can.
  const cache = opts.certCache ?? new CertCache();
  const ders = [...document.cabundle, document.certificate];
  const n = ders.length;
  const parsed: ({ key: string; cert: ParsedCertificate } | undefined)[] = ders.map((der) => {
    if (sameBytes(der, AWS_NITRO_ROOT_G1_DER)) return AWS_ROOT_ENTRY;
    try {
      return cache.parse(der);
    } catch {
      return undefined;
    }
  });
  const structural: string[] = [];
  parsed.forEach((p, i) => {
    if (!p) structural.push(`${roleOf(i, n)} cannot be parsed as an X.509 v3 certificate`);
    else {
      if (p.cert.curve !== OID.secp384r1) structural.push(`${roleOf(i, n)} does not have a P-384 key`);
      if (p.cert.signatureAlgorithm !== OID.ecdsaWithSha384) {
        structural.push(`${roleOf(i, n)} is not signed with ecdsa-with-SHA384`);
      }
      if (p.cert.unknownCriticalExtensions.length > 0) {
        structural.push(
          `${roleOf(i, n)} has an unknown critical extension ${p.cert.unknownCriticalExtensions[0]}`,
        );
      }
    }
  });
  outcome("chain.structure", structural);
  const leaf = parsed[n - 1]?.cert;

  if (parsed.every((p) => p !== undefined)) {
    const certs = parsed as { key: string; cert: ParsedCertificate }[];
    const sig: string[] = [];
    const validity: string[] = [];
    const caFlags: string[] = [];
    const keyUsage: string[] = [];
    const pathLen: string[] = [];
    certs.forEach((c, i) => {
      const role = roleOf(i, n);
      const cert = c.cert;
      if (i > 0) {
        const issuer = certs[i - 1]!;
        if (!sameBytes(cert.issuer, issuer.cert.subject))
          sig.push(`${role}'s issuer is not ${roleOf(i - 1, n)}`);
        else if (!cache.signedBy(c, issuer))
          sig.push(`${role}'s signature does not verify under ${roleOf(i - 1, n)}`);
      }
      if (at < cert.notBefore) validity.push(`${role} is not valid before ${iso(cert.notBefore)}`);
      if (at > cert.notAfter) validity.push(`${role} expired at ${iso(cert.notAfter)}`);
      const bc = cert.basicConstraints;
      if (i < n - 1) {
        if (!bc?.ca) caFlags.push(`${role} is not a CA but issued ${roleOf(i + 1, n)}`);
        if (!cert.keyUsage?.has(KEY_USAGE.keyCertSign)) {
          keyUsage.push(`${role} is not allowed to sign certificates (key usage)`);
        }
        // CAs between this one and the leaf (RFC 5280 section 6.1.4 (m)).
        const below = n - 2 - i;
        if (bc?.pathLen !== undefined && below > bc.pathLen) {
          pathLen.push(`${role} allows ${bc.pathLen} CA certificates below it, the chain has ${below}`);
        }
      } else {
        if (bc?.ca) caFlags.push("the leaf certificate is a CA certificate");
        if (!cert.keyUsage?.has(KEY_USAGE.digitalSignature)) {
          keyUsage.push("the leaf certificate is not allowed to make digital signatures (key usage)");
        }
      }
    });
    outcome("chain.signatures", sig);
    outcome("chain.validity", validity);
    outcome("chain.ca_flags", caFlags);
    outcome("chain.key_usage", keyUsage);
    outcome("chain.path_length", pathLen);
  }

  // COSE signature by the leaf, over the bytes as received.
  if (leaf) {
    let ok = false;
    if (leaf.curve === OID.secp384r1) {
      try {
        ok = verify(
          "sha384",
          sigStructure(document.cose.protectedHeader, document.cose.payload),
          { key: leaf.publicKey, dsaEncoding: "ieee-p1363" },
          document.cose.signature,
        );
      } catch {
        ok = false;
      }
    }
    if (ok) pass("cose.signature");
    else
      fail(
        "cose.signature",
        "the document's ES384 signature does not verify under the leaf certificate's key",
      );
    if (document.timestamp < leaf.notBefore || document.timestamp > leaf.notAfter) {
      fail(
        "timestamp.in_leaf_validity",
        `document time ${iso(document.timestamp)} is outside the leaf certificate's validity ${iso(leaf.notBefore)} – ${iso(leaf.notAfter)}`,
      );
    } else pass("timestamp.in_leaf_validity");
  }

  const maxAge = opts.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
  if (at - document.timestamp > maxAge) {
    fail(
      "timestamp.max_age",
      `document is ${Math.round((at - document.timestamp) / 1000)} s old, more than the ${Math.round(maxAge / 1000)} s allowed`,
    );
  } else pass("timestamp.max_age");
  // A document dated after the verification time is not stale, and timestamp.in_leaf_validity already bounds
  // its date by the leaf's validity at that time; it still deserves a word, as one of the clocks is off.
  if (document.timestamp > at + FUTURE_SKEW_MS) {
    warnings.push(
      `document time ${iso(document.timestamp)} is ${Math.round((document.timestamp - at) / 1000)} s after the verification time`,
    );
  }

  // Measurements.
  const debug = [0, 1, 2].every((i) => isZero(document.pcrs.get(i)!));
  if (!debug) pass("pcrs.not_debug");
  else if (opts.allowDebug) {
    pass("pcrs.not_debug");
    warnings.push(
      "DEBUG enclave (PCR0/1/2 are zero): its memory can be read by the host; accepted on request",
    );
  } else
    fail(
      "pcrs.not_debug",
      "debug enclave: PCR0, PCR1 and PCR2 are all zero (debug mode allows reading its memory)",
    );
  let release: string | undefined;
  if (opts.pcrPolicy) {
    required.push("pcrs.policy");
    if (document.digest !== "SHA384")
      fail("pcrs.policy", `PCR digest is ${document.digest}, the policy pins SHA384`);
    else if (debug && opts.allowDebug) {
      pass("pcrs.policy");
      warnings.push("debug enclave: its zero PCRs identify no release, so the PCR policy could not apply");
    } else {
      release = matchRelease(opts.pcrPolicy, document.pcrs)?.name;
      if (release !== undefined) pass("pcrs.policy");
      else fail("pcrs.policy", "PCR0/1/2 (and PCR8 where pinned) match no release of the PCR policy");
    }
  } else {
    warnings.push("no PCR policy given: the enclave's code was not checked against any release");
  }

  // Caller's expectations.
  if (opts.expectedNonce) {
    required.push("nonce");
    if (!document.nonce) fail("nonce", "the document carries no nonce");
    else if (!equalCT(document.nonce, opts.expectedNonce))
      fail("nonce", "the document's nonce is not the one expected");
    else pass("nonce");
  }
  if (opts.expectedUserData) {
    required.push("user_data");
    if (document.userData && equalCT(document.userData, opts.expectedUserData)) pass("user_data");
    else fail("user_data", "the document's user_data is not the one expected");
  }
  let receipt: DeletionReceipt | undefined;
  if (opts.receipt) {
    required.push("user_data.receipt", "receipt.structure");
    const h = receiptHash(opts.receipt);
    if (document.userData && equalCT(document.userData, h)) pass("user_data.receipt");
    else fail("user_data.receipt", "the document's user_data is not SHA-256 of the receipt given");
    try {
      receipt = decodeReceipt(opts.receipt);
      pass("receipt.structure");
    } catch (e) {
      fail("receipt.structure", (e as Error).message);
    }
    if (opts.previousReceipt) {
      required.push("receipt.chain");
      const chain = verifyReceiptChain([opts.receipt], { previous: opts.previousReceipt });
      outcome(
        "receipt.chain",
        chain.failures.map((f) => f.message),
      );
    }
  }
  if (simulator) warnings.unshift("SIMULATOR: signed by a simulator root, not by AWS Nitro hardware");
  return result(document, { simulator, release, receipt });
}
