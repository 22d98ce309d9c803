// Whole-system transfer benchmarks over real gRPC, with the enclave in its own process (DESIGN.md §7 output):
// transfer latency (sender + receiver + SE, including backup co-signing, key update, attestation generation and
// verification), transfers per second at 1, 8 and 32 concurrent wallets, deposit latency to "backup signed",
// withdrawal co-signing latency, enclave memory per live statechain, and a per-phase breakdown of one transfer.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import path from "node:path";
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
import { generatePaillierKeySync } from "../protocol/ecdsa2p/index.ts";
import { generatePaillierKey, type PaillierKey, wipePaillierKey } from "../protocol/ecdsa2p/paillier.ts";
import { fundedWallet, newIdentity, ownerHarness } from "../test/helpers/owners.ts";
import { startSeProcess } from "../test/helpers/se-process.ts";
import { cpuMs, report, summary } from "./harness.ts";
import { cryptoFloor } from "./transfer-floor.ts";

const round = (x: number) => Math.round(x * 100) / 100;
const stats = (samples: number[]) => {
  const { median, p95, runs } = summary(samples);
  return { median: round(median), p95: round(p95), runs };
};

async function transferOnce(ctx: OwnerContext, coin: OwnedCoin): Promise<OwnedCoin> {
  const to = newIdentity();
  await send(ctx, coin, to.address);
  const [incoming] = await fetchIncoming(ctx, to);
  return receive(ctx, to, incoming!);
}

/** Sums of every series of each metric in a Prometheus text page, by metric name. */
async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(url)).text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)(?:\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (m) out.set(m[1]!, (out.get(m[1]!) ?? 0) + Number(m[2]));
  }
  return out;
}

const delta = (a: Map<string, number>, b: Map<string, number>, name: string) =>
  (b.get(name) ?? 0) - (a.get(name) ?? 0);

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0);
}

