// The verifier against the real AWS Nitro documents in ../shared/fixtures/nitro.
import assert from "node:assert/strict";
import { test } from "node:test";
import { encodeCbor } from "../../attestation/cbor.ts";
import {
  type AttestationFields,
  decodeDocument,
  encodePayload,
  PROTECTED_ES384,
} from "../../attestation/document.ts";
import { loadPcrPolicy, PcrPolicyError } from "../../attestation/pcr-policy.ts";
import { encodeReceipt } from "../../attestation/receipt.ts";
import { derToPem } from "../../attestation/roots.ts";
import { CertCache, type VerificationResult, verifyAttestation } from "../../attestation/verify.ts";
import { doc, insideMs, NITRO, type NitroName } from "./fixtures.ts";

const ALL_CHECKS = [
  "cose.structure",
  "payload.structure",
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
];

const failed = (r: VerificationResult) => r.failures.map((f) => f.check);
const hexOf = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** The document with its payload re-encoded after `edit`, keeping the original (now wrong) signature. */
function tamper(name: NitroName, edit: (f: AttestationFields) => void): Uint8Array {
  const d = decodeDocument(doc(name));
  edit(d);
  return encodeCbor([PROTECTED_ES384, new Map(), encodePayload(d), d.cose.signature]);
}

function policyFor(name: NitroName, release = "v-test"): ReturnType<typeof loadPcrPolicy> {
  const d = decodeDocument(doc(name));
  return loadPcrPolicy({
    releases: [
      {
        name: release,
        pcr0: hexOf(d.pcrs.get(0)!),
        pcr1: hexOf(d.pcrs.get(1)!),
        pcr2: hexOf(d.pcrs.get(2)!),
      },
    ],
  });
}

for (const name of Object.keys(NITRO) as NitroName[]) {
  const f = NITRO[name];
  test(`${name}: valid inside its window, every check named and passed`, () => {
    for (const at of [insideMs(name), f.from * 1000, f.to * 1000, new Date((f.from + 3600) * 1000)]) {
      const r = verifyAttestation(doc(name), { at, allowDebug: f.debug, maxAgeMs: 4 * 3600_000 });
      assert.deepEqual(failed(r), [], `at ${String(at)}`);
      assert.equal(r.valid, true);
      assert.equal(r.simulator, false);
      assert.deepEqual(Object.keys(r.checks).sort(), [...ALL_CHECKS].sort());
      assert.ok(Object.values(r.checks).every(Boolean), `every check passes (${JSON.stringify(r.checks)})`);
    }
  });

  test(`${name}: invalid (expired / not yet valid) outside its window`, () => {
    const after = verifyAttestation(doc(name), { at: (f.to + 1) * 1000, allowDebug: f.debug });
    assert.equal(after.valid, false);
    assert.ok(
      failed(after).includes("chain.validity"),
      `after the chain's validity ends, chain.validity fails (failed: ${failed(after)})`,
    );
    assert.match(
      after.failures.find((x) => x.check === "chain.validity")!.message,
      /leaf certificate expired at/,
    );
    const before = verifyAttestation(doc(name), { at: (f.from - 1) * 1000, allowDebug: f.debug });
    assert.equal(before.valid, false);
    assert.ok(
      failed(before).includes("chain.validity"),
      `before the chain's validity starts, chain.validity fails (failed: ${failed(before)})`,
    );
    assert.match(before.failures.find((x) => x.check === "chain.validity")!.message, /not valid before/);
    // Now, years later.
    assert.ok(
      failed(verifyAttestation(doc(name), { allowDebug: f.debug })).includes("chain.validity"),
      "checked at the current time, years after the document, chain.validity fails",
    );
  });
}

