import assert from "node:assert/strict";
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import {
  DerError,
  namedBits,
  oid,
  readDer,
  readElement,
  readOid,
  readTime,
  time,
} from "../../attestation/der.ts";
import { decodeDocument } from "../../attestation/document.ts";
import {
  AWS_NITRO_ROOT_G1_DER,
  AWS_NITRO_ROOT_G1_PEM,
  AWS_NITRO_ROOT_G1_SHA256,
  derToPem,
  pemToDer,
  sha256Hex,
} from "../../attestation/roots.ts";
import {
  encodeName,
  issueCertificate,
  KEY_USAGE,
  OID,
  parseCertificate,
  signatureVerifies,
} from "../../attestation/x509.ts";
import { doc, nitroDir } from "./fixtures.ts";

const hex = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s+/g, ""), "hex"));

test("the AWS root is pinned: embedded PEM, fixture file and the README fingerprint agree", () => {
  const readme = readFileSync(path.join(nitroDir, "..", "README.md"), "utf8");
  const m = /SHA-256 fingerprint of the certificate \(DER\): `([0-9A-F]{64})`/.exec(readme);
  assert.ok(m, "fingerprint found in the fixtures README");
  assert.equal(AWS_NITRO_ROOT_G1_SHA256, m[1]!.toLowerCase());
  assert.equal(sha256Hex(AWS_NITRO_ROOT_G1_DER), AWS_NITRO_ROOT_G1_SHA256);
  const fixture = pemToDer(readFileSync(path.join(nitroDir, "aws_nitro_root_g1.pem"), "utf8"));
  assert.deepEqual(Buffer.from(fixture), Buffer.from(AWS_NITRO_ROOT_G1_DER));
  assert.deepEqual(
    Buffer.from(pemToDer(derToPem(AWS_NITRO_ROOT_G1_DER))),
    Buffer.from(AWS_NITRO_ROOT_G1_DER),
  );
  assert.ok(AWS_NITRO_ROOT_G1_PEM.startsWith("-----BEGIN CERTIFICATE-----"), "the pinned AWS root is PEM");
  assert.throws(() => pemToDer(AWS_NITRO_ROOT_G1_PEM + AWS_NITRO_ROOT_G1_PEM), /more than one certificate/);
  assert.throws(() => pemToDer("hello"), /not a PEM certificate/);
  assert.throws(
    () => pemToDer("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"),
    /not a readable certificate/,
  );
});

test("the DER reader refuses non-minimal, indefinite and overlong lengths", () => {
  assert.throws(() => readDer(hex("30 80 00 00")), /indefinite length/);
  assert.throws(() => readDer(hex("04 81 05 0102030405")), /not minimal/);
  assert.throws(() => readDer(hex("04 82 0005 0102030405")), /not minimal/);
  assert.throws(() => readDer(hex("04 05 0102")), /longer than its container/);
  assert.throws(() => readDer(hex("04 01 00 00")), /trailing bytes/);
  assert.throws(() => readElement(hex("04"), 0), DerError);
  assert.equal(readOid(readDer(oid("1.2.840.10045.4.3.3"))), "1.2.840.10045.4.3.3");
  assert.equal(readOid(readDer(oid("2.5.29.19"))), "2.5.29.19");
  assert.throws(() => readOid(readDer(hex("06 02 2a 86"))), /truncated/);
  assert.throws(() => readOid(readDer(hex("06 03 2a 80 01"))), /not minimal/);
});

test("times: UTCTime before 2050, GeneralizedTime after, both read back; bad dates refused", () => {
  for (const t of [
    Date.UTC(2024, 8, 7, 14, 37, 36),
    Date.UTC(2049, 11, 31, 23, 59, 59),
    Date.UTC(2055, 0, 1),
  ]) {
    const node = readDer(time(t));
    assert.equal(node.tag, t < Date.UTC(2050, 0, 1) ? 0x17 : 0x18);
    assert.equal(readTime(node), t);
  }
  assert.throws(
    () => readTime(readDer(hex(`17 0d ${Buffer.from("241307143736Z").toString("hex")}`))),
    /out of range/,
  );
  assert.throws(
    () => readTime(readDer(hex(`17 0d ${Buffer.from("2409071437360").toString("hex")}`))),
    /malformed/,
  );
});

test("key usage bits are written the DER way (trailing zero bits dropped)", () => {
  // digitalSignature | keyCertSign | cRLSign = 0x86 with one unused bit, as in the AWS root.
  assert.equal(Buffer.from(namedBits([0, 5, 6])).toString("hex"), "03020186");
  assert.equal(Buffer.from(namedBits([5])).toString("hex"), "03020204");
  assert.equal(Buffer.from(namedBits([0, 1])).toString("hex"), "030206c0");
});

