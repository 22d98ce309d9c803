// The `se` command: `se start` runs the statechain entity, `se status` asks a running one how it is.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
// What only one command needs (gRPC, bitcoinjs, bcoin, the whole host) is imported by that command: `se --help`,
// `se --version` and usage errors answer without loading it.
import type { RegtestNode } from "../chain/regtest-node.ts";
import { packageVersion } from "../common/package-root.ts";
import { didYouMean } from "../common/suggest.ts";
import type { HealthCheckResponse_ServingStatus } from "../proto/gen/grpc/health/v1/health.ts";
import { ConfigError, type HostConfig, loadConfig } from "./config.ts";
import { lockDataDir } from "./datadir-lock.ts";
import { createLogger } from "./log.ts";
import type { RunningSe, SimulatorStart } from "./main.ts";

/** Each command: its usage, what it does (the paragraph of `se --help`), and an example. */
const COMMANDS: Record<string, { usage: string; text: string; example: string[] }> = {
  start: {
    usage: `se start  [--config <file>] [--data-dir <dir>] [--port <n>] [--mine-interval <ms>] [--log-level <level>]
            [--replicas <n>] [--fresh] [--chain-only] [--json]`,
    text: `Runs the SE. In simulator mode (the default) this starts the enclave as a child process on a Unix
socket, an embedded bcoin regtest node, and the public gRPC server, then prints where everything is.
Ctrl-C stops all of it. The regtest chain, the SE's database and the local Mainstay state persist in the
data dir: a restart resumes them (coins live before it can then only exit by backup: the enclave keeps
its key shares in memory only), and --fresh deletes them for a clean start. One SE per data dir: a start
on a dir that a running SE holds (its PID in <data dir>/se.pid) is refused; a lock left by a process that
is gone is taken over.`,
    example: ["se start", "se start --fresh --mine-interval 2000", "se start --chain-only"],
  },
  status: {
    usage: "se status [--endpoint <host:port>] [--tls-ca <file>] [--json]",
    text: `Queries a running SE: health of the enclave and chain, chain height, enclave identity, and how many coins
have lost their funding transaction to a reorg (refused co-signing). Exits 0 when the SE is serving, 1 when
it is not (or does not answer), 2 on a usage error.`,
    example: ["se status", "se status --endpoint 10.0.0.5:50051 --json"],
  },
  mine: {
    usage: "se mine   <n> [--address <addr>] [--data-dir <dir>] [--config <file>] [--json]",
    text: `Regtest only: mines n blocks on the running SE's chain (the embedded node, through the RPC credentials
in <data dir>/bitcoin-rpc.json, or the configured bitcoind), paying the coinbases to --address or to the
node's own key (the simulator's faucet key, which funds \`wallet faucet\`). What a wallet waiting for
confirmations or a backup's lock needs on regtest.`,
    example: ["se mine 10"],
  },
  attestation: {
    usage:
      "se attestation [--out <file>] [--nonce <hex>] [--endpoint <host:port>] [--tls-ca <file>] [--json]",
    text: `Asks a running SE for a live attestation document of its enclave (GetAttestation, with a fresh nonce
or --nonce) and writes it to --out (CBOR COSE_Sign1 bytes), or as base64 to stdout; prints the nonce and
the \`verify-attestation\` command that checks it. Exits 0 with a document, 1 without.`,
    example: ["se attestation --out enclave.cose"],
  },
};

const indent = (text: string, by: string) =>
  text
    .split("\n")
    .map((l) => by + l)
    .join("\n");

/** `se help <command>`, `se <command> --help`: the command's usage, what it does and an example. */
function commandHelp(cmd: string): string {
  const c = COMMANDS[cmd]!;
  const ex = c.example.map((e) => `    ${e}`).join("\n");
  return `Usage:\n  ${c.usage}\n\n${indent(c.text, "  ")}\n\n  Example${c.example.length > 1 ? "s" : ""}:\n${ex}\n\n(\`se --help\` lists every option)\n`;
}

