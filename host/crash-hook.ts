// Fault injection for crash and race tests, simulator mode only. SE_TEST_CRASH_FILE names a file; when it holds
// "<method>:<point>" and a protocol step of that method reaches that point, the host deletes the file and kills
// itself with SIGKILL: the closest a test gets to pulling the plug at an exact place inside a step. With
// "<method>:<point>:pause=<ms>" the step waits there instead, so a test can run another step meanwhile.
import { readFileSync, rmSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { HostConfig } from "./config.ts";

/** before-commit: the enclave has answered, nothing is written yet. after-commit: the step's rows are durable,
 * the answer is not sent and the follow-up work (SMT, watchtower) not done. */
export type CrashPoint = "before-commit" | "after-commit";
export type CrashHook = (method: string, point: CrashPoint) => Promise<void>;

export function crashHook(cfg: HostConfig, env: NodeJS.ProcessEnv = process.env): CrashHook | undefined {
  const file = env.SE_TEST_CRASH_FILE;
  if (!file || cfg.mode !== "simulator") return undefined;
  return async (method, point) => {
    let planned: string;
    try {
      planned = readFileSync(file, "utf8").trim();
    } catch {
      return;
    }
    const [m, p, action = "kill"] = planned.split(":");
    if (m !== method || p !== point) return;
    rmSync(file, { force: true });
    const pause = /^pause=(\d+)$/.exec(action);
    if (pause) await sleep(Number(pause[1]));
    else process.kill(process.pid, "SIGKILL");
  };
}