test("parses the real Nitro chain: validity, CA flags, path lengths and key usage", () => {
  const d = decodeDocument(doc("nondebug"));
  const certs = [...d.cabundle, d.certificate].map(parseCertificate);
  assert.deepEqual(
    certs.map((c) => c.basicConstraints),
    [
      { ca: true, pathLen: undefined },
      { ca: true, pathLen: 2 },
      { ca: true, pathLen: 1 },
      { ca: true, pathLen: 0 },
      { ca: false, pathLen: undefined },
    ],
  );
  const leaf = certs[4]!;
  assert.equal(leaf.notBefore, 1725719856_000);
  assert.equal(leaf.notAfter, 1725730659_000);
  assert.deepEqual([...leaf.keyUsage!].sort(), [KEY_USAGE.digitalSignature, KEY_USAGE.nonRepudiation]);
  assert.deepEqual([...certs[3]!.keyUsage!], [KEY_USAGE.keyCertSign]);
  assert.equal(certs[0]!.subjectCommonName, "aws.nitro-enclaves");
  assert.ok(
    certs.every((c) => c.curve === OID.secp384r1 && c.signatureAlgorithm === OID.ecdsaWithSha384),
    "every certificate in the chain is secp384r1 signed with ECDSA-SHA384",
  );
  for (let i = 1; i < certs.length; i++) {
    assert.ok(signatureVerifies(certs[i]!, certs[i - 1]!.publicKey), `certificate ${i} verifies`);
    assert.ok(!signatureVerifies(certs[i]!, certs[i]!.publicKey), `certificate ${i} is not self-signed`);
    assert.deepEqual(Buffer.from(certs[i]!.issuer), Buffer.from(certs[i - 1]!.subject));
  }
  // The same numbers as OpenSSL reads them.
  const x = new X509Certificate(d.certificate);
  assert.equal(Date.parse(x.validTo), leaf.notAfter);
  assert.equal(x.ca, false);
});

test("issued certificates are valid X.509 for OpenSSL and parse back to what was asked", () => {
  const root = generateKeyPairSync("ec", { namedCurve: "secp384r1" });
  const sub = generateKeyPairSync("ec", { namedCurve: "secp384r1" });
  const rootName = encodeName({ C: "US", O: "Test", OU: "T", CN: "root.test" });
  const t = Date.UTC(2030, 0, 1);
  const rootDer = issueCertificate({
    serial: new Uint8Array([0x01, 0x02]),
    subject: rootName,
    issuer: rootName,
    publicKey: root.publicKey,
    signingKey: root.privateKey,
    notBefore: t,
    notAfter: t + 40 * 365 * 86400_000,
    ca: true,
    keyUsage: ["keyCertSign", "cRLSign", "digitalSignature"],
    keyUsageCritical: true,
    subjectKeyId: true,
  });
  const subDer = issueCertificate({
    serial: new Uint8Array([0x80, 0x00]),
    subject: encodeName({ C: "US", ST: "X", L: "Y", O: "Test", OU: "T", CN: "leaf.test" }),
    issuer: rootName,
    publicKey: sub.publicKey,
    signingKey: root.privateKey,
    notBefore: t,
    notAfter: t + 3600_000,
    ca: false,
    keyUsage: ["digitalSignature"],
    keyUsageCritical: false,
  });
  const rx = new X509Certificate(rootDer);
  const sx = new X509Certificate(subDer);
  assert.ok(rx.verify(rx.publicKey), "root is self-signed");
  assert.ok(
    sx.verify(rx.publicKey),
    "the sub-certificate's signature verifies with the root's key (Node's X509Certificate)",
  );
  assert.ok(sx.checkIssued(rx), "Node's X509Certificate sees the sub-certificate as issued by the root");
  assert.equal(rx.ca, true);
  assert.equal(sx.ca, false);
  assert.equal(sx.serialNumber, "8000");
  assert.equal(Date.parse(rx.validTo), t + 40 * 365 * 86400_000, "GeneralizedTime after 2049");
  const p = parseCertificate(subDer);
  assert.deepEqual(p.basicConstraints, { ca: false, pathLen: undefined });
  assert.deepEqual([...p.keyUsage!], [0]);
  assert.equal(p.subjectCommonName, "leaf.test");
  assert.ok(
    signatureVerifies(p, parseCertificate(rootDer).publicKey),
    "the leaf's signature verifies with the root's public key",
  );
});

test("certificate parsing refuses what a chain check must not accept", () => {
  const d = decodeDocument(doc("nondebug"));
  const leaf = Buffer.from(d.certificate);
  // Outer signature algorithm changed (it is outside the signed part): refused by the parser itself.
  const outer = leaf.lastIndexOf(Buffer.from("06082a8648ce3d040303", "hex"));
  const tampered = Buffer.from(leaf);
  tampered[outer + 9] = 0x02; // ecdsa-with-SHA256
  assert.throws(() => parseCertificate(tampered), /signature algorithm differs/);
  assert.throws(() => parseCertificate(leaf.subarray(0, leaf.length - 1)), DerError);
  assert.throws(() => parseCertificate(Buffer.concat([leaf, Buffer.of(0)])), /trailing/);
});