test("debug documents are refused by default and accepted only with debug allowed", () => {
  for (const name of ["debug", "evervault"] as const) {
    const refused = verifyAttestation(doc(name), { at: insideMs(name) });
    assert.equal(refused.valid, false);
    assert.deepEqual(failed(refused), ["pcrs.not_debug"]);
    const allowed = verifyAttestation(doc(name), { at: insideMs(name), allowDebug: true });
    assert.equal(allowed.valid, true);
    assert.ok(
      allowed.warnings.some((w) => /DEBUG enclave/.test(w)),
      `a debug document allowed through carries a DEBUG enclave warning (${allowed.warnings})`,
    );
    // A release policy cannot name a debug enclave; with debug allowed it does not block it either.
    const withPolicy = verifyAttestation(doc(name), {
      at: insideMs(name),
      allowDebug: true,
      pcrPolicy: policyFor("nondebug"),
    });
    assert.equal(withPolicy.valid, true);
    assert.equal(withPolicy.checks["pcrs.policy"], true);
  }
  // allowDebug does not turn a production enclave into a failure.
  assert.equal(
    verifyAttestation(doc("nondebug"), { at: insideMs("nondebug"), allowDebug: true }).valid,
    true,
  );
});

test("PCR policy: a matching release passes and is named; other PCRs or a pinned PCR8 mismatch fail", () => {
  const at = insideMs("nondebug");
  const ok = verifyAttestation(doc("nondebug"), { at, pcrPolicy: policyFor("nondebug", "release-7") });
  assert.equal(ok.valid, true);
  assert.equal(ok.release, "release-7");
  assert.equal(ok.checks["pcrs.policy"], true);
  assert.ok(
    !ok.warnings.some((w) => /no PCR policy/.test(w)),
    `with a PCR policy there is no "no PCR policy" warning (${ok.warnings})`,
  );

  const d = decodeDocument(doc("nondebug"));
  const other = {
    name: "other",
    pcr0: "ab".repeat(48),
    pcr1: hexOf(d.pcrs.get(1)!),
    pcr2: hexOf(d.pcrs.get(2)!),
  };
  const bad = verifyAttestation(doc("nondebug"), { at, pcrPolicy: loadPcrPolicy({ releases: [other] }) });
  assert.deepEqual(failed(bad), ["pcrs.policy"]);

  const pinned8 = {
    name: "signed",
    pcr0: hexOf(d.pcrs.get(0)!),
    pcr1: hexOf(d.pcrs.get(1)!),
    pcr2: hexOf(d.pcrs.get(2)!),
    pcr8: "11".repeat(48),
  };
  const r8 = verifyAttestation(doc("nondebug"), { at, pcrPolicy: loadPcrPolicy({ releases: [pinned8] }) });
  assert.deepEqual(failed(r8), ["pcrs.policy"]);
  const ok8 = loadPcrPolicy({ releases: [{ ...pinned8, pcr8: hexOf(d.pcrs.get(8)!) }] });
  // PCR8 of this document is zero: pinning zeros for PCR8 alone is allowed and matches.
  assert.equal(verifyAttestation(doc("nondebug"), { at, pcrPolicy: ok8 }).valid, true);
  // Without a policy the verdict says the code was not checked.
  assert.ok(
    verifyAttestation(doc("nondebug"), { at }).warnings.some((w) => /no PCR policy/.test(w)),
    "without a PCR policy the verdict warns that the code was not checked",
  );
});

test("PCR policy files are validated", () => {
  const pcr = `${"00".repeat(47)}01`;
  const good = { name: "a", pcr0: pcr, pcr1: pcr, pcr2: pcr };
  assert.equal(loadPcrPolicy(JSON.stringify({ releases: [good] })).releases[0]!.name, "a");
  const bad: [unknown, RegExp][] = [
    ["{", /not valid JSON/],
    [[], /must be an object/],
    [{ releases: [] }, /non-empty releases/],
    [{ releases: [good], extra: 1 }, /unknown PCR policy field extra/],
    [{ releases: [{ ...good, pcr0: "zz" }] }, /releases\[0\]\.pcr0 must be 96 hex/],
    [{ releases: [{ ...good, pcr1: pcr.slice(2) }] }, /pcr1 must be 96 hex/],
    [{ releases: [{ ...good, pcr9: pcr }] }, /unknown field pcr9/],
    [{ releases: [{ ...good, name: "" }] }, /name must be text/],
    [{ releases: [good, good] }, /appears twice/],
    [
      { releases: [{ name: "dbg", pcr0: "0".repeat(96), pcr1: "0".repeat(96), pcr2: "0".repeat(96) }] },
      /debug/,
    ],
  ];
  for (const [input, re] of bad) {
    assert.throws(
      () => loadPcrPolicy(typeof input === "string" ? input : JSON.stringify(input)),
      (e: unknown) => e instanceof PcrPolicyError && re.test(e.message),
      String(re),
    );
  }
});

