// Simulator CA, SimulatorProvider and encoder: documents verify exactly like Nitro's (given the simulator
// root) and fail under the AWS root; chains with crafted flaws fail with the right check named.
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, renameSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { encodeCbor } from "../../attestation/cbor.ts";
import { oid } from "../../attestation/der.ts";
import { decodeDocument, PROTECTED_ES384, signCoseSign1, sigStructure } from "../../attestation/document.ts";
import { loadPcrPolicy } from "../../attestation/pcr-policy.ts";
import { AttestationError, SimulatorProvider } from "../../attestation/providers/index.ts";
import { encodeReceipt, erasedShareCommitment, receiptHash, ZERO_HASH } from "../../attestation/receipt.ts";
import { SIM_FILES, SimulatorCa } from "../../attestation/sim-ca.ts";
import { type VerificationResult, verifyAttestation } from "../../attestation/verify.ts";
import { parseCertificate } from "../../attestation/x509.ts";
import { G, pointBytes } from "../../protocol/encoding.ts";
import { buildChain, documentFor, fields, T0 } from "./chains.ts";

const failed = (r: VerificationResult) => r.failures.map((f) => f.check);
const tmp = () => mkdtempSync(path.join(tmpdir(), "sim-ca-"));
const PCRS = {
  pcr0: new Uint8Array(48).fill(0xa0),
  pcr1: new Uint8Array(48).fill(0xa1),
  pcr2: new Uint8Array(48).fill(0xa2),
};
const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");

function clock(start = Date.now()) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

test("the simulator CA persists root and intermediate (keys 0600) and re-issues the leaf at start", () => {
  const dir = tmp();
  const a = SimulatorCa.open(dir);
  for (const f of [SIM_FILES.rootKey, SIM_FILES.intermediateKey]) {
    assert.equal(statSync(path.join(dir, f)).mode & 0o777, 0o600, f);
  }
  assert.equal(readFileSync(path.join(dir, SIM_FILES.rootCert), "utf8"), a.rootPem());
  const leafA = a.leafFor("i-sim1-enc1");
  assert.equal(a.leafFor("i-sim1-enc1"), leafA, "the same leaf while it is fresh");
  const b = SimulatorCa.open(dir);
  assert.deepEqual(Buffer.from(b.rootDer), Buffer.from(a.rootDer), "root survives a restart");
  const leafB = b.leafFor("i-sim1-enc1");
  assert.deepEqual(Buffer.from(leafB.cabundle[1]!), Buffer.from(leafA.cabundle[1]!), "intermediate too");
  assert.notDeepEqual(Buffer.from(leafB.certificate), Buffer.from(leafA.certificate), "a new leaf at start");
  const root = parseCertificate(a.rootDer);
  assert.deepEqual(root.basicConstraints, { ca: true, pathLen: undefined });
  assert.equal(root.subjectCommonName, "simulator.nitro-enclaves");
  const leaf = parseCertificate(leafA.certificate);
  assert.equal(leaf.subjectCommonName, "i-sim1-enc1.simulator");
  assert.equal(leaf.notAfter - leaf.notBefore, 3 * 3600_000 + 60_000, "about three hours, like Nitro");
});

test("the leaf is renewed near its expiry and for a new module id; the intermediate near its own", () => {
  const c = clock(Date.UTC(2031, 5, 1));
  const dir = tmp();
  const ca = SimulatorCa.open(dir, { now: c.now });
  const first = ca.leafFor("m1");
  c.advance(90 * 60_000);
  assert.equal(ca.leafFor("m1"), first, "1.5 h left: kept");
  c.advance(45 * 60_000);
  const second = ca.leafFor("m1");
  assert.notEqual(second, first, "less than an hour left: renewed");
  assert.notEqual(ca.leafFor("m2"), second, "another module id gets its own leaf");
  const m2 = ca.leafFor("m2");
  assert.notEqual(ca.leafFor("m2", c.now() - 3600_000), m2, "a time before the leaf's start gets a new leaf");
  const intermediate = ca.leafFor("m2").cabundle[1]!;
  c.advance(30 * 86400_000);
  const later = ca.leafFor("m2");
  assert.notDeepEqual(Buffer.from(later.cabundle[1]!), Buffer.from(intermediate), "intermediate renewed");
  assert.deepEqual(Buffer.from(later.cabundle[0]!), Buffer.from(ca.rootDer), "root unchanged");
  // The renewed intermediate was written to disk: a restart uses it.
  const again = SimulatorCa.open(dir, { now: c.now });
  assert.deepEqual(Buffer.from(again.leafFor("m2").cabundle[1]!), Buffer.from(later.cabundle[1]!));
});

