// X.509 certificates as Nitro uses them: P-384 keys, ecdsa-with-SHA384 signatures, basic constraints and key
// usage. `parseCertificate` reads the fields a chain check needs from the DER itself (node:crypto does not
// expose path length, key usage bits or critical extensions); `issueCertificate` writes certificates for the
// simulator CA.
import { createHash, createPublicKey, type KeyObject, sign, verify } from "node:crypto";
import {
  bitStringBytes,
  boolean,
  children,
  DerError,
  type DerNode,
  expectTag,
  explicit,
  namedBits,
  octetString,
  oid,
  printableString,
  readBitString,
  readBoolean,
  readDer,
  readOid,
  readTime,
  readUnsigned,
  seq,
  set,
  TAG,
  time,
  tlv,
  unsigned,
  unsignedFromBytes,
  utf8String,
} from "./der.ts";

export const OID = {
  ecdsaWithSha384: "1.2.840.10045.4.3.3",
  ecPublicKey: "1.2.840.10045.2.1",
  secp384r1: "1.3.132.0.34",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectKeyIdentifier: "2.5.29.14",
  authorityKeyIdentifier: "2.5.29.35",
  crlDistributionPoints: "2.5.29.31",
  countryName: "2.5.4.6",
  stateOrProvinceName: "2.5.4.8",
  localityName: "2.5.4.7",
  organizationName: "2.5.4.10",
  organizationalUnitName: "2.5.4.11",
  commonName: "2.5.4.3",
} as const;

/** Extensions this verifier understands; any other extension marked critical makes a certificate unusable. */
const KNOWN_EXTENSIONS = new Set<string>([
  OID.basicConstraints,
  OID.keyUsage,
  OID.subjectKeyIdentifier,
  OID.authorityKeyIdentifier,
  OID.crlDistributionPoints,
]);

export const KEY_USAGE = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
} as const;
export type KeyUsageName = keyof typeof KEY_USAGE;

export interface ParsedCertificate {
  der: Uint8Array;
  /** The signed part, exactly as received. */
  tbs: Uint8Array;
  signatureAlgorithm: string;
  signature: Uint8Array;
  serial: bigint;
  issuer: Uint8Array;
  subject: Uint8Array;
  subjectCommonName: string | undefined;
  notBefore: number;
  notAfter: number;
  /** Named curve OID of the subject key. */
  curve: string;
  publicKey: KeyObject;
  basicConstraints: { ca: boolean; pathLen: number | undefined } | undefined;
  /** Key usage bit indexes, or undefined when the extension is absent. */
  keyUsage: Set<number> | undefined;
  unknownCriticalExtensions: string[];
}

export class CertificateError extends DerError {
  override name = "CertificateError";
}

function commonName(name: DerNode): string | undefined {
  for (const rdn of children(expectTag(name, TAG.SEQUENCE, "name"))) {
    for (const atv of children(expectTag(rdn, TAG.SET, "relative distinguished name"))) {
      const [type, value] = children(expectTag(atv, TAG.SEQUENCE, "attribute"));
      if (type && value && readOid(type) === OID.commonName)
        return Buffer.from(value.content).toString("utf8");
    }
  }
  return undefined;
}

function algorithm(node: DerNode | undefined, what: string): string {
  const parts = children(expectTag(node, TAG.SEQUENCE, what));
  const alg = readOid(parts[0] ?? fail(`${what} has no algorithm`));
  // ecdsa-with-SHA384 has absent parameters (RFC 5758); anything after the OID is refused for it.
  if (alg === OID.ecdsaWithSha384 && parts.length !== 1) throw new CertificateError(`${what} has parameters`);
  return alg;
}

function fail(message: string): never {
  throw new CertificateError(message);
}