test("nonce and user_data: the expected values pass, anything else is refused by name", () => {
  const at = insideMs("nondebug");
  const ones = new Uint8Array(1024).fill(1);
  const ok = verifyAttestation(doc("nondebug"), { at, expectedNonce: ones, expectedUserData: ones });
  assert.equal(ok.valid, true);
  assert.equal(ok.checks.nonce, true);
  assert.equal(ok.checks.user_data, true);
  const wrong = new Uint8Array(1024).fill(1);
  wrong[1023] = 2;
  assert.deepEqual(failed(verifyAttestation(doc("nondebug"), { at, expectedNonce: wrong })), ["nonce"]);
  assert.deepEqual(failed(verifyAttestation(doc("nondebug"), { at, expectedNonce: ones.subarray(1) })), [
    "nonce",
  ]);
  assert.deepEqual(failed(verifyAttestation(doc("nondebug"), { at, expectedUserData: wrong })), [
    "user_data",
  ]);
  // evervault's document has a 256-byte nonce and no public key.
  const ev = decodeDocument(doc("evervault"));
  assert.equal(ev.publicKey, null);
  assert.equal(ev.nonce!.length, 256);
  const r = verifyAttestation(doc("evervault"), {
    at: insideMs("evervault"),
    allowDebug: true,
    expectedNonce: ev.nonce!,
  });
  assert.equal(r.valid, true);
});

test("a wrong receipt is refused: user_data is not its hash", () => {
  const receipt = encodeReceipt({
    type: "erasure",
    statechain: new Uint8Array(36),
    epoch: 3,
    erased: new Uint8Array(32).fill(9),
    S2: null,
    prev: new Uint8Array(32),
    log: new Uint8Array(32),
    time: 1725719859545,
  });
  const r = verifyAttestation(doc("nondebug"), { at: insideMs("nondebug"), receipt });
  assert.deepEqual(failed(r), ["user_data.receipt"]);
  assert.equal(r.checks["receipt.structure"], true);
  assert.equal(r.receipt?.epoch, 3);
  const garbage = verifyAttestation(doc("nondebug"), {
    at: insideMs("nondebug"),
    receipt: new Uint8Array([1, 2]),
  });
  assert.deepEqual(failed(garbage), ["user_data.receipt", "receipt.structure"]);
});

test("wrong root: the AWS root switched off, or a different root given, is refused as chain.root_pinned", () => {
  const at = insideMs("nondebug");
  const noAws = verifyAttestation(doc("nondebug"), { at, roots: { aws: false } });
  assert.deepEqual(failed(noAws), ["chain.root_pinned"]);
  assert.match(noAws.failures[0]!.message, /no root is trusted/);
  // An intermediate of the real chain passed as "simulator root" does not match cabundle[0].
  const d = decodeDocument(doc("nondebug"));
  const other = verifyAttestation(doc("nondebug"), {
    at,
    roots: { aws: false, simulatorRootPem: derToPem(d.cabundle[1]!) },
  });
  assert.deepEqual(failed(other), ["chain.root_pinned"]);
  assert.equal(other.simulator, false);
  // A forged root in place of AWS's: pin fails (and the chain breaks under it).
  const forged = tamper("nondebug", (f) => {
    f.cabundle[0] = f.cabundle[1]!;
  });
  assert.ok(
    failed(verifyAttestation(forged, { at })).includes("chain.root_pinned"),
    "a document whose bundle starts with another certificate than the pinned root fails chain.root_pinned",
  );
});