test("the simulator CA refuses damaged or exposed files instead of replacing a published root", () => {
  const dir = tmp();
  SimulatorCa.open(dir);
  chmodSync(path.join(dir, SIM_FILES.rootKey), 0o644);
  assert.throws(() => SimulatorCa.open(dir), /readable by others/);
  chmodSync(path.join(dir, SIM_FILES.rootKey), 0o600);
  // Intermediate key swapped for the root's: not the key of the certificate.
  const swapped = tmp();
  SimulatorCa.open(swapped);
  renameSync(path.join(swapped, SIM_FILES.rootKey), path.join(swapped, SIM_FILES.intermediateKey));
  assert.throws(() => SimulatorCa.open(swapped), /one is missing|is not the key of/);
  const gone = tmp();
  SimulatorCa.open(gone);
  renameSync(path.join(gone, SIM_FILES.rootCert), path.join(gone, "elsewhere.pem"));
  assert.throws(() => SimulatorCa.open(gone), /one is missing/);
  // An intermediate issued by another root.
  const mixed = tmp();
  const other = tmp();
  SimulatorCa.open(mixed);
  SimulatorCa.open(other);
  for (const f of [SIM_FILES.intermediateCert, SIM_FILES.intermediateKey]) {
    renameSync(path.join(other, f), path.join(mixed, f));
  }
  assert.throws(() => SimulatorCa.open(mixed), /was not issued by/);
});

test("simulator documents verify with the simulator root, say SIMULATOR, and fail under the AWS root", async () => {
  const ca = SimulatorCa.open(tmp());
  const provider = new SimulatorProvider({ ca, pcrs: PCRS });
  const nonce = new Uint8Array(32).fill(7);
  const userData = new Uint8Array(32).fill(8);
  const publicKey = pointBytes(G);
  const doc = await provider.attest({ nonce, userData, publicKey });
  assert.equal(doc[0], 0x84, "untagged like the NSM");
  const d = decodeDocument(doc);
  assert.match(d.moduleId, /^i-sim[0-9a-f]{16}-enc[0-9a-f]{16}$/);
  assert.equal(d.digest, "SHA384");
  assert.deepEqual([...d.pcrs.keys()], [...Array(16).keys()]);
  assert.ok(
    [...d.pcrs].every(([i, v]) => v.length === 48 && (i < 3 || v.every((x) => x === 0))),
    "every PCR is 48 bytes and PCR 3 onwards are zero",
  );
  assert.ok(
    Math.abs(d.timestamp - Date.now()) < 60_000,
    "the document's timestamp is within a minute of now",
  );
  assert.deepEqual(d.nonce, nonce);
  assert.deepEqual(d.publicKey, publicKey);

  const policy = loadPcrPolicy({
    releases: [{ name: "sim", pcr0: hexOf(PCRS.pcr0), pcr1: hexOf(PCRS.pcr1), pcr2: hexOf(PCRS.pcr2) }],
  });
  const ok = verifyAttestation(doc, {
    roots: { simulatorRootPem: ca.rootPem() },
    pcrPolicy: policy,
    expectedNonce: nonce,
    expectedUserData: userData,
  });
  assert.deepEqual(failed(ok), []);
  assert.equal(ok.valid, true);
  assert.equal(ok.simulator, true);
  assert.equal(ok.release, "sim");
  assert.match(ok.warnings[0]!, /^SIMULATOR/);
  assert.equal(verifyAttestation(doc, { roots: { aws: false, simulatorRootPem: ca.rootPem() } }).valid, true);

  const aws = verifyAttestation(doc, { pcrPolicy: policy });
  assert.deepEqual(failed(aws), ["chain.root_pinned"]);
  assert.equal(aws.simulator, false);
  // Another simulator's root is not this one.
  const stranger = verifyAttestation(doc, { roots: { simulatorRootPem: SimulatorCa.open(tmp()).rootPem() } });
  assert.deepEqual(failed(stranger), ["chain.root_pinned"]);
});

