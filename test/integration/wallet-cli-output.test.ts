// What the wallet's commands print (issue #20): withdraw and exit say what was received, the fees and where it
// went; send shows its steps; `coins` has a header and no backup lock for coins that are gone; an exit started
// with --no-wait shows as exiting; Ctrl-C says what state it left, exit status 130.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { after, before, test } from "node:test";
import { PASSPHRASE, testWallet } from "../client/wallet-helpers.ts";
import { type Harness, ownerHarness } from "../helpers/owners.ts";
import { ROOT, type SeProcess, startSeProcess } from "../helpers/se-process.ts";
import { runWallet } from "../helpers/wallet-cli.ts";

let se: SeProcess;
let h: Harness;

before(async () => {
  se = await startSeProcess({ env: { SE_MAINSTAY_ENABLED: "false", SE_INIT_LOCK: "200" } });
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

const env = (): Record<string, string> => ({
  WALLET_SE: `127.0.0.1:${se.port}`,
  SE_DATA_DIR: se.dataDir,
  WALLET_PASSPHRASE: PASSPHRASE,
});

/** `wallet …` in this process; with `mining`, a block every 200 ms meanwhile (this SE mines on demand). */
const wallet = (args: string[], opts: { mining?: boolean } = {}): Promise<Run> =>
  runWallet(args, {
    env: { ...process.env, ...env() },
    mine: opts.mining ? () => h.chain.mine(1) : undefined,
  });

const json = (r: Run) => JSON.parse(r.stdout.trim().split("\n").pop()!);
const steps = (r: Run) =>
  r.stderr
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l).step);

let A: string[];
let B: string[];

