// Sparse Merkle tree at one million statechains (in the in-memory node store): build time, memory, single
// update, proof generation and verification, proof size; then the SQLite-backed update cost at a smaller size.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import v8 from "node:v8";
import vm from "node:vm";
import { Db } from "../common/sqlite.ts";
import { openSqliteSmt } from "../host/smt-store.ts";
import { SmtProof } from "../proto/gen/statechain.ts";
import { encodeSmtProof, MemoryNodeStore, SparseMerkleTree, verifySmtProof } from "../protocol/smt/index.ts";
import { percentile, report } from "./harness.ts";

const N = Number(process.env.SMT_BENCH_N ?? 1_000_000);
const SQLITE_N = Number(process.env.SMT_BENCH_SQLITE_N ?? 20_000);
const MB = 1024 * 1024;
const round = (x: number) => Math.round(x * 1000) / 1000;

function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  return { median: round(percentile(sorted, 50)), p95: round(percentile(sorted, 95)), runs: samples.length };
}

/** `n` random 32-byte values (keys are SHA-256 outputs, so uniform) as views into one buffer. */
function randoms(n: number): Uint8Array[] {
  const all = randomBytes(n * 32);
  return Array.from({ length: n }, (_, i) => all.subarray(i * 32, i * 32 + 32));
}

async function timeEach(n: number, fn: (i: number) => unknown): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    out.push((performance.now() - t0) * 1000);
  }
  return out;
}

/** Full collections before reading memory figures, so they show what the tree retains, not garbage. */
async function collectGarbage(): Promise<void> {
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as () => void;
  // Array buffers are swept concurrently after a collection: give the sweeper turns before measuring.
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function run(): Promise<void> {
  const label = N === 1_000_000 ? "1m" : String(N);
  await collectGarbage();
  const before = process.memoryUsage();
  const store = new MemoryNodeStore();
  const tree = await SparseMerkleTree.open(store);
  let ks = randoms(N);
  let vs = randoms(N);
  const t0 = performance.now();
  await tree.update(ks.map((key, i) => ({ key, value: vs[i]! })));
  const buildS = (performance.now() - t0) / 1000;
  const peakRss = process.resourceUsage().maxRSS * 1024;
  report({
    bench: `smt.build_${label}`,
    unit: "s",
    median: round(buildS),
    runs: 1,
    leaves: N,
    nodes: store.size,
  });
  const sample = ks
    .filter((_, i) => i % Math.max(1, Math.floor(N / 4000)) === 0)
    .map((k) => Uint8Array.from(k));
  ks = [];
  vs = [];
  await collectGarbage();
  const after = process.memoryUsage();
  report({
    bench: `smt.memory_${label}`,
    unit: "MB",
    // What the tree retains: heap plus array buffers, after a full collection, above the pre-build baseline.
    median: Math.round((after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / MB),
    runs: 1,
    store_mb: Math.round(store.bytes / MB),
    heap_mb: Math.round((after.heapUsed - before.heapUsed) / MB),
    array_buffers_mb: Math.round((after.arrayBuffers - before.arrayBuffers) / MB),
    rss_mb: Math.round(after.rss / MB),
    peak_rss_mb: Math.round(peakRss / MB),
  });

  // Single-leaf updates of existing statechains (a transfer changes one state hash).
  // Steady state: the first 2000 updates warm the JIT up and run while the build's garbage is collected.
  const values = randoms(12_000);
  const upd = await timeEach(12_000, (i) => tree.set(sample[i % sample.length]!, values[i]!));
  report({ bench: "smt.update", unit: "us", ...stats(upd.slice(2000)), leaves: N });
  const fresh = randoms(3000);
  const ins = await timeEach(3000, (i) => tree.set(fresh[i]!, values[i]!));
  report({ bench: "smt.insert", unit: "us", ...stats(ins.slice(500)), leaves: N });

  const proofs = await Promise.all(
    sample.slice(0, 2000).map(async (key) => {
      const { leaf, proof } = await tree.prove(key);
      return { key, leaf, pb: encodeSmtProof(proof) };
    }),
  );
  const prv = await timeEach(2000, (i) => tree.prove(sample[i % sample.length]!));
  report({ bench: "smt.prove", unit: "us", ...stats(prv.slice(200)), leaves: N });
  const root = tree.root;
  const ver = await timeEach(proofs.length, (i) => {
    const p = proofs[i]!;
    verifySmtProof(root, p.key, p.leaf, p.pb);
  });
  report({ bench: "smt.verify", unit: "us", ...stats(ver.slice(200)), leaves: N });
  const sizes = proofs.map((p) => SmtProof.encode(p.pb).finish().length);
  const absent = await Promise.all(
    randoms(500).map(
      async (k) => SmtProof.encode(encodeSmtProof((await tree.prove(k)).proof)).finish().length,
    ),
  );
  report({
    bench: "smt.proof_bytes",
    unit: "bytes",
    ...stats(sizes),
    max: Math.max(...sizes),
    absent_median: stats(absent).median,
    absent_max: Math.max(...absent),
    leaves: N,
  });

  // SQLite-backed store (WAL, synchronous=FULL): every update is one committed transaction.
  const dir = mkdtempSync(path.join(tmpdir(), "smt-bench-"));
  try {
    const db = await Db.open(path.join(dir, "smt.sqlite"));
    const { tree: sq } = await openSqliteSmt(db);
    const sk = randoms(SQLITE_N);
    const tb = performance.now();
    for (let i = 0; i < sk.length; i += 5000)
      await sq.update(sk.slice(i, i + 5000).map((key) => ({ key, value: randomBytes(32) })));
    const buildSq = (performance.now() - tb) / 1000;
    const su = await timeEach(300, (i) => sq.set(sk[(i * 7919) % sk.length]!, randomBytes(32)));
    report({
      bench: "smt.update_sqlite",
      unit: "us",
      ...stats(su.slice(30)),
      leaves: SQLITE_N,
      build_s: round(buildSq),
    });
    await db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