test("tagged simulator documents verify too", async () => {
  const ca = SimulatorCa.open(tmp());
  const doc = await new SimulatorProvider({ ca, pcrs: PCRS, tagged: true }).attest({});
  assert.equal(doc[0], 0xd2);
  const r = verifyAttestation(doc, { roots: { simulatorRootPem: ca.rootPem() } });
  assert.equal(r.valid, true);
  assert.equal(r.document!.cose.tagged, true);
  assert.equal(r.document!.nonce, null);
  assert.equal(r.document!.userData, null);
});

test("indefinite-length maps are accepted and the signature is checked over the bytes as received", () => {
  const chain = buildChain([{ ca: true }, { ca: true, pathLen: 0 }, { ca: false }]);
  const f = fields(chain, { nonce: new Uint8Array([1, 2, 3]) });
  const kv = (k: string, v: Parameters<typeof encodeCbor>[0]) => [encodeCbor(k), encodeCbor(v)];
  const pcrsIndef = Buffer.concat([
    Buffer.of(0xbf),
    ...[...f.pcrs].flatMap(([i, v]) => [encodeCbor(i), encodeCbor(v)]),
    Buffer.of(0xff),
  ]);
  const payload = new Uint8Array(
    Buffer.concat([
      Buffer.of(0xbf),
      ...kv("module_id", f.moduleId),
      ...kv("digest", f.digest),
      ...kv("timestamp", f.timestamp),
      encodeCbor("pcrs"),
      pcrsIndef,
      ...kv("certificate", f.certificate),
      ...kv("cabundle", f.cabundle),
      ...kv("public_key", null),
      ...kv("user_data", null),
      ...kv("nonce", f.nonce!),
      Buffer.of(0xff),
    ]),
  );
  const doc = signCoseSign1(payload, chain.leafKey);
  const r = verifyAttestation(doc, { at: T0, roots: { aws: false, simulatorRootPem: chain.rootPem } });
  assert.deepEqual(failed(r), []);
  assert.deepEqual(Buffer.from(r.document!.cose.payload), Buffer.from(payload), "payload kept as received");
  assert.deepEqual(r.document!.nonce, new Uint8Array([1, 2, 3]));
  // A signature over the definite-length re-encoding of the same map does not verify this document.
  const reencoded = decodeDocument(documentFor(chain, { nonce: new Uint8Array([1, 2, 3]) }));
  assert.notDeepEqual(Buffer.from(reencoded.cose.payload), Buffer.from(payload));
  const mixed = encodeCbor([PROTECTED_ES384, new Map(), payload, reencoded.cose.signature]);
  assert.deepEqual(failed(verifyAttestation(mixed, { at: T0, roots: { simulatorRootPem: chain.rootPem } })), [
    "cose.signature",
  ]);
  // An indefinite-length unprotected header is accepted as well.
  const sig = new Uint8Array(96);
  const indefHeader = new Uint8Array(
    Buffer.concat([
      Buffer.of(0x84),
      encodeCbor(PROTECTED_ES384),
      Buffer.of(0xbf, 0xff),
      encodeCbor(payload),
      encodeCbor(sig),
    ]),
  );
  const h = verifyAttestation(indefHeader, { at: T0, roots: { simulatorRootPem: chain.rootPem } });
  assert.equal(h.checks["cose.structure"], true);
  assert.equal(h.checks["cose.signature"], false);
  assert.equal(sigStructure(PROTECTED_ES384, payload).length > payload.length, true);
});

