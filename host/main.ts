// Starts the whole SE: enclave process, chain backend, SQLite store, SMT + Mainstay publisher, watchtower,
// public gRPC and metrics; stops them in reverse order.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import * as bitcoin from "bitcoinjs-lib";
import type { ChainBackend, DevChain } from "../chain/backend.ts";
import { BitcoindChain } from "../chain/bitcoind.ts";
import { EmbeddedChain } from "../chain/embedded.ts";
import { EsploraChain } from "../chain/esplora.ts";
import { RegtestNode } from "../chain/regtest-node.ts";
import { packageRoot } from "../common/package-root.ts";
import { Db } from "../common/sqlite.ts";
import { StatechainStatus } from "../proto/gen/common.ts";
import { outpointFromBytes, outpointString } from "../protocol/outpoint.ts";
import { encodeSmtProof } from "../protocol/smt/index.ts";
import { statechainKey } from "../protocol/statechain.ts";
import type { ApiDeps, BackupWatcher, ProofSource } from "./api/deps.ts";
import { statechainService } from "./api/index.ts";
import type { HostConfig } from "./config.ts";
import { crashHook } from "./crash-hook.ts";
import { lockDataDir } from "./datadir-lock.ts";
import { checkEnclaveAgreement } from "./enclave-agreement.ts";
import { type EnclaveHandle, startEnclave } from "./enclave-process.ts";
import { timedEnclave } from "./enclave-timing.ts";
import { FundingWatch } from "./funding-watch.ts";
import type { Logger } from "./log.ts";
import { MainstayClient } from "./mainstay/client.ts";
import { LocalMainstay, loadOrCreateMainstayKey } from "./mainstay/local-service.ts";
import { MainstayPublisher } from "./mainstay/publisher.ts";
import { Metrics } from "./metrics.ts";
import { Monitor } from "./monitor.ts";
import { networkOf } from "./network.ts";
import { PowGuard } from "./pow.ts";
import { startPruner } from "./prune.ts";
import { RateLimiter } from "./ratelimit.ts";
import { startReplicaSet } from "./replica-set.ts";
import { shutdown, startPublicServer } from "./server.ts";
import { openSqliteSmt } from "./smt-store.ts";
import { HOST_MIGRATIONS, Store } from "./store.ts";
import { treeSync } from "./tree-sync.ts";
import { Watchtower } from "./watchtower.ts";

/** Where bin/enclave.js is, whether this module runs from host/ or from the compiled dist/host/. */
export const PROJECT_ROOT = packageRoot(import.meta.url);

export interface RunningSe {
  cfg: HostConfig;
  port: number;
  metricsPort: number;
  enclave: EnclaveHandle;
  /** The embedded node (simulator mode). */
  regtest: RegtestNode | undefined;
  chain: ChainBackend;
  mainstayUrl: string;
  monitor: Monitor;
  store: Store;
  /** Simulator with the embedded chain: what this start found in the data dir. */
  simulator?: SimulatorStart;
  close(): Promise<void>;
}

/** What a simulator start did with the data dir's chain, database and local Mainstay state. */
export interface SimulatorStart {
  /** `--fresh`: the files it deleted (relative to the data dir); empty when there was nothing to delete. */
  wiped?: string[];
  /** The chain was on disk already: its height then, and the coins the database held. */
  resumed?: {
    height: number;
    coins: number;
    /** Coins that were live: the restarted enclave lost their shares, so they can only leave by backup now. */
    markedExitByBackup: number;
    /** Coins exit-by-backup now, these included. */
    exitByBackup: number;
  };
}

/** Where the simulator keeps the local Mainstay service's key (kept by --fresh) and its state (wiped). */
export function localMainstayFiles(dataDir: string): { key: string; state: string } {
  const dir = path.join(dataDir, "mainstay-local");
  return { key: path.join(dir, "key.json"), state: path.join(dir, "state.json") };
}

