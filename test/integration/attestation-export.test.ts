// Live attestation documents to check by hand (issue #20): `se attestation` exports one from a running SE (its
// GetAttestation RPC), `wallet verify --save-attestations <dir>` writes the ones it checked; verify-attestation
// checks both with the commands they print.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { runCli } from "../../attestation/cli.ts";
import { PASSPHRASE, testWallet } from "../client/wallet-helpers.ts";
import { type Harness, ownerHarness } from "../helpers/owners.ts";
import { ROOT, type SeProcess, startSeProcess } from "../helpers/se-process.ts";
import { runWallet } from "../helpers/wallet-cli.ts";

let se: SeProcess;
let h: Harness;
let policyFile: string;

before(async () => {
  se = await startSeProcess({ env: { SE_MAINSTAY_ENABLED: "false" } });
  h = await ownerHarness(se);
  // The measurements the operator publishes, pinned by the one checking (as `wallet trust-simulator` does).
  const info = await h.ctx.se.call("getInfo", {});
  policyFile = path.join(se.dataDir, "pcrs.json");
  writeFileSync(
    policyFile,
    JSON.stringify({
      releases: info.enclave!.expectedPcrs.map((r) => ({
        name: r.name,
        pcr0: r.pcr0,
        pcr1: r.pcr1,
        pcr2: r.pcr2,
      })),
    }),
  );
});
after(async () => {
  h?.close();
  await se?.stop();
});

const seCmd = (args: string[]) => {
  const r = spawnSync(process.execPath, [path.join(ROOT, "bin/se.js"), ...args], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, SE_DATA_DIR: se.dataDir },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

/** verify-attestation with the arguments of a printed `npx verify-attestation …` command. */
function verifyCommand(command: string, replace: Record<string, string> = {}, stdin = Buffer.alloc(0)) {
  let line = command.replace(/^npx verify-attestation /, "");
  for (const [from, to] of Object.entries(replace)) line = line.replace(from, to);
  let out = "";
  let err = "";
  const io = {
    stdout: (s: string) => {
      out += s;
    },
    stderr: (s: string) => {
      err += s;
    },
    readStdin: () => stdin,
    readFile: (p: string) => readFileSync(path.resolve(ROOT, p)),
  };
  return { code: runCli(line.split(" "), io), out, err };
}

test("se attestation exports a live document; the command it prints checks it (VALID with the pinned PCRs)", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "se-att-"));
  const file = path.join(dir, "live.attestation");
  const r = seCmd(["attestation", "--endpoint", `127.0.0.1:${se.port}`, "--out", file, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.attestationMode, "simulator");
  assert.equal(j.file, file);
  assert.equal(j.bytes, readFileSync(file).length);
  assert.match(j.nonce, /^[0-9a-f]{64}$/);
  assert.equal(j.simulatorRoot, path.join(se.dataDir, "sim-ca", "sim-ca-root.pem"));
  assert.equal(
    j.check,
    `npx verify-attestation ${file} --nonce ${j.nonce} --sim-root ${j.simulatorRoot} --pcrs <your PCR policy>`,
  );
  const ok = verifyCommand(j.check, { "<your PCR policy>": policyFile });
  assert.equal(ok.code, 0, ok.out + ok.err);
  assert.match(ok.out, /verdict: VALID — SIMULATOR document/);
  // The measurements unpinned: every check passes, and the verdict says what is missing.
  const unpinned = verifyCommand(j.check, { " --pcrs <your PCR policy>": "" });
  assert.equal(unpinned.code, 3, unpinned.out);
  assert.match(unpinned.out, /verdict: UNPINNED/);
  const otherNonce = verifyCommand(j.check, { "<your PCR policy>": policyFile, [j.nonce]: "00".repeat(32) });
  assert.equal(otherNonce.code, 1);

  // A nonce of one's own, and the document as base64 on stdout (for a pipe into verify-attestation -).
  const nonce = "ab".repeat(16);
  const b64 = seCmd(["attestation", "--endpoint", `127.0.0.1:${se.port}`, "--nonce", nonce]);
  assert.equal(b64.code, 0, b64.stderr);
  assert.match(b64.stdout, /^[A-Za-z0-9+/]+=*\n$/);
  assert.match(
    b64.stderr,
    new RegExp(`nonce ${nonce}; check it: se attestation --nonce ${nonce} \\| npx verify-attestation - `),
  );
  const piped = verifyCommand(
    `- --nonce ${nonce} --sim-root ${j.simulatorRoot} --pcrs ${policyFile}`,
    {},
    Buffer.from(b64.stdout),
  );
  assert.equal(piped.code, 0, piped.out);
  assert.equal(seCmd(["attestation", "--nonce", "abcd"]).code, 2, "a nonce under 16 bytes is a usage error");
});