test("a deletion receipt in user_data verifies, and its chain link is checked", async () => {
  const ca = SimulatorCa.open(tmp());
  const provider = new SimulatorProvider({ ca, pcrs: PCRS });
  const base = {
    type: "key-update" as const,
    statechain: new Uint8Array(36).fill(5),
    erased: erasedShareCommitment(pointBytes(G.multiply(3n))),
    S2: pointBytes(G.multiply(4n)),
    log: new Uint8Array(32).fill(1),
  };
  const r1 = encodeReceipt({ ...base, epoch: 2, prev: ZERO_HASH, time: 1000 });
  const r2 = encodeReceipt({ ...base, epoch: 3, prev: receiptHash(r1), time: 2000 });
  const doc = await provider.attest({ userData: receiptHash(r2), nonce: new Uint8Array(16) });
  const roots = { simulatorRootPem: ca.rootPem() };
  const ok = verifyAttestation(doc, { roots, receipt: r2, previousReceipt: r1 });
  assert.deepEqual(failed(ok), []);
  assert.equal(ok.receipt?.epoch, 3);
  for (const c of ["user_data.receipt", "receipt.structure", "receipt.chain"])
    assert.equal(ok.checks[c], true, c);
  // The wrong receipt, or a previous receipt that is not the one linked.
  assert.deepEqual(failed(verifyAttestation(doc, { roots, receipt: r1 })), ["user_data.receipt"]);
  const r0 = encodeReceipt({ ...base, epoch: 1, prev: ZERO_HASH, time: 500 });
  assert.deepEqual(failed(verifyAttestation(doc, { roots, receipt: r2, previousReceipt: r0 })), [
    "receipt.chain",
  ]);
});

test("the provider refuses fields larger than a document can carry and PCRs of the wrong size", async () => {
  const ca = SimulatorCa.open(tmp());
  const p = new SimulatorProvider({ ca, pcrs: PCRS });
  await assert.rejects(
    p.attest({ nonce: new Uint8Array(1025) }),
    (e: unknown) => e instanceof AttestationError && e.code === "ATTESTATION_INPUT_TOO_LARGE",
  );
  assert.equal((await p.attest({ userData: new Uint8Array(1024) })).length > 1024, true);
  assert.throws(() => new SimulatorProvider({ ca, pcrs: { ...PCRS, pcr1: new Uint8Array(32) } }), /48 bytes/);
  const withPcr8 = new SimulatorProvider({
    ca,
    pcrs: { ...PCRS, others: new Map([[8, new Uint8Array(48).fill(8)]]) },
  });
  assert.deepEqual(decodeDocument(await withPcr8.attest({})).pcrs.get(8), new Uint8Array(48).fill(8));
});

// ---- crafted chains ----

function verifyChain(specs: Parameters<typeof buildChain>[0], at = T0): VerificationResult {
  const chain = buildChain(specs);
  return verifyAttestation(documentFor(chain), {
    at,
    roots: { aws: false, simulatorRootPem: chain.rootPem },
  });
}

test("a well-formed crafted chain verifies (the baseline for the negative cases below)", () => {
  const r = verifyChain([{ ca: true }, { ca: true, pathLen: 1 }, { ca: true, pathLen: 0 }, { ca: false }]);
  assert.deepEqual(failed(r), []);
  assert.equal(r.simulator, true);
});

test("path length: a CA with more CAs below it than allowed is refused as chain.path_length", () => {
  const r = verifyChain([{ ca: true }, { ca: true, pathLen: 0 }, { ca: true }, { ca: false }]);
  assert.deepEqual(failed(r), ["chain.path_length"]);
  assert.match(r.failures[0]!.message, /allows 0 CA certificates below it, the chain has 1/);
});

