// Start-up: each CLI command until it has answered (a process per run, as a user types it), and the whole SE in
// simulator mode (enclave process + embedded regtest chain + public gRPC).
import { spawnSync } from "node:child_process";
import path from "node:path";
import { ROOT, startSeProcess } from "../test/helpers/se-process.ts";
import { report, time } from "./harness.ts";

const COMMANDS: Array<[name: string, bin: string, args: string[]]> = [
  ["wallet_version", "bin/wallet.js", ["--version"]],
  ["wallet_help", "bin/wallet.js", ["--help"]],
  ["se_version", "bin/se.js", ["--version"]],
  ["se_help", "bin/se.js", ["--help"]],
  ["verify_attestation_version", "bin/verify-attestation.js", ["--version"]],
];

export async function run(): Promise<void> {
  for (const [name, bin, args] of COMMANDS) {
    const t = await time(
      () => {
        const r = spawnSync(process.execPath, [path.join(ROOT, bin), ...args], {
          cwd: ROOT,
          encoding: "utf8",
        });
        if (r.status !== 0) throw new Error(`${bin} ${args.join(" ")} exited with ${r.status}: ${r.stderr}`);
      },
      { runs: 10, warmup: 1 },
    );
    report({ bench: `startup.${name}`, unit: "ms", median: t.median, p95: t.p95, runs: t.runs });
  }
  const t = await time(
    async () => {
      const se = await startSeProcess();
      await se.stop();
    },
    { runs: 5, warmup: 1 },
  );
  report({ bench: "startup.simulator", unit: "ms", median: t.median, p95: t.p95, runs: t.runs });
}