/** The files of a simulator data dir that describe one chain: wiped together by --fresh. */
function chainBoundFiles(dataDir: string): string[] {
  const db = path.join(dataDir, "host.sqlite");
  const ms = localMainstayFiles(dataDir).state;
  return [path.join(dataDir, "regtest"), db, `${db}-wal`, `${db}-shm`, ms, `${ms}.tmp`];
}

/**
 * Before the embedded chain opens (simulator mode): with `fresh`, deletes the chain, the host database and the
 * local Mainstay state (the simulator CA and the Mainstay service key stay, so wallets keep trusting this
 * simulator). Without it, refuses a data dir whose database or Mainstay state outlived its chain: they would
 * name coins and attestations that exist nowhere.
 */
export function prepareSimulatorDataDir(dataDir: string, fresh: boolean): { wiped?: string[] } {
  if (fresh) {
    const wiped = chainBoundFiles(dataDir).filter((f) => existsSync(f));
    for (const f of wiped) rmSync(f, { recursive: true, force: true });
    return { wiped: wiped.map((f) => path.relative(dataDir, f)) };
  }
  if (existsSync(RegtestNode.chainDir(dataDir))) return {};
  const orphans = chainBoundFiles(dataDir)
    .slice(1)
    .filter((f) => existsSync(f) && !f.endsWith("-shm") && !f.endsWith("-wal") && !f.endsWith(".tmp"));
  if (orphans.length > 0)
    throw new Error(
      `${orphans.map((f) => path.relative(dataDir, f)).join(" and ")} in ${dataDir} belong to a chain that is not there (no ${path.relative(dataDir, RegtestNode.chainDir(dataDir))}; data dirs from before the simulator kept its chain have none): start with --fresh (or SE_FRESH=1) to delete them and begin a new chain`,
    );
  return {};
}

/** The policy the enclave enforces, derived from the host's configuration (simulator: passed at start). */
export function enclavePolicy(cfg: HostConfig) {
  const p = cfg.protocol;
  const feeScript = p.feeAddress
    ? Buffer.from(bitcoin.address.toOutputScript(p.feeAddress, networkOf(cfg))).toString("hex")
    : "";
  return {
    network: cfg.network,
    backupMode: p.backupMode,
    initLock: p.initLock,
    locktimeInterval: p.locktimeInterval,
    lockSafetyMargin: p.lockSafetyMargin,
    minFeeRateSatVb: p.minFeeRateSatVb,
    minDepositSat: p.minDepositSat,
    maxDepositSat: p.maxDepositSat,
    withdrawFeeBps: p.withdrawFeeBps,
    feeScript,
    depositTtlMs: cfg.deposit.unfundedTtlMs,
    maxUnfundedDeposits: cfg.deposit.maxUnfunded,
    depositConfirmations: p.depositConfirmations,
    withdrawConfirmations: p.withdrawConfirmations,
    withdrawBurialDepth: p.withdrawBurialDepth,
  };
}

/**
 * The enclave's policy is what owners are promised (GetInfo answers from the configuration): a host whose
 * configuration differs from the policy its enclave enforces would mislead them, so it refuses to start.
 */
export function checkEnclavePolicy(expected: ReturnType<typeof enclavePolicy>, enclaveJson: string): void {
  let actual: Record<string, unknown>;
  try {
    actual = JSON.parse(enclaveJson);
  } catch {
    throw new Error("the enclave reports no readable policy");
  }
  const differ = Object.entries(expected)
    .filter(([k, v]) => actual[k] !== v)
    .map(
      ([k, v]) =>
        `${k} (the enclave enforces ${JSON.stringify(actual[k])}, the configuration says ${JSON.stringify(v)})`,
    );
  if (differ.length > 0) {
    throw new Error(
      `the enclave enforces another policy than this host's configuration: ${differ.join("; ")}`,
    );
  }
}

