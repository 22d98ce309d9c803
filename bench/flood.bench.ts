// An unauthenticated DepositInit flood against a real SE (audit #19.2): host and enclave RSS before, at the peak
// and after, how many of the flood's deposits the SE took and refused, and the transfer latency of an honest
// owner before and during the flood. The flood comes from one address (this machine), as fast as it can solve
// the proof of work the SE asks; the SE's caps (per address and overall) and its growing proof of work are
// what bound it.
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { status } from "@grpc/grpc-js";
import {
  confirmDeposit,
  deposit,
  type OwnedCoin,
  type OwnerContext,
  pub,
  randomSecret,
  send,
} from "../client/owner.ts";
import { fetchIncoming, receive } from "../client/receive.ts";
import { SeClient, SeError } from "../client/se-client.ts";
import { generatePaillierKey, type PaillierKey } from "../protocol/ecdsa2p/paillier.ts";
import { solvePow } from "../protocol/pow.ts";
import { systemRng } from "../protocol/rng.ts";
import { fundedWallet, newIdentity, ownerHarness } from "../test/helpers/owners.ts";
import { startSeProcess } from "../test/helpers/se-process.ts";
import { percentile, report } from "./harness.ts";

const FLOOD_SECONDS = 20;
const FLOODERS = 4;
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

const median = (xs: number[]) =>
  Math.round(
    percentile(
      [...xs].sort((a, b) => a - b),
      50,
    ),
  );

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
    ctx.paillierKey = async () => keys.pop() ?? generatePaillierKey({ rng: systemRng });

    const quiet = await latencies(ctx, coin, TRANSFERS);
    coin = quiet.coin;
    const before = { host: rssMiB(se.proc.pid!), enclave: rssMiB(se.enclavePid) };

    const peak = { ...before };
    const sampler = setInterval(() => {
      peak.host = Math.max(peak.host, rssMiB(se.proc.pid!));
      peak.enclave = Math.max(peak.enclave, rssMiB(se.enclavePid));
    }, 250);
    const counts = { accepted: 0, exhausted: 0, other: 0, maxBits: 0 };
    const until = performance.now() + FLOOD_SECONDS * 1000;
    const flooder = async () => {
      const client = new SeClient(`127.0.0.1:${se.port}`, { rng: systemRng });
      try {
        while (performance.now() < until) {
          const secret = randomSecret(systemRng);
          const proofKey = pub(secret);
          try {
            const ch = await client.call("getDepositChallenge", {});
            counts.maxBits = Math.max(counts.maxBits, ch.difficultyBits);
            const solution = Buffer.from(solvePow(ch.challenge, proofKey, ch.difficultyBits));
            await client.call(
              "depositInit",
              {
                proofKey,
                guard: { $case: "pow", value: { challenge: ch.challenge, solution } },
                auth: undefined,
                holderCommit: { commitment: Buffer.from(systemRng(32)) },
                keygenSessionId: Buffer.from(systemRng(16)),
              },
              secret,
            );
            counts.accepted++;
          } catch (e) {
            if (e instanceof SeError && e.code === status.RESOURCE_EXHAUSTED) counts.exhausted++;
            else counts.other++;
            await new Promise((r) => setTimeout(r, 5));
          }
        }
      } finally {
        client.close();
      }
    };
    const flood = Promise.all(Array.from({ length: FLOODERS }, flooder));
    await new Promise((r) => setTimeout(r, 2000)); // the flood at full strength first
    const during = await latencies(ctx, coin, TRANSFERS);
    await flood;
    clearInterval(sampler);
    const after = { host: rssMiB(se.proc.pid!), enclave: rssMiB(se.enclavePid) };
    report({
      bench: "flood.deposit_init",
      unit: "ms",
      median: median(during.ms),
      p95: Math.round(
        percentile(
          [...during.ms].sort((a, b) => a - b),
          95,
        ),
      ),
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
