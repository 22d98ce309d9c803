// `se mine <n>`: regtest blocks on demand through the running SE's chain RPC, for a wallet waiting on blocks.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
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
