// Whole-system transfer benchmarks over real gRPC, with the enclave in its own process (DESIGN.md §7 output):
// transfer latency (sender + receiver + SE, including backup co-signing, key update, attestation generation and
// verification), transfers per second at 1, 8 and 32 concurrent wallets, deposit latency to "backup signed",
// withdrawal co-signing latency, enclave memory per live statechain, and a per-phase breakdown of one transfer.
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import {
  confirmDeposit,
  deposit,
  type OwnedCoin,
  type OwnerContext,
  send,
  withdraw,
} from "../client/owner.ts";
import { fetchIncoming, receive } from "../client/receive.ts";
import { fundedWallet, newIdentity, ownerHarness } from "../test/helpers/owners.ts";
import { startSeProcess } from "../test/helpers/se-process.ts";
import { percentile, report } from "./harness.ts";

const round = (x: number) => Math.round(x * 100) / 100;
const stats = (samples: number[]) => {
  const s = [...samples].sort((a, b) => a - b);
  return { median: round(percentile(s, 50)), p95: round(percentile(s, 95)), runs: s.length };
};

async function transferOnce(ctx: OwnerContext, coin: OwnedCoin): Promise<OwnedCoin> {
  const to = newIdentity();
  await send(ctx, coin, to.address);
  const [incoming] = await fetchIncoming(ctx, to);
  return receive(ctx, to, incoming!);
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0);
}

export async function run(): Promise<void> {
  const se = await startSeProcess({
    env: { SE_MAINSTAY_INTERVAL_S: "2", SE_INIT_LOCK: "5000", SE_LOCKTIME_INTERVAL: "1" },
  });
  const h = await ownerHarness(se);
  try {
    const { ctx, chain } = h;
    const wallet = await fundedWallet(chain);
    let utxos = wallet.utxos;
    const newCoin = async (): Promise<{ coin: OwnedCoin; ms: number }> => {
      const t0 = performance.now();
      const coin = await deposit(ctx, { amountSat: 100_000n, utxos, changeScript: wallet.script });
      const ms = performance.now() - t0;
      utxos = (await chain.findUtxos(wallet.script)).map((u) => ({ ...u, privateKey: wallet.privateKey }));
      return { coin, ms };
    };
    const confirmAll = async (coins: OwnedCoin[]) => {
      await chain.mine(1);
      for (const c of coins) await confirmDeposit(ctx, c, { onWait: async () => void (await chain.mine(1)) });
    };

    // Deposit latency (to "backup signed"; the funding's confirmations are the chain's business).
    const deposits: OwnedCoin[] = [];
    const depositMs: number[] = [];
    for (let i = 0; i < 12; i++) {
      // Unconfirmed change cannot be spent again here: mine between deposits so coin selection sees it.
      const { coin, ms } = await newCoin();
      deposits.push(coin);
      depositMs.push(ms);
      await chain.mine(1);
      utxos = (await chain.findUtxos(wallet.script)).map((u) => ({ ...u, privateKey: wallet.privateKey }));
    }
    report({ bench: "transfer.deposit_to_backup_signed", unit: "ms", ...stats(depositMs) });
    await confirmAll(deposits);

    // Transfer latency: one coin, passed along 20 times.
    let coin = deposits[0]!;
    const latency: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      coin = await transferOnce(ctx, coin);
      latency.push(performance.now() - t0);
    }
    report({ bench: "transfer.latency", unit: "ms", ...stats(latency), target_ms: 250 });

    // Throughput: `n` wallets each pass their own coin along for a fixed time.
    const pool = deposits.slice(1);
    for (const n of [1, 8]) {
      const coins = pool.slice(0, Math.min(n, pool.length));
      let done = 0;
      const until = performance.now() + 10_000;
      await Promise.all(
        coins.map(async (c0) => {
          let c = c0;
          while (performance.now() < until) {
            c = await transferOnce(ctx, c);
            done++;
          }
          pool[pool.indexOf(c0)] = c;
        }),
      );
      report({
        bench: `transfer.throughput_${n}`,
        unit: "ops/s",
        median: round(done / 10),
        runs: done,
        wallets: coins.length,
        target: 10,
      });
    }

    // Withdrawal co-signing latency.
    const wMs: number[] = [];
    for (const c of pool.slice(0, 5)) {
      const t0 = performance.now();
      await withdraw(ctx, c, wallet.script);
      wMs.push(performance.now() - t0);
    }
    report({ bench: "transfer.withdraw_cosign", unit: "ms", ...stats(wMs) });

    // Enclave memory per live statechain: RSS growth over 40 more deposits.
    const enclavePid = se.enclavePid;
    const before = rssKb(enclavePid);
    const more: OwnedCoin[] = [];
    for (let i = 0; i < 40; i++) {
      more.push((await newCoin()).coin);
      await chain.mine(1);
      utxos = (await chain.findUtxos(wallet.script)).map((u) => ({ ...u, privateKey: wallet.privateKey }));
    }
    const after = rssKb(enclavePid);
    report({
      bench: "transfer.enclave_memory_per_statechain",
      unit: "KB",
      median: round((after - before) / 40),
      runs: 40,
      target: 8,
      rss_before_kb: before,
      rss_after_kb: after,
    });
  } finally {
    h.close();
    await se.stop();
  }
}
