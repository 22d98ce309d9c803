// Per-coin owner Paillier keys derived from a seed (protocol/ecdsa2p/seeded-paillier.ts) against OpenSSL's random
// Blum primes (generatePaillierKey), in the same run: CPU ms (process.cpuUsage, every thread of the process) and
// wall ms, for the primes alone and for a whole key (primes, Π^mod, two encryption nonces); then the wallet pool's
// wall time from take() on a cold path to the key (worker thread at nice 19). A fresh seed per run: the prime
// search's length varies with the seed.
import { performance } from "node:perf_hooks";
import { KeyTree } from "../client/keys.ts";
import { paillierKeyPath, paillierSeed } from "../client/paillier-keys.ts";
import { PaillierKeyPool } from "../client/paillier-pool.ts";
import { generatePaillierKey, wipePaillierKey } from "../protocol/ecdsa2p/paillier.ts";
import { paillierKeyFromSeed, seededBlumPrimes } from "../protocol/ecdsa2p/seeded-paillier.ts";
import { systemRng } from "../protocol/rng.ts";
import { percentile, report } from "./harness.ts";

const RUNS = 20;
const round = (x: number) => Math.round(x * 1000) / 1000;

async function measure(fn: () => unknown, runs = RUNS): Promise<{ cpu: number[]; wall: number[] }> {
  await fn(); // warm-up
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await fn();
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  return { cpu, wall };
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: round(percentile(s, 50)), p95: round(percentile(s, 95)) };
};

function pair(
  name: string,
  ours: { cpu: number[]; wall: number[] },
  theirs: { cpu: number[]; wall: number[] },
) {
  for (const what of ["cpu", "wall"] as const) {
    const o = stats(ours[what]);
    const t = stats(theirs[what]);
    report({
      bench: `paillier-pool.${name}.${what}`,
      unit: "ms",
      ...o,
      runs: ours[what].length,
      peer: "openssl-generatePaillierKey",
      peer_median: t.median,
      ratio: round(o.median / t.median),
    });
  }
}

export async function run(): Promise<void> {
  const seed = () => systemRng(64);
  pair(
    "seeded-primes",
    await measure(() => seededBlumPrimes(seed())),
    await measure(async () => wipePaillierKey(await generatePaillierKey({ modulusProof: false, nonces: 0 }))),
  );
  pair(
    "seeded-key",
    await measure(() => wipePaillierKey(paillierKeyFromSeed(seed()))),
    await measure(async () => wipePaillierKey(await generatePaillierKey())),
  );
  // The pool: a cold take() (derive the seed, post it, the worker builds the key, the key comes back).
  const keys = new KeyTree(systemRng(64), "regtest");
  const pool = new PaillierKeyPool({ seedFor: (p) => paillierSeed(keys, p) });
  let slot = 0;
  try {
    const t = await measure(
      async () => wipePaillierKey(await pool.take(paillierKeyPath("regtest", 0, slot++))),
      10,
    );
    report({ bench: "paillier-pool.take-cold.wall", unit: "ms", ...stats(t.wall), runs: t.wall.length });
  } finally {
    await pool.close();
    keys.wipe();
  }
}
