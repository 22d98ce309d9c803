// Start-up of the whole SE in simulator mode (enclave process + embedded regtest chain + public gRPC).
import { startSeProcess } from "../test/helpers/se-process.ts";
import { report, time } from "./harness.ts";

export async function run(): Promise<void> {
  const t = await time(
    async () => {
      const se = await startSeProcess();
      await se.stop();
    },
    { runs: 5, warmup: 1 },
  );
  report({ bench: "startup.simulator", unit: "ms", median: t.median, p95: t.p95, runs: t.runs });
}
