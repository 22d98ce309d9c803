// Host configuration: simulator defaults, overridden by a JSON file, then by SE_* environment variables, then by
// command-line flags. Every value is validated once here so the rest of the host can trust its types.
import { readFileSync } from "node:fs";
import path from "node:path";
import { DEFAULT_WINDOW_MS } from "../protocol/auth.ts";
import { MIN_BURIAL_DEPTH } from "../protocol/tx/policy.ts";

export type Mode = "simulator" | "nitro";
export type Network = "regtest" | "testnet" | "signet" | "bitcoin";
export type ChainBackendKind = "embedded" | "bitcoind" | "esplora";
export type BackupModeName = "absolute" | "kickoff";

export interface HostConfig {
  mode: Mode;
  network: Network;
  dataDir: string;
  /** Simulator: delete the data dir's chain, database and local Mainstay state at start (a clean simulator). */
  fresh: boolean;
  grpc: {
    host: string;
    port: number;
    maxMessageBytes: number;
    tlsCertFile: string;
    tlsKeyFile: string;
    /** A connection with no call in flight is closed (GOAWAY) after this long. */
    idleTimeoutMs: number;
    /** Any connection is asked to go away after this long, and cut after a further grace. */
    maxConnectionAgeMs: number;
    maxConnectionAgeGraceMs: number;
    /** Open connections from one client address; more are closed as they arrive. */
    maxConnectionsPerPeer: number;
    /** Open connections overall. */
    maxConnections: number;
    /** Time a call's request may take to arrive in full (headers to end of stream); its connection is cut after. */
    receiveTimeoutMs: number;
    /** Calls in flight on one connection (HTTP/2 concurrent streams). */
    maxConcurrentStreams: number;
    /** HTTP/2 session buffers (nghttp2, Node's maxSessionMemory), MiB per connection. */
    maxSessionMemoryMb: number;
  };
  /** replicas: enclave processes in the replica set (DESIGN.md 4.1); 1 runs one standalone enclave. */
  enclave: { socketPath: string; spawn: boolean; startTimeoutMs: number; replicas: number };
  chain: {
    backend: ChainBackendKind;
    /** Embedded bcoin regtest node (simulator). */
    mineIntervalMs: number;
    initialBlocks: number;
    rpcPort: number;
    bitcoindUrl: string;
    bitcoindUser: string;
    bitcoindPassword: string;
    esploraUrl: string;
    /** Blocks a live coin's funding transaction may be out of both chain and mempool (its inputs not spent
     * elsewhere) before the coin is marked as missing its funding and refused co-signing (#19.8). */
    fundingGraceBlocks: number;
  };
  protocol: {
    backupMode: BackupModeName;
    initLock: number;
    locktimeInterval: number;
    lockSafetyMargin: number;
    depositConfirmations: number;
    withdrawConfirmations: number;
    /** Confirmations before the SE erases a withdrawn coin's share and stops watching it (#19.4); 0 in a
     * configuration means the network's default (6; on regtest withdrawConfirmations), resolved by validate. */
    withdrawBurialDepth: number;
    minDepositSat: number;
    maxDepositSat: number;
    withdrawFeeBps: number;
    feeAddress: string;
    minFeeRateSatVb: number;
  };
  deposit: {
    guard: "pow" | "token";
    /** Base proof-of-work difficulty; it rises with the number of deposits being set up (adaptive). */
    powBits: number;
    tokensFile: string;
    /** Deposits set up but not bound to a funding output: how long they live, how many at once. */
    unfundedTtlMs: number;
    maxUnfunded: number;
    maxUnfundedPerPeer: number;
  };
  limits: {
    perPeerRate: number;
    perPeerBurst: number;
    perConnectionRate: number;
    perConnectionBurst: number;
    perKeyRate: number;
    perKeyBurst: number;
    /** Total bytes of the transfer messages waiting for one receiver (its mailbox). */
    mailboxMaxBytes: number;
    /** Transfer messages waiting for one receiver. */
    mailboxMaxItems: number;
    /** Bytes of one transfer message. */
    mailboxMaxMessageBytes: number;
  };
  mainstay: {
    enabled: boolean;
    url: string;
    slot: number;
    token: string;
    commitIntervalS: number;
    local: boolean;
  };
  prune: {
    /** How often expired host rows are deleted (also once at start). */
    intervalMs: number;
    /** Idempotency answers, signing sessions and orphaned mailbox messages are kept this long. */
    answerRetentionMs: number;
  };
  metrics: { host: string; port: number };
  log: { level: "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent"; file: string };
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

export function defaultConfig(dataDir = ".data/simulator"): HostConfig {
  return {
    mode: "simulator",
    network: "regtest",
    dataDir,
    fresh: false,
    grpc: {
      host: "127.0.0.1",
      port: 50051,
      maxMessageBytes: 1 << 20,
      tlsCertFile: "",
      tlsKeyFile: "",
      idleTimeoutMs: 5 * 60_000,
      maxConnectionAgeMs: 60 * 60_000,
      maxConnectionAgeGraceMs: 60_000,
      maxConnectionsPerPeer: 16,
      maxConnections: 1024,
      receiveTimeoutMs: 30_000,
      maxConcurrentStreams: 32,
      maxSessionMemoryMb: 10,
    },
    enclave: { socketPath: "", spawn: true, startTimeoutMs: 20_000, replicas: 1 },
    chain: {
      backend: "embedded",
      mineIntervalMs: 10_000,
      // Segwit activates at height 431 on bcoin's regtest; 432 blocks also leaves mature coinbases.
      initialBlocks: 432,
      rpcPort: 18443,
      bitcoindUrl: "",
      bitcoindUser: "",
      bitcoindPassword: "",
      esploraUrl: "",
      fundingGraceBlocks: 6,
    },
    protocol: {
      backupMode: "absolute",
      initLock: 1000,
      locktimeInterval: 10,
      lockSafetyMargin: 6,
      depositConfirmations: 1,
      withdrawConfirmations: 1,
      withdrawBurialDepth: 0,
      minDepositSat: 10_000,
      maxDepositSat: 100_000_000,
      withdrawFeeBps: 0,
      feeAddress: "",
      minFeeRateSatVb: 1,
    },
    deposit: {
      guard: "pow",
      powBits: 12,
      tokensFile: "",
      unfundedTtlMs: 10 * 60_000,
      maxUnfunded: 256,
      maxUnfundedPerPeer: 8,
    },
    limits: {
      perPeerRate: 200,
      perPeerBurst: 400,
      perConnectionRate: 100,
      perConnectionBurst: 200,
      perKeyRate: 20,
      perKeyBurst: 60,
      mailboxMaxBytes: 256 * 1024,
      mailboxMaxItems: 16,
      mailboxMaxMessageBytes: 64 * 1024,
    },
    mainstay: { enabled: true, url: "", slot: 1, token: "", commitIntervalS: 10, local: true },
    prune: { intervalMs: 60_000, answerRetentionMs: 3600_000 },
    metrics: { host: "127.0.0.1", port: 0 },
    log: { level: "info", file: "" },
  };
}

/** Environment variable → config path. Values are parsed with the type of the default at that path. */
export const ENV_KEYS: Record<string, string> = {
  SE_MODE: "mode",
  SE_NETWORK: "network",
  SE_DATA_DIR: "dataDir",
  SE_FRESH: "fresh",
  SE_GRPC_HOST: "grpc.host",
  SE_GRPC_PORT: "grpc.port",
  SE_GRPC_MAX_MESSAGE_BYTES: "grpc.maxMessageBytes",
  SE_TLS_CERT_FILE: "grpc.tlsCertFile",
  SE_GRPC_IDLE_TIMEOUT_MS: "grpc.idleTimeoutMs",
  SE_GRPC_MAX_CONNECTION_AGE_MS: "grpc.maxConnectionAgeMs",
  SE_GRPC_MAX_CONNECTION_AGE_GRACE_MS: "grpc.maxConnectionAgeGraceMs",
  SE_GRPC_MAX_CONNECTIONS_PER_PEER: "grpc.maxConnectionsPerPeer",
  SE_GRPC_MAX_CONNECTIONS: "grpc.maxConnections",
  SE_GRPC_RECEIVE_TIMEOUT_MS: "grpc.receiveTimeoutMs",
  SE_GRPC_MAX_CONCURRENT_STREAMS: "grpc.maxConcurrentStreams",
  SE_GRPC_MAX_SESSION_MEMORY_MB: "grpc.maxSessionMemoryMb",
  SE_TLS_KEY_FILE: "grpc.tlsKeyFile",
  SE_ENCLAVE_SOCKET: "enclave.socketPath",
  SE_ENCLAVE_SPAWN: "enclave.spawn",
  SE_ENCLAVE_REPLICAS: "enclave.replicas",
  SE_CHAIN_BACKEND: "chain.backend",
  SE_MINE_INTERVAL_MS: "chain.mineIntervalMs",
  SE_CHAIN_RPC_PORT: "chain.rpcPort",
  SE_BITCOIND_URL: "chain.bitcoindUrl",
  SE_BITCOIND_USER: "chain.bitcoindUser",
  SE_BITCOIND_PASSWORD: "chain.bitcoindPassword",
  SE_ESPLORA_URL: "chain.esploraUrl",
  SE_FUNDING_GRACE_BLOCKS: "chain.fundingGraceBlocks",
  SE_BACKUP_MODE: "protocol.backupMode",
  SE_INIT_LOCK: "protocol.initLock",
  SE_LOCKTIME_INTERVAL: "protocol.locktimeInterval",
  SE_DEPOSIT_CONFIRMATIONS: "protocol.depositConfirmations",
  SE_DEPOSIT_GUARD: "deposit.guard",
  SE_POW_BITS: "deposit.powBits",
  SE_DEPOSIT_TOKENS_FILE: "deposit.tokensFile",
  SE_DEPOSIT_UNFUNDED_TTL_MS: "deposit.unfundedTtlMs",
  SE_DEPOSIT_MAX_UNFUNDED: "deposit.maxUnfunded",
  SE_DEPOSIT_MAX_UNFUNDED_PER_PEER: "deposit.maxUnfundedPerPeer",
  SE_RATE_PER_PEER: "limits.perPeerRate",
  SE_RATE_PER_PEER_BURST: "limits.perPeerBurst",
  SE_RATE_PER_CONNECTION: "limits.perConnectionRate",
  SE_RATE_PER_CONNECTION_BURST: "limits.perConnectionBurst",
  SE_RATE_PER_KEY: "limits.perKeyRate",
  SE_RATE_PER_KEY_BURST: "limits.perKeyBurst",
  SE_MAILBOX_MAX_BYTES: "limits.mailboxMaxBytes",
  SE_MAILBOX_MAX_ITEMS: "limits.mailboxMaxItems",
  SE_MAILBOX_MAX_MESSAGE_BYTES: "limits.mailboxMaxMessageBytes",
  SE_ENCLAVE_START_TIMEOUT_MS: "enclave.startTimeoutMs",
  SE_MAINSTAY_URL: "mainstay.url",
  SE_MAINSTAY_TOKEN: "mainstay.token",
  SE_MAINSTAY_SLOT: "mainstay.slot",
  SE_MAINSTAY_INTERVAL_S: "mainstay.commitIntervalS",
  SE_MAINSTAY_ENABLED: "mainstay.enabled",
  SE_WITHDRAW_CONFIRMATIONS: "protocol.withdrawConfirmations",
  SE_WITHDRAW_BURIAL_DEPTH: "protocol.withdrawBurialDepth",
  SE_WITHDRAW_FEE_BPS: "protocol.withdrawFeeBps",
  SE_FEE_ADDRESS: "protocol.feeAddress",
  SE_LOCK_SAFETY_MARGIN: "protocol.lockSafetyMargin",
  SE_MIN_DEPOSIT_SAT: "protocol.minDepositSat",
  SE_MAX_DEPOSIT_SAT: "protocol.maxDepositSat",
  SE_MIN_FEE_RATE_SAT_VB: "protocol.minFeeRateSatVb",
  SE_PRUNE_INTERVAL_MS: "prune.intervalMs",
  SE_PRUNE_ANSWER_RETENTION_MS: "prune.answerRetentionMs",
  SE_METRICS_HOST: "metrics.host",
  SE_METRICS_PORT: "metrics.port",
  SE_LOG_LEVEL: "log.level",
  SE_LOG_FILE: "log.file",
};

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

function getPath(obj: Record<string, unknown>, dotted: string): unknown {
  return dotted.split(".").reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], obj);
}