const HELP = `se — enclave-backed Mercury statechain entity

Usage:
${Object.values(COMMANDS)
  .map((c) => `  ${c.usage}`)
  .join("\n")}
  se help <command>
  se --help

${Object.entries(COMMANDS)
  .map(([name, c]) => {
    const [first, ...rest] = c.text.split("\n");
    const head = name.length < 8 ? `${name.padEnd(8)}${first}` : `${name}\n        ${first}`;
    return [head, ...rest.map((l) => `        ${l}`)].join("\n");
  })
  .join("\n")}

Configuration comes from defaults (simulator), then the JSON file given by --config or SE_CONFIG, then SE_*
environment variables (see README), then these flags.

Options:
  --config <file>        JSON configuration file
  --data-dir <dir>       where the SE keeps its files (default .data/simulator)
  --port <n>             public gRPC port (default 50051; 0 picks a free port)
  --mine-interval <ms>   simulator: mine a regtest block every <ms> milliseconds (0 = only on demand)
  --replicas <n>         start: run the enclave as a replica set of n processes (default 1; 3 survives the
                         loss of any one member with no coin forced on chain; also SE_ENCLAVE_REPLICAS)
  --fresh                start (simulator): delete the data dir's chain, database and Mainstay state first
                         (the simulator CA and Mainstay key stay, so wallets keep trusting it; also SE_FRESH=1)
  --chain-only           start: only the embedded regtest chain and its bitcoind-compatible RPC
  --log-level <level>    trace | debug | info | warn | error | silent
  --endpoint <host:port> status, attestation: the SE to ask (also --se; default $WALLET_SE, $SE_ENDPOINT
                         or 127.0.0.1:50051: the names the wallet reads)
  --tls-ca <file>        the SE's public port speaks TLS: trust this PEM certificate (or CA) for it
  --address <addr>       mine: pay the coinbases to this regtest address (bcrt1…)
  --out <file>           attestation: write the document here (default: base64 on stdout)
  --nonce <hex>          attestation: the nonce the document carries (16 to 64 bytes; default random 32)
  --json                 machine-readable output
  -h, --help             this text
  -V, --version          the version
`;

/** The public port's credentials: TLS trusting the --tls-ca PEM when given, plaintext otherwise. */
function channelCredentials(
  credentials: typeof import("@grpc/grpc-js").credentials,
  tlsCa: string | boolean | undefined,
): import("@grpc/grpc-js").ChannelCredentials {
  if (!tlsCa) return credentials.createInsecure();
  try {
    return credentials.createSsl(readFileSync(String(tlsCa)));
  } catch (err) {
    return fail(`cannot read --tls-ca ${tlsCa}: ${(err as Error).message}`);
  }
}

function fail(msg: string, code = 2): never {
  process.stderr.write(`se: ${msg}\n`);
  process.exit(code);
}

function banner(se: RunningSe): string {
  const snap = se.monitor.snapshot();
  const cfg = se.cfg;
  const lines = [
    "",
    `  Statechain entity running (${cfg.mode} mode, ${cfg.network})`,
    "",
    `  public gRPC    ${cfg.grpc.host}:${se.port}   statechain.v1.StatechainService, grpc.health.v1.Health${cfg.grpc.tlsCertFile ? " (TLS)" : ""}`,
    `  enclave        unix:${cfg.enclave.socketPath}   instance ${snap.enclave.instanceId}`,
  ];
  return lines.join("\n");
}

async function pcrLines(se: RunningSe): Promise<string[]> {
  const st = await se.enclave.status();
  return [
    `  PCR0           ${st.pcr0}`,
    `  PCR1           ${st.pcr1}`,
    `  PCR2           ${st.pcr2}   (${st.attestationMode}: pin these to verify attestations)`,
  ];
}

