// The `se` command's own surface: --version, a mistyped command's suggestion, usage exit status 2.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { test } from "node:test";
import { ROOT } from "../helpers/se-process.ts";

const se = (args: string[]) =>
  spawnSync(process.execPath, [path.join(ROOT, "bin/se.js"), ...args], { cwd: ROOT, encoding: "utf8" });

test("se --version, and a mistyped command gets the closest one", () => {
  const v = se(["--version"]);
  assert.equal(v.status, 0);
  assert.match(v.stdout, /^se \d+\.\d+\.\d+\n$/);
  const typo = se(["strat"]);
  assert.equal(typo.status, 2);
  assert.match(typo.stderr, /unknown command "strat"; did you mean "start"\?/);
  assert.match(se(["stauts"]).stderr, /did you mean "status"/);
});

test("se help <command> and se <command> --help: that command's usage, what it does and an example", () => {
  for (const cmd of ["start", "status", "mine", "attestation"]) {
    for (const args of [
      ["help", cmd],
      [cmd, "--help"],
    ]) {
      const r = se(args);
      assert.equal(r.status, 0, `se ${args.join(" ")}`);
      assert.match(
        r.stdout,
        new RegExp(`^Usage:\\n  se ${cmd}\\b`),
        `se ${args.join(" ")} starts with its usage`,
      );
      assert.match(
        r.stdout,
        new RegExp(`\\n  Examples?:\\n    se ${cmd}\\b`),
        `se ${args.join(" ")} shows an example`,
      );
      assert.doesNotMatch(r.stdout, /^Options:/m, "only that command, not every option");
    }
  }
  const all = se(["help"]);
  assert.equal(all.status, 0);
  assert.match(all.stdout, /se help <command>/);
  assert.match(all.stdout, /\nOptions:\n/, "`se help` alone is `se --help`");
  const bad = se(["help", "stat"]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /no help for "stat"; did you mean "status"\?/);
});
