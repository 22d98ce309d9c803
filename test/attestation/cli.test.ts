import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { type CliIo, decodeInput, parseTime, runCli } from "../../attestation/cli.ts";
import { decodeDocument } from "../../attestation/document.ts";
import { SimulatorProvider } from "../../attestation/providers/index.ts";
import { decodeReceipt, encodeReceipt, receiptHash, ZERO_HASH } from "../../attestation/receipt.ts";
import { SimulatorCa } from "../../attestation/sim-ca.ts";
import { G, pointBytes } from "../../protocol/encoding.ts";
import { doc, NITRO, nitroDir, projectRoot } from "./fixtures.ts";

const file = (name: keyof typeof NITRO) => path.join(nitroDir, NITRO[name].file);
const inside = (name: keyof typeof NITRO) => String(NITRO[name].from + 600);

function cli(args: string[], stdin: Buffer = Buffer.alloc(0)): { code: number; out: string; err: string } {
  let out = "";
  let err = "";
  const io: CliIo = {
    stdout: (s) => {
      out += s;
    },
    stderr: (s) => {
      err += s;
    },
    readStdin: () => stdin,
    readFile: (p) => readFileSync(p),
  };
  return { code: runCli(args, io), out, err };
}

/** A PCR policy pinning the nondebug fixture's measurements, as a file. */
function nondebugPolicy(): string {
  const pcrs = decodeDocument(doc("nondebug")).pcrs;
  const hex = (i: number) => Buffer.from(pcrs.get(i)!).toString("hex");
  const f = path.join(mkdtempSync(path.join(tmpdir(), "va-pcrs-")), "pcrs.json");
  writeFileSync(
    f,
    JSON.stringify({ releases: [{ name: "nitrite", pcr0: hex(0), pcr1: hex(1), pcr2: hex(2) }] }),
  );
  return f;
}

test("a real document inside its window: fields printed, verdict VALID, exit 0", () => {
  const r = cli([file("nondebug"), "--at", inside("nondebug"), "--pcrs", nondebugPolicy()]);
  assert.equal(r.code, 0, r.out + r.err);
  assert.match(r.out, /module_id\s+i-0a22e5c5f24d22174-enc0191cceb4289903f/);
  assert.match(r.out, /time\s+2024-09-07T14:37:39\.545Z/);
  assert.match(r.out, /PCR0\s+e72a46ca80a260fb/);
  assert.match(r.out, /nonce\s+1024 bytes/);
  assert.match(r.out, /AWS Nitro Enclaves root G1 \(pinned\)/);
  assert.match(r.out, /release +nitrite/);
  assert.match(r.out, /verdict: VALID$/m);
});

test("invalid documents exit 1 and the verdict names every failed check", () => {
  const late = cli([file("nondebug"), "--at", String(NITRO.nondebug.to + 10)]);
  assert.equal(late.code, 1);
  assert.match(late.out, /FAIL chain\.validity — leaf certificate expired at/);
  assert.match(late.out, /verdict: INVALID — failed: chain\.validity/);
  const debug = cli([file("debug"), "--at", inside("debug")]);
  assert.equal(debug.code, 1);
  assert.match(debug.out, /failed: pcrs\.not_debug/);
  assert.equal(cli([file("debug"), "--at", inside("debug"), "--allow-debug", "--allow-unpinned"]).code, 0);
  const nonce = cli([file("nondebug"), "--at", inside("nondebug"), "--nonce", "00"]);
  assert.equal(nonce.code, 1);
  assert.match(nonce.out, /FAIL nonce/);
  const both = cli([file("debug"), "--at", String(NITRO.debug.to + 10), "--nonce", "00"]);
  assert.match(both.out, /failed: chain\.validity, timestamp\.max_age, pcrs\.not_debug, nonce$/m);
});

test("--json prints one object with valid, checks and the decoded fields", () => {
  const r = cli([
    file("evervault"),
    "--at",
    inside("evervault"),
    "--allow-debug",
    "--allow-unpinned",
    "--json",
  ]);
  assert.equal(r.code, 0);
  const j = JSON.parse(r.out);
  assert.equal(j.valid, true);
  assert.equal(j.simulator, false);
  assert.equal(j.checks["cose.signature"], true);
  assert.equal(j.document.module_id, "i-0918f6c55e3b61d89-enc018aa8b8e2285d13");
  assert.equal(j.document.public_key, null);
  assert.equal(j.document.nonce.length, 512);
  assert.equal(j.document.pcrs["0"], "00".repeat(48));
  assert.equal(r.out.trim().split("\n").length, 1, "one line");
  const bad = JSON.parse(cli([file("evervault"), "--at", inside("evervault"), "--json"]).out);
  assert.equal(bad.valid, false);
  assert.equal(bad.checks["pcrs.not_debug"], false);
  assert.equal(bad.failures[0].check, "pcrs.not_debug");
});

