// `se mine <n>`: regtest blocks on demand through the running SE's chain RPC, for a wallet waiting on blocks.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { test } from "node:test";
import * as bitcoin from "bitcoinjs-lib";
import { ROOT, startSeProcess } from "../helpers/se-process.ts";

const se = (args: string[]) => {
  const env = { ...process.env };
  delete env.SE_DATA_DIR;
  const r = spawnSync(process.execPath, [path.join(ROOT, "bin/se.js"), ...args], {
    cwd: ROOT,
    env,
    encoding: "utf8",
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

test("se mine mines n regtest blocks on the running SE's chain, to an address if given", async () => {
  const s = await startSeProcess({ env: { SE_MAINSTAY_ENABLED: "false" } });
  try {
    const from = Number(s.info.chainHeight);
    const r = se(["mine", "3", "--data-dir", s.dataDir]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `mined 3 block(s): height ${from} → ${from + 3}`);
    const to = bitcoin.payments.p2wpkh({ hash: Buffer.alloc(20, 5), network: bitcoin.networks.regtest })
      .address!;
    const j = se(["mine", "2", "--data-dir", s.dataDir, "--address", to, "--json"]);
    assert.equal(j.code, 0, j.stderr);
    assert.deepEqual(
      { ...JSON.parse(j.stdout), hashes: undefined },
      { mined: 2, from: from + 3, to: from + 5, hashes: undefined },
    );
    for (const bad of [
      ["mine"],
      ["mine", "0"],
      ["mine", "x"],
      ["mine", "2", "--data-dir", s.dataDir, "--address", "nope"],
    ]) {
      const u = se(bad);
      assert.equal(u.code, 2, `${bad.join(" ")}: ${u.stderr}`);
    }
  } finally {
    await s.stop();
  }
  const none = se(["mine", "1", "--data-dir", mkdtempSync(path.join(tmpdir(), "se-none-"))]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no running simulator SE on .*se start/);
});

test("se start --chain-only: the regtest chain and its RPC alone, mined with se mine, one per data dir", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "se-chain-"));
  const env: NodeJS.ProcessEnv = { ...process.env, SE_CHAIN_RPC_PORT: "0", SE_MINE_INTERVAL_MS: "0" };
  delete env.SE_DATA_DIR;
  const proc = spawn(
    process.execPath,
    [path.join(ROOT, "bin/se.js"), "start", "--chain-only", "--json", "--data-dir", dir],
    {
      cwd: ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  const started = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no start line within 30 s")), 30_000);
    createInterface({ input: proc.stdout! }).on("line", (l) => {
      clearTimeout(timer);
      resolve(JSON.parse(l));
    });
  });
  try {
    assert.equal(started.mode, "chain-only");
    const h = Number(started.chainHeight);
    const m = se(["mine", "2", "--data-dir", dir]);
    assert.equal(m.code, 0, m.stderr);
    assert.match(m.stdout, new RegExp(`height ${h} → ${h + 2}`));
    const again = se(["start", "--chain-only", "--data-dir", dir]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, new RegExp(`in use by another SE \\(PID ${proc.pid}`));
  } finally {
    proc.kill("SIGTERM");
  }
  assert.equal(await exited, 0);
  assert.equal(existsSync(path.join(dir, "se.pid")), false);
});
