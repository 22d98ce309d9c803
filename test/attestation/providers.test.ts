// The Nitro provider's NSM codec and transports, with fake transports returning real recorded documents (the
// NSM itself only exists inside a Nitro enclave), and the nsm-helper binary's error paths where a C compiler
// is available.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { encode as cbor2Encode } from "cbor2";
import { encodeCbor } from "../../attestation/cbor.ts";
import {
  AttestationError,
  decodeNsmAttestationResponse,
  encodeNsmAttestationRequest,
  helperTransport,
  NitroProvider,
  NSM_RESPONSE_MAX,
  type NsmTransport,
} from "../../attestation/providers/index.ts";
import { verifyAttestation } from "../../attestation/verify.ts";
import { doc, insideMs, projectRoot } from "./fixtures.ts";

const ones = new Uint8Array(1024).fill(1);
const nsmResponse = (document: Uint8Array) =>
  encodeCbor(new Map([["Attestation", new Map([["document", document]])]]));
const isNsmError = (re: RegExp) => (e: unknown) =>
  e instanceof AttestationError && e.code === "NSM_ERROR" && re.test(e.message);

test("the NSM attestation request is serde's externally tagged enum, fields in nsm-api's order", () => {
  const req = encodeNsmAttestationRequest({ userData: new Uint8Array([1]), nonce: new Uint8Array([2, 3]) });
  const expected = cbor2Encode({
    Attestation: { user_data: new Uint8Array([1]), nonce: new Uint8Array([2, 3]), public_key: null },
  });
  assert.deepEqual(Buffer.from(req), Buffer.from(expected));
  assert.equal(
    Buffer.from(encodeNsmAttestationRequest({})).toString("hex"),
    `a1${Buffer.from(cbor2Encode("Attestation")).toString("hex").slice(0)}a3` +
      `${Buffer.from(cbor2Encode("user_data")).toString("hex")}f6` +
      `${Buffer.from(cbor2Encode("nonce")).toString("hex")}f6` +
      `${Buffer.from(cbor2Encode("public_key")).toString("hex")}f6`,
  );
  // Three 1024-byte fields fit in the NSM's 4 KiB request limit; more than 1024 in one is refused.
  assert.ok(
    encodeNsmAttestationRequest({ userData: ones, nonce: ones, publicKey: ones }).length <= 0x1000,
    "three 1024-byte fields make a request within the NSM's 4 KiB limit",
  );
  assert.throws(
    () => encodeNsmAttestationRequest({ nonce: new Uint8Array(1025) }),
    (e: unknown) => e instanceof AttestationError && e.code === "ATTESTATION_INPUT_TOO_LARGE",
  );
});

test("NSM responses: the document is extracted; errors and anything unexpected are named", () => {
  const real = doc("nondebug");
  assert.deepEqual(decodeNsmAttestationResponse(nsmResponse(real)), real);
  const err = (v: unknown) => encodeCbor(v as never);
  const cases: [string, Uint8Array, RegExp][] = [
    [
      "NSM error",
      err(new Map([["Error", "InvalidArgument"]])),
      /refused the attestation request: InvalidArgument/,
    ],
    [
      "input too large",
      err(new Map([["Error", "InputTooLarge"]])),
      /InputTooLarge \(the input is too large\)/,
    ],
    ["unknown code", err(new Map([["Error", "Exploded"]])), /Exploded \(unknown error code\)/],
    ["other response", err(new Map([["LockPCRs", null]])), /unexpected NSM response "LockPCRs"/],
    ["no document", err(new Map([["Attestation", new Map()]])), /has no document/],
    ["document not bytes", err(new Map([["Attestation", new Map([["document", "x"]])]])), /has no document/],
    [
      "two entries",
      err(
        new Map<string, unknown>([
          ["Attestation", 1],
          ["Error", "x"],
        ]),
      ),
      /single-entry map/,
    ],
    ["empty", new Uint8Array(0), /empty response/],
    ["not CBOR", new Uint8Array([0xff]), /not valid CBOR/],
    ["trailing bytes", new Uint8Array([...nsmResponse(real), 0]), /trailing/],
    ["too large", new Uint8Array(NSM_RESPONSE_MAX + 1), /too large/],
  ];
  for (const [what, bytes, re] of cases)
    assert.throws(() => decodeNsmAttestationResponse(bytes), isNsmError(re), what);
});

test("NitroProvider with a fake NSM returning a real recorded document", async () => {
  const sent: Uint8Array[] = [];
  const fake: NsmTransport = async (request) => {
    sent.push(request);
    return nsmResponse(doc("nondebug"));
  };
  const provider = new NitroProvider({ transport: fake });
  assert.equal(provider.mode, "nitro");
  // The recorded document carries 1024 bytes of 0x01 in nonce, user_data and public_key.
  const got = await provider.attest({ nonce: ones, userData: ones, publicKey: ones });
  assert.deepEqual(sent, [encodeNsmAttestationRequest({ nonce: ones, userData: ones, publicKey: ones })]);
  const r = verifyAttestation(got, { at: insideMs("nondebug"), expectedNonce: ones });
  assert.equal(r.valid, true);
  // A document that does not carry what was asked is not passed on.
  await assert.rejects(
    provider.attest({ nonce: new Uint8Array(32), userData: ones, publicKey: ones }),
    isNsmError(/does not carry/),
  );
  await assert.rejects(provider.attest({}), isNsmError(/does not carry/));
  // evervault's document: no public key, a DER key in user_data.
  const ev = new NitroProvider({ transport: async () => nsmResponse(doc("evervault")) });
  await assert.rejects(ev.attest({ nonce: ones }), isNsmError(/does not carry/));
});

