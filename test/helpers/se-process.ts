// Starts the real `se start` command as a child process and waits for its JSON start line; also runs the enclave
// as a process of its own, so a host can be killed and restarted against the same enclave and chain.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { ENCLAVE_NODE_FLAGS } from "../../host/enclave-process.ts";

export const ROOT = path.resolve(import.meta.dirname, "../..");

type Exit = { code: number | null; signal: NodeJS.Signals | null };

export interface SeProcess {
  proc: ChildProcess;
  port: number;
  enclavePid: number;
  dataDir: string;
  info: Record<string, unknown>;
  exited: Promise<Exit>;
  stop(signal?: NodeJS.Signals): Promise<Exit>;
  /** Everything the process wrote so far (stdout then stderr): JSON log lines and the start line. */
  output(): { stdout: string; stderr: string };
}

export interface StartOptions {
  env?: Record<string, string>;
  dataDir?: string;
  /** Extra `se start` arguments (e.g. --config). */
  args?: string[];
}

export async function startSeProcess(opts: StartOptions = {}): Promise<SeProcess> {
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(tmpdir(), "se-"));
  const proc = spawn(
    process.execPath,
    [
      path.join(ROOT, "bin/se.js"),
      "start",
      "--json",
      "--port",
      "0",
      "--data-dir",
      dataDir,
      ...(opts.args ?? []),
    ],
    {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        SE_CHAIN_RPC_PORT: "0",
        SE_MINE_INTERVAL_MS: "0",
        SE_LOG_LEVEL: "warn",
        ...opts.env,
      },
    },
  );
  const exited = new Promise<Exit>((resolve) =>
    proc.once("exit", (code, signal) => resolve({ code, signal })),
  );
  let stdout = "";
  let stderr = "";
  proc.stderr!.on("data", (d) => {
    stderr += d;
  });
  const info = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`se did not start within 30 s; stderr:\n${stderr}`)),
      30_000,
    );
    const rl = createInterface({ input: proc.stdout! });
    rl.on("line", (line) => {
      stdout += `${line}\n`;
      try {
        const obj = JSON.parse(line);
        if (obj.event === "started") {
          clearTimeout(timer);
          resolve(obj);
        }
      } catch {
        // log lines that are not the start event
      }
    });
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`se exited with ${code} before starting; stderr:\n${stderr}\nstdout:\n${stdout}`));
    });
  });
  const port = Number(String(info.grpc).split(":").pop());
  return {
    proc,
    port,
    enclavePid: Number(info.enclavePid),
    dataDir,
    info,
    exited,
    async stop(signal = "SIGTERM") {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
    output: () => ({ stdout, stderr }),
  };
}

/** Runs `se start` expecting it to fail; resolves with its exit code and output. */
export async function startSeExpectingFailure(opts: StartOptions = {}): Promise<Exit & { stderr: string }> {
  try {
    const se = await startSeProcess(opts);
    await se.stop("SIGKILL");
  } catch (err) {
    return { code: 1, signal: null, stderr: (err as Error).message };
  }
  throw new Error("se started although it was expected to refuse");
}

export interface EnclaveProcess {
  proc: ChildProcess;
  pid: number;
  socketPath: string;
  exited: Promise<Exit>;
  stop(signal?: NodeJS.Signals): Promise<Exit>;
  stderr(): string;
}

/** The enclave as its own process (as on Nitro), serving on `socketPath` with the given policy. */
export async function startEnclaveProcess(opts: {
  dataDir: string;
  policy: object;
  socketPath?: string;
}): Promise<EnclaveProcess> {
  const socketPath = opts.socketPath ?? path.join(opts.dataDir, "enclave.sock");
  const policyFile = path.join(opts.dataDir, "test-enclave-policy.json");
  writeFileSync(policyFile, JSON.stringify(opts.policy));
  const proc = spawn(
    process.execPath,
    [
      ...ENCLAVE_NODE_FLAGS,
      path.join(ROOT, "bin/enclave.js"),
      "--socket",
      socketPath,
      "--data-dir",
      opts.dataDir,
      "--policy",
      policyFile,
    ],
    { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] },
  );
  const exited = new Promise<Exit>((resolve) =>
    proc.once("exit", (code, signal) => resolve({ code, signal })),
  );
  let stderr = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`enclave did not start; stderr:\n${stderr}`)), 30_000);
    proc.stderr!.on("data", (d) => {
      stderr += d;
      if (stderr.includes('"msg":"serving"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`enclave exited with ${code}; stderr:\n${stderr}`));
    });
  });
  return {
    proc,
    pid: proc.pid!,
    socketPath,
    exited,
    async stop(signal = "SIGTERM") {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
    stderr: () => stderr,
  };
}

export interface ChainProcess {
  proc: ChildProcess;
  rpc: { url: string; user: string; password: string };
  stop(): Promise<Exit>;
}