test("truncated chains are refused with the chain check named", () => {
  const at = insideMs("nondebug");
  const noMiddle = verifyAttestation(
    tamper("nondebug", (f) => {
      f.cabundle.splice(2, 1);
    }),
    { at },
  );
  assert.ok(
    failed(noMiddle).includes("chain.signatures"),
    `a bundle without its intermediate fails chain.signatures (failed: ${failed(noMiddle)})`,
  );
  assert.match(noMiddle.failures.find((x) => x.check === "chain.signatures")!.message, /issuer is not/);
  const noRoot = verifyAttestation(
    tamper("nondebug", (f) => {
      f.cabundle.shift();
    }),
    { at },
  );
  assert.ok(
    failed(noRoot).includes("chain.root_pinned"),
    `a bundle without the root fails chain.root_pinned (failed: ${failed(noRoot)})`,
  );
  const rootOnly = verifyAttestation(
    tamper("nondebug", (f) => {
      f.cabundle.splice(1);
    }),
    { at },
  );
  assert.ok(
    failed(rootOnly).includes("chain.signatures"),
    `a bundle with only the root fails chain.signatures (failed: ${failed(rootOnly)})`,
  );
});

test("swapped certificates are refused with the chain check named", () => {
  const at = insideMs("nondebug");
  const swapped = verifyAttestation(
    tamper("nondebug", (f) => {
      [f.cabundle[1], f.cabundle[2]] = [f.cabundle[2]!, f.cabundle[1]!];
    }),
    { at },
  );
  assert.ok(
    failed(swapped).includes("chain.signatures"),
    `a bundle in the wrong order fails chain.signatures (failed: ${failed(swapped)})`,
  );
  const leafSwap = verifyAttestation(
    tamper("nondebug", (f) => {
      [f.certificate, f.cabundle[3]] = [f.cabundle[3]!, f.certificate];
    }),
    { at },
  );
  for (const c of ["chain.signatures", "chain.ca_flags", "cose.signature"])
    assert.ok(failed(leafSwap).includes(c), c);
  // The leaf of the debug twin (same instance, other enclave) in place of this document's leaf.
  const otherLeaf = verifyAttestation(
    tamper("nondebug", (f) => {
      f.certificate = decodeDocument(doc("debug")).certificate;
    }),
    { at },
  );
  assert.ok(
    failed(otherLeaf).includes("cose.signature"),
    `a leaf certificate that did not sign the document fails cose.signature (failed: ${failed(otherLeaf)})`,
  );
});

test("tagged (18) and untagged forms verify alike; other tags are refused", () => {
  const at = insideMs("nondebug");
  const raw = doc("nondebug");
  assert.equal(raw[0], 0x84, "the fixture is untagged");
  const tagged = new Uint8Array(Buffer.concat([Buffer.of(0xd2), raw]));
  const r = verifyAttestation(tagged, { at });
  assert.equal(r.valid, true);
  assert.equal(r.document!.cose.tagged, true);
  assert.equal(verifyAttestation(raw, { at }).document!.cose.tagged, false);
  const wrongTag = new Uint8Array(Buffer.concat([Buffer.of(0xd3), raw]));
  assert.deepEqual(failed(verifyAttestation(wrongTag, { at })), ["cose.structure"]);
});