function setPath(obj: Record<string, unknown>, dotted: string, value: unknown, source: string): void {
  const keys = dotted.split(".");
  const last = keys.pop()!;
  let o = obj;
  for (const k of keys) {
    if (typeof o[k] !== "object" || o[k] === null)
      throw new ConfigError(`${source}: unknown setting "${dotted}"`);
    o = o[k] as Record<string, unknown>;
  }
  if (!(last in o)) throw new ConfigError(`${source}: unknown setting "${dotted}"`);
  o[last] = coerce(o[last], value, dotted, source);
}

function coerce(current: unknown, value: unknown, key: string, source: string): unknown {
  if (typeof current === "number") {
    const n = typeof value === "string" ? Number(value) : value;
    if (typeof n !== "number" || !Number.isFinite(n))
      throw new ConfigError(`${source}: ${key} must be a number`);
    return n;
  }
  if (typeof current === "boolean") {
    if (typeof value === "boolean") return value;
    if (value === "true" || value === "1") return true;
    if (value === "false" || value === "0") return false;
    throw new ConfigError(`${source}: ${key} must be true or false`);
  }
  if (typeof value !== "string") throw new ConfigError(`${source}: ${key} must be a string`);
  return value;
}

function mergeFile(cfg: HostConfig, json: Json, prefix: string, source: string): void {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ConfigError(`${source}: ${prefix || "top level"} must be an object`);
  }
  for (const [k, v] of Object.entries(json)) {
    const dotted = prefix ? `${prefix}.${k}` : k;
    const current = getPath(cfg as unknown as Record<string, unknown>, dotted);
    if (typeof current === "object" && current !== null) mergeFile(cfg, v, dotted, source);
    else setPath(cfg as unknown as Record<string, unknown>, dotted, v, source);
  }
}