test("se attestation against an SE that does not answer: exit 1 and which endpoint", async () => {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  const r = seCmd(["attestation", "--endpoint", `127.0.0.1:${port}`]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`no attestation from the SE at 127\\.0\\.0\\.1:${port}: UNAVAILABLE`));
});

const wallet = (args: string[], mining = false) =>
  runWallet(args, {
    env: {
      ...process.env,
      WALLET_SE: `127.0.0.1:${se.port}`,
      SE_DATA_DIR: se.dataDir,
      WALLET_PASSPHRASE: PASSPHRASE,
    },
    mine: mining ? () => h.chain.mine(1) : undefined,
  });

test("wallet verify --save-attestations writes the documents it checked, and the commands check them again", async () => {
  const { wallet: a, file: aliceFile } = await testWallet();
  await a.close();
  const { wallet: b, file: bobFile } = await testWallet();
  await b.close();
  const A = ["--wallet", aliceFile];
  const B = ["--wallet", bobFile];
  for (const f of [A, B]) assert.equal((await wallet(["trust-simulator", ...f, "--confirm"])).code, 0);
  assert.equal((await wallet(["faucet", ...A])).code, 0);
  const d = await wallet(["deposit", "0.002btc", ...A, "--poll-ms", "200"], true);
  assert.equal(d.code, 0, d.stderr);
  const dir = mkdtempSync(path.join(tmpdir(), "saved-"));
  const none = await wallet(["verify", "1", ...A, "--allow-unpublished", "--save-attestations", dir]);
  assert.match(none.stdout, /no attestation documents to save: the coin has had no key update/);

  const to = (await wallet(["address", ...B])).stdout.trim();
  assert.equal((await wallet(["send", "1", to, ...A])).code, 0);
  const got = await wallet(["receive", ...B, "--allow-unpublished"]);
  assert.equal(got.code, 0, got.stdout + got.stderr);
  const v = await wallet(["verify", "1", ...B, "--allow-unpublished", "--save-attestations", dir]);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  assert.match(v.stdout, new RegExp(`saved 1 attestation document\\(s\\) in ${dir}, each checked again`));
  const command = /^ {2}owner 2: (npx verify-attestation .*)$/m.exec(v.stdout)?.[1] ?? "";
  assert.match(
    command,
    /--nonce [0-9a-f]+ --receipt .*-owner-2\.receipt --at \d{4}-\d\d-\d\dT[\d:.]+Z --pcrs .*pcrs\.json --sim-root .*sim-root\.pem$/,
  );
  const again = verifyCommand(command);
  assert.equal(again.code, 0, again.out + again.err);
  assert.match(again.out, /receipt +key-update, epoch 2/);
  assert.match(again.out, /verdict: VALID — SIMULATOR document/);
  // --json: the report names the files and the command, without the documents' bytes.
  const j = JSON.parse(
    (await wallet(["verify", "1", ...B, "--allow-unpublished", "--json", "--save-attestations", dir])).stdout,
  );
  assert.equal(j.saved.length, 1);
  assert.equal(j.saved[0].ownerIndex, 2);
  assert.equal(j.documents, undefined, "no raw documents in the JSON report");
  assert.equal(readFileSync(j.saved[0].document)[0], 0x84, "a COSE_Sign1 array");
});
