// One name per setting, as a newcomer runs it (issue #20): `se start` prints the `export` lines a wallet needs and
// with them alone `se status` and the wallet find the SE; when the SE is gone the wallet names the simulator's
// embedded node (not a "bitcoind"), and `se start --chain-only` on the data dir is enough to leave by the backup.
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { PASSPHRASE, testWallet } from "../client/wallet-helpers.ts";
import { ROOT } from "../helpers/se-process.ts";

const dataDir = mkdtempSync(path.join(tmpdir(), "se-gone-cli-"));
/** What the tests' environment must not bring in: these tests give the names themselves. */
const baseEnv = (): NodeJS.ProcessEnv => {
  const env = { ...process.env };
  for (const k of ["SE_DATA_DIR", "WALLET_SE", "SE_ENDPOINT", "WALLET_FILE"]) delete env[k];
  return env;
};

/** Starts `se start` (text banner) and resolves with the process and its banner once it is up. */
async function startText(args: string[], until: RegExp): Promise<{ proc: ChildProcess; banner: string }> {
  const proc = spawn(
    process.execPath,
    [path.join(ROOT, "bin/se.js"), "start", "--data-dir", dataDir, ...args],
    {
      cwd: ROOT,
      env: {
        ...baseEnv(),
        SE_CHAIN_RPC_PORT: "0",
        SE_MINE_INTERVAL_MS: "0",
        SE_MAINSTAY_ENABLED: "false",
        SE_INIT_LOCK: "150",
        SE_LOG_LEVEL: "warn",
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let banner = "";
  let stderr = "";
  proc.stderr!.on("data", (d) => {
    stderr += d;
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no banner in 60 s:\n${banner}\n${stderr}`)), 60_000);
    proc.stdout!.on("data", (d) => {
      banner += d;
      if (until.test(banner)) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.once("exit", (code) => reject(new Error(`se exited with ${code}:\n${banner}\n${stderr}`)));
  });
  return { proc, banner };
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const exited = new Promise((r) => proc.once("exit", r));
  proc.kill("SIGTERM");
  await exited;
}

/** Runs a command line in bash after the banner's export lines, with nothing else telling it where the SE is. */
function shell(exports: string, command: string) {
  const r = spawnSync("bash", ["-c", `${exports}\n${command}`], {
    cwd: tmpdir(),
    env: { ...baseEnv(), WALLET_PASSPHRASE: PASSPHRASE },
    encoding: "utf8",
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const se = (args: string) => `node ${path.join(ROOT, "bin/se.js")} ${args}`;
const wallet = (args: string) => `node ${path.join(ROOT, "bin/wallet.js")} ${args}`;

test("se start prints the export lines a wallet needs; with them alone se status and the wallet find it; the SE gone, the chain alone takes the coin out by its backup", async () => {
  const { wallet: sdk, file } = await testWallet();
  await sdk.close();
  const W = `--wallet ${file}`;
  const { proc, banner } = await startText([], /Ctrl-C stops everything/);
  let exports: string;
  let port: string;
  try {
    const lines = banner.split("\n").filter((l) => /^ {4}export /.test(l));
    assert.equal(lines.length, 2, banner);
    port = /export WALLET_SE=127\.0\.0\.1:(\d+)$/.exec(lines[0]!)?.[1] ?? "";
    assert.match(port, /^\d+$/, lines[0]);
    assert.equal(lines[1], `    export SE_DATA_DIR=${dataDir}`);
    exports = lines.join("\n");

    // From another directory, with only the exported names: `se status` and the wallet reach this SE.
    const status = shell(exports, se("status"));
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^SE at 127\\.0\\.0\\.1:${port}: SERVING`));
    const info = shell(exports, wallet(`info ${W}`));
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, new RegExp(`^SE +127\\.0\\.0\\.1:${port} — regtest, simulator enclave`, "m"));
    // The other CLI's names for the same setting: --se for `se status`, --endpoint and SE_ENDPOINT for the wallet.
    assert.equal(shell("", se(`status --se 127.0.0.1:${port}`)).code, 0);
    const alias = shell(
      `export SE_ENDPOINT=127.0.0.1:${port} SE_DATA_DIR=${dataDir}`,
      wallet(`info ${W} --json`),
    );
    assert.equal(JSON.parse(alias.stdout).se.reachable, true, alias.stderr);
    assert.equal(
      JSON.parse(shell(exports, wallet(`info ${W} --json --endpoint 127.0.0.1:1`)).stdout).se.endpoint,
      "127.0.0.1:1",
    );
    const both = shell(exports, wallet(`info ${W} --se 127.0.0.1:1 --endpoint 127.0.0.1:2`));
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--se 127\.0\.0\.1:1 and --endpoint 127\.0\.0\.1:2 name the same setting/);

    for (const step of ["trust-simulator --confirm", "faucet"]) {
      const r = shell(exports, wallet(`${step} ${W}`));
      assert.equal(r.code, 0, `${step}: ${r.stderr}`);
    }
    // The deposit waits for its confirmation while another shell mines (this SE mines on demand only).
    const dep = shell(
      exports,
      `${wallet(`deposit 0.002btc ${W} --poll-ms 300`)} & pid=$!\nwhile kill -0 $pid 2>/dev/null; do ${se("mine 1")} >/dev/null; sleep 1; done\nwait $pid`,
    );
    assert.equal(dep.code, 0, dep.stderr);
    assert.match(dep.stdout, /^coin #1 \S+: 200,000 sat, active$/m);
  } finally {
    await stop(proc);
  }

  // The SE is gone, its chain with it: the wallet names the simulator's node and how to run the chain alone.
  const gone = shell(exports, wallet(`exit 1 ${W}`));
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /the simulator's embedded regtest node at http:\/\/127\.0\.0\.1:\d+\/ \(\w+\): /);
  assert.doesNotMatch(gone.stderr, /bitcoind/);
  assert.match(gone.stderr, /on its own: `npx se start --chain-only`/);

  const chain = await startText(["--chain-only"], /Ctrl-C stops it/);
  try {
    assert.match(chain.banner, new RegExp(`^ {4}export SE_DATA_DIR=${dataDir}$`, "m"));
    const waiting = shell(exports, wallet(`exit 1 ${W} --no-wait`));
    assert.equal(waiting.code, 0, waiting.stderr);
    assert.match(
      waiting.stdout,
      /^coin #1 exiting: waiting for the backup's lock: it may be mined from height (\d+)/,
    );
    const unlock = Number(/from height (\d+)/.exec(waiting.stdout)![1]);
    const tip = Number(JSON.parse(shell(exports, se("mine 1 --json")).stdout).to);
    assert.equal(shell(exports, se(`mine ${Math.max(1, unlock - 1 - tip)}`)).code, 0);
    const out = shell(
      exports,
      `${wallet(`exit 1 ${W} --no-wait`)} && ${se("mine 1")} && ${wallet(`exit 1 ${W}`)}`,
    );
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /coin #1 exited: [\d,]+ sat received at bcrt1q\w+ \(this wallet's backup key/);
    const coins = shell(exports, wallet(`coins ${W}`));
    assert.match(coins.stdout, /^#1 +exited /m);
  } finally {
    await stop(chain.proc);
  }
});
