// Starts the real `se start` command as a child process and waits for its JSON start line.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";

export const ROOT = path.resolve(import.meta.dirname, "../..");

export interface SeProcess {
  proc: ChildProcess;
  port: number;
  enclavePid: number;
  dataDir: string;
  info: Record<string, unknown>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function startSeProcess(
  opts: { env?: Record<string, string>; dataDir?: string } = {},
): Promise<SeProcess> {
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(tmpdir(), "se-"));
  const proc = spawn(
    process.execPath,
    [path.join(ROOT, "bin/se.js"), "start", "--json", "--port", "0", "--data-dir", dataDir],
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
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once("exit", (code, signal) => resolve({ code, signal })),
  );
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
      reject(new Error(`se exited with ${code} before starting; stderr:\n${stderr}`));
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
  };
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