test("input formats: auto recognises base64, hex and raw bytes; explicit formats and stdin work", () => {
  const raw = Buffer.from(doc("nondebug"));
  const dir = mkdtempSync(path.join(tmpdir(), "va-"));
  const variants: [string, Buffer][] = [
    ["doc.b64", Buffer.from(`${raw.toString("base64").replace(/.{76}/g, "$&\n")}\n`)],
    ["doc.hex", Buffer.from(raw.toString("hex"))],
    ["doc.bin", raw],
    ["doc-tagged.bin", Buffer.concat([Buffer.of(0xd2), raw])],
    ["doc-tagged.hex", Buffer.from(`d2${raw.toString("hex")}\n`)],
    ["doc.b64url", Buffer.from(raw.toString("base64url"))],
  ];
  for (const [name, bytes] of variants) {
    writeFileSync(path.join(dir, name), bytes);
    const r = cli([path.join(dir, name), "--at", inside("nondebug"), "--allow-unpinned"]);
    assert.equal(r.code, 0, `${name}: ${r.out}${r.err}`);
  }
  const at = ["--at", inside("nondebug"), "--allow-unpinned"];
  assert.equal(cli([path.join(dir, "doc.hex"), "--format", "hex", ...at]).code, 0);
  assert.equal(cli([path.join(dir, "doc.bin"), "--format", "bin", ...at]).code, 0);
  assert.equal(cli(["-", "--format", "b64", ...at], Buffer.from(raw.toString("base64"))).code, 0);
  assert.equal(cli(["-", ...at], raw).code, 0);
  // Wrong explicit format: a read error, exit 2.
  const wrong = cli([path.join(dir, "doc.b64"), "--format", "hex"]);
  assert.equal(wrong.code, 2);
  assert.match(wrong.err, /not hex/);
  assert.deepEqual(decodeInput(Buffer.from("hEQ="), "auto"), new Uint8Array([0x84, 0x44]));
});

test("usage and read errors exit 2 with a message", () => {
  const cases: [string[], RegExp][] = [
    [[], /exactly one document/],
    [["a", "b"], /exactly one document/],
    [["/nonexistent/doc.b64"], /cannot read document \/nonexistent\/doc\.b64: ENOENT/],
    [[file("nondebug"), "--format", "pem"], /unknown --format pem/],
    [[file("nondebug"), "--at", "yesterday"], /neither Unix seconds nor an ISO-8601/],
    [[file("nondebug"), "--nonce", "xyz"], /--nonce must be hex/],
    [[file("nondebug"), "--max-age", "1h"], /whole seconds/],
    [[file("nondebug"), "--pcrs", "/nonexistent.json"], /cannot read PCR policy/],
    [[file("nondebug"), "--sim-root", file("nondebug")], /--sim-root .*not a PEM certificate/],
    [[file("nondebug"), "--prev-receipt", "x"], /--prev-receipt needs --receipt/],
    [[file("nondebug"), "--bogus"], /Unknown option/],
  ];
  for (const [args, re] of cases) {
    const r = cli(args);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.err, re, args.join(" "));
  }
  const dir = mkdtempSync(path.join(tmpdir(), "va-"));
  writeFileSync(path.join(dir, "policy.json"), JSON.stringify({ releases: [] }));
  const badPolicy = cli([file("nondebug"), "--pcrs", path.join(dir, "policy.json")]);
  assert.equal(badPolicy.code, 2);
  assert.match(badPolicy.err, /non-empty releases/);
  const help = cli(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.out, /--sim-root <pem>/);
});

test("--at accepts Unix seconds and ISO-8601", () => {
  assert.equal(parseTime("1725720000"), 1725720000_000);
  assert.equal(parseTime("1725720000.5"), 1725720000_500);
  assert.equal(parseTime("2024-09-07T15:00:00Z"), Date.UTC(2024, 8, 7, 15));
  assert.equal(cli([file("nondebug"), "--at", "2024-09-07T15:00:00Z", "--allow-unpinned"]).code, 0);
  assert.equal(cli([file("nondebug"), "--at", "2024-09-07T18:00:00Z"]).code, 1);
});