export interface LoadOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  overrides?: Record<string, string | number | boolean>;
}

export function loadConfig(opts: LoadOptions = {}): HostConfig {
  const env = opts.env ?? process.env;
  const cfg = defaultConfig();
  const file = opts.file ?? env.SE_CONFIG;
  if (file) {
    let json: Json;
    try {
      json = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
    }
    mergeFile(cfg, json, "", file);
  }
  for (const [name, dotted] of Object.entries(ENV_KEYS)) {
    const v = env[name];
    if (v !== undefined && v !== "") setPath(cfg as unknown as Record<string, unknown>, dotted, v, name);
  }
  for (const [dotted, v] of Object.entries(opts.overrides ?? {})) {
    setPath(cfg as unknown as Record<string, unknown>, dotted, v, "command line");
  }
  return validate(cfg);
}

function oneOf<T extends string>(value: string, allowed: readonly T[], key: string): T {
  if (!allowed.includes(value as T)) throw new ConfigError(`${key} must be one of ${allowed.join(", ")}`);
  return value as T;
}

function intIn(value: number, min: number, max: number, key: string): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${key} must be an integer in [${min}, ${max}], got ${value}`);
  }
}

export function validate(cfg: HostConfig): HostConfig {
  oneOf(cfg.mode, ["simulator", "nitro"] as const, "mode");
  oneOf(cfg.network, ["regtest", "testnet", "signet", "bitcoin"] as const, "network");
  oneOf(cfg.chain.backend, ["embedded", "bitcoind", "esplora"] as const, "chain.backend");
  oneOf(cfg.protocol.backupMode, ["absolute", "kickoff"] as const, "protocol.backupMode");
  oneOf(cfg.log.level, ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const, "log.level");
  oneOf(cfg.deposit.guard, ["pow", "token"] as const, "deposit.guard");
  intIn(cfg.deposit.powBits, 0, 32, "deposit.powBits");
  intIn(cfg.deposit.unfundedTtlMs, 10_000, 24 * 3600_000, "deposit.unfundedTtlMs");
  intIn(cfg.deposit.maxUnfunded, 1, 1_000_000, "deposit.maxUnfunded");
  intIn(cfg.deposit.maxUnfundedPerPeer, 1, 1_000_000, "deposit.maxUnfundedPerPeer");
  if (cfg.deposit.guard === "token" && !cfg.deposit.tokensFile) {
    throw new ConfigError(
      'deposit.guard "token" needs deposit.tokensFile (one SHA-256 hex of a token per line)',
    );
  }
  for (const k of ["perPeerRate", "perConnectionRate", "perKeyRate"] as const) {
    if (!(cfg.limits[k] >= 0))
      throw new ConfigError(`limits.${k} must be >= 0 (0 = unlimited), got ${cfg.limits[k]}`);
  }
  intIn(cfg.limits.perPeerBurst, 1, 1_000_000, "limits.perPeerBurst");
  intIn(cfg.limits.perConnectionBurst, 1, 1_000_000, "limits.perConnectionBurst");
  intIn(cfg.limits.perKeyBurst, 1, 1_000_000, "limits.perKeyBurst");
  intIn(cfg.enclave.startTimeoutMs, 100, 600_000, "enclave.startTimeoutMs");
  intIn(cfg.enclave.replicas, 1, 7, "enclave.replicas");
  if (cfg.enclave.replicas > 1 && !cfg.enclave.spawn)
    throw new ConfigError("enclave.replicas > 1 needs enclave.spawn (the host starts the members)");
  intIn(cfg.limits.mailboxMaxBytes, 1024, 16 << 20, "limits.mailboxMaxBytes");
  intIn(cfg.limits.mailboxMaxItems, 1, 10_000, "limits.mailboxMaxItems");
  intIn(cfg.limits.mailboxMaxMessageBytes, 1024, 16 << 20, "limits.mailboxMaxMessageBytes");
  intIn(cfg.grpc.port, 0, 65535, "grpc.port");
  intIn(cfg.metrics.port, 0, 65535, "metrics.port");
  intIn(cfg.chain.rpcPort, 0, 65535, "chain.rpcPort");
  intIn(cfg.grpc.maxMessageBytes, 1024, 64 << 20, "grpc.maxMessageBytes");
  intIn(cfg.grpc.idleTimeoutMs, 100, 24 * 3600_000, "grpc.idleTimeoutMs");
  intIn(cfg.grpc.maxConnectionAgeMs, 1000, 30 * 24 * 3600_000, "grpc.maxConnectionAgeMs");
  intIn(cfg.grpc.maxConnectionAgeGraceMs, 0, 24 * 3600_000, "grpc.maxConnectionAgeGraceMs");
  intIn(cfg.grpc.maxConnectionsPerPeer, 1, 100_000, "grpc.maxConnectionsPerPeer");
  intIn(cfg.grpc.maxConnections, 1, 1_000_000, "grpc.maxConnections");
  intIn(cfg.grpc.receiveTimeoutMs, 100, 600_000, "grpc.receiveTimeoutMs");
  intIn(cfg.grpc.maxConcurrentStreams, 1, 1000, "grpc.maxConcurrentStreams");
  intIn(cfg.grpc.maxSessionMemoryMb, 1, 1024, "grpc.maxSessionMemoryMb");
  if (cfg.limits.mailboxMaxMessageBytes >= cfg.grpc.maxMessageBytes) {
    throw new ConfigError(
      `limits.mailboxMaxMessageBytes (${cfg.limits.mailboxMaxMessageBytes}) must be below grpc.maxMessageBytes (${cfg.grpc.maxMessageBytes}): a transfer message travels inside one request`,
    );
  }
  intIn(cfg.prune.intervalMs, 100, 24 * 3600_000, "prune.intervalMs");
  // At least as long as a request's nonce is remembered (twice the signature window): a replay inside it must
  // still find its answer (host/prune.ts).
  intIn(cfg.prune.answerRetentionMs, 2 * DEFAULT_WINDOW_MS, 30 * 24 * 3600_000, "prune.answerRetentionMs");
  intIn(cfg.chain.mineIntervalMs, 0, 24 * 3600 * 1000, "chain.mineIntervalMs");
  intIn(cfg.chain.initialBlocks, 0, 10_000, "chain.initialBlocks");
  intIn(cfg.chain.fundingGraceBlocks, 1, 1000, "chain.fundingGraceBlocks");
  intIn(cfg.protocol.initLock, 1, 100_000, "protocol.initLock");
  intIn(cfg.protocol.locktimeInterval, 1, 10_000, "protocol.locktimeInterval");
  intIn(cfg.protocol.lockSafetyMargin, 0, 10_000, "protocol.lockSafetyMargin");
  intIn(cfg.protocol.depositConfirmations, 0, 1000, "protocol.depositConfirmations");
  intIn(cfg.protocol.withdrawConfirmations, 0, 1000, "protocol.withdrawConfirmations");
  intIn(cfg.protocol.withdrawFeeBps, 0, 10_000, "protocol.withdrawFeeBps");
  const p = cfg.protocol;
  if (p.withdrawBurialDepth === 0)
    p.withdrawBurialDepth =
      cfg.network === "regtest"
        ? p.withdrawConfirmations
        : Math.max(MIN_BURIAL_DEPTH, p.withdrawConfirmations);
  // A withdrawal one reorg can undo must not end the SE's protection of the coin (#19.4).
  intIn(
    p.withdrawBurialDepth,
    Math.max(p.withdrawConfirmations, cfg.network === "regtest" ? 0 : MIN_BURIAL_DEPTH),
    1000,
    "protocol.withdrawBurialDepth",
  );
  if (cfg.chain.backend === "embedded" && cfg.network !== "regtest") {
    throw new ConfigError("the embedded chain backend runs regtest only");
  }
  if (cfg.fresh && cfg.chain.backend !== "embedded") {
    throw new ConfigError(
      `fresh (--fresh, SE_FRESH) starts a clean simulator: it needs the embedded chain, not ${cfg.chain.backend} (an SE's database on a real chain is never deleted)`,
    );
  }
  if (cfg.mode === "nitro" && cfg.chain.backend === "embedded") {
    throw new ConfigError("nitro mode needs a bitcoind or esplora chain backend");
  }
  if (Boolean(cfg.grpc.tlsCertFile) !== Boolean(cfg.grpc.tlsKeyFile)) {
    throw new ConfigError("grpc.tlsCertFile and grpc.tlsKeyFile must be set together");
  }
  cfg.dataDir = path.resolve(cfg.dataDir);
  if (!cfg.enclave.socketPath) cfg.enclave.socketPath = path.join(cfg.dataDir, "enclave.sock");
  // Unix socket paths are limited to 107 bytes on Linux.
  if (Buffer.byteLength(cfg.enclave.socketPath) > 100) {
    throw new ConfigError(`enclave.socketPath is too long for a Unix socket: ${cfg.enclave.socketPath}`);
  }
  return cfg;
}
