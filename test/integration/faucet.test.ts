// The faucet late in a regtest chain (issue #20, Major 6): the simulator's node mines its own blocks to a faucet
// key, which so holds the chain's early 50-btc coinbases; `wallet faucet` is paid from it (bitcoind's
// `sendtoaddress`) and one block confirms it, however many halvings later: here past twenty.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { BitcoindChain } from "../../chain/bitcoind.ts";
import { p2wpkhScript } from "../../protocol/tx/script.ts";
import { PASSPHRASE, testWallet } from "../client/wallet-helpers.ts";
import { ROOT } from "../helpers/se-process.ts";
import { runWallet } from "../helpers/wallet-cli.ts";

const dataDir = mkdtempSync(path.join(tmpdir(), "faucet-"));
let proc: ChildProcess;
let chain: BitcoindChain;

/** `se start --chain-only` on the data dir: the regtest chain and its RPC, nothing else. */
async function startChain(): Promise<{ proc: ChildProcess; chain: BitcoindChain; height: number }> {
  const env: NodeJS.ProcessEnv = { ...process.env, SE_CHAIN_RPC_PORT: "0", SE_MINE_INTERVAL_MS: "0" };
  delete env.SE_DATA_DIR;
  const p = spawn(
    process.execPath,
    [path.join(ROOT, "bin/se.js"), "start", "--chain-only", "--json", "--data-dir", dataDir],
    {
      cwd: ROOT,
      env,
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const started = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no start line within 60 s")), 60_000);
    createInterface({ input: p.stdout! }).on("line", (l) => {
      clearTimeout(timer);
      resolve(JSON.parse(l));
    });
  });
  const rpc = JSON.parse(readFileSync(path.join(dataDir, "bitcoin-rpc.json"), "utf8"));
  return {
    proc: p,
    chain: new BitcoindChain({ ...rpc, network: "regtest", timeoutMs: 60_000 }),
    height: Number(started.chainHeight),
  };
}

async function stopChain(): Promise<void> {
  await chain?.close();
  if (proc && proc.exitCode === null) {
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    await exited;
  }
}

before(async () => {
  ({ proc, chain } = await startChain());
});
after(stopChain);

const wallet = (args: string[]) =>
  runWallet(args, { env: { ...process.env, SE_DATA_DIR: dataDir, WALLET_PASSPHRASE: PASSPHRASE } });

test("wallet faucet after twenty halvings: paid from the simulator's faucet key, one block to confirm", async () => {
  for (let i = 0; i < 6; i++) await chain.mine(500);
  const tip = await chain.tipHeight();
  assert.equal(tip >= 3432, true, `height ${tip}`);
  // A coinbase there pays 50 btc / 2^22: a faucet of coinbases could not reach an amount in a thousand blocks.
  const { wallet: sdk, file } = await testWallet();
  await sdk.close();
  const W = ["--wallet", file];
  const r = await wallet(["faucet", "--amount", "30btc", ...W, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const j = r.json();
  assert.deepEqual([j.source, j.blocks, j.sentSat, j.onchainSat], ["faucet", 1, "3000000000", "3000000000"]);
  assert.equal(await chain.tipHeight(), tip + 1, "one block mined: the one that confirmed the payment");
  assert.match(r.stderr, /"step":"faucet"/);

  const more = await wallet(["faucet", ...W]);
  assert.equal(more.code, 0, more.stderr);
  assert.match(
    more.stdout,
    /^the simulator's faucet sent 1,000,000,000 sat to the wallet \(txid [0-9a-f]{64}, confirmed by a block mined now\): 4,000,000,000 sat on chain\n$/,
  );
  const enough = await wallet(["faucet", "--amount", "35btc", ...W]);
  assert.match(enough.stdout, /holds 4,000,000,000 sat on chain already: nothing to add/);
});

test("the faucet key: the node's own blocks pay it, it is kept with the chain (mode 0600), and says when it holds too little", async () => {
  const keyFile = path.join(dataDir, "faucet-key.json");
  assert.equal(statSync(keyFile).mode & 0o777, 0o600);
  const address = await chain.rpc<string>("getnewaddress");
  assert.match(address, /^bcrt1q/);
  const balance = await chain.rpc<number>("getbalance");
  assert.equal(balance > 10_000, true, `the early coinbases: ${balance} btc`);
  const before = await chain.rpc<number>("getbalance");
  await chain.mine(101);
  assert.equal(
    (await chain.rpc<number>("getbalance")) > before,
    true,
    "blocks mined for nobody pay the faucet key",
  );
  const script = p2wpkhScript(Buffer.alloc(33, 2));
  const tooMuch = await chain.fund(script, 100_000n * 100_000_000n);
  assert.equal(
    "unavailable" in tooMuch && /insufficient funds: the faucet key holds \d+ sat/.test(tooMuch.unavailable),
    true,
    JSON.stringify(tooMuch),
  );
  await assert.rejects(chain.rpc("sendtoaddress", ["nope", 1]), /Invalid address/);

  // A restart keeps the key: the same address, the same funds.
  await stopChain();
  ({ proc, chain } = await startChain());
  assert.equal(await chain.rpc<string>("getnewaddress"), address);
});