function enclaveMemoryPerCoin(coins: number): { coins: number; bytes_per_coin: number } {
  const out = execFileSync(
    process.execPath,
    ["--expose-gc", "--import", "tsx", path.join(import.meta.dirname, "enclave-memory.ts"), String(coins)],
    { encoding: "utf8" },
  );
  return JSON.parse(out.trim().split("\n").at(-1)!);
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
    // One coin for the latency runs and one for each of the 32 wallets of the widest throughput run.
    for (let i = 0; i < 33; i++) {
      // Unconfirmed change cannot be spent again here: mine between deposits so coin selection sees it.
      const { coin, ms } = await newCoin();
      deposits.push(coin);
      depositMs.push(ms);
      await chain.mine(1);
      utxos = (await chain.findUtxos(wallet.script)).map((u) => ({ ...u, privateKey: wallet.privateKey }));
    }
    report({ bench: "transfer.deposit_to_backup_signed", unit: "ms", ...stats(depositMs) });
    await confirmAll(deposits);

    // The receivers' Paillier keys are made before each measured window, as a wallet makes them when it hands out
    // an address (client/paillier-pool.ts); their cost is reported apart (transfer.paillier_key). A window that
    // runs out takes keys made on the spot, and says how many.
    const ahead: PaillierKey[] = [];
    let madeInWindow = 0;
    const topUp = async (target: number) => {
      while (ahead.length < target)
        ahead.push(
          ...(await Promise.all([
            generatePaillierKey({ rng: ctx.rng }),
            generatePaillierKey({ rng: ctx.rng }),
          ])),
        );
      madeInWindow = 0;
    };
    ctx.paillierKey = async () => {
      const k = ahead.pop();
      if (k) return { paillier: k };
      madeInWindow++;
      return { paillier: await generatePaillierKey({ rng: ctx.rng }) };
    };
    await topUp(24);

    // Transfer latency: one coin, passed along 20 times, with the time of every call the wallets make.
    let coin = deposits[0]!;
    const latency: number[] = [];
    const rpcMs = new Map<string, number>();
    // The wallet overlaps some calls (the receiver's reads): the time spent waiting is their union, not their sum.
    let spans: [number, number][] = [];
    let waitingMs = 0;
    const call = ctx.se.call.bind(ctx.se);
    ctx.se.call = (async (m: string, req: unknown, signer?: Uint8Array, d?: number) => {
      const t0 = performance.now();
      try {
        return await call(m as never, req as never, signer, d);
      } finally {
        const t1 = performance.now();
        rpcMs.set(m, (rpcMs.get(m) ?? 0) + t1 - t0);
        spans.push([t0, t1]);
      }
    }) as typeof ctx.se.call;
    const unionMs = (xs: [number, number][]) => {
      let total = 0;
      let end = Number.NEGATIVE_INFINITY;
      for (const [a, b] of [...xs].sort((x, y) => x[0] - y[0])) {
        if (b > end) total += b - Math.max(a, end);
        end = Math.max(end, b);
      }
      return total;
    };
    const metricsUrl = String(se.info.metrics);
    const m0 = await scrape(metricsUrl);
    const n = 20;
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      coin = await transferOnce(ctx, coin);
      latency.push(performance.now() - t0);
      waitingMs += unionMs(spans);
      spans = [];
      // An idle moment between transfers (the host's background work settles): this measures latency, not
      // throughput.
      await new Promise((r) => setTimeout(r, 400));
    }
    const m1 = await scrape(metricsUrl);
    ctx.se.call = call;
    const lat = stats(latency);
    report({
      bench: "transfer.latency",
      unit: "ms",
      ...lat,
      target_median_ms: 150,
      target_p95_ms: 250,
      keys_made_in_window: madeInWindow,
    });

    // Per-phase breakdown of one transfer (means over the runs above).
    const mean = latency.reduce((a, b) => a + b, 0) / n;
    const clientRpc = waitingMs / n;
    const hostTotal = (delta(m0, m1, "se_request_seconds_sum") * 1000) / n;
    const enclaveTotal = (delta(m0, m1, "se_enclave_seconds_sum") * 1000) / n;
    const phases = {
      client_crypto_ms: round(mean - clientRpc),
      grpc_transport_ms: round(clientRpc - hostTotal),
      host_ms: round(hostTotal - enclaveTotal),
      enclave_ms: round(enclaveTotal),
      rpc_calls: round([...rpcMs.keys()].length),
    };
    for (const [k, v] of Object.entries(phases))
      report({ bench: `transfer.phase.${k}`, unit: "ms", median: v, runs: n });
    for (const [m, ms] of [...rpcMs].sort((a, b) => b[1] - a[1]))
      report({ bench: `transfer.rpc.${m}`, unit: "ms", median: round(ms / n), runs: n });
    const floor = await cryptoFloor();
    report({
      bench: "transfer.crypto_floor",
      unit: "ms",
      median: floor.total,
      runs: floor.runs,
      ...floor.parts,
    });
    report({
      bench: "transfer.latency_vs_floor",
      unit: "ratio",
      median: round(lat.median / floor.total),
      peer: "crypto floor",
      peer_median: floor.total,
      ratio: round(lat.median / floor.total),
    });

    // Throughput: `n` wallets each pass their own coin along, starting transfers for 10 s; the rate counts the time
    // until the last one started has finished (with 32 wallets that is seconds more than the 10 s).
    const pool = deposits.slice(1);
    for (const n of [1, 8, 32]) {
      await topUp(n === 32 ? 140 : 90);
      const coins = pool.slice(0, Math.min(n, pool.length));
      let done = 0;
      const cpu0 = { wallets: process.cpuUsage(), host: cpuMs(se.proc.pid!), enclave: cpuMs(se.enclavePid) };
      const start = performance.now();
      const until = start + 10_000;
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
      const seconds = (performance.now() - start) / 1000;
      // CPU per transfer by process (the wallets run in this one): with every core busy, throughput is at most
      // cores / CPU per transfer.
      const w = process.cpuUsage(cpu0.wallets);
      const cpu = {
        wallets: (w.user + w.system) / 1000 / done,
        host: (cpuMs(se.proc.pid!) - cpu0.host) / done,
        enclave: (cpuMs(se.enclavePid) - cpu0.enclave) / done,
      };
      const cpuTotal = cpu.wallets + cpu.host + cpu.enclave;
      report({
        bench: `transfer.throughput_${n}`,
        unit: "ops/s",
        median: round(done / seconds),
        runs: done,
        seconds: round(seconds),
        wallets: coins.length,
        target: 10,
        cpu_ms_per_transfer: round(cpuTotal),
        cpu_wallets_ms: round(cpu.wallets),
        cpu_host_ms: round(cpu.host),
        cpu_enclave_ms: round(cpu.enclave),
        cpu_bound_ops_s: round((availableParallelism() * 1000) / cpuTotal),
        // What the SE alone allows on this machine's cores: its operators' figure.
        se_cpu_ms_per_transfer: round(cpu.host + cpu.enclave),
        se_cpu_bound_ops_s: round((availableParallelism() * 1000) / (cpu.host + cpu.enclave)),
        keys_made_in_window: madeInWindow,
      });
    }

    // Every transfer needs the receiver's fresh Paillier key (DESIGN.md 3.1): the wallet's cost per coin, made
    // ahead in its background worker, outside the windows above.
    const keyMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      generatePaillierKeySync();
      keyMs.push(performance.now() - t0);
    }
    report({
      bench: "transfer.paillier_key",
      unit: "ms",
      ...stats(keyMs),
      note: "the receiving wallet's background cost per coin: a 2048-bit Paillier key on one thread (primes, Π^mod, two encryption nonces)",
    });

    // Withdrawal co-signing latency.
    const wMs: number[] = [];
    for (const c of pool.slice(0, 5)) {
      const t0 = performance.now();
      await withdraw(ctx, c, wallet.script);
      wMs.push(performance.now() - t0);
    }
    report({ bench: "transfer.withdraw_cosign", unit: "ms", ...stats(wMs) });

    // Enclave memory per live statechain: the RSS of the enclave process over 40 more deposits says little (the
    // allocator and the heap grow in steps), so the exact figure comes from the enclave's own code measured in a
    // child process (bench/enclave-memory.ts: heap + external after full collections, compiled code excluded).
    ctx.paillierKey = undefined; // the deposits below make their keys on the spot, as a wallet's deposit does
    for (const k of ahead.splice(0)) wipePaillierKey(k);
    const enclavePid = se.enclavePid;
    const before = rssKb(enclavePid);
    for (let i = 0; i < 40; i++) {
      await newCoin();
      await chain.mine(1);
      utxos = (await chain.findUtxos(wallet.script)).map((u) => ({ ...u, privateKey: wallet.privateKey }));
    }
    const after = rssKb(enclavePid);
    const exact = enclaveMemoryPerCoin(200);
    report({
      bench: "transfer.enclave_memory_per_statechain",
      unit: "KB",
      median: round(exact.bytes_per_coin / 1024),
      runs: exact.coins,
      target: 2,
      rss_growth_kb_per_coin: round((after - before) / 40),
    });
  } finally {
    h.close();
    await se.stop();
  }
}
