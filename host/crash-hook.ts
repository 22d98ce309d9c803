// Fault injection for crash and race tests, simulator mode only. SE_TEST_CRASH_FILE names a file; when it holds
// "<method>:<point>" and a protocol step of that method reaches that point, the host deletes the file and kills
// itself with SIGKILL: the closest a test gets to pulling the plug at an exact place inside a step. With
// "<method>:<point>:pause=<ms>" the step waits there instead, so a test can run another step meanwhile: while it
// waits the file "<SE_TEST_CRASH_FILE>.paused" exists (holding "<method>:<point>"), and the step goes on when the
// pause is over or as soon as the test deletes that file, whichever comes first. A test waits for the marker
// instead of guessing how long the step takes to get there, and can check the step was still held when the
// other step ran.
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
    if (!pause) {
      process.kill(process.pid, "SIGKILL");
      return;
    }
    const marker = `${file}.paused`;
    writeFileSync(marker, `${method}:${point}`);
    const until = Date.now() + Number(pause[1]);
    while (Date.now() < until && existsSync(marker)) await sleep(Math.min(20, until - Date.now()));
    rmSync(marker, { force: true });
  };
}