/** Parses a DER certificate strictly. Throws CertificateError (code DER_INVALID) naming what is wrong. */
export function parseCertificate(der: Uint8Array): ParsedCertificate {
  const top = children(expectTag(readDer(der), TAG.SEQUENCE, "certificate"));
  if (top.length !== 3) fail("a certificate has three parts");
  const [tbsNode, outerAlg, sigNode] = top as [DerNode, DerNode, DerNode];
  const t = children(expectTag(tbsNode, TAG.SEQUENCE, "TBSCertificate"));
  let i = 0;
  const version = t[i]?.tag === 0xa0 ? readUnsigned(children(t[i++]!)[0] ?? fail("empty version")) : 0n;
  if (version !== 2n) fail("only X.509 version 3 certificates are accepted");
  const serial = readUnsigned(t[i++] ?? fail("serial number missing"));
  const innerAlg = algorithm(t[i++], "TBS signature algorithm");
  const issuer = expectTag(t[i++], TAG.SEQUENCE, "issuer");
  const validity = children(expectTag(t[i++], TAG.SEQUENCE, "validity"));
  if (validity.length !== 2) fail("validity must hold two times");
  const notBefore = readTime(validity[0]!);
  const notAfter = readTime(validity[1]!);
  const subject = expectTag(t[i++], TAG.SEQUENCE, "subject");
  const spki = expectTag(t[i++], TAG.SEQUENCE, "subject public key info");
  const [spkiAlg] = children(spki);
  const algParts = children(expectTag(spkiAlg, TAG.SEQUENCE, "public key algorithm"));
  if (algParts.length !== 2 || readOid(algParts[0]!) !== OID.ecPublicKey)
    fail("the public key is not an EC key");
  const curve = readOid(algParts[1]!);
  // Optional issuerUniqueID [1] and subjectUniqueID [2] are not used by Nitro and refused here.
  let basicConstraints: ParsedCertificate["basicConstraints"];
  let keyUsage: Set<number> | undefined;
  const unknownCriticalExtensions: string[] = [];
  if (i < t.length) {
    const extWrap = t[i++]!;
    if (extWrap.tag !== 0xa3) fail("unexpected field after the subject public key info");
    const exts = children(expectTag(children(extWrap)[0], TAG.SEQUENCE, "extensions"));
    const seen = new Set<string>();
    for (const ext of exts) {
      const parts = children(expectTag(ext, TAG.SEQUENCE, "extension"));
      const id = readOid(parts[0] ?? fail("extension without an identifier"));
      if (seen.has(id)) fail(`extension ${id} appears twice`);
      seen.add(id);
      let critical = false;
      let k = 1;
      if (parts[k]?.tag === TAG.BOOLEAN) {
        critical = readBoolean(parts[k++]!);
        if (!critical) fail("DER forbids encoding the default critical = FALSE");
      }
      const value = expectTag(parts[k++], TAG.OCTET_STRING, "extension value").content;
      if (k !== parts.length) fail("extension has extra fields");
      if (id === OID.basicConstraints) basicConstraints = parseBasicConstraints(value);
      else if (id === OID.keyUsage) keyUsage = parseKeyUsage(value);
      else if (critical && !KNOWN_EXTENSIONS.has(id)) unknownCriticalExtensions.push(id);
    }
  }
  if (i !== t.length) fail("unexpected fields at the end of the TBSCertificate");
  const outer = algorithm(outerAlg, "certificate signature algorithm");
  if (outer !== innerAlg) fail("the signature algorithm differs between the certificate and its signed part");
  const { bits, unused } = readBitString(sigNode);
  if (unused !== 0) fail("signature bit string has padding");
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: Buffer.from(spki.raw), format: "der", type: "spki" });
  } catch {
    fail("the subject public key cannot be read");
  }
  return {
    der,
    tbs: tbsNode.raw,
    signatureAlgorithm: outer,
    signature: bits,
    serial,
    issuer: issuer.raw,
    subject: subject.raw,
    subjectCommonName: commonName(subject),
    notBefore,
    notAfter,
    curve,
    publicKey,
    basicConstraints,
    keyUsage,
    unknownCriticalExtensions,
  };
}

function parseBasicConstraints(value: Uint8Array): { ca: boolean; pathLen: number | undefined } {
  const parts = children(expectTag(readDer(value), TAG.SEQUENCE, "basic constraints"));
  let k = 0;
  let ca = false;
  if (parts[k]?.tag === TAG.BOOLEAN) {
    ca = readBoolean(parts[k++]!);
    if (!ca) fail("DER forbids encoding the default cA = FALSE");
  }
  let pathLen: number | undefined;
  if (parts[k]?.tag === TAG.INTEGER) {
    const n = readUnsigned(parts[k++]!);
    if (n > 255n) fail("path length constraint is out of range");
    pathLen = Number(n);
  }
  if (k !== parts.length) fail("basic constraints has extra fields");
  return { ca, pathLen };
}

function parseKeyUsage(value: Uint8Array): Set<number> {
  const { bits, unused } = readBitString(readDer(value));
  const out = new Set<number>();
  const total = bits.length * 8 - unused;
  for (let b = 0; b < total; b++) if (bits[b >> 3]! & (0x80 >> (b & 7))) out.add(b);
  return out;
}