test("simulator documents: SIMULATOR in plain words with --sim-root, refused without; receipts and PCR policy", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "va-sim-"));
  const ca = SimulatorCa.open(path.join(dir, "ca"));
  const pcrs = {
    pcr0: new Uint8Array(48).fill(1),
    pcr1: new Uint8Array(48).fill(2),
    pcr2: new Uint8Array(48).fill(3),
  };
  const provider = new SimulatorProvider({ ca, pcrs });
  const r1 = encodeReceipt({
    type: "key-update",
    statechain: new Uint8Array(36),
    epoch: 2,
    erased: new Uint8Array(32).fill(4),
    S2: pointBytes(G),
    prev: ZERO_HASH,
    log: new Uint8Array(32),
    time: 1,
  });
  const { v: _v, ...first } = decodeReceipt(r1);
  const r2 = encodeReceipt({ ...first, epoch: 3, prev: receiptHash(r1), time: 2 });
  const document = await provider.attest({ userData: receiptHash(r2), nonce: new Uint8Array([0xab, 0xcd]) });
  const files = {
    doc: path.join(dir, "doc.bin"),
    root: path.join(dir, "root.pem"),
    r1: path.join(dir, "r1.cbor"),
    r2: path.join(dir, "r2.cbor"),
    policy: path.join(dir, "policy.json"),
  };
  writeFileSync(files.doc, document);
  writeFileSync(files.root, ca.rootPem());
  writeFileSync(files.r1, r1);
  writeFileSync(files.r2, r2);
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
  writeFileSync(
    files.policy,
    JSON.stringify({
      releases: [{ name: "sim-1", pcr0: hex(pcrs.pcr0), pcr1: hex(pcrs.pcr1), pcr2: hex(pcrs.pcr2) }],
    }),
  );
  const ok = cli([
    files.doc,
    "--sim-root",
    files.root,
    "--pcrs",
    files.policy,
    "--nonce",
    "abcd",
    "--receipt",
    files.r2,
    "--prev-receipt",
    files.r1,
  ]);
  assert.equal(ok.code, 0, ok.out);
  assert.match(
    ok.out,
    /verdict: VALID — SIMULATOR document: signed by a simulator root, NOT by AWS Nitro hardware/,
  );
  assert.match(ok.out, /release\s+sim-1/);
  assert.match(ok.out, /receipt\s+key-update, epoch 3/);
  assert.match(ok.out, /ok {3}receipt\.chain/);
  const j = JSON.parse(cli([files.doc, "--sim-root", files.root, "--receipt", files.r2, "--json"]).out);
  assert.equal(j.simulator, true);
  assert.equal(j.receipt.epoch, 3);
  const noRoot = cli([files.doc]);
  assert.equal(noRoot.code, 1);
  assert.match(noRoot.out, /failed: chain\.root_pinned/);
  const wrongReceipt = cli([files.doc, "--sim-root", files.root, "--receipt", files.r1]);
  assert.equal(wrongReceipt.code, 1);
  assert.match(wrongReceipt.out, /failed: user_data\.receipt/);
  assert.match(wrongReceipt.out, /verdict: INVALID \(SIMULATOR root\)/);
});

test("the bin runs through node and npm with the documented exit codes", () => {
  const bin = path.join(projectRoot, "bin/verify-attestation.js");
  const ok = spawnSync(
    process.execPath,
    [bin, file("nondebug"), "--at", inside("nondebug"), "--allow-unpinned"],
    {
      encoding: "utf8",
    },
  );
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /verdict: VALID/);
  const bad = spawnSync(process.execPath, [bin, "-", "--at", inside("nondebug")], {
    input: Buffer.from(doc("nondebug")).subarray(0, 500),
    encoding: "utf8",
  });
  assert.equal(bad.status, 1);
  assert.match(bad.stdout, /failed: cose\.structure/);
  const usage = spawnSync(process.execPath, [bin], { encoding: "utf8" });
  assert.equal(usage.status, 2);
  const npm = spawnSync("npm", ["run", "--silent", "verify-attestation", "--", "--help"], {
    cwd: projectRoot,
    encoding: "utf8",
  });
  assert.equal(npm.status, 0, npm.stderr);
  assert.match(npm.stdout, /verify-attestation <file\|->/);
});

test("input that is no document: empty, random binary, other text — invalid (exit 1) with its own message", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "va-"));
  const write = (name: string, b: Buffer) => {
    writeFileSync(path.join(dir, name), b);
    return path.join(dir, name);
  };
  const empty = cli([write("empty", Buffer.alloc(0))]);
  assert.equal(empty.code, 1);
  assert.match(empty.err, /empty is empty: it holds no attestation document/);
  assert.equal(cli(["-"], Buffer.from("\n")).code, 1);
  assert.match(cli(["-"], Buffer.from(" \n")).err, /stdin is empty/);
  const binary = cli([
    write("random.bin", Buffer.from([0x13, 0x37, 0xff, 0x00, 0x9a, 0x01, 0x02, 0x03, 0x04])),
  ]);
  assert.equal(binary.code, 1);
  assert.match(
    binary.err,
    /binary that is not CBOR COSE_Sign1 \(it starts 13 37 ff 00 9a 01 02 03; a document starts 84/,
  );
  const text = cli([write("notes.txt", Buffer.from("hello, world\n")), "--json"]);
  assert.equal(text.code, 1);
  assert.match(text.err, /text that is neither hex nor base64/);
  assert.equal(JSON.parse(text.out).valid, false);
  const missing = cli([path.join(dir, "nope.b64")]);
  assert.equal(missing.code, 2);
  assert.match(missing.err, /cannot read document .*nope\.b64: ENOENT: no such file/);
  assert.match(cli([dir]).err, /EISDIR: a directory, not a file/);
  const version = cli(["--version"]);
  assert.equal(version.code, 0);
  assert.match(version.out, /^verify-attestation \d+\.\d+\.\d+\n$/);
});