test("structure: trailing bytes, payload type errors and unknown fields are refused by name", () => {
  const at = insideMs("nondebug");
  const raw = doc("nondebug");
  const trailing = verifyAttestation(new Uint8Array(Buffer.concat([raw, Buffer.of(0)])), { at });
  assert.deepEqual(failed(trailing), ["cose.structure"]);
  assert.equal(trailing.document, null);
  assert.ok(trailing.notChecked.includes("chain.signatures") === false, "only required checks are listed");
  assert.deepEqual(failed(verifyAttestation(raw.subarray(0, raw.length - 1), { at })), ["cose.structure"]);
  const d = decodeDocument(raw);
  const withPayload = (payload: Uint8Array) =>
    encodeCbor([PROTECTED_ES384, new Map(), payload, d.cose.signature]);
  const fields = (edit: (m: Map<string, unknown>) => void) => {
    const m = new Map<string, unknown>([
      ["module_id", d.moduleId],
      ["digest", d.digest],
      ["timestamp", d.timestamp],
      ["pcrs", d.pcrs],
      ["certificate", d.certificate],
      ["cabundle", d.cabundle],
      ["public_key", d.publicKey],
      ["user_data", d.userData],
      ["nonce", d.nonce],
    ]);
    edit(m);
    return withPayload(encodeCbor(m as never));
  };
  const cases: [string, (m: Map<string, unknown>) => void, RegExp][] = [
    ["unknown field", (m) => m.set("extra", 1), /unknown payload field "extra"/],
    ["timestamp as text", (m) => m.set("timestamp", "now"), /timestamp/],
    ["digest", (m) => m.set("digest", "MD5"), /digest/],
    ["missing PCR0", (m) => m.set("pcrs", new Map([...d.pcrs].filter(([i]) => i !== 0))), /PCR0 is missing/],
    [
      "short PCR",
      (m) => m.set("pcrs", new Map([...d.pcrs, [3, new Uint8Array(32)]])),
      /PCR3 must be 48 bytes/,
    ],
    ["oversized nonce", (m) => m.set("nonce", new Uint8Array(1025)), /1025/],
    ["empty cabundle", (m) => m.set("cabundle", []), /cabundle/],
    ["certificate text", (m) => m.set("certificate", "x"), /certificate must be a byte string/],
  ];
  for (const [what, edit, re] of cases) {
    const r = verifyAttestation(fields(edit), { at });
    assert.deepEqual(failed(r), ["payload.structure"], what);
    assert.match(r.failures[0]!.message, re, what);
    assert.equal(r.valid, false);
  }
  // Absent optional fields are accepted like null (the signature then fails: it was over the original).
  const r = verifyAttestation(
    fields((m) => m.delete("public_key")),
    { at },
  );
  assert.deepEqual(failed(r), ["cose.signature"]);
});

test("maximum age: a document older than allowed is refused as timestamp.max_age", () => {
  const ts = decodeDocument(doc("nondebug")).timestamp;
  const r = verifyAttestation(doc("nondebug"), { at: ts + 2 * 3600_000, maxAgeMs: 3600_000 });
  assert.deepEqual(failed(r), ["timestamp.max_age"]);
  assert.match(r.failures[0]!.message, /7200 s old, more than the 3600 s allowed/);
  assert.equal(verifyAttestation(doc("nondebug"), { at: ts + 2 * 3600_000 }).valid, true, "default 3 h");
  // Dated after the verification time (evervault's document is 26 minutes younger than its leaf): valid, but
  // the verdict mentions the clock.
  const early = verifyAttestation(doc("evervault"), { at: NITRO.evervault.from * 1000, allowDebug: true });
  assert.equal(early.valid, true);
  assert.ok(
    early.warnings.some((w) => /s after the verification time/.test(w)),
    `a document checked at its first second warns it is dated after the verification time (${early.warnings})`,
  );
});

test("a shared certificate cache gives the same verdicts", () => {
  const cache = new CertCache();
  for (let i = 0; i < 3; i++) {
    for (const name of Object.keys(NITRO) as NitroName[]) {
      const r = verifyAttestation(doc(name), { at: insideMs(name), allowDebug: true, certCache: cache });
      assert.equal(r.valid, true, name);
    }
  }
  // Validity is still checked on every call, cache or not.
  const late = verifyAttestation(doc("nondebug"), { at: (NITRO.nondebug.to + 1) * 1000, certCache: cache });
  assert.ok(
    failed(late).includes("chain.validity"),
    `a cached chain past its validity still fails chain.validity (failed: ${failed(late)})`,
  );
});
