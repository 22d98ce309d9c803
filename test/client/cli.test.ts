import assert from "node:assert/strict";
import { type AddressInfo, createServer } from "node:net";
import { test } from "node:test";
import { coinsTable, interruptedText, parseAmount } from "../../client/cli.ts";
import { durationText, progressPrinter } from "../../client/progress.ts";
import { grpcStatusName, SeError } from "../../client/se-client.ts";
import type { CoinSummary } from "../../client/wallet.ts";
import { closest, editDistance } from "../../common/suggest.ts";
import { runWallet } from "../helpers/wallet-cli.ts";
import { PASSPHRASE, testWallet } from "./wallet-helpers.ts";

test("amounts in satoshis or bitcoin", () => {
  assert.equal(parseAmount("100000"), 100_000n);
  assert.equal(parseAmount("2500 sat"), 2_500n);
  assert.equal(parseAmount("0.001btc"), 100_000n);
  assert.equal(parseAmount("1.5 BTC"), 150_000_000n);
  assert.equal(parseAmount("0.00000001btc"), 1n);
  for (const bad of ["", "0.000000001btc", "ten", "1e5"])
    assert.throws(() => parseAmount(bad), /not an amount/);
  assert.throws(() => parseAmount("-5"), /"-5" is negative/);
  assert.throws(() => parseAmount("0"), /is zero/);
  assert.throws(() => parseAmount("0btc"), /is zero/);
  // A bare decimal gets the precise spelling, not a guessed unit.
  assert.throws(() => parseAmount("0.01"), /"0\.01" has no unit: write 0\.01btc for bitcoin \(1000000 sat\)/);
  assert.throws(() => parseAmount("1.5"), /1\.5btc .*150000000 sat/);
});

test("--version, help <command>, did you mean, and a negative number that is not an option", async () => {
  const v = await run(["--version"]);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^wallet \d+\.\d+\.\d+\n$/);
  const h = await run(["help", "deposit"]);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /^wallet deposit <amount>/);
  assert.match((await run(["help"])).stdout, /Usage: wallet <command>/);
  const typo = await run(["depost", "5"]);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /unknown command "depost"; did you mean "deposit"\?/);
  assert.match((await run(["trust"])).stderr, /did you mean "trust-simulator"/);
  assert.doesNotMatch((await run(["launch"])).stderr, /did you mean/);
  const neg = await run(["deposit", "-5"]);
  assert.equal(neg.code, 2);
  assert.equal(neg.stderr, "wallet: -5 is negative: amounts, counts and times are positive\n");
});

test("edit distance and the closest name", () => {
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(editDistance("strat", "start"), 1);
  assert.equal(closest("recieve", ["receive", "restore"]), "receive");
  assert.equal(closest("withdrwa", ["withdraw", "exit"]), "withdraw");
  assert.equal(closest("xyz", ["receive", "restore"]), undefined);
});

