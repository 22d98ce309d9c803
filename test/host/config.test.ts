import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { ConfigError, defaultConfig, ENV_KEYS, loadConfig } from "../../host/config.ts";

test("defaults are the simulator", () => {
  const cfg = loadConfig({ env: {} });
  assert.equal(cfg.mode, "simulator");
  assert.equal(cfg.network, "regtest");
  assert.equal(cfg.chain.backend, "embedded");
  assert.equal(cfg.grpc.host, "127.0.0.1");
  assert.ok(path.isAbsolute(cfg.dataDir), `the data dir is an absolute path (${cfg.dataDir})`);
  assert.equal(cfg.enclave.socketPath, path.join(cfg.dataDir, "enclave.sock"));
});

test("file, then environment, then flags override in that order", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "cfg-"));
  const file = path.join(dir, "se.json");
  writeFileSync(
    file,
    JSON.stringify({ grpc: { port: 6000 }, protocol: { initLock: 500, locktimeInterval: 5 } }),
  );
  const cfg = loadConfig({
    env: { SE_CONFIG: file, SE_INIT_LOCK: "700" },
    overrides: { "protocol.locktimeInterval": 7 },
  });
  assert.equal(cfg.grpc.port, 6000);
  assert.equal(cfg.protocol.initLock, 700);
  assert.equal(cfg.protocol.locktimeInterval, 7);
});

test("bad settings are refused with the setting named", () => {
  assert.throws(
    () => loadConfig({ env: { SE_GRPC_PORT: "seventy" } }),
    /SE_GRPC_PORT: grpc.port must be a number/,
  );
  assert.throws(
    () => loadConfig({ env: { SE_GRPC_PORT: "70000" } }),
    /grpc.port must be an integer in \[0, 65535\]/,
  );
  assert.throws(() => loadConfig({ env: { SE_MODE: "cloud" } }), /mode must be one of simulator, nitro/);
  assert.throws(
    () => loadConfig({ env: { SE_NETWORK: "bitcoin" } }),
    /embedded chain backend runs regtest only/,
  );
  assert.throws(
    () => loadConfig({ env: { SE_ENCLAVE_SPAWN: "maybe" } }),
    /enclave.spawn must be true or false/,
  );
  const dir = mkdtempSync(path.join(tmpdir(), "cfg-"));
  const file = path.join(dir, "se.json");
  writeFileSync(file, JSON.stringify({ grpc: { prot: 1 } }));
  assert.throws(
    () => loadConfig({ env: {}, file }),
    (e: Error) => e instanceof ConfigError && /unknown setting "grpc.prot"/.test(e.message),
  );
  writeFileSync(file, "{ not json");
  assert.throws(() => loadConfig({ env: {}, file }), /cannot read config file/);
});

test("limits and enclave settings: file, then environment, then flags; each validated", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "cfg-"));
  const file = path.join(dir, "se.json");
  writeFileSync(
    file,
    JSON.stringify({
      limits: { perKeyBurst: 3, perPeerBurst: 50, mailboxMaxItems: 5, mailboxMaxBytes: 4096 },
      enclave: { startTimeoutMs: 5000 },
    }),
  );
  const cfg = loadConfig({
    file,
    env: {
      SE_RATE_PER_KEY_BURST: "4",
      SE_RATE_PER_PEER_BURST: "70",
      SE_RATE_PER_CONNECTION: "15",
      SE_RATE_PER_CONNECTION_BURST: "30",
      SE_MAILBOX_MAX_BYTES: "8192",
      SE_ENCLAVE_START_TIMEOUT_MS: "7000",
    },
    overrides: { "limits.perPeerBurst": 90 },
  });
  assert.equal(cfg.limits.perKeyBurst, 4, "environment over file");
  assert.equal(cfg.limits.perPeerBurst, 90, "flags over environment");
  assert.equal(cfg.limits.mailboxMaxItems, 5, "file over default");
  assert.deepEqual([cfg.limits.perConnectionRate, cfg.limits.perConnectionBurst], [15, 30]);
  assert.equal(cfg.limits.mailboxMaxBytes, 8192);
  assert.equal(cfg.enclave.startTimeoutMs, 7000);
  const defaults = loadConfig({ env: {} });
  assert.deepEqual(
    [
      defaults.limits.perKeyBurst,
      defaults.limits.perPeerBurst,
      defaults.limits.perConnectionBurst,
      defaults.limits.mailboxMaxItems,
    ],
    [60, 400, 200, 16],
  );

  assert.throws(
    () => loadConfig({ env: { SE_RATE_PER_KEY_BURST: "0" } }),
    /limits.perKeyBurst must be an integer/,
  );
  assert.throws(() => loadConfig({ env: { SE_RATE_PER_PEER: "-1" } }), /limits.perPeerRate must be >= 0/);
  assert.throws(
    () => loadConfig({ env: { SE_RATE_PER_CONNECTION_BURST: "0" } }),
    /limits.perConnectionBurst must be an integer/,
  );
  assert.throws(() => loadConfig({ env: { SE_ENCLAVE_START_TIMEOUT_MS: "5" } }), /enclave.startTimeoutMs/);
  assert.throws(
    () => loadConfig({ env: { SE_MAILBOX_MAX_MESSAGE_BYTES: "2000000" } }),
    /limits.mailboxMaxMessageBytes \(2000000\) must be below grpc.maxMessageBytes \(1048576\)/,
  );
  // The mailbox limits are per receiver (bytes and messages waiting), beside the size of one message.
  assert.deepEqual(
    [
      defaults.limits.mailboxMaxBytes,
      defaults.limits.mailboxMaxItems,
      defaults.limits.mailboxMaxMessageBytes,
    ],
    [256 * 1024, 16, 64 * 1024],
  );
  assert.equal(loadConfig({ env: { SE_MAILBOX_MAX_BYTES: "2000000" } }).limits.mailboxMaxBytes, 2_000_000);
  assert.equal(
    loadConfig({ env: { SE_MAILBOX_MAX_MESSAGE_BYTES: "4096" } }).limits.mailboxMaxMessageBytes,
    4096,
  );
});

test("the README's table names every environment variable, and every protocol setting has one", () => {
  const readme = readFileSync(path.join(import.meta.dirname, "../../README.md"), "utf8");
  const missing = Object.keys(ENV_KEYS).filter((k) => !readme.includes(`\`${k}\``));
  assert.deepEqual(missing, [], "environment variables the README does not list");
  const protocol = Object.keys(defaultConfig().protocol).map((k) => `protocol.${k}`);
  const mapped = new Set(Object.values(ENV_KEYS));
  assert.deepEqual(
    protocol.filter((p) => !mapped.has(p)),
    [],
    "protocol settings without an environment variable",
  );
  const cfg = loadConfig({
    env: { SE_MIN_DEPOSIT_SAT: "20000", SE_MAX_DEPOSIT_SAT: "30000", SE_MIN_FEE_RATE_SAT_VB: "3" },
  });
  assert.deepEqual(
    [cfg.protocol.minDepositSat, cfg.protocol.maxDepositSat, cfg.protocol.minFeeRateSatVb],
    [20_000, 30_000, 3],
  );
});

test("fresh (--fresh, SE_FRESH) is for the embedded simulator chain only", () => {
  assert.equal(loadConfig({ env: {} }).fresh, false);
  assert.equal(loadConfig({ env: { SE_FRESH: "1" } }).fresh, true);
  assert.throws(
    () => loadConfig({ env: { SE_FRESH: "1", SE_CHAIN_BACKEND: "bitcoind" } }),
    /fresh .* needs the embedded chain, not bitcoind/,
  );
});