/** True when `cert`'s signature verifies under `issuerKey` (ecdsa-with-SHA384 only). */
export function signatureVerifies(cert: ParsedCertificate, issuerKey: KeyObject): boolean {
  if (cert.signatureAlgorithm !== OID.ecdsaWithSha384) return false;
  try {
    return verify("sha384", cert.tbs, { key: issuerKey, dsaEncoding: "der" }, cert.signature);
  } catch {
    return false;
  }
}

// ---- issuing (simulator CA) ----

export interface NameAttributes {
  C?: string;
  ST?: string;
  L?: string;
  O?: string;
  OU?: string;
  CN: string;
}

/** A distinguished name in the attribute order Nitro's intermediate and leaf certificates use. */
export function encodeName(n: NameAttributes): Uint8Array {
  const rdn = (type: string, value: Uint8Array) => set(seq(oid(type), value));
  const parts: Uint8Array[] = [];
  if (n.C) parts.push(rdn(OID.countryName, printableString(n.C)));
  if (n.ST) parts.push(rdn(OID.stateOrProvinceName, utf8String(n.ST)));
  if (n.L) parts.push(rdn(OID.localityName, utf8String(n.L)));
  if (n.O) parts.push(rdn(OID.organizationName, utf8String(n.O)));
  if (n.OU) parts.push(rdn(OID.organizationalUnitName, utf8String(n.OU)));
  parts.push(rdn(OID.commonName, utf8String(n.CN)));
  return seq(...parts);
}

export interface IssueOptions {
  /** Positive serial number, big-endian (at most 20 bytes). */
  serial: Uint8Array;
  subject: Uint8Array;
  issuer: Uint8Array;
  /** The subject's public key. */
  publicKey: KeyObject;
  /** The issuer's private key (P-384). */
  signingKey: KeyObject;
  notBefore: number;
  notAfter: number;
  ca: boolean;
  pathLen?: number;
  /** Key usage bits; undefined leaves the extension out. */
  keyUsage: KeyUsageName[] | undefined;
  /** Mark key usage critical (Nitro's CA certificates do; its leaf does not). */
  keyUsageCritical: boolean;
  /** Subject key identifier of the issuer, for the authority key identifier extension. */
  authorityKeyId?: Uint8Array;
  /** Include a subject key identifier (CA certificates). */
  subjectKeyId?: boolean;
  /** Further extensions, DER value as given (tests use this for unknown critical extensions). */
  extraExtensions?: { oid: string; critical: boolean; value: Uint8Array }[];
}

/** RFC 5280 method 1: SHA-1 of the subject public key bits. */
export function keyIdentifier(publicKey: KeyObject): Uint8Array {
  const spki = readDer(publicKey.export({ type: "spki", format: "der" }));
  const { bits } = readBitString(children(spki)[1]!);
  return new Uint8Array(createHash("sha1").update(bits).digest());
}

function extension(id: string, critical: boolean, value: Uint8Array): Uint8Array {
  return critical ? seq(oid(id), boolean(true), octetString(value)) : seq(oid(id), octetString(value));
}

/** Builds and signs a certificate with ecdsa-with-SHA384. */
export function issueCertificate(o: IssueOptions): Uint8Array {
  if (o.serial.length === 0 || o.serial.length > 20 || o.serial.every((b) => b === 0)) {
    throw new CertificateError("serial number must be 1 to 20 bytes and positive");
  }
  const alg = seq(oid(OID.ecdsaWithSha384));
  const spki = new Uint8Array(o.publicKey.export({ type: "spki", format: "der" }));
  const bc = o.ca ? seq(boolean(true), ...(o.pathLen === undefined ? [] : [unsigned(o.pathLen)])) : seq();
  const exts = [extension(OID.basicConstraints, true, bc)];
  if (o.authorityKeyId)
    exts.push(extension(OID.authorityKeyIdentifier, false, seq(tlv(0x80, o.authorityKeyId))));
  if (o.subjectKeyId)
    exts.push(extension(OID.subjectKeyIdentifier, false, octetString(keyIdentifier(o.publicKey))));
  if (o.keyUsage) {
    exts.push(extension(OID.keyUsage, o.keyUsageCritical, namedBits(o.keyUsage.map((k) => KEY_USAGE[k]))));
  }
  for (const x of o.extraExtensions ?? []) exts.push(extension(x.oid, x.critical, x.value));
  const tbs = seq(
    explicit(0, unsigned(2)),
    unsignedFromBytes(o.serial),
    alg,
    o.issuer,
    seq(time(o.notBefore), time(o.notAfter)),
    o.subject,
    spki,
    explicit(3, seq(...exts)),
  );
  const sig = sign("sha384", tbs, { key: o.signingKey, dsaEncoding: "der" });
  return seq(tbs, alg, bitStringBytes(sig));
}
