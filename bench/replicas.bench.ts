// The enclave replica set (issue #23): transfer latency with 3 members beside 1 in the same run (target ≤ 1.3×),
// the SE's CPU per transfer (host + every enclave member), the failover time from SIGKILL of the leader to the
// next transfer answered (target ≤ 2 s), and the rejoin of a new member with 10,000 live coins (target ≤ 5 s:
// attested handshake, admission through the log, snapshot sealed, carried and applied), in process.
import { execFileSync } from "node:child_process";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { confirmDeposit, deposit, type OwnedCoin, type OwnerContext, send } from "../client/owner.ts";
import { fetchIncoming, receive } from "../client/receive.ts";
import { idHexOf } from "../enclave/core.ts";
import { decodeCoin, encodeCoin } from "../enclave/replica/coin-record.ts";
import { DEFAULT_TIMING } from "../enclave/replica/member.ts";
import { fullCoin } from "../test/enclave/replica/coins.ts";
import { inProcessSet } from "../test/enclave/replica/in-process.ts";
import { fundedWallet, newIdentity, ownerHarness } from "../test/helpers/owners.ts";
import { memberPid, type SeProcess, startSeProcess } from "../test/helpers/se-process.ts";
import { cpuMs, report, summary } from "./harness.ts";

const round = (x: number) => Math.round(x * 100) / 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The SE's processes: the host and every enclave process it started. */
function sePids(se: SeProcess): number[] {
  const out = execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" });
  const enclaves = out
    .split("\n")
    .filter((l) => l.includes("bin/enclave.js") && l.includes(se.dataDir))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
  return [se.proc.pid!, ...enclaves];
}

async function transferOnce(ctx: OwnerContext, coin: OwnedCoin): Promise<OwnedCoin> {
  const to = newIdentity();
  await send(ctx, coin, to.address);
  const [incoming] = await fetchIncoming(ctx, to);
  return receive(ctx, to, incoming!);
}

/** Transfer latency and SE CPU per transfer for an SE with `replicas` enclave members. */
async function measureSe(replicas: number, n: number) {
  const se = await startSeProcess({
    env: { SE_ENCLAVE_REPLICAS: String(replicas), SE_MAINSTAY_ENABLED: "false", SE_INIT_LOCK: "5000" },
  });
  const h = await ownerHarness(se);
  try {
    const wallet = await fundedWallet(h.chain);
    await h.chain.mine(4, wallet.script);
    await h.chain.mine(100);
    const utxos = (await h.chain.findUtxos(wallet.script)).map((u) => ({
      ...u,
      privateKey: wallet.privateKey,
    }));
    const newCoin = async () => {
      const c = await deposit(h.ctx, {
        amountSat: 100_000n,
        utxos: utxos.splice(0, 1),
        changeScript: wallet.script,
      });
      await confirmDeposit(h.ctx, c, { onWait: async () => void (await h.chain.mine(1)) });
      return c;
    };
    let coin = await transferOnce(h.ctx, await newCoin()); // warm-up
    const pids = sePids(se);
    const cpu0 = pids.map(cpuMs);
    const latency: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      coin = await transferOnce(h.ctx, coin);
      latency.push(performance.now() - t0);
      await sleep(200);
    }
    const seCpu = pids.map(cpuMs).reduce((a, b, i) => a + b - cpu0[i]!, 0) / n;
    let failover: number[] = [];
    if (replicas > 1) {
      for (let i = 0; i < 3; i++) {
        const fresh = await newCoin();
        await sleep(1000); // the set settles after the previous kill
        const leader = await leaderPid(se, replicas);
        process.kill(leader, "SIGKILL");
        const t0 = performance.now();
        await transferOnce(h.ctx, fresh);
        failover.push(performance.now() - t0);
        await sleep(3000); // the killed member is restarted and admitted
      }
    } else failover = [];
    return { latency, seCpu, failover, pids: pids.length };
  } finally {
    h.close();
    await se.stop();
  }
}

