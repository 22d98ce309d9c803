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
