// The simulator across restarts, with real processes: `se start` on a data dir, a coin deposited through the
// wallet CLI, SIGTERM, `se start` again on the same dir. The chain, the database and the local Mainstay service
// resume; the restarted enclave holds no key share, so the coin is exit-by-backup and the wallet shows it exit-only
// (still counted in the balance: it is the wallet's, by its backup). `--fresh` starts a new chain and an empty
// database: the wallet shows the coin as unknown to the SE, outside the balance.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { BitcoindChain } from "../../chain/bitcoind.ts";
import { PASSPHRASE, testWallet } from "../client/wallet-helpers.ts";
import { ROOT, type SeProcess, startSeExpectingFailure, startSeProcess } from "../helpers/se-process.ts";
import { runWallet } from "../helpers/wallet-cli.ts";
import { queryDb } from "../host/support/db-snapshot.ts";

const dataDir = mkdtempSync(path.join(tmpdir(), "se-persist-"));
let se: SeProcess | undefined;
after(async () => {
  await se?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** A port free now: the SE keeps its public address across restarts, as `npm start` does (50051). */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function chainRpc(): BitcoindChain {
  const rpc = JSON.parse(readFileSync(path.join(dataDir, "bitcoin-rpc.json"), "utf8"));
  return new BitcoindChain({ ...rpc, network: "regtest" });
}

async function wallet(port: number, args: string[], mining = false) {
  const chain = mining ? chainRpc() : undefined;
  try {
    return await runWallet(args, {
      env: {
        ...process.env,
        WALLET_SE: `127.0.0.1:${port}`,
        SE_DATA_DIR: dataDir,
        WALLET_PASSPHRASE: PASSPHRASE,
      },
      mine: chain ? () => chain.mine(1) : undefined,
    });
  } finally {
    await chain?.close();
  }
}

/** `se start` without --json, as a person sees it: the banner up to its last line. */
function startText(port: number, extra: string[] = []): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [path.join(ROOT, "bin/se.js"), "start", "--port", String(port), "--data-dir", dataDir, ...extra],
      {
        cwd: ROOT,
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, SE_CHAIN_RPC_PORT: "0", SE_MINE_INTERVAL_MS: "0", SE_LOG_LEVEL: "warn" },
      },
    );
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      if (out.includes("(started in")) child.kill("SIGTERM");
    });
    child.on("error", reject);
    child.on("exit", () => (out.includes("(started in") ? resolve(out) : reject(new Error(out))));
  });
}

test("a restart resumes chain, database and Mainstay; the coin is exit-only, --fresh makes it unknown to the SE", async () => {
  const port = await freePort();
  const start = (args: string[] = []) => startSeProcess({ dataDir, args: ["--port", String(port), ...args] });
  se = await start();
  assert.equal(se.info.resumed, false);
  assert.equal(se.info.fresh, false);

  const { wallet: sdk, file } = await testWallet();
  await sdk.close();
  const W = ["--wallet", file];
  const trust = await wallet(port, ["trust-simulator", ...W, "--confirm", "--json"]);
  assert.equal(trust.code, 0, trust.stderr);
  const trusted = trust.json();
  assert.ok(trusted.mainstayKey, "this SE publishes to its local Mainstay service");
  assert.equal((await wallet(port, ["faucet", ...W])).code, 0);
  const dep = await wallet(port, ["deposit", "0.002btc", ...W, "--json", "--poll-ms", "200"], true);
  assert.equal(dep.code, 0, dep.stderr);
  assert.equal(dep.json().status, "active");
  const live = (await wallet(port, ["coins", ...W, "--json"])).json();
  assert.equal(live[0].seStatus, "ACTIVE");
  assert.equal(live[0].inBalance, true);
  const chain = chainRpc();
  const height = await chain.tipHeight();
  await chain.close();

  // SIGTERM, then the same data dir again: the enclave is a new instance without the coin's share.
  assert.equal((await se.stop("SIGTERM")).code, 0);
  se = await start();
  assert.equal(se.info.resumed, true, JSON.stringify(se.info));
  assert.equal(se.info.resumedHeight, height);
  assert.equal(se.info.chainHeight, height);
  assert.equal(se.info.coins, 1);
  assert.equal(se.info.markedExitByBackup, 1);
  const rows = await queryDb(dataDir, "SELECT status FROM statechains");
  assert.deepEqual(
    rows.map((r) => r.status),
    [7],
    "the statechain row survived, exit-by-backup (STATECHAIN_STATUS_EXIT_BY_BACKUP)",
  );
  // The Mainstay service key survived with the chain: the wallet's pinned trust still holds.
  const again = await wallet(port, ["trust-simulator", ...W, "--confirm", "--json"]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.json().mainstayKey, trusted.mainstayKey);

  const coins = await wallet(port, ["coins", ...W]);
  assert.match(
    coins.stdout,
    /#1 +exit-only .*\n +exit only: the SE can no longer co-sign it .*`wallet exit 1`/,
  );
  const [c] = (await wallet(port, ["coins", ...W, "--json"])).json();
  assert.equal(c.status, "exit-only");
  assert.equal(c.seStatus, "EXIT_BY_BACKUP");
  assert.equal(c.inBalance, true, "an exit-only coin is the wallet's: counted");
  const info = (await wallet(port, ["info", ...W, "--json"])).json();
  assert.equal(info.balance.coinsSat, "200000");
  assert.equal(info.balance.exitOnlySat, "200000");
  assert.equal(info.balance.unknownSat, "0");
  assert.equal((await se.stop("SIGTERM")).code, 0);
  se = undefined;

  // What a person sees on the next start.
  const text = await startText(port);
  assert.match(text, new RegExp(`resumed +the existing chain at height ${height} with 1 coin\\(s\\)`));
  assert.match(text, /1 coin\(s\) can only leave by their backup/);

  // A database whose chain is gone is refused, naming --fresh.
  rmSync(path.join(dataDir, "regtest"), { recursive: true });
  const refused = await startSeExpectingFailure({ dataDir, args: ["--port", String(port)] });
  assert.match(refused.stderr, /host\.sqlite .*belong to a chain that is not there.*--fresh/s);

  se = await start(["--fresh"]);
  assert.equal(se.info.fresh, true);
  assert.equal(se.info.resumed, false);
  assert.equal(se.info.chainHeight, 432, "a new chain: the initial blocks only");
  assert.ok((se.info.wiped as string[]).includes("host.sqlite"), JSON.stringify(se.info.wiped));
  assert.deepEqual(await queryDb(dataDir, "SELECT status FROM statechains"), []);
  const unknown = await wallet(port, ["coins", ...W]);
  assert.match(
    unknown.stdout,
    /#1 +unknown-to-the-SE .*\n +unknown to the SE at .*not counted in the balance/,
  );
  const [u] = (await wallet(port, ["coins", ...W, "--json"])).json();
  assert.equal(u.status, "exit-only", "the wallet's own record is kept");
  assert.equal(u.seStatus, "UNKNOWN");
  assert.equal(u.inBalance, false);
  const after = await wallet(port, ["info", ...W]);
  assert.match(
    after.stdout,
    /0 sat in 0 coin\(s\); not counted: 200,000 sat in 1 coin\(s\) unknown to the SE/,
  );
  const afterJson = (await wallet(port, ["info", ...W, "--json"])).json();
  assert.equal(afterJson.balance.coinsSat, "0");
  assert.equal(afterJson.balance.unknownSat, "200000");
  assert.equal(afterJson.balance.unknownCoins, 1);
});