async function start(values: Record<string, string | boolean | undefined>): Promise<void> {
  const overrides: Record<string, string | number | boolean> = {};
  if (values["data-dir"]) overrides.dataDir = String(values["data-dir"]);
  if (values.port !== undefined) overrides["grpc.port"] = String(values.port);
  if (values["mine-interval"] !== undefined)
    overrides["chain.mineIntervalMs"] = String(values["mine-interval"]);
  if (values["log-level"]) overrides["log.level"] = String(values["log-level"]);
  if (values.fresh) overrides.fresh = true;
  if (values.replicas !== undefined) overrides["enclave.replicas"] = String(values.replicas);
  let cfg: HostConfig;
  try {
    cfg = loadConfig({ file: values.config as string | undefined, overrides });
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  if (values["chain-only"]) return startChainOnly(cfg, Boolean(values.json));
  const log = createLogger(cfg.log.level, cfg.log.file);
  const started = Date.now();
  const { startSe } = await import("./main.ts");
  let se: RunningSe;
  try {
    se = await startSe(cfg, log);
  } catch (err) {
    log.flush?.();
    fail(`could not start: ${(err as Error).message}`, 1);
  }
  const snap = se.monitor.snapshot();
  if (values.json) {
    const st = await se.enclave.status();
    process.stdout.write(
      `${JSON.stringify({
        event: "started",
        mode: cfg.mode,
        network: cfg.network,
        grpc: `${cfg.grpc.host}:${se.port}`,
        tls: Boolean(cfg.grpc.tlsCertFile),
        metrics: `http://${cfg.metrics.host}:${se.metricsPort}/metrics`,
        enclaveSocket: cfg.enclave.socketPath,
        enclaveInstance: snap.enclave.instanceId,
        enclavePid: se.enclave.child?.pid,
        pcr0: st.pcr0,
        pcr1: st.pcr1,
        pcr2: st.pcr2,
        chainHeight: snap.chain.height,
        bitcoinRpc: se.regtest?.rpc.url,
        dataDir: cfg.dataDir,
        walletEnv: walletEnv(cfg, se.port),
        ...(se.simulator ? simulatorJson(se.simulator) : {}),
        startMs: Date.now() - started,
      })}\n`,
    );
  } else {
    const lines = [
      banner(se),
      ...(await pcrLines(se)),
      ...(se.simulator ? simulatorLines(se.simulator, snap.chain.height) : []),
      `  regtest chain  height ${snap.chain.height}, bitcoind-compatible RPC ${se.regtest?.rpc.url} (credentials in ${cfg.dataDir}/bitcoin-rpc.json)`,
      `  metrics        http://${cfg.metrics.host}:${se.metricsPort}/metrics (Prometheus)`,
      `  mining         ${cfg.chain.mineIntervalMs > 0 ? `a block every ${cfg.chain.mineIntervalMs / 1000} s` : "on demand only"}${se.regtest ? `; more now: \`npx se mine <n>${cfg.dataDir === path.resolve(".data/simulator") ? "" : ` --data-dir ${cfg.dataDir}`}\`` : ""}`,
      `  data dir       ${cfg.dataDir}`,
      "",
      "  Wallets (and `se status`, `se mine`) in another shell find this SE with:",
      ...exportLines(walletEnv(cfg, se.port)),
      "",
      "  Next: `npx se status` in another terminal, `npm test` for the suite, README.md for the protocol",
      "        walk-through. Ctrl-C stops everything.",
      `  (started in ${Date.now() - started} ms)`,
      "",
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "stopping");
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await se.close();
    log.info("stopped");
    log.flush?.();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

/**
 * What a wallet on this machine needs to find the SE: its address (an address bound on every interface is
 * reached on loopback) and, for the simulator's chain, the data dir (absolute, so any working directory works).
 */
function walletEnv(cfg: HostConfig, port?: number): Record<string, string> {
  const host = ["0.0.0.0", "::", ""].includes(cfg.grpc.host) ? "127.0.0.1" : cfg.grpc.host;
  return {
    ...(port !== undefined ? { WALLET_SE: `${host.includes(":") ? `[${host}]` : host}:${port}` } : {}),
    SE_DATA_DIR: path.resolve(cfg.dataDir),
  };
}

function exportLines(env: Record<string, string>): string[] {
  return Object.entries(env).map(
    ([k, v]) => `    export ${k}=${/^[\w./:@[\]-]+$/.test(v) ? v : `'${v.replace(/'/g, "'\\''")}'`}`,
  );
}

function simulatorJson(s: SimulatorStart): Record<string, unknown> {
  return {
    fresh: s.wiped !== undefined,
    ...(s.wiped ? { wiped: s.wiped } : {}),
    resumed: s.resumed !== undefined,
    ...(s.resumed
      ? {
          resumedHeight: s.resumed.height,
          coins: s.resumed.coins,
          markedExitByBackup: s.resumed.markedExitByBackup,
          exitByBackup: s.resumed.exitByBackup,
        }
      : {}),
  };
}

/** What a simulator start did with its data dir, first thing in the banner. */
function simulatorLines(s: SimulatorStart, height: number): string[] {
  if (s.resumed) {
    const r = s.resumed;
    const lines = [
      `  resumed        the existing chain at height ${r.height} with ${r.coins} coin(s) from the data dir`,
    ];
    if (r.markedExitByBackup > 0)
      lines.push(
        `                 ${r.markedExitByBackup} coin(s) live before the restart can now only leave by their backup`,
        "                 transactions (the enclave keeps key shares in memory only; a restart loses them):",
        "                 their owners run `wallet exit <coin>`",
      );
    else if (r.exitByBackup > 0)
      lines.push(
        `                 ${r.exitByBackup} coin(s) can only leave by their backup (\`wallet exit <coin>\`)`,
      );
    lines.push("                 (`se start --fresh` starts a clean chain and database instead)");
    return lines;
  }
  const what = s.wiped
    ? `--fresh: deleted ${s.wiped.length ? s.wiped.join(", ") : "nothing (there was nothing to delete)"}; a new chain`
    : "a new chain";
  return [
    `  fresh start    ${what} (height ${height}) and an empty database, kept in the data dir across restarts`,
  ];
}

