// Fault injection for crash tests, simulator mode only. SE_TEST_CRASH_FILE names a file; when it holds
// "<method>:<point>" and a protocol step of that method reaches that point, the host deletes the file and kills
// itself with SIGKILL: the closest a test gets to pulling the plug at an exact place inside a step.
import { readFileSync, rmSync } from "node:fs";
import type { HostConfig } from "./config.ts";

/** before-commit: the enclave has answered, nothing is written yet. after-commit: the step's rows are durable,
 * the answer is not sent and the follow-up work (SMT, watchtower) not done. */
export type CrashPoint = "before-commit" | "after-commit";
export type CrashHook = (method: string, point: CrashPoint) => void;

export function crashHook(cfg: HostConfig, env: NodeJS.ProcessEnv = process.env): CrashHook | undefined {
  const file = env.SE_TEST_CRASH_FILE;
  if (!file || cfg.mode !== "simulator") return undefined;
  return (method, point) => {
    let planned: string;
    try {
      planned = readFileSync(file, "utf8").trim();
    } catch {
      return;
    }
    if (planned !== `${method}:${point}`) return;
    rmSync(file, { force: true });
    process.kill(process.pid, "SIGKILL");
  };
}
