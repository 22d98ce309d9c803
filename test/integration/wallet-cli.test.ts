// The `wallet` command against a running simulator SE, as a user runs it: create, trust the simulator, faucet,
// deposit, send, receive, verify, withdraw; --json output, JSON progress, exit statuses 0 / 1 / 2.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { SeClient } from "../../client/se-client.ts";
import { systemRng } from "../../protocol/rng.ts";
import { PASSPHRASE, testWallet, tmpWalletFile } from "../client/wallet-helpers.ts";
import { type Harness, ownerHarness } from "../helpers/owners.ts";
import { ROOT, type SeProcess, startSeProcess } from "../helpers/se-process.ts";
import { runWallet } from "../helpers/wallet-cli.ts";

let se: SeProcess;
let h: Harness;

before(async () => {
  se = await startSeProcess({ env: { SE_MAINSTAY_ENABLED: "false", SE_INIT_LOCK: "300" } });
  h = await ownerHarness(se);
});
after(async () => {
  h?.close();
  await se?.stop();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface RunOptions {
  env?: Record<string, string>;
  input?: string;
  /** Mine a block every 200 ms meanwhile (the simulator here mines on demand). */
  mining?: boolean;
  /** Run bin/wallet.js as its own process (slower); otherwise main() runs here with the same arguments. */
  spawned?: boolean;
}

function envFor(opts: RunOptions): Record<string, string> {
  return {
    WALLET_SE: `127.0.0.1:${se.port}`,
    SE_DATA_DIR: se.dataDir,
    WALLET_PASSPHRASE: PASSPHRASE,
    ...opts.env,
  };
}

/** Runs `wallet …`. */
async function wallet(args: string[], opts: RunOptions = {}): Promise<Run> {
  const timer = opts.mining ? setInterval(() => void h.chain.mine(1).catch(() => {}), 200) : undefined;
  try {
    return opts.spawned ? await spawned(args, opts) : await inProcess(args, opts);
  } finally {
    if (timer) clearInterval(timer);
  }
}

const inProcess = (args: string[], opts: RunOptions): Promise<Run> =>
  runWallet(args, { env: { ...process.env, ...envFor(opts) }, input: opts.input });

function spawned(args: string[], opts: RunOptions): Promise<Run> {
  return new Promise<Run>((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, "bin/wallet.js"), ...args], {
      cwd: ROOT,
      env: { ...process.env, ...envFor(opts) },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.stdin.end(opts.input ?? "");
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

const json = (r: Run) => JSON.parse(r.stdout.trim().split("\n").pop()!);

test("usage errors exit with 2 and say what is wrong", async () => {
  const help = await wallet(["--help"], { spawned: true });
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: wallet <command>/);
  const cmdHelp = await wallet(["verify", "--help"]);
  assert.equal(cmdHelp.code, 0);
  assert.match(cmdHelp.stdout, /wallet verify <coin>/);
  for (const [args, message] of [
    [["launch"], /unknown command "launch"/],
    [["deposit"], /deposit takes <amount>/],
    [["coins", "--wait"], /--wait does not apply to coins/],
    [["coins", "--frobnicate"], /Unknown option '--frobnicate'/],
    [["deposit", "0.01"], /"0\.01" has no unit: write 0\.01btc/],
    [["faucet", "--blocks", "1", "--amount", "1btc"], /--blocks or --amount, not both/],
  ] as const) {
    const r = await wallet([...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});

test("create, trust the simulator, faucet, deposit, send, receive, verify, withdraw — through the CLI", async () => {
  const aliceFile = tmpWalletFile("alice");
  const created = await wallet(["create", "--wallet", aliceFile, "--json", "--scrypt-n", "32768"]);
  assert.equal(created.code, 0, created.stderr);
  const c = json(created);
  assert.equal(c.mnemonic.split(" ").length, 24);
  assert.match(c.receiveAddress, /^rsc1/);
  // The same words restore the same addresses (passphrase and mnemonic as two lines on stdin).
  const restoredFile = tmpWalletFile("restored");
  const restored = await wallet(["restore", "--wallet", restoredFile, "--json", "--scrypt-n", "32768"], {
    env: { WALLET_PASSPHRASE: "" },
    input: `another passphrase\n${c.mnemonic}\n`,
  });
  assert.equal(restored.code, 0, restored.stderr);
  assert.equal(json(restored).receiveAddress, c.receiveAddress);
  assert.equal(json(restored).mnemonic, undefined, "restore does not print the words back");
  const typo = await wallet(["restore", "--wallet", tmpWalletFile(), "--scrypt-n", "32768"], {
    input: c.mnemonic.replace(/^\w+/, "zzz"),
  });
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /"zzz" is not a BIP39 English word \[MNEMONIC_INVALID\]/);
  const again = await wallet(["create", "--wallet", aliceFile]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /already exists.*WALLET_EXISTS/);

  // Bob's wallet comes from the SDK (no safe-prime search); the CLI opens it like any other.
  const { wallet: bobSdk, file: bobFile, mnemonic: bobWords } = await testWallet();
  await bobSdk.close();
  const A = ["--wallet", aliceFile];
  const B = ["--wallet", bobFile];

  const unconfirmed = await wallet(["trust-simulator", ...A]);
  assert.equal(unconfirmed.code, 2);
  assert.match(unconfirmed.stderr, /--confirm/);
  const infoBefore = json(await wallet(["info", ...A, "--json"]));
  assert.deepEqual(infoBefore.trust.pcrReleases, [], "nothing trusted without --confirm");
  for (const f of [A, B]) {
    const t = await wallet(["trust-simulator", ...f, "--confirm", "--json"]);
    assert.equal(t.code, 0, t.stderr);
    assert.equal(json(t).trusted, true);
    assert.equal(json(t).mainstayKey, undefined, "this SE publishes to no Mainstay service");
  }
  const info = json(await wallet(["info", ...A, "--json"]));
  assert.equal(info.se.attestationMode, "simulator");
  assert.equal(info.trust.pcrReleases.length, 1);

  assert.equal((await wallet(["faucet", ...A])).code, 0);
  // Until the wallet holds the amount: the simulator's faucet key pays what it lacks, one block confirms it.
  const topped = await wallet(["faucet", "--amount", "30btc", ...A, "--json"]);
  assert.equal(topped.code, 0, topped.stderr);
  assert.equal(json(topped).onchainSat, "3000000000", topped.stdout);
  assert.deepEqual([json(topped).source, json(topped).blocks], ["faucet", 1], topped.stdout);
  assert.equal(
    (await wallet(["faucet", "--amount", "1btc", ...A, "--json"])).stdout.includes('"blocks":0'),
    true,
  );
  // The amount is checked against the dust limit and the SE's range before any proof of work or key generation.
  for (const [amount, message] of [
    ["100", /below the dust limit \(330 sat\).*\[AMOUNT_DUST\]/],
    ["5000", /at least 10000 sat; 5000 sat is less \[AMOUNT_RANGE\]/],
    ["2btc", /at most 100000000 sat; 200000000 sat is more \[AMOUNT_RANGE\]/],
  ] as const) {
    const r = await wallet(["deposit", amount, ...A]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /proof of work|key generation/);
  }
  const dep = await wallet(["deposit", "0.002btc", ...A, "--json", "--poll-ms", "200"], { mining: true });
  assert.equal(dep.code, 0, dep.stderr);
  const coin = json(dep);
  assert.equal(coin.amountSat, "200000");
  assert.equal(coin.status, "active");
  const steps = dep.stderr
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l).step);
  assert.ok(steps.includes("keygen") && steps.includes("confirmations"), steps.join(","));

  const bobAddress = (await wallet(["address", ...B])).stdout.trim();
  assert.match(bobAddress, /^rsc1/);
  // One character changed (to another one: the last character of an address is "q" one time in 32).
  const mistyped = `${bobAddress.slice(0, -1)}${bobAddress.endsWith("q") ? "p" : "q"}`;
  const bad = await wallet(["send", String(coin.number), mistyped, ...A]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /ADDRESS_CHECKSUM/);
  const sent = await wallet(["send", String(coin.number), bobAddress, ...A]);
  assert.equal(sent.code, 0, sent.stderr);

  // This SE runs without Mainstay: the coin has no proof of publication, refused by default (and left in the
  // mailbox), taken and marked only when the wallet accepts that explicitly.
  const unpublished = await wallet(["receive", ...B]);
  assert.equal(unpublished.code, 1, unpublished.stdout);
  assert.match(unpublished.stdout, /REFUSED .*not provably published.*--allow-unpublished.*\[UNPUBLISHED\]/);
  const got = await wallet(["receive", ...B, "--allow-unpublished"]);
  assert.equal(got.code, 0, got.stderr);
  assert.match(got.stdout, /received #1 .* owner 2, attestations verified \(SIMULATOR.*UNPUBLISHED/);
  const coins = json(await wallet(["coins", ...B, "--json"]));
  assert.equal(coins.length, 1);
  assert.equal(coins[0].status, "active");

  const strict = await wallet(["verify", "1", ...B]);
  assert.equal(strict.code, 1, strict.stdout);
  assert.match(strict.stdout, /✘ mainstay\.slot_proof .*UNPUBLISHED/);
  const verified = await wallet(["verify", "1", ...B, "--allow-unpublished"]);
  assert.equal(verified.code, 0, verified.stdout);
  assert.match(verified.stdout, /✔ attestation\.owner_2 +SIMULATOR attestation/);
  assert.match(verified.stdout, /verified — SIMULATOR attestations/);
  // A PCR policy that does not list this enclave: the same coin fails verification, by name.
  const other = path.join(path.dirname(bobFile), "other-pcrs.json");
  const policy = {
    releases: [{ name: "v9", pcr0: "11".repeat(48), pcr1: "22".repeat(48), pcr2: "33".repeat(48) }],
  };
  writeFileSync(other, JSON.stringify(policy));
  const foreign = await wallet(["verify", "1", ...B, "--pcrs", other, "--json"]);
  assert.equal(foreign.code, 1);
  const report = json(foreign);
  assert.equal(report.ok, false);
  assert.match(
    report.checks.find((x: { name: string }) => x.name === "attestation.owner_2").detail,
    /pcrs\.policy/,
  );

  // Without the stored trust the simulator's documents chain to no trusted root; --trust-simulator restores it
  // for one command, with measurements the owner gives (never the ones the SE reports: audit #18.11).
  assert.equal((await wallet(["trust-simulator", "--forget", ...B])).code, 0);
  const untrusted = json(await wallet(["verify", "1", ...B, "--json", "--allow-unpublished"]));
  assert.equal(untrusted.ok, false);
  assert.match(
    untrusted.checks.find((x: { name: string }) => x.name === "attestation.owner_2").detail,
    /chain\.root_pinned/,
  );
  const pem = path.join(se.dataDir, "sim-ca", "sim-ca-root.pem");
  const rootOnly = await wallet(["verify", "1", ...B, "--trust-simulator", pem]);
  assert.notEqual(rootOnly.code, 0, "a root alone pins no measurements");
  assert.match(rootOnly.stderr, /NO_PCR_POLICY/);
  const mine = path.join(se.dataDir, "my-pcrs.json");
  const seClient = new SeClient(`127.0.0.1:${se.port}`, { rng: systemRng });
  const published = (await seClient.call("getInfo", {})).enclave!.expectedPcrs;
  seClient.close();
  writeFileSync(
    mine,
    JSON.stringify({
      releases: published.map((r) => ({ name: r.name, pcr0: r.pcr0, pcr1: r.pcr1, pcr2: r.pcr2 })),
    }),
  );
  const flagged = await wallet([
    "verify",
    "1",
    ...B,
    "--trust-simulator",
    pem,
    "--pcrs",
    mine,
    "--allow-unpublished",
  ]);
  assert.equal(flagged.code, 0, flagged.stdout);
  assert.match(flagged.stdout, /SIMULATOR/);

  const to = (await wallet(["address", "--onchain", ...A])).stdout.trim();
  // Co-signing checks the enclave's signature on its partial signature under the attested instance key: with
  // bob's stored trust forgotten above, the withdrawal needs the root and measurements again.
  const w = await wallet(
    ["withdraw", "1", to, ...B, "--trust-simulator", pem, "--pcrs", mine, "--json", "--poll-ms", "200"],
    { mining: true },
  );
  assert.equal(w.code, 0, w.stderr);
  assert.equal(json(w).coin.status, "withdrawn");

  // A wrong passphrase opens nothing and changes nothing.
  const digest = () => createHash("sha256").update(readFileSync(bobFile)).digest("hex");
  const before = digest();
  const wrong = await wallet(["coins", ...B], {
    env: { WALLET_PASSPHRASE: "" },
    input: "not it\n",
    spawned: true,
  });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /passphrase does not open this wallet \[WRONG_PASSPHRASE\]/);
  assert.equal(digest(), before);

  // Bob's words in a new file: `recover` finds the coin he received and withdrew (issue #22).
  const bobAgain = tmpWalletFile("bob-restored");
  const R = ["--wallet", bobAgain];
  const words = path.join(path.dirname(bobFile), "bob-words.txt");
  writeFileSync(words, bobWords);
  assert.equal((await wallet(["restore", ...R, "--mnemonic-file", words, "--scrypt-n", "32768"])).code, 0);
  assert.equal((await wallet(["trust-simulator", ...R, "--confirm"])).code, 0);
  const rec = await wallet(["recover", ...R, "--gap", "3", "--allow-unpublished", "--json"]);
  assert.equal(rec.code, 0, rec.stderr);
  const found = json(rec);
  assert.deepEqual(
    found.coins.map((k: { status: string; origin: string; ownerIndex: number }) => [
      k.status,
      k.origin,
      k.ownerIndex,
    ]),
    [["withdrawn", "received", 2]],
  );
  assert.match(rec.stderr, /learns every proof key asked about/);
  const text = await wallet(["recover", ...R, "--gap", "3", "--allow-unpublished"]);
  assert.match(text.stdout, /asked about \d+ key slot\(s\); coins on 1/);
  const help = await wallet(["recover", "--help"]);
  assert.match(help.stdout, /What the SE learns/);
});