test("NitroProvider passes on NSM errors and refuses malformed documents", async () => {
  const refusing = new NitroProvider({
    transport: async () => encodeCbor(new Map([["Error", "InternalError"]])),
  });
  await assert.rejects(refusing.attest({}), isNsmError(/InternalError \(internal NSM error\)/));
  const broken = new NitroProvider({ transport: async () => nsmResponse(doc("nondebug").subarray(0, 100)) });
  await assert.rejects(broken.attest({}), isNsmError(/malformed attestation document/));
  const failing = new NitroProvider({
    transport: async () => {
      throw new AttestationError("NSM_ERROR", "device gone", "internal");
    },
  });
  await assert.rejects(failing.attest({}), isNsmError(/device gone/));
});

function fakeHelper(script: string, ...args: string[]): NsmTransport {
  return helperTransport({ command: process.execPath, args: ["-e", script, ...args], timeoutMs: 5000 });
}

test("the helper transport feeds the request on stdin and returns stdout", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "nsm-"));
  const responseFile = path.join(dir, "response.cbor");
  writeFileSync(responseFile, nsmResponse(doc("nondebug")));
  const echoLength = `const fs = require("fs"); const req = fs.readFileSync(0);
    if (req.length === 0) { process.stderr.write("empty request\\n"); process.exit(64); }
    fs.writeFileSync(process.argv[2], req); process.stdout.write(fs.readFileSync(process.argv[1]));`;
  const seen = path.join(dir, "seen.cbor");
  const provider = new NitroProvider({ transport: fakeHelper(echoLength, responseFile, seen) });
  const got = await provider.attest({ nonce: ones, userData: ones, publicKey: ones });
  assert.deepEqual(got, doc("nondebug"));
  const request = spawnSync(process.execPath, [
    "-e",
    `process.stdout.write(require("fs").readFileSync(process.argv[1]))`,
    seen,
  ]);
  assert.deepEqual(
    new Uint8Array(request.stdout),
    encodeNsmAttestationRequest({ nonce: ones, userData: ones, publicKey: ones }),
  );
});

test("the helper transport reports exit status, stderr, oversize output, missing binary and timeouts", async () => {
  await assert.rejects(
    fakeHelper(
      `process.stderr.write("nsm-helper: /dev/nsm: No such file or directory\\n"); process.exit(69);`,
    )(new Uint8Array([1])),
    isNsmError(/failed \(exit 69\): nsm-helper: \/dev\/nsm: No such file or directory/),
  );
  await assert.rejects(
    fakeHelper(`process.stdout.write(Buffer.alloc(${NSM_RESPONSE_MAX + 10}));`)(new Uint8Array([1])),
    isNsmError(/more than 12288 bytes/),
  );
  await assert.rejects(
    helperTransport({ command: path.join(tmpdir(), "no-such-nsm-helper") })(new Uint8Array([1])),
    isNsmError(/cannot run NSM helper/),
  );
  await assert.rejects(
    helperTransport({
      command: process.execPath,
      args: ["-e", "setTimeout(() => {}, 60000)"],
      timeoutMs: 200,
    })(new Uint8Array([1])),
    isNsmError(/did not answer within 200 ms/),
  );
});

const cc = spawnSync("cc", ["--version"]).status === 0;

test("nsm-helper.c builds cleanly and fails with clear statuses where there is no NSM", {
  skip: !cc && "no C compiler",
}, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "nsm-helper-"));
  const bin = path.join(dir, "nsm-helper");
  const build = spawnSync(
    "cc",
    ["-O2", "-Wall", "-Wextra", "-Werror", "-o", bin, path.join(projectRoot, "deploy/nitro/nsm-helper.c")],
    {
      encoding: "utf8",
    },
  );
  assert.equal(build.status, 0, build.stderr);
  const run = (input: Uint8Array, ...args: string[]) => spawnSync(bin, args, { input, encoding: "utf8" });
  const req = encodeNsmAttestationRequest({});
  assert.equal(run(req, path.join(dir, "absent")).status, 69);
  assert.match(run(req, path.join(dir, "absent")).stderr, /No such file or directory/);
  assert.equal(run(req, "/dev/null").status, 70, "the ioctl is refused by a device that is not the NSM");
  assert.equal(run(new Uint8Array(0), "/dev/null").status, 64);
  assert.equal(run(new Uint8Array(0x1001), "/dev/null").status, 64);
  assert.equal(run(new Uint8Array(0x1000), "/dev/null").status, 70, "exactly 4 KiB is accepted");
  assert.equal(run(req, "a", "b").status, 64);
  // Through the provider, the reason reaches the caller.
  const provider = new NitroProvider({
    transport: helperTransport({ command: bin, args: [path.join(dir, "absent")] }),
  });
  await assert.rejects(
    provider.attest({}),
    isNsmError(/exit 69\): nsm-helper: .*absent: No such file or directory/),
  );
});
