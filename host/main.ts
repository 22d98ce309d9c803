// Starts the whole SE: enclave process, chain backend, public gRPC server; stops them in reverse order.
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Server } from "@grpc/grpc-js";
import type { DevChain } from "./chain/backend.ts";
import { EmbeddedChain } from "./chain/embedded.ts";
import { RegtestNode } from "./chain/regtest-node.ts";
import type { HostConfig } from "./config.ts";
import { type EnclaveHandle, startEnclave } from "./enclave-process.ts";
import type { Logger } from "./log.ts";
import { Monitor } from "./monitor.ts";
import { shutdown, startPublicServer } from "./server.ts";
import { statechainService } from "./service.ts";

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export interface RunningSe {
  cfg: HostConfig;
  port: number;
  enclave: EnclaveHandle;
  chain: RegtestNode | undefined;
  backend: DevChain;
  monitor: Monitor;
  close(): Promise<void>;
}

export async function startSe(cfg: HostConfig, log: Logger): Promise<RunningSe> {
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 });
  const cleanups: Array<() => Promise<void>> = [];
  const closeAll = async () => {
    for (const fn of cleanups.splice(0).reverse()) {
      await fn().catch((err: Error) => log.error({ err: err.message }, "error during shutdown"));
    }
  };
  try {
    const enclave = await startEnclave({
      socketPath: cfg.enclave.socketPath,
      spawn: cfg.enclave.spawn,
      startTimeoutMs: cfg.enclave.startTimeoutMs,
      projectRoot: PROJECT_ROOT,
      log,
    });
    cleanups.push(() => enclave.stop());

    if (cfg.chain.backend !== "embedded")
      throw new Error(`chain backend "${cfg.chain.backend}" is not available yet`);
    const chain = await RegtestNode.start({
      dataDir: path.join(cfg.dataDir, "regtest"),
      persist: cfg.chain.persist,
      rpcPort: cfg.chain.rpcPort,
      initialBlocks: cfg.chain.initialBlocks,
    });
    cleanups.push(() => chain.close());
    writeFileSync(path.join(cfg.dataDir, "bitcoin-rpc.json"), `${JSON.stringify(chain.rpc, null, 2)}\n`, {
      mode: 0o600,
    });
    chain.startIntervalMining(cfg.chain.mineIntervalMs, (err) =>
      log.error({ err: err.message }, "interval mining failed"),
    );

    const backend = new EmbeddedChain(chain);
    const monitor = new Monitor(enclave, () => backend.tipHeight());
    await monitor.refresh();
    monitor.start();
    chain.onBlock(() => void monitor.refresh());
    cleanups.push(async () => monitor.stop());

    const { server, port } = await startPublicServer(
      cfg,
      statechainService({ cfg, enclave, monitor }),
      monitor,
    );
    cleanups.push(() => shutdown(server as Server));
    log.info(
      { port, enclave: monitor.snapshot().enclave.instanceId, height: chain.height() },
      "statechain entity started",
    );
    return { cfg, port, enclave, chain, backend, monitor, close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