/** `se start --chain-only`: the simulator's regtest chain and its RPC alone, for wallets and tools. */
async function startChainOnly(cfg: HostConfig, json: boolean): Promise<void> {
  if (cfg.chain.backend !== "embedded")
    fail("--chain-only runs the embedded regtest chain: chain.backend is not embedded");
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  let lock: ReturnType<typeof lockDataDir>;
  try {
    lock = lockDataDir(cfg.dataDir);
  } catch (err) {
    fail(`could not start: ${(err as Error).message}`, 1);
  }
  let node: RegtestNode;
  let wiped: string[] | undefined;
  const [{ RegtestNode }, { prepareSimulatorDataDir }] = await Promise.all([
    import("../chain/regtest-node.ts"),
    import("./main.ts"),
  ]);
  try {
    wiped = prepareSimulatorDataDir(cfg.dataDir, cfg.fresh).wiped;
    node = await RegtestNode.start({
      dataDir: cfg.dataDir,
      persistent: true,
      rpcPort: cfg.chain.rpcPort,
      initialBlocks: cfg.chain.initialBlocks,
    });
  } catch (err) {
    lock.release();
    fail(`could not start the chain: ${(err as Error).message}`, 1);
  }
  const rpcFile = path.join(cfg.dataDir, "bitcoin-rpc.json");
  writeFileSync(rpcFile, `${JSON.stringify(node.rpc, null, 2)}\n`, { mode: 0o600 });
  node.startIntervalMining(cfg.chain.mineIntervalMs, (err) =>
    process.stderr.write(`se: mining failed: ${err.message}\n`),
  );
  if (json)
    process.stdout.write(
      `${JSON.stringify({ event: "started", mode: "chain-only", network: "regtest", bitcoinRpc: node.rpc.url, chainHeight: node.height(), dataDir: cfg.dataDir, walletEnv: walletEnv(cfg), fresh: wiped !== undefined, resumed: node.resumedHeight !== undefined })}\n`,
    );
  else
    process.stdout.write(
      [
        "",
        "  Regtest chain running (chain only: no enclave, no SE API)",
        "",
        node.resumedHeight !== undefined
          ? `  resumed        the existing chain at height ${node.resumedHeight} (\`--fresh\` starts a new one)`
          : `  fresh start    ${wiped ? `--fresh: deleted ${wiped.join(", ") || "nothing"}; ` : ""}a new chain, kept in the data dir across restarts`,
        `  regtest chain  height ${node.height()}, bitcoind-compatible RPC ${node.rpc.url} (credentials in ${rpcFile})`,
        `  mining         ${cfg.chain.mineIntervalMs > 0 ? `a block every ${cfg.chain.mineIntervalMs / 1000} s` : "on demand only"} (\`se mine <n>\`)`,
        "",
        "  Wallets (`wallet exit`, `wallet coins`) and `se mine` in another shell find this chain with:",
        ...exportLines(walletEnv(cfg)),
        "",
        "  Ctrl-C stops it.",
        "",
        "",
      ].join("\n"),
    );
  const stop = async () => {
    await node.close().catch(() => {});
    lock.release();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
}

async function statusCmd(values: Record<string, string | boolean | undefined>): Promise<void> {
  const endpoint = endpointOf(values);
  const [{ credentials, status: grpcStatus, Metadata }, { HealthCheckResponse_ServingStatus, HealthClient }] =
    await Promise.all([import("@grpc/grpc-js"), import("../proto/gen/grpc/health/v1/health.ts")]);
  const [{ StatechainServiceClient }, { unary }] = await Promise.all([
    import("../proto/gen/statechain.ts"),
    import("../proto/unary.ts"),
  ]);
  const creds = channelCredentials(credentials, values["tls-ca"]);
  const health = new HealthClient(endpoint, creds);
  const api = new StatechainServiceClient(endpoint, creds);
  try {
    let md = new Metadata();
    const res = await new Promise<{ status: HealthCheckResponse_ServingStatus }>((resolve, reject) => {
      const call = health.check({ service: "" }, new Metadata(), { deadline: Date.now() + 5000 }, (err, r) =>
        err ? reject(err) : resolve(r),
      );
      call.on("metadata", (m) => {
        md = m;
      });
    });
    const enclave = await unary(health, health.check, { service: "enclave" }, { deadlineMs: 5000 });
    const chain = await unary(health, health.check, { service: "chain" }, { deadlineMs: 5000 });
    const info = await unary(api, api.getInfo, {}, { deadlineMs: 5000 }).catch(() => undefined);
    const name = (s: HealthCheckResponse_ServingStatus) => HealthCheckResponse_ServingStatus[s] ?? String(s);
    const out = {
      endpoint,
      status: name(res.status),
      enclave: name(enclave.status),
      chain: name(chain.status),
      chainHeight: Number(md.get("chain-height")[0] ?? 0),
      enclaveInstance: String(md.get("enclave-instance-id")[0] ?? ""),
      // Coins whose funding left the chain (#19.8); absent until the SE's funding watch has looked.
      fundingLostCoins:
        md.get("funding-lost-coins")[0] === undefined ? undefined : Number(md.get("funding-lost-coins")[0]),
      network: info?.network,
      attestationMode: info?.enclave?.attestationMode,
      pcrs: info?.enclave?.expectedPcrs,
      replicaSet: info?.enclave?.replicaSet && {
        setId: info.enclave.replicaSet.setId,
        leader: info.enclave.replicaSet.leaderId,
        term: Number(info.enclave.replicaSet.term),
        members: info.enclave.replicaSet.members.map((m) => ({
          id: m.id,
          lag: Number(m.lag),
          lastHeardMsAgo: Number(m.lastHeardMsAgo),
        })),
      },
    };
    if (values.json) process.stdout.write(`${JSON.stringify(out)}\n`);
    else {
      process.stdout.write(
        [
          `SE at ${endpoint}: ${out.status}`,
          `  enclave  ${out.enclave}  instance ${out.enclaveInstance} (${out.attestationMode ?? "?"})`,
          `  chain    ${out.chain}  height ${out.chainHeight} (${out.network ?? "?"})`,
          ...(out.replicaSet
            ? [
                `  replicas ${out.replicaSet.members.length} members, term ${out.replicaSet.term}, set ${out.replicaSet.setId}`,
                ...out.replicaSet.members.map(
                  (m) =>
                    `    ${m.id.slice(0, 16)}…  ${m.id === out.replicaSet!.leader ? "leader  " : "follower"}  lag ${m.lag}  heard ${m.lastHeardMsAgo < 0 ? "never" : `${m.lastHeardMsAgo} ms ago`}`,
                ),
              ]
            : []),
          ...(out.fundingLostCoins === undefined
            ? []
            : [
                out.fundingLostCoins === 0
                  ? "  coins    every coin's funding transaction is in the chain or the mempool"
                  : `  coins    ${out.fundingLostCoins} coin(s) whose funding transaction left the chain (double spent, or missing): the SE refuses to co-sign or transfer them (GetStatechain says why)`,
              ]),
          "",
        ].join("\n"),
      );
    }
    process.exitCode = res.status === HealthCheckResponse_ServingStatus.SERVING ? 0 : 1;
  } catch (err) {
    // grpc-js says "14 UNAVAILABLE: …": the status by name only, and without its empty "Resolution note:".
    const e = err as Error & { code?: number; details?: string };
    const message =
      typeof e.code === "number"
        ? `${grpcStatus[e.code] ?? e.code}: ${(e.details || e.message).replace(/\s*Resolution note:\s*$/, "")}`
        : e.message;
    if (values.json)
      process.stdout.write(`${JSON.stringify({ endpoint, status: "UNREACHABLE", error: message })}\n`);
    else process.stderr.write(`se: no SE answering at ${endpoint}: ${message}\n`);
    process.exitCode = 1;
  } finally {
    health.close();
    api.close();
  }
}

/** `se attestation`: a live attestation document from a running SE, to check with verify-attestation. */
async function attestationCmd(values: Record<string, string | boolean | undefined>): Promise<void> {
  const endpoint = endpointOf(values);
  let nonce: Buffer;
  if (values.nonce !== undefined) {
    const n = String(values.nonce);
    if (!/^(?:[0-9a-fA-F]{2}){16,64}$/.test(n)) fail("--nonce takes 16 to 64 bytes as hex");
    nonce = Buffer.from(n, "hex");
  } else nonce = (await import("node:crypto")).randomBytes(32);
  const [{ credentials, status: grpcStatus }, { StatechainServiceClient }, { unary }] = await Promise.all([
    import("@grpc/grpc-js"),
    import("../proto/gen/statechain.ts"),
    import("../proto/unary.ts"),
  ]);
  const creds = channelCredentials(credentials, values["tls-ca"]);
  const api = new StatechainServiceClient(endpoint, creds);
  try {
    const r = await unary(api, api.getAttestation, { nonce }, { deadlineMs: 15_000 });
    const doc = Buffer.from(r.document);
    const mode = r.enclave?.attestationMode ?? "unknown";
    const instance = Buffer.from(r.enclave?.instanceId ?? []).toString("hex");
    const nonceHex = nonce.toString("hex");
    const out = values.out === undefined ? undefined : path.resolve(String(values.out));
    if (out) {
      try {
        writeFileSync(out, doc);
      } catch (err) {
        fail(`cannot write --out ${out}: ${(err as Error).message}`, 1);
      }
    }
    // The simulator's root, where this machine has it: what --sim-root needs (a verifier trusts it explicitly).
    const dataDir = path.resolve(String(values["data-dir"] ?? process.env.SE_DATA_DIR ?? ".data/simulator"));
    const localRoot = path.join(dataDir, "sim-ca", "sim-ca-root.pem");
    let simRoot: string | undefined;
    if (mode === "simulator") {
      try {
        if (readFileSync(localRoot, "utf8").trim() === r.enclave?.simulatorRootPem.trim())
          simRoot = localRoot;
      } catch {}
    }
    const check = [
      "npx verify-attestation",
      out ?? "-",
      `--nonce ${nonceHex}`,
      ...(mode === "simulator" ? [`--sim-root ${simRoot ?? "<the simulator's root certificate>"}`] : []),
      "--pcrs <your PCR policy>",
    ].join(" ");
    if (values.json)
      process.stdout.write(
        `${JSON.stringify({
          endpoint,
          attestationMode: mode,
          enclaveInstance: instance,
          nonce: nonceHex,
          bytes: doc.length,
          ...(out ? { file: out } : { document: doc.toString("base64") }),
          ...(simRoot ? { simulatorRoot: simRoot } : {}),
          check,
        })}\n`,
      );
    else if (out)
      process.stdout.write(
        [
          `attestation document of the SE at ${endpoint} (${mode} enclave, instance ${instance.slice(0, 16)}…): ${doc.length} bytes in ${out}`,
          `  nonce  ${nonceHex}`,
          `  check  ${check}`,
          "",
        ].join("\n"),
      );
    else {
      process.stdout.write(`${doc.toString("base64")}\n`);
      process.stderr.write(
        `se: attestation document of the SE at ${endpoint} (${mode} enclave), nonce ${nonceHex}; check it: se attestation --nonce ${nonceHex} | ${check}\n`,
      );
    }
  } catch (err) {
    const e = err as Error & { code?: number; details?: string };
    const message =
      typeof e.code === "number"
        ? `${grpcStatus[e.code] ?? e.code}: ${(e.details || e.message).replace(/\s*Resolution note:\s*$/, "")}`
        : e.message;
    if (values.json) process.stdout.write(`${JSON.stringify({ endpoint, error: message })}\n`);
    process.stderr.write(`se: no attestation from the SE at ${endpoint}: ${message}\n`);
    process.exitCode = 1;
  } finally {
    api.close();
  }
}

/**
 * The SE a client command talks to: --endpoint (or --se, the wallet's name for it), else $WALLET_SE (what the
 * banner exports for wallets) or $SE_ENDPOINT, else the simulator's default. One setting, one value: the wallet
 * reads the same names.
 */
function endpointOf(values: Record<string, string | boolean | undefined>): string {
  const [flag, alias] = [values.endpoint as string | undefined, values.se as string | undefined];
  if (flag !== undefined && alias !== undefined && flag !== alias)
    fail(`--endpoint ${flag} and --se ${alias} name the same setting (the SE's address): give one`);
  return flag ?? alias ?? process.env.WALLET_SE ?? process.env.SE_ENDPOINT ?? "127.0.0.1:50051";
}

async function mineCmd(values: Record<string, string | boolean | undefined>, args: string[]): Promise<void> {
  const n = Number(args[0]);
  if (args.length !== 1 || !Number.isInteger(n) || n < 1 || n > 10_000)
    fail("se mine takes the number of blocks to mine, 1 to 10000: se mine <n>");
  const overrides: Record<string, string> = {};
  if (values["data-dir"]) overrides.dataDir = String(values["data-dir"]);
  let cfg: HostConfig;
  try {
    cfg = loadConfig({ file: values.config as string | undefined, overrides });
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  if (cfg.network !== "regtest") fail(`se mine is for regtest only; this SE runs on ${cfg.network}`);
  const [bitcoin, { BitcoindChain }] = await Promise.all([
    import("bitcoinjs-lib"),
    import("../chain/bitcoind.ts"),
  ]);
  let rpc: { url: string; user: string; password: string };
  if (cfg.chain.backend === "embedded") {
    const file = path.join(cfg.dataDir, "bitcoin-rpc.json");
    try {
      rpc = JSON.parse(readFileSync(file, "utf8"));
    } catch {
      fail(
        `no running simulator SE on ${cfg.dataDir} (${file} is missing): start one with \`se start\`, or give --data-dir`,
        1,
      );
    }
  } else if (cfg.chain.backend === "bitcoind")
    rpc = { url: cfg.chain.bitcoindUrl, user: cfg.chain.bitcoindUser, password: cfg.chain.bitcoindPassword };
  else fail("se mine needs the embedded chain or bitcoind; an Esplora backend cannot mine");
  let script: Uint8Array | undefined;
  if (values.address) {
    try {
      script = bitcoin.address.toOutputScript(
        bcoinlessAddress(bitcoin, String(values.address)),
        bitcoin.networks.regtest,
      );
    } catch {
      fail(`--address ${values.address} is not a regtest address`);
    }
  }
  const chain = new BitcoindChain({
    ...rpc,
    network: "regtest",
    ...(cfg.chain.backend === "embedded"
      ? { name: `the simulator's embedded regtest node at ${rpc.url}` }
      : {}),
  });
  try {
    const from = await chain.tipHeight();
    const hashes = await chain.mine(n, script);
    const to = await chain.tipHeight();
    if (values.json) process.stdout.write(`${JSON.stringify({ mined: hashes.length, from, to, hashes })}\n`);
    else process.stdout.write(`mined ${hashes.length} block(s): height ${from} → ${to}\n`);
  } catch (err) {
    fail(
      `cannot mine through ${rpc.url}: ${(err as Error).message} (is the SE on ${cfg.dataDir} running? \`se status\`)`,
      1,
    );
  } finally {
    await chain.close();
  }
}

/** bcoin's regtest spelling of a segwit address ("rb1…") in bitcoind's ("bcrt1…"): bitcoinjs knows the latter. */
function bcoinlessAddress(bitcoin: typeof import("bitcoinjs-lib"), a: string): string {
  if (!/^rb1/i.test(a)) return a;
  const { version, data } = bitcoin.address.fromBech32(a);
  return bitcoin.address.toBech32(data, version, "bcrt");
}

async function main(): Promise<void> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        config: { type: "string" },
        "data-dir": { type: "string" },
        port: { type: "string" },
        "mine-interval": { type: "string" },
        replicas: { type: "string" },
        "chain-only": { type: "boolean", default: false },
        fresh: { type: "boolean", default: false },
        "log-level": { type: "string" },
        endpoint: { type: "string" },
        se: { type: "string" },
        "tls-ca": { type: "string" },
        address: { type: "string" },
        out: { type: "string" },
        nonce: { type: "string" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
        version: { type: "boolean", short: "V", default: false },
      },
    });
  } catch (err) {
    fail(`${(err as Error).message}\n\n${HELP}`);
  }
  const { values, positionals } = parsed;
  const cmd = positionals[0];
  if (values.version) {
    process.stdout.write(`se ${packageVersion(import.meta.url)}\n`);
    return;
  }
  // `se help <command>` and `se <command> --help`: that command's help; `se help`, `se --help`: all of it.
  const helpFor = cmd === "help" ? positionals[1] : values.help ? cmd : undefined;
  if (helpFor !== undefined && helpFor in COMMANDS) {
    process.stdout.write(commandHelp(helpFor));
    return;
  }
  if (helpFor !== undefined && cmd === "help")
    fail(
      `no help for "${helpFor}"${didYouMean(helpFor, Object.keys(COMMANDS))}\n(\`se --help\` lists the commands)`,
    );
  if (values.help || !cmd || cmd === "help") {
    process.stdout.write(HELP);
    return;
  }
  if (cmd === "start") return start(values as Record<string, string | boolean | undefined>);
  if (cmd === "status") return statusCmd(values as Record<string, string | boolean | undefined>);
  if (cmd === "mine")
    return mineCmd(values as Record<string, string | boolean | undefined>, positionals.slice(1));
  if (cmd === "attestation") return attestationCmd(values as Record<string, string | boolean | undefined>);
  fail(
    `unknown command "${cmd}"${didYouMean(cmd, [...Object.keys(COMMANDS), "help"])}\n(\`se --help\` lists the commands)`,
  );
}

await main();
