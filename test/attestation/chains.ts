// Builds certificate chains with chosen flaws, and documents signed by their leaf, for negative tests.
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { type AttestationFields, encodeDocument } from "../../attestation/document.ts";
import { derToPem } from "../../attestation/roots.ts";
import {
  encodeName,
  type IssueOptions,
  issueCertificate,
  type KeyUsageName,
} from "../../attestation/x509.ts";

export interface CertSpec {
  ca: boolean;
  pathLen?: number;
  keyUsage?: KeyUsageName[] | null;
  curve?: "secp384r1" | "prime256v1";
  notBefore?: number;
  notAfter?: number;
  extraExtensions?: IssueOptions["extraExtensions"];
}

export interface Chain {
  ders: Uint8Array[];
  leafKey: KeyObject;
  rootPem: string;
}

export const T0 = Date.UTC(2030, 0, 1);

/** specs[0] is the self-signed root, the last one the leaf. */
export function buildChain(specs: CertSpec[]): Chain {
  const keys = specs.map((s) => generateKeyPairSync("ec", { namedCurve: s.curve ?? "secp384r1" }));
  const names = specs.map((_, i) => encodeName({ C: "US", O: "Chain Test", CN: `cert-${i}.test` }));
  const ders = specs.map((s, i) => {
    const issuer = i === 0 ? 0 : i - 1;
    const defaultUsage: KeyUsageName[] = s.ca
      ? ["keyCertSign", "cRLSign", "digitalSignature"]
      : ["digitalSignature"];
    return issueCertificate({
      serial: Uint8Array.of(i + 1),
      subject: names[i]!,
      issuer: names[issuer]!,
      publicKey: keys[i]!.publicKey,
      signingKey: keys[issuer]!.privateKey,
      notBefore: s.notBefore ?? T0 - 3600_000,
      notAfter: s.notAfter ?? T0 + 3 * 3600_000,
      ca: s.ca,
      ...(s.pathLen === undefined ? {} : { pathLen: s.pathLen }),
      keyUsage: s.keyUsage === null ? undefined : (s.keyUsage ?? defaultUsage),
      keyUsageCritical: s.ca,
      ...(s.extraExtensions ? { extraExtensions: s.extraExtensions } : {}),
    });
  });
  return { ders, leafKey: keys[keys.length - 1]!.privateKey, rootPem: derToPem(ders[0]!) };
}

export function fields(chain: Chain, over: Partial<AttestationFields> = {}): AttestationFields {
  const pcrs = new Map<number, Uint8Array>();
  for (let i = 0; i < 16; i++) pcrs.set(i, new Uint8Array(48).fill(i < 3 ? i + 1 : 0));
  return {
    moduleId: "i-sim0000000000000000-enc0000000000000000",
    digest: "SHA384",
    timestamp: T0,
    pcrs,
    certificate: chain.ders[chain.ders.length - 1]!,
    cabundle: chain.ders.slice(0, -1),
    publicKey: null,
    userData: null,
    nonce: null,
    ...over,
  };
}

export function documentFor(chain: Chain, over: Partial<AttestationFields> = {}): Uint8Array {
  return encodeDocument(fields(chain, over), chain.leafKey);
}