test("progress: JSON lines with --json, one line per change without a terminal, a bar in place on one", () => {
  const lines: string[] = [];
  const json = progressPrinter({ write: (s) => lines.push(s), tty: false, json: true });
  json.onProgress("confirmations", { have: 1, need: 3 });
  assert.deepEqual(JSON.parse(lines[0]!), { event: "progress", step: "confirmations", have: 1, need: 3 });

  const plain: string[] = [];
  const p = progressPrinter({ write: (s) => plain.push(s), tty: false, json: false });
  p.onProgress("confirmations", { have: 0, need: 2 });
  p.onProgress("confirmations", { have: 0, need: 2 });
  p.onProgress("confirmations", { have: 2, need: 2 });
  p.onProgress("keygen");
  p.onProgress("an-event-nobody-describes");
  assert.equal(plain.length, 3, plain.join(""));
  assert.match(plain[1]!, /\[#{24}\] 2\/2/);
  assert.match(plain[2]!, /key generation/);

  const tty: string[] = [];
  const t = progressPrinter({ write: (s) => tty.push(s), tty: true, json: false });
  t.onProgress("wait-blocks", { tip: 100, left: 10 });
  t.onProgress("wait-blocks", { tip: 105, left: 5 });
  t.end();
  assert.ok(tty[1]!.startsWith("\r\u001b[K"), "redrawn in place");
  assert.match(tty[1]!, /\[#{12}-{12}\] 5 left/);
  assert.equal(tty[2], "\n");
});

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** `wallet …` run here, with the passphrase in the environment and no terminal. */
const run = (args: string[], env: Record<string, string> = {}) =>
  runWallet(args, {
    env: { PATH: process.env.PATH, WALLET_PASSPHRASE: PASSPHRASE, SE_DATA_DIR: "/nonexistent", ...env },
    cwd: process.cwd(),
  });

test("an SE that cannot be reached: which endpoint, where it came from, how to check it and choose another", async () => {
  const { wallet, file } = await testWallet();
  await wallet.close();
  const port = await closedPort();
  const r = await run(["trust-simulator", "--wallet", file, "--se", `127.0.0.1:${port}`]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(`cannot reach the SE at 127\\.0\\.0\\.1:${port} \\(from --se\\): GetInfo: `),
  );
  assert.match(r.stderr, /\[SE_UNAVAILABLE\]/);
  assert.doesNotMatch(r.stderr, /SE_14/);
  assert.match(r.stderr, new RegExp(`se status --endpoint 127\\.0\\.0\\.1:${port}`));
  assert.match(r.stderr, /--se <host:port>, or WALLET_SE=<host:port>/);

  const j = await run(["trust-simulator", "--wallet", file, "--json"], { WALLET_SE: `127.0.0.1:${port}` });
  const err = JSON.parse(j.stdout.trim()).error;
  assert.equal(err.code, "SE_UNAVAILABLE");
  assert.match(err.message, /\(from WALLET_SE\)/);

  const info = await run(["info", "--wallet", file, "--se", `127.0.0.1:${port}`]);
  assert.equal(info.code, 0, info.stderr);
  assert.match(info.stdout, /unreachable: GetInfo: .*\n.*se status --endpoint/);
});

test("gRPC status codes by name", () => {
  assert.equal(grpcStatusName(14), "UNAVAILABLE");
  assert.equal(grpcStatusName(4), "DEADLINE_EXCEEDED");
  assert.equal(grpcStatusName(99), "99");
  assert.equal(new SeError("GetInfo", 7, "no").codeName, "PERMISSION_DENIED");
});

test("progress off a terminal: a bar's line at most every 30 s or 10 % of the way, and its last one", () => {
  let t = 0;
  const lines: string[] = [];
  const p = progressPrinter({ write: (s) => lines.push(s), tty: false, json: false, now: () => t });
  for (let left = 200; left >= 0; left--) {
    t += 1000; // a block a second for 200 s
    p.onProgress("wait-blocks", { tip: 1000 - left, left, network: "regtest" });
  }
  // The first line, then one per 20 blocks (10 %) since 30 s never pass in between, and the end.
  assert.equal(lines.length, 11, lines.join(""));
  assert.match(lines.at(-1)!, / 0 left/);
  lines.length = 0;
  const slow = progressPrinter({ write: (s) => lines.push(s), tty: false, json: false, now: () => t });
  for (let left = 1000; left > 990; left--) {
    t += 10_000; // a block every 10 s: 1 % each, so only the 30 s rule prints
    slow.onProgress("wait-blocks", { tip: 5000 - left, left, network: "regtest" });
  }
  assert.equal(lines.length, 4, lines.join(""));
});

test("waiting for blocks: an ETA at the network's block interval, and on regtest how to mine them", () => {
  const lines: string[] = [];
  const p = progressPrinter({ write: (s) => lines.push(s), tty: false, json: false, now: () => 0 });
  p.onProgress("wait-blocks", { tip: 800_000, left: 20, network: "bitcoin" });
  assert.match(lines[0]!, /20 left \(tip 800000\), about 3 h 20 min\n$/);
  lines.length = 0;
  let t = 0;
  const r = progressPrinter({ write: (s) => lines.push(s), tty: true, json: false, now: () => t });
  r.onProgress("wait-blocks", { tip: 100, left: 50, network: "regtest" });
  assert.match(lines[0]!, /50 left \(tip 100\) \(regtest: `npx se mine 50` mines them\)$/);
  t = 20_000;
  r.onProgress("wait-blocks", { tip: 102, left: 48, network: "regtest" });
  assert.match(
    lines[1]!,
    /48 left \(tip 102\), about 8 min \(regtest: `npx se mine 48`/,
    "10 s a block, as seen",
  );
  assert.equal(durationText(30), "under a minute");
  assert.equal(durationText(3 * 86_400), "about 3 days");
});

test("waiting for confirmations on regtest says how to mine them", () => {
  const lines: string[] = [];
  const p = progressPrinter({ write: (s) => lines.push(s), tty: false, json: false });
  p.onProgress("confirmations", { have: 0, need: 2, network: "regtest" });
  p.onProgress("confirmations", { have: 2, need: 2, network: "regtest" });
  p.onProgress("confirmations", { tx: "backup", have: 0, need: 1, network: "bitcoin" });
  assert.match(lines[0]!, /0\/2 \(regtest: `npx se mine 2` mines them\)\n$/);
  assert.match(lines[1]!, /2\/2\n$/);
  assert.match(lines[2]!, /backup confirmations .* 0\/1\n$/);
});

test("send shows its steps: the transfer opened, the receiver's backup co-signed, the message handed over", () => {
  const lines: string[] = [];
  const p = progressPrinter({ write: (s) => lines.push(s), tty: false, json: false });
  p.onProgress("transfer-init");
  p.onProgress("backup", { for: "the receiver", lock: 1290 });
  p.onProgress("transfer-send");
  assert.equal(lines.length, 3, lines.join(""));
  assert.match(lines[0]!, /^• asking the SE to open the transfer/);
  assert.match(lines[1]!, /^• co-signing the backup transaction for the receiver \(its lock: 1290\)\n$/);
  assert.match(lines[2]!, /^• handing the SE the signed statechain transaction and the receiver's encrypted/);
});

function coin(over: Partial<CoinSummary>): CoinSummary {
  return {
    number: 1,
    statechainId: `${"ab".repeat(32)}:0`,
    status: "active",
    origin: "deposit",
    amountSat: 200_000n,
    ownerIndex: 1,
    backupMode: "absolute",
    backupLock: 1300,
    blocksToLock: 12,
    depositAddress: "bcrt1qexample",
    seEndpoint: "127.0.0.1:50051",
    attestations: [],
    inBalance: true,
    ...over,
  };
}

test("wallet coins: a header line, no backup lock for coins that are gone, an exit under way shown as exiting", () => {
  const table = coinsTable([
    coin({}),
    coin({ number: 2, status: "sent", ownerIndex: 2, receiver: { address: "rsc1x", sinceMs: 0 } }),
    coin({ number: 3, status: "withdrawn", inBalance: false }),
    coin({ number: 4, status: "exited", inBalance: false }),
    coin({
      number: 5,
      exit: { mode: "absolute", stage: "waiting-lock", backupTxid: "cd".repeat(32), unlockHeight: 1300 },
    }),
  ]).split("\n");
  assert.match(table[0]!, /^coin +status +amount +owner +backup lock +statechain id$/);
  const row = (n: number) => table.find((l) => l.startsWith(`#${n} `))!;
  assert.match(row(1), /^#1 +active +200,000 sat +1 +height 1300 \(12 blocks left\) +abab/);
  for (const n of [2, 3, 4]) assert.doesNotMatch(row(n), /height|blocks left/, `coin ${n} is gone`);
  assert.match(row(2), /^#2 +sent +200,000 sat +2 +abab/);
  // Columns line up: the statechain id starts at the same place on every row.
  const at = table[0]!.indexOf("statechain id");
  for (const n of [1, 2, 3, 4, 5]) assert.equal(row(n).indexOf("abab"), at, `coin ${n}: ${row(n)}`);
  assert.match(row(5), /^#5 +exiting /);
  const note = table[table.indexOf(row(5)) + 1]!;
  assert.match(
    note,
    /^ {4}exiting: waiting for the backup's lock: it may be mined from height 1300; nothing is broadcast yet \(until then the coin can still be sent or withdrawn\); `wallet exit 5` continues$/,
  );
});

test("an interrupt says in one line what state the command left", () => {
  const at = (command: string, args: string[], event?: string, detail: Record<string, unknown> = {}) =>
    interruptedText(command, args, event ? { event, detail } : undefined, "/w.sqlite");
  assert.equal(
    at("deposit", ["0.01btc"], "confirmations", { have: 0, need: 1 }),
    "while waiting for confirmations: the deposit is broadcast; `wallet coins` shows it",
  );
  assert.match(at("deposit", ["0.01btc"], "keygen"), /key generation.*no bitcoin moved/);
  assert.match(
    at("deposit", ["0.01btc"]),
    /before anything went to the SE or the network: nothing changed there/,
  );
  assert.match(
    at("send", ["3", "rsc1x"], "backup"),
    /receiver is recorded.*`wallet send 3 rsc1x` finishes it/,
  );
  assert.match(at("withdraw", ["3", "bcrt1q"], "confirmations"), /broadcast; .*`wallet withdraw 3 bcrt1q`/);
  assert.match(
    at("exit", ["3"], "wait-blocks"),
    /backup's lock: nothing is broadcast; `wallet exit 3` continues/,
  );
  assert.match(
    at("exit", ["3"], "confirmations", { tx: "kick-off" }),
    /the kick-off to confirm: it is broadcast/,
  );
  assert.match(at("create", []), /delete the file and run `wallet create` again/);
});

test("every command's help ends with an example of that command", async () => {
  const commands = [
    "create",
    "restore",
    "address",
    "info",
    "faucet",
    "deposit",
    "coins",
    "send",
    "receive",
    "withdraw",
    "exit",
    "verify",
    "trust-simulator",
  ];
  for (const c of commands) {
    const h = await run(["help", c]);
    assert.equal(h.code, 0, `help ${c}`);
    assert.match(
      h.stdout,
      new RegExp(`\\n  Examples?:\\n    (npx se mine \\d+ && )?wallet ${c}\\b`),
      `help ${c} shows an example`,
    );
  }
});