async function leaderPid(se: SeProcess, replicas: number): Promise<number> {
  const { connectEnclave } = await import("../host/enclave-process.ts");
  const { unary } = await import("../proto/unary.ts");
  for (let slot = 0; slot < replicas; slot++) {
    const c = connectEnclave(path.join(se.dataDir, `enclave.sock.${slot}`));
    try {
      const st = await unary(c, c.getStatus, {}, { deadlineMs: 1000 });
      if (st.replica?.role === "leader") return memberPid(se.dataDir, slot);
    } catch {
      // not answering
    } finally {
      c.close();
    }
  }
  throw new Error("no leader");
}

/** A new member joining a set whose leader holds `coins` live coins, in process over real channels. */
async function rejoin(coins: number): Promise<{ ms: number; snapshotBytes: number }> {
  let snapshotBytes = 0;
  const set = inProcessSet({
    timing: DEFAULT_TIMING,
    tickMs: 25,
    onSend: (n) => {
      snapshotBytes = Math.max(snapshotBytes, n);
    },
  });
  const start = () => {
    const r = set.start();
    return { id: r.id, m: r.member, core: r.core };
  };
  try {
    // A set of two live members holding the coins (put into both directly: the bench is about the joiner), and a
    // restarted member joining it: the leader keeps its majority with the other member while the joiner applies.
    const a = start();
    await a.m.found();
    while (!a.m.leading()) await sleep(10);
    const b = start();
    await a.m.admit(b.id, 60_000);
    for (let i = 0; i < coins; i++) {
      if (i % 200 === 0) await sleep(0); // let the members' ticks run: a blocked loop loses the lease
      const c = fullCoin();
      for (const core of [a.core, b.core]) {
        const copy = decodeCoin(encodeCoin(c));
        core.coins.add(copy);
        core.coins.bind(copy, idHexOf(copy.outpoint!));
      }
    }
    const joiner = start();
    const t0 = performance.now();
    await a.m.admit(joiner.id, 60_000);
    const ms = performance.now() - t0;
    if (joiner.core.coins.size !== coins)
      throw new Error(`the joiner holds ${joiner.core.coins.size} coins, not ${coins}`);
    return { ms, snapshotBytes };
  } finally {
    set.stop();
  }
}

export async function run(): Promise<void> {
  if (process.env.REPLICAS_BENCH === "rejoin") return reportRejoin();
  const n = 12;
  const one = await measureSe(1, n);
  const three = await measureSe(3, n);
  const l1 = summary(one.latency);
  const l3 = summary(three.latency);
  report({
    bench: "replicas.transfer_latency_1",
    unit: "ms",
    median: round(l1.median),
    p95: round(l1.p95),
    runs: n,
  });
  report({
    bench: "replicas.transfer_latency_3",
    unit: "ms",
    median: round(l3.median),
    p95: round(l3.p95),
    runs: n,
    ratio: round(l3.median / l1.median),
    target_ratio: 1.3,
  });
  report({
    bench: "replicas.se_cpu_ms_per_transfer_1",
    unit: "ms",
    median: round(one.seCpu),
    processes: one.pids,
  });
  report({
    bench: "replicas.se_cpu_ms_per_transfer_3",
    unit: "ms",
    median: round(three.seCpu),
    processes: three.pids,
  });
  const f = summary(three.failover);
  report({
    bench: "replicas.failover_transfer_after_leader_kill",
    unit: "ms",
    median: round(f.median),
    p95: round(f.p95),
    runs: three.failover.length,
    target_ms: 2000,
    note: "SIGKILL of the leader to the next whole transfer answered (its key update waits out the lost member's lease)",
  });
  await reportRejoin();
}

async function reportRejoin(): Promise<void> {
  let r: Awaited<ReturnType<typeof rejoin>>;
  try {
    r = await rejoin(10_000);
  } catch (err) {
    // In one process every member shares one event loop: the 20 MB snapshot's making and applying can hold the
    // others' heartbeats past the lease. Reported, not thrown, so the other figures stand.
    report({
      bench: "replicas.rejoin_10000_coins",
      unit: "ms",
      median: Number.NaN,
      error: (err as Error).message,
    });
    return;
  }
  report({
    bench: "replicas.rejoin_10000_coins",
    unit: "ms",
    median: round(r.ms),
    runs: 1,
    snapshot_bytes: r.snapshotBytes,
    target_ms: 5000,
    note: "in process: a restarted member admitted to a set of two holding 10,000 coins (attested handshake, admission, snapshot sealed and applied)",
  });
}