test("send shows its steps; withdraw and exit say what was received, the fees and where; coins lists them", async () => {
  const { wallet: aliceSdk, file: aliceFile } = await testWallet();
  await aliceSdk.close();
  const { wallet: bobSdk, file: bobFile } = await testWallet();
  await bobSdk.close();
  A = ["--wallet", aliceFile];
  B = ["--wallet", bobFile];
  for (const f of [A, B]) assert.equal((await wallet(["trust-simulator", ...f, "--confirm"])).code, 0);
  assert.equal((await wallet(["faucet", ...A])).code, 0);
  for (let i = 0; i < 3; i++) {
    const d = await wallet(["deposit", "0.002btc", ...A, "--poll-ms", "200"], { mining: true });
    assert.equal(d.code, 0, d.stderr);
  }

  const bobAddress = (await wallet(["address", ...B])).stdout.trim();
  const sent = await wallet(["send", "1", bobAddress, ...A]);
  assert.equal(sent.code, 0, sent.stderr);
  assert.match(sent.stderr, /• asking the SE to open the transfer/);
  assert.match(sent.stderr, /• co-signing the backup transaction for the receiver \(its lock: \d+\)/);
  assert.match(sent.stderr, /• handing the SE the signed statechain transaction/);

  const to = (await wallet(["address", "--onchain", ...A])).stdout.trim();
  const w = await wallet(["withdraw", "2", to, ...A, "--poll-ms", "200"], { mining: true });
  assert.equal(w.code, 0, w.stderr);
  const text = new RegExp(
    `^coin #2 withdrawn: (\\d{3}),(\\d{3}) sat received at ${to} \\(network fee (\\d+) sat\\)\\n {2}withdrawal txid [0-9a-f]{64}\\n$`,
  );
  assert.match(w.stdout, text);
  const [, hi, lo, fee] = text.exec(w.stdout)!;
  assert.equal(Number(`${hi}${lo}`) + Number(fee), 200_000, "what is received and the fee make the coin");
  assert.match(w.stderr, /• co-signing the withdrawal transaction with the SE/);

  // An exit before the backup's lock, without waiting: nothing is broadcast, and `coins` shows it as exiting.
  const early = await wallet(["exit", "3", ...A, "--no-wait", "--json"]);
  assert.equal(early.code, 0, early.stderr);
  const e = json(early);
  assert.equal(e.state.stage, "waiting-lock");
  assert.equal(BigInt(e.receivedSat) + BigInt(e.feeSat), 200_000n);
  assert.match(e.destination, /^bcrt1q/);
  const listed = await wallet(["coins", ...A]);
  assert.equal(listed.code, 0, listed.stderr);
  const lines = listed.stdout.trimEnd().split("\n");
  assert.match(lines[0]!, /^coin +status +amount +owner +backup lock +statechain id$/);
  const row = (n: number) => lines.find((l) => l.startsWith(`#${n} `)) ?? "";
  assert.match(row(1), /^#1 +sent +200,000 sat +1 +[0-9a-f]{64}:\d+$/, "a sent coin has no backup lock");
  assert.match(row(2), /^#2 +withdrawn +200,000 sat +1 +[0-9a-f]{64}:\d+$/, "nor a withdrawn one");
  assert.match(row(3), /^#3 +exiting +200,000 sat +1 +height \d+ \(\d+ blocks left\)/);
  assert.match(
    lines[lines.indexOf(row(3)) + 1]!,
    /^ {4}exiting: waiting for the backup's lock: it may be mined from height \d+; nothing is broadcast yet .*`wallet exit 3` continues$/,
  );
  const coinsJson = json(await wallet(["coins", ...A, "--json"]));
  assert.equal(coinsJson[2].exit.stage, "waiting-lock");

  // Up to the lock, then the exit runs to its end and says what the backup paid.
  const unlock = Number(e.state.unlockHeight);
  await h.chain.mine(Math.max(0, unlock - 1 - (await h.chain.tipHeight())));
  const done = await wallet(["exit", "3", ...A, "--poll-ms", "200"], { mining: true });
  assert.equal(done.code, 0, done.stderr);
  assert.match(
    done.stdout,
    new RegExp(
      `^coin #3 exited: ${Number(e.receivedSat).toLocaleString("en-US")} sat received at ${e.destination} \\(this wallet's backup key: on-chain funds now; fee ${e.feeSat} sat from the coin\\)\\n {2}backup [0-9a-f]{64} confirmed at height \\d+\\n$`,
    ),
  );
  const after = (await wallet(["coins", ...A])).stdout.split("\n");
  assert.match(
    after.find((l) => l.startsWith("#3 ")) ?? "",
    /^#3 +exited +200,000 sat +1 +[0-9a-f]{64}:\d+$/,
  );
});

test("withdraw --json: destination, amount received, network and SE fees", async () => {
  const d = await wallet(["deposit", "0.002btc", ...A, "--poll-ms", "200", "--json"], { mining: true });
  assert.equal(d.code, 0, d.stderr);
  const n = String(json(d).number);
  const to = (await wallet(["address", "--onchain", ...A])).stdout.trim();
  const w = await wallet(["withdraw", n, to, ...A, "--poll-ms", "200", "--json"], { mining: true });
  assert.equal(w.code, 0, w.stderr);
  const r = json(w);
  assert.equal(r.destination, to);
  assert.equal(r.seFeeSat, "0");
  assert.equal(BigInt(r.receivedSat) + BigInt(r.feeSat), 200_000n);
  assert.equal(BigInt(r.feeSat) > 0n, true, "a network fee was paid");
  const s = steps(w);
  for (const step of ["withdraw-init", "cosign", "broadcast", "confirmations"])
    assert.equal(s.includes(step), true, `${step} in ${s.join(",")}`);
});

test("Ctrl-C while a deposit waits for confirmations: one line says the deposit is broadcast, exit status 130", async () => {
  const child = spawn(
    process.execPath,
    [path.join(ROOT, "bin/wallet.js"), "deposit", "0.002btc", ...A, "--json", "--poll-ms", "200"],
    { cwd: ROOT, env: { ...process.env, ...env() }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no confirmations step in 120 s:\n${stderr}`)), 120_000);
    child.stderr.on("data", (d) => {
      stderr += d;
      if (stderr.includes('"step":"confirmations"')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  child.kill("SIGINT");
  assert.equal(await exited, 130, stderr);
  assert.match(
    stderr,
    /\nwallet: interrupted while waiting for confirmations: the deposit is broadcast; `wallet coins` shows it\n$/,
  );
  assert.equal(JSON.parse(stdout.trim()).error.code, "INTERRUPTED");
  const coins = json(await wallet(["coins", ...A, "--json"]));
  assert.equal(coins.at(-1).status, "awaiting-confirmation");
  assert.equal(coins.at(-1).amountSat, "200000");
});