export async function startSe(cfg: HostConfig, log: Logger): Promise<RunningSe> {
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  // Before anything in the data dir is touched: a second SE there would delete the running one's files.
  const lock = lockDataDir(cfg.dataDir);
  const cleanups: Array<() => Promise<void>> = [async () => lock.release()];
  const closeAll = async () => {
    for (const fn of cleanups.splice(0).reverse()) {
      await fn().catch((err: Error) => log.error({ err: err.message }, "error during shutdown"));
    }
  };
  try {
    const dbFile = path.join(cfg.dataDir, "host.sqlite");
    // The embedded chain, the database and the local Mainstay state persist together in the data dir (a
    // restart resumes them); --fresh deletes all three.
    const simulator: SimulatorStart | undefined =
      cfg.chain.backend === "embedded" ? prepareSimulatorDataDir(cfg.dataDir, cfg.fresh) : undefined;
    if (simulator?.wiped)
      log.warn({ wiped: simulator.wiped }, "--fresh: deleted the chain, database and Mainstay state");
    const policyFile = path.join(cfg.dataDir, "enclave-policy.json");
    writeFileSync(policyFile, `${JSON.stringify(enclavePolicy(cfg), null, 2)}\n`);
    const enclaveArgs = ["--data-dir", cfg.dataDir, "--policy", policyFile];
    const enclave: EnclaveHandle =
      cfg.enclave.replicas > 1
        ? await startReplicaSet({
            replicas: cfg.enclave.replicas,
            socketPath: cfg.enclave.socketPath,
            startTimeoutMs: cfg.enclave.startTimeoutMs,
            projectRoot: PROJECT_ROOT,
            // Simulator tests only: every member draws from one seeded stream, so a test can recompute a share
            // and scan each member's memory for it (the enclave refuses the flag outside simulator mode).
            args:
              cfg.mode === "simulator" && process.env.SE_TEST_ENCLAVE_RNG_SEED
                ? [...enclaveArgs, "--insecure-test-rng-seed", process.env.SE_TEST_ENCLAVE_RNG_SEED]
                : enclaveArgs,
            log,
            partitionFile: cfg.mode === "simulator" ? process.env.SE_TEST_PARTITION_FILE : undefined,
          })
        : await startEnclave({
            socketPath: cfg.enclave.socketPath,
            spawn: cfg.enclave.spawn,
            startTimeoutMs: cfg.enclave.startTimeoutMs,
            projectRoot: PROJECT_ROOT,
            args: enclaveArgs,
            log,
          });
    cleanups.push(() => enclave.stop());
    checkEnclavePolicy(enclavePolicy(cfg), (await enclave.status()).policyJson);

    let regtest: RegtestNode | undefined;
    let chain: ChainBackend;
    if (cfg.chain.backend === "embedded") {
      regtest = await RegtestNode.start({
        dataDir: cfg.dataDir,
        persistent: true,
        rpcPort: cfg.chain.rpcPort,
        initialBlocks: cfg.chain.initialBlocks,
      });
      const node = regtest;
      cleanups.push(() => node.close());
      writeFileSync(path.join(cfg.dataDir, "bitcoin-rpc.json"), `${JSON.stringify(regtest.rpc, null, 2)}\n`, {
        mode: 0o600,
      });
      regtest.startIntervalMining(cfg.chain.mineIntervalMs, (err) =>
        log.error({ err: err.message }, "interval mining failed"),
      );
      chain = new EmbeddedChain(regtest);
    } else if (cfg.chain.backend === "bitcoind") {
      chain = new BitcoindChain({
        url: cfg.chain.bitcoindUrl,
        user: cfg.chain.bitcoindUser,
        password: cfg.chain.bitcoindPassword,
        network: cfg.network,
      });
    } else {
      chain = new EsploraChain({ url: cfg.chain.esploraUrl, network: cfg.network });
    }
    cleanups.push(() => chain.close());

    const db = await Db.open(dbFile, HOST_MIGRATIONS);
    cleanups.push(() => db.close());
    const store = new Store(db);
    const { tree } = await openSqliteSmt(db);
    const sync = treeSync(db, tree);
    await sync.sync();

    const monitor = new Monitor(enclave, () => chain.tipHeight());
    await monitor.refresh();
    monitor.start();
    const unsubscribe = chain.onBlock(() => void monitor.refresh());
    cleanups.push(async () => {
      unsubscribe();
      monitor.stop();
    });
    const marked = await reconcileEnclave(store, monitor.snapshot().enclave.instanceId, log);
    if (simulator && regtest?.resumedHeight !== undefined) {
      const counts = await store.countByStatus();
      simulator.resumed = {
        height: regtest.resumedHeight,
        coins: [...counts.values()].reduce((a, b) => a + b, 0),
        markedExitByBackup: marked,
        exitByBackup: counts.get(StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP) ?? 0,
      };
      log.info({ ...simulator.resumed }, "resumed the simulator's chain and database");
    }
    // A test stands in for a host that skips this check (as a compromised one would), simulator mode only.
    let closedAtStart: Buffer[] = [];
    if (!(cfg.mode === "simulator" && process.env.SE_TEST_SKIP_ENCLAVE_AGREEMENT === "1")) {
      const instance = Buffer.from(monitor.snapshot().enclave.instanceId, "hex");
      closedAtStart = (await checkEnclaveAgreement(store, enclave.client, instance, log)).closed;
      await sync.sync(); // a key update or a close recovered from the enclave changes a state
    }
    // Set once the watchtower runs: after a restart it takes each exit-only coin's newest co-signed backup.
    let reregister: (() => Promise<void>) | undefined;
    monitor.onEnclaveRestart((_prev, current) => {
      log.error(
        { instance: current },
        "the enclave restarted and lost its shares: its coins can only exit by backup",
      );
      void reconcileEnclave(store, current, log).then(() => reregister?.());
    });

    // Proof of publication: SMT roots to Mainstay (a local Mainstay-compatible service in simulator mode).
    let mainstayUrl = cfg.mainstay.url;
    let proofs: ProofSource;
    let keyParams: LocalMainstay["params"] | undefined;
    if (cfg.mainstay.enabled) {
      if (cfg.mainstay.local) {
        if (chain.kind !== "embedded")
          throw new Error("the local Mainstay service needs the embedded regtest chain");
        const token = cfg.mainstay.token || randomBytes(16).toString("hex");
        // Key and state in the data dir: wallets pin the service key, and the host's publications name the
        // attestations, so both must outlive a restart on the same chain.
        const files = localMainstayFiles(cfg.dataDir);
        const local = await LocalMainstay.start({
          chain: chain as DevChain,
          key: loadOrCreateMainstayKey(files.key),
          stateFile: files.state,
          slots: [{ position: cfg.mainstay.slot, token }],
          attestIntervalMs: cfg.mainstay.commitIntervalS * 1000,
        });
        cleanups.push(() => local.close());
        mainstayUrl = local.url;
        keyParams = local.params;
        cfg.mainstay.token = token;
      }
      const client = new MainstayClient({
        url: mainstayUrl,
        position: cfg.mainstay.slot,
        token: cfg.mainstay.token,
        retries: 0,
      });
      const publisher = await MainstayPublisher.open({
        tree,
        client,
        db,
        intervalMs: cfg.mainstay.commitIntervalS * 1000,
        chain,
        keyParams,
        log,
      });
      publisher.start();
      cleanups.push(async () => publisher.stop());
      proofs = publisher;
    } else {
      proofs = {
        async proofFor(idBytes) {
          const key = statechainKey(outpointFromBytes(idBytes));
          const { leaf, proof } = await tree.prove(key);
          const enc = encodeSmtProof(proof);
          return {
            key: Buffer.from(key),
            leaf: Buffer.from(leaf ?? []),
            root: Buffer.from(tree.root),
            proof: enc,
            mainstay: undefined,
            currentRoot: Buffer.from(tree.root),
            currentLeaf: Buffer.from(leaf ?? []),
            currentProof: enc,
          };
        },
      };
    }

    const watchtower = await Watchtower.create({ db, chain, logger: log });
    watchtower.start();
    cleanups.push(async () => watchtower.stop());
    const watcher = backupWatcher(watchtower, store, cfg, log);
    reregister = () =>
      reregisterBackups(store, watcher).catch((err: Error) =>
        log.error({ err: err.message }, "re-registering backups with the watchtower failed"),
      );
    await reregisterBackups(store, watcher);
    // Coins written closed from the enclave's answer at start-up are no longer watched, as after a close.
    for (const id of closedAtStart) await watcher.remove(id);
    // Every coin's funding looked at again at each block: one a reorg took away is refused co-signing (#19.8).
    const fundingWatch = new FundingWatch({
      store,
      chain,
      log,
      graceBlocks: cfg.chain.fundingGraceBlocks,
      onPass: (lost) => monitor.setFundingLost(lost),
    });
    fundingWatch.start();
    cleanups.push(() => fundingWatch.stop());

    const metrics = new Metrics();
    metrics.gauge("se_enclave_up", "1 when the enclave answers", () => [
      [{}, monitor.snapshot().enclave.reachable ? 1 : 0],
    ]);
    metrics.gauge("se_chain_height", "Chain tip height seen by the host", () => [
      [{}, monitor.snapshot().chain.height],
    ]);
    metrics.gauge("se_statechains", "Statechains by state", async () =>
      [...(await store.countByStatus())].map(([s, n]) => [{ state: StatechainStatus[s] ?? String(s) }, n]),
    );
    metrics.gauge(
      "se_statechains_funding_lost",
      "Coins whose funding transaction left the chain (double spent, or missing past the grace)",
      () => [[{}, monitor.snapshot().fundingLost ?? 0]],
    );
    metrics.gauge(
      "se_funding_watch_passes",
      "Passes of the funding watch over every coin since start",
      () => [[{}, fundingWatch.passes]],
    );
    metrics.gauge("se_funding_watch_height", "Chain tip the funding watch's last pass saw", () => [
      [{}, fundingWatch.lastPassHeight],
    ]);
    const metricsServer = await metrics.serve(cfg.metrics.host, cfg.metrics.port);
    cleanups.push(() => new Promise<void>((r) => metricsServer.server.close(() => r())));

    const deps: ApiDeps = {
      cfg,
      store,
      enclave: timedEnclave(enclave.client, metrics),
      chain,
      monitor,
      log,
      pow: new PowGuard(randomBytes(32), cfg.deposit.powBits),
      keyLimiter: new RateLimiter(cfg.limits.perKeyRate, cfg.limits.perKeyBurst),
      tree: sync,
      watcher,
      proofs,
      simulatorRootPem: (await enclave.status()).simulatorRootPem,
      depositTokenHashes: loadTokenHashes(cfg),
      mainstayUrl: cfg.mainstay.enabled ? mainstayUrl : "",
      mainstayKey: keyParams,
      crash: crashHook(cfg),
      async recheckEnclave() {
        await monitor.refresh();
        const current = monitor.snapshot().enclave.instanceId;
        await reconcileEnclave(store, current, log);
        await reregister?.();
        return Buffer.from(current, "hex");
      },
    };
    const service = statechainService(deps, {
      log,
      metrics,
      peerLimiter: new RateLimiter(cfg.limits.perPeerRate, cfg.limits.perPeerBurst),
      connectionLimiter: new RateLimiter(cfg.limits.perConnectionRate, cfg.limits.perConnectionBurst),
      clock: Date.now,
    });
    const { server, port } = await startPublicServer(cfg, service, monitor, log);
    cleanups.push(() => shutdown(server));
    const pruner = startPruner(store, { unfundedTtlMs: cfg.deposit.unfundedTtlMs, ...cfg.prune }, log);
    cleanups.push(async () => {
      pruner.stop();
      await pruner.done;
    });
    log.info(
      { port, enclave: monitor.snapshot().enclave.instanceId, height: monitor.snapshot().chain.height },
      "statechain entity started",
    );
    return {
      cfg,
      port,
      metricsPort: metricsServer.port,
      enclave,
      regtest,
      chain,
      mainstayUrl,
      monitor,
      store,
      simulator,
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

function loadTokenHashes(cfg: HostConfig): Set<string> {
  if (cfg.deposit.guard !== "token") return new Set();
  const lines = readFileSync(cfg.deposit.tokensFile, "utf8").split(/\r?\n/);
  return new Set(lines.map((l) => l.trim().toLowerCase()).filter((l) => /^[0-9a-f]{64}$/.test(l)));
}

/** Coins held by an enclave instance other than the running one can no longer be co-signed. */
async function reconcileEnclave(store: Store, instanceHex: string, log: Logger): Promise<number> {
  if (!instanceHex) return 0;
  const instance = Buffer.from(instanceHex, "hex");
  const live = [
    StatechainStatus.STATECHAIN_STATUS_AWAITING_CONFIRMATION,
    StatechainStatus.STATECHAIN_STATUS_ACTIVE,
    StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING,
    StatechainStatus.STATECHAIN_STATUS_WITHDRAWING,
  ];
  const r = await store.db.run(
    `UPDATE statechains SET status = ?, updated_at = ? WHERE enclave_instance != ? AND status IN (${live.join(",")})`,
    [StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP, Date.now(), instance],
  );
  if (r.changes > 0)
    log.warn({ coins: r.changes }, "coins of a previous enclave instance marked exit-by-backup");
  return r.changes;
}

/** Registration failures are logged, not thrown: the step they follow is committed already, and start-up
 * registers every current backup again. */
function backupWatcher(tower: Watchtower, store: Store, cfg: HostConfig, log: Logger): BackupWatcher {
  return {
    async register(e) {
      const row = await store.statechain(e.statechainId);
      if (!row) return;
      const lock = row.initial_lock - (e.ownerIndex - 1) * cfg.protocol.locktimeInterval;
      await tower
        .register({
          statechainId: outpointString(outpointFromBytes(e.statechainId)),
          ownerIndex: e.ownerIndex,
          mode: cfg.protocol.backupMode,
          lock,
          amountSat: BigInt(row.amount_sat),
          sharedPublicKey: row.shared_public_key,
          backupTx: e.backupTx,
          kickoffTx: e.kickoffTx,
        })
        .catch((err: Error) =>
          log.warn({ err: err.message, owner: e.ownerIndex }, "watchtower refused a backup"),
        );
    },
    async remove(id) {
      await tower
        .remove(outpointString(outpointFromBytes(id)))
        .catch((err: Error) => log.warn({ err: err.message }, "watchtower removal failed"));
    },
  };
}

/**
 * A crash between a step's commit and its watchtower registration is repaired here. An exit-only coin gets its
 * newest co-signed backup: the current owner's, or the receiver's when a transfer was cut after the receiver's
 * backup was co-signed (the enclave redirects no transfer past that point and co-signs nothing more for the coin,
 * so that backup is the coin's first valid exit, whether or not the receiver was handed it).
 */
async function reregisterBackups(store: Store, watcher: BackupWatcher): Promise<void> {
  const rows = await store.db.all<{
    statechain_id: Buffer;
    owner_index: number;
    signed_tx: Buffer;
    kickoff: Buffer | null;
  }>(
    `SELECT s.statechain_id, b.owner_index, b.signed_tx,
       (SELECT k.signed_tx FROM backups k WHERE k.statechain_id = s.statechain_id AND k.owner_index = 1 AND k.purpose = 2) AS kickoff
     FROM statechains s JOIN backups b ON b.statechain_id = s.statechain_id AND b.purpose = 1 AND b.owner_index =
       CASE WHEN s.status = ? THEN (SELECT MAX(n.owner_index) FROM backups n
         WHERE n.statechain_id = s.statechain_id AND n.purpose = 1 AND n.owner_index <= s.owner_index + 1)
       ELSE s.owner_index END
     WHERE s.status IN (?, ?, ?, ?)`,
    [
      StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP,
      StatechainStatus.STATECHAIN_STATUS_ACTIVE,
      StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING,
      StatechainStatus.STATECHAIN_STATUS_WITHDRAWING,
      StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP,
    ],
  );
  for (const r of rows) {
    await watcher.register({
      statechainId: r.statechain_id,
      ownerIndex: r.owner_index,
      backupTx: r.signed_tx,
      kickoffTx: r.kickoff ?? undefined,
    });
  }
}