/** A bcoin regtest chain in its own process (in memory), reachable through its bitcoind-compatible RPC. */
export async function startChainProcess(): Promise<ChainProcess> {
  const proc = spawn(
    process.execPath,
    ["--import", "tsx", path.join(ROOT, "test/host/support/regtest-chain-main.ts")],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  const exited = new Promise<Exit>((resolve) =>
    proc.once("exit", (code, signal) => resolve({ code, signal })),
  );
  let stderr = "";
  proc.stderr!.on("data", (d) => {
    stderr += d;
  });
  const rpc = await new Promise<ChainProcess["rpc"]>((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout! });
    rl.once("line", (line) => resolve(JSON.parse(line)));
    void exited.then(({ code }) => reject(new Error(`chain exited with ${code}; stderr:\n${stderr}`)));
  });
  return {
    proc,
    rpc,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      return exited;
    },
  };
}

/**
 * An SE whose host can be killed and restarted: the enclave and the regtest chain run as processes of their own
 * and the host connects to both (SE_ENCLAVE_SPAWN=false, the bitcoind backend on the chain's RPC). Mainstay is
 * off: the local Mainstay service lives inside the host with the embedded chain. `restart()` SIGKILLs the host
 * (if it still runs) and starts it again on the same data directory.
 *
 * The chain runs apart (not the host's embedded one, which now persists in the data dir too) so that killing the
 * host leaves it running, mempool and all, as a bitcoind beside a crashed SE would.
 */
export interface DurableSe {
  enclave: EnclaveProcess;
  chain: ChainProcess;
  host: SeProcess;
  dataDir: string;
  env: Record<string, string>;
  restart(): Promise<SeProcess>;
  /** Kills the enclave (SIGKILL: every share it held is gone) and starts a fresh one on the same socket. */
  restartEnclave(): Promise<EnclaveProcess>;
  /**
   * Arms the host's fault hook (host/crash-hook.ts): it SIGKILLs itself when `method` reaches `point`, or with
   * `pauseMs` waits there that long.
   */
  crashAt(method: string, point: "before-commit" | "after-commit", pauseMs?: number): void;
  /** The "<method>:<point>" a step armed with a pause is held at right now, if one is. */
  pausedAt(): string | undefined;
  /** Waits (up to timeoutMs) until a paused step is held at its point; returns "<method>:<point>". */
  untilPaused(timeoutMs?: number): Promise<string>;
  /** Lets the paused step go on now (the host's hook ends its pause when the marker file is gone). */
  release(): void;
  stop(): Promise<void>;
}

export async function startDurableSe(opts: {
  env?: Record<string, string>;
  /** The policy the host's configuration implies (host/main.ts `enclavePolicy`). */
  policy: object;
}): Promise<DurableSe> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "se-durable-"));
  const [enclave, chain] = await Promise.all([
    startEnclaveProcess({ dataDir, policy: opts.policy }),
    startChainProcess(),
  ]);
  // Where owner harnesses look for the chain (as `se start` writes it for its embedded chain).
  writeFileSync(path.join(dataDir, "bitcoin-rpc.json"), JSON.stringify(chain.rpc));
  const env: Record<string, string> = {
    SE_ENCLAVE_SPAWN: "false",
    SE_ENCLAVE_SOCKET: enclave.socketPath,
    SE_CHAIN_BACKEND: "bitcoind",
    SE_BITCOIND_URL: chain.rpc.url,
    SE_BITCOIND_USER: chain.rpc.user,
    SE_BITCOIND_PASSWORD: chain.rpc.password,
    SE_MAINSTAY_ENABLED: "false",
    SE_TEST_CRASH_FILE: path.join(dataDir, "crash-at"),
    ...opts.env,
  };
  const se: DurableSe = {
    enclave,
    chain,
    dataDir,
    env,
    host: await startSeProcess({ env, dataDir }),
    async restart() {
      await se.host.stop("SIGKILL");
      se.host = await startSeProcess({ env, dataDir });
      return se.host;
    },
    async restartEnclave() {
      await se.enclave.stop("SIGKILL");
      se.enclave = await startEnclaveProcess({ dataDir, policy: opts.policy });
      return se.enclave;
    },
    crashAt(method, point, pauseMs) {
      const action = pauseMs === undefined ? "" : `:pause=${pauseMs}`;
      writeFileSync(env.SE_TEST_CRASH_FILE!, `${method}:${point}${action}`);
    },
    pausedAt() {
      try {
        // Empty for the instant between the hook creating the file and writing it.
        return readFileSync(`${env.SE_TEST_CRASH_FILE!}.paused`, "utf8") || undefined;
      } catch {
        return undefined;
      }
    },
    async untilPaused(timeoutMs = 120_000) {
      await waitUntil(() => se.pausedAt() !== undefined, timeoutMs, "the armed step to reach its pause");
      return se.pausedAt()!;
    },
    release() {
      rmSync(`${env.SE_TEST_CRASH_FILE!}.paused`, { force: true });
    },
    async stop() {
      await se.host.stop("SIGTERM");
      await Promise.all([se.enclave.stop("SIGTERM"), chain.stop()]);
    },
  };
  return se;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function waitUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The pid of the enclave process an SE with replicas started for slot `slot` (its socket is `enclave.sock.<slot>`). */
export function memberPid(dataDir: string, slot: number): number {
  const socket = path.join(dataDir, `enclave.sock.${slot}`);
  const out = execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" });
  const line = out.split("\n").find((l) => l.includes(`--socket ${socket} `));
  if (!line) throw new Error(`no enclave process serves slot ${slot}`);
  return Number(line.trim().split(/\s+/)[0]);
}