test("VALID without a PCR policy is UNPINNED (exit 3) unless --allow-unpinned; with one that matches, VALID", () => {
  const bare = cli([file("nondebug"), "--at", inside("nondebug")]);
  assert.equal(bare.code, 3, bare.out);
  assert.match(
    bare.out,
    /verdict: UNPINNED — every check passed, but no PCR policy says which enclave code to accept: give --pcrs <file> .*, or --allow-unpinned/,
  );
  const allowed = cli([file("nondebug"), "--at", inside("nondebug"), "--allow-unpinned"]);
  assert.equal(allowed.code, 0, allowed.out);
  assert.match(allowed.out, /verdict: VALID \(unpinned: any enclave code accepted with --allow-unpinned\)$/m);
  const j = JSON.parse(cli([file("nondebug"), "--at", inside("nondebug"), "--json"]).out);
  assert.deepEqual([j.verdict, j.valid, j.pinned], ["UNPINNED", true, false]);
  const pinned = JSON.parse(
    cli([file("nondebug"), "--at", inside("nondebug"), "--json", "--pcrs", nondebugPolicy()]).out,
  );
  assert.deepEqual([pinned.verdict, pinned.pinned, pinned.release], ["VALID", true, "nitrite"]);
  // An invalid document stays invalid (exit 1), pinned or not.
  assert.equal(cli([file("nondebug"), "--at", String(NITRO.nondebug.to + 10), "--allow-unpinned"]).code, 1);
});

test("--json always prints one JSON object: usage errors, read errors and input that is no document too", () => {
  const cases: [string[], string, RegExp][] = [
    [["--json"], "USAGE", /exactly one document/],
    [[file("nondebug"), "--json", "--bogus"], "USAGE", /Unknown option '--bogus'/],
    [[file("nondebug"), "--json", "--at", "yesterday"], "USAGE", /neither Unix seconds/],
    [["/nonexistent/doc.b64", "--json"], "READ", /cannot read document .*ENOENT/],
    [[file("nondebug"), "--json", "--pcrs", "/nonexistent.json"], "READ", /cannot read PCR policy/],
  ];
  for (const [args, code, message] of cases) {
    const r = cli(args);
    assert.equal(r.code, 2, args.join(" "));
    const j = JSON.parse(r.out);
    assert.equal(r.out.trim().split("\n").length, 1, `one line: ${args.join(" ")}`);
    assert.deepEqual([j.verdict, j.valid, j.error.code], ["ERROR", false, code], args.join(" "));
    assert.match(j.error.message, message);
    assert.match(r.err, message, "the message goes to stderr as well");
  }
  const notDoc = JSON.parse(cli(["-", "--json"], Buffer.from("hello\n")).out);
  assert.deepEqual([notDoc.verdict, notDoc.failures[0].check], ["INVALID", "input"]);
  assert.match(cli(["--version", "--json"]).out, /^\{"version":"\d+\.\d+\.\d+"\}\n$/);
});

test("a recorded document that fails only on time: a hint to check it as of its own time with --at", () => {
  const made = new Date(decodeDocument(doc("nondebug")).timestamp).toISOString();
  const late = cli([file("nondebug"), "--at", "2025-01-01T00:00:00Z", "--allow-unpinned"]);
  assert.equal(late.code, 1);
  assert.match(late.out, /failed: chain\.validity, timestamp\.max_age$/m);
  assert.match(
    late.out,
    new RegExp(`^hint: only the time fails: the document was made at ${made}.*add --at ${made}$`, "m"),
  );
  const again = cli([file("nondebug"), "--at", made, "--allow-unpinned"]);
  assert.equal(again.code, 0, "the hint's --at makes it valid");
  assert.match(JSON.parse(cli([file("nondebug"), "--json"]).out).hint, /add --at /);
  // Another failure as well: the time is not the only problem, no hint.
  const nonce = cli([file("nondebug"), "--at", "2025-01-01T00:00:00Z", "--nonce", "00"]);
  assert.doesNotMatch(nonce.out, /hint:/);
  assert.equal(JSON.parse(cli([file("nondebug"), "--json", "--at", inside("nondebug")]).out).hint, null);
});
