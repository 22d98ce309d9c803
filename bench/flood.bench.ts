// An unauthenticated DepositInit flood against a real SE (audit #19.2): host and enclave RSS before, at the peak
// and after, how many of the flood's deposits the SE took and refused, and the transfer latency of an honest
// owner before and during the flood. The flood comes from one address (this machine), as fast as it can solve
// the proof of work the SE asks; the SE's caps (per address and overall) and its growing proof of work are
// what bound it.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { confirmDeposit, deposit, type OwnedCoin, type OwnerContext, send } from "../client/owner.ts";
import { fetchIncoming, receive } from "../client/receive.ts";
import { generatePaillierKey, type PaillierKey } from "../protocol/ecdsa2p/paillier.ts";
import { systemRng } from "../protocol/rng.ts";
import { fundedWallet, newIdentity, ownerHarness } from "../test/helpers/owners.ts";
import { startSeProcess } from "../test/helpers/se-process.ts";
import { report, summary } from "./harness.ts";

const FLOOD_SECONDS = 20;
const FLOODERS = 2;
const TRANSFERS = 10;

const rssMiB = (pid: number) =>
  Math.round(
    Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 102.4,
  ) / 10;

async function latencies(
  ctx: OwnerContext,
  coin: OwnedCoin,
  n: number,
): Promise<{ coin: OwnedCoin; ms: number[] }> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const to = newIdentity();
    await send(ctx, coin, to.address);
    const [incoming] = await fetchIncoming(ctx, to);
    coin = await receive(ctx, to, incoming!);
    ms.push(performance.now() - t0);
  }
  return { coin, ms };
}

const median = (xs: number[]) => Math.round(summary(xs).median);

export async function run(): Promise<void> {
  const se = await startSeProcess({ env: { SE_MAINSTAY_INTERVAL_S: "2" } });
  const h = await ownerHarness(se);
  try {
    const { ctx, chain } = h;
    const w = await fundedWallet(chain);
    let coin = await deposit(ctx, { amountSat: 200_000n, utxos: w.utxos, changeScript: w.script });
    await chain.mine(1);
    await confirmDeposit(ctx, coin, { onWait: async () => void (await chain.mine(1)) });
    const keys: PaillierKey[] = [];
    for (let i = 0; i < 2 * TRANSFERS + 2; i++) keys.push(await generatePaillierKey({ rng: systemRng }));
    ctx.paillierKey = async () => ({
      paillier: keys.pop() ?? (await generatePaillierKey({ rng: systemRng })),
    });

    const quiet = await latencies(ctx, coin, TRANSFERS);
    coin = quiet.coin;
    const before = { host: rssMiB(se.proc.pid!), enclave: rssMiB(se.enclavePid) };

    const peak = { ...before };
    const sampler = setInterval(() => {
      peak.host = Math.max(peak.host, rssMiB(se.proc.pid!));
      peak.enclave = Math.max(peak.enclave, rssMiB(se.enclavePid));
    }, 250);
    // The flood runs in processes of its own (bench/flood-client.ts): in this one its proof-of-work loops would hold
    // the honest wallet's event loop, and the figure would say more about this process than about the SE.
    const flood = Promise.all(
      Array.from(
        { length: FLOODERS },
        () =>
          new Promise<Record<string, number>>((resolve, reject) => {
            execFile(
              process.execPath,
              [
                "--import",
                "tsx",
                path.join(import.meta.dirname, "flood-client.ts"),
                String(se.port),
                String(FLOOD_SECONDS),
              ],
              (err, stdout) => (err ? reject(err) : resolve(JSON.parse(stdout.trim().split("\n").at(-1)!))),
            );
          }),
      ),
    );
    await new Promise((r) => setTimeout(r, 2000)); // the flood at full strength first
    const during = await latencies(ctx, coin, TRANSFERS);
    const parts = await flood;
    clearInterval(sampler);
    const counts = { accepted: 0, exhausted: 0, other: 0, maxBits: 0 };
    for (const c of parts) {
      counts.accepted += c.accepted!;
      counts.exhausted += c.exhausted!;
      counts.other += c.other!;
      counts.maxBits = Math.max(counts.maxBits, c.maxBits!);
    }
    const after = { host: rssMiB(se.proc.pid!), enclave: rssMiB(se.enclavePid) };
    report({
      bench: "flood.deposit_init",
      unit: "ms",
      median: median(during.ms),
      p95: Math.round(summary(during.ms).p95),
      runs: during.ms.length,
      peer: "no flood",
      peer_median: median(quiet.ms),
      ratio: Math.round((median(during.ms) / median(quiet.ms)) * 100) / 100,
      flood_seconds: FLOOD_SECONDS,
      flooders: FLOODERS,
      flood_accepted: counts.accepted,
      flood_refused_exhausted: counts.exhausted,
      flood_refused_other: counts.other,
      flood_max_pow_bits: counts.maxBits,
      host_rss_mib: before.host,
      host_rss_peak_mib: peak.host,
      host_rss_after_mib: after.host,
      enclave_rss_mib: before.enclave,
      enclave_rss_peak_mib: peak.enclave,
      enclave_rss_after_mib: after.enclave,
      note: "transfer latency of an honest owner during the flood, beside the same without it",
    });
  } finally {
    h.close();
    await se.stop();
  }
}
