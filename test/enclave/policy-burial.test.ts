// The withdrawal burial depth (issue #19.4) is an attested policy setting with a per-network default and a floor
// outside regtest; the host's configuration resolves and checks it the same way.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parsePolicy, policyHash } from "../../enclave/policy.ts";
import { ConfigError, loadConfig } from "../../host/config.ts";

test("withdrawBurialDepth: default 6 outside regtest, shallower refused there; regtest follows the confirmations", () => {
  assert.equal(parsePolicy({ network: "bitcoin" }).withdrawBurialDepth, 6);
  assert.equal(parsePolicy({ network: "testnet", withdrawConfirmations: 8 }).withdrawBurialDepth, 8);
  assert.throws(() => parsePolicy({ network: "signet", withdrawBurialDepth: 1 }), /withdrawBurialDepth/);
  assert.equal(parsePolicy({}).withdrawBurialDepth, 1);
  assert.equal(parsePolicy({ withdrawConfirmations: 0 }).withdrawBurialDepth, 0);
  assert.equal(parsePolicy({ withdrawBurialDepth: 3 }).withdrawBurialDepth, 3);
  assert.throws(
    () => parsePolicy({ withdrawConfirmations: 4, withdrawBurialDepth: 3 }),
    /withdrawBurialDepth/,
  );
  // Hashed into the attested policy like every other setting.
  assert.notDeepEqual(policyHash(parsePolicy({ withdrawBurialDepth: 3 })), policyHash(parsePolicy({})));
});

test("SE_WITHDRAW_BURIAL_DEPTH: 0 is the network default, under 6 refused outside regtest", () => {
  assert.equal(loadConfig({ env: {} }).protocol.withdrawBurialDepth, 1);
  assert.equal(loadConfig({ env: { SE_WITHDRAW_BURIAL_DEPTH: "4" } }).protocol.withdrawBurialDepth, 4);
  assert.throws(
    () => loadConfig({ env: { SE_WITHDRAW_CONFIRMATIONS: "2", SE_WITHDRAW_BURIAL_DEPTH: "1" } }),
    (e: Error) => e instanceof ConfigError && /withdrawBurialDepth/.test(e.message),
  );
  assert.throws(
    () => loadConfig({ env: { SE_NETWORK: "bitcoin", SE_WITHDRAW_BURIAL_DEPTH: "2" } }),
    (e: Error) =>
      e instanceof ConfigError && /withdrawBurialDepth must be an integer in \[6,/.test(e.message),
  );
});