test("CA flags: an issuer that is not a CA, or a leaf that is one, is refused as chain.ca_flags", () => {
  assert.deepEqual(
    failed(verifyChain([{ ca: true }, { ca: false, keyUsage: ["keyCertSign"] }, { ca: false }])),
    ["chain.ca_flags"],
  );
  assert.deepEqual(
    failed(verifyChain([{ ca: true }, { ca: true }, { ca: true, keyUsage: ["digitalSignature"] }])),
    ["chain.ca_flags"],
  );
});

test("key usage: an issuer without keyCertSign or a leaf without digitalSignature is refused", () => {
  assert.deepEqual(
    failed(verifyChain([{ ca: true }, { ca: true, keyUsage: ["digitalSignature"] }, { ca: false }])),
    ["chain.key_usage"],
  );
  assert.deepEqual(failed(verifyChain([{ ca: true }, { ca: true, keyUsage: null }, { ca: false }])), [
    "chain.key_usage",
  ]);
  assert.deepEqual(
    failed(verifyChain([{ ca: true }, { ca: true }, { ca: false, keyUsage: ["nonRepudiation"] }])),
    ["chain.key_usage"],
  );
  assert.deepEqual(failed(verifyChain([{ ca: true }, { ca: true }, { ca: false, keyUsage: null }])), [
    "chain.key_usage",
  ]);
});

test("validity: an expired intermediate fails chain.validity even while the leaf is valid", () => {
  const r = verifyChain([{ ca: true }, { ca: true, notAfter: T0 - 1000 }, { ca: false }]);
  assert.deepEqual(failed(r), ["chain.validity"]);
  assert.match(r.failures[0]!.message, /certificate 1 \(intermediate\) expired/);
  // A document dated outside its leaf's validity.
  const chain = buildChain([{ ca: true }, { ca: true }, { ca: false }]);
  const early = documentFor(chain, { timestamp: T0 - 2 * 3600_000 });
  const e = verifyAttestation(early, { at: T0, roots: { simulatorRootPem: chain.rootPem } });
  assert.deepEqual(failed(e), ["timestamp.in_leaf_validity"]);
});

test("structure: an unknown critical extension or a non-P-384 key is refused as chain.structure", () => {
  const unknown = { oid: "1.3.6.1.4.1.99999.1", critical: true, value: oid("1.2.3") };
  assert.deepEqual(
    failed(verifyChain([{ ca: true }, { ca: true, extraExtensions: [unknown] }, { ca: false }])),
    ["chain.structure"],
  );
  // The same extension, not critical, is ignored as RFC 5280 says.
  assert.deepEqual(
    failed(
      verifyChain([
        { ca: true },
        { ca: true, extraExtensions: [{ ...unknown, critical: false }] },
        { ca: false },
      ]),
    ),
    [],
  );
  const p256 = verifyChain([{ ca: true }, { ca: true, curve: "prime256v1" }, { ca: false }]);
  assert.ok(
    failed(p256).includes("chain.structure"),
    `a P-256 certificate in the chain fails chain.structure (failed: ${failed(p256)})`,
  );
  assert.match(p256.failures.find((f) => f.check === "chain.structure")!.message, /P-384/);
});

test("a leaf that cannot be parsed leaves the dependent checks listed as not checked", () => {
  const chain = buildChain([{ ca: true }, { ca: false }]);
  const r = verifyAttestation(documentFor(chain, { certificate: new Uint8Array([0x30, 0x00]) }), {
    at: T0,
    roots: { simulatorRootPem: chain.rootPem },
  });
  assert.deepEqual(failed(r), ["chain.structure"]);
  assert.equal(r.valid, false);
  for (const c of ["chain.signatures", "cose.signature", "timestamp.in_leaf_validity"]) {
    assert.ok(r.notChecked.includes(c), c);
  }
});
