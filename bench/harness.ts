// Benchmark conventions (DESIGN.md section 7): one JSON object per line on stdout, a readable table on stderr.
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

export interface BenchResult {
  bench: string;
  unit: "ms" | "us" | "ops/s" | "bytes" | "KB" | "MB" | "s" | "ratio";
  median: number;
  p95?: number;
  runs?: number;
  peer?: string;
  peer_median?: number;
  ratio?: number;
  [extra: string]: unknown;
}

const rows: BenchResult[] = [];

export function report(result: BenchResult): BenchResult {
  const clean = Object.fromEntries(Object.entries(result).filter(([, v]) => v !== undefined)) as BenchResult;
  process.stdout.write(`${JSON.stringify(clean)}\n`);
  rows.push(clean);
  return clean;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

const round = (x: number) => Math.round(x * 1000) / 1000;

/** Median and p95 of unsorted samples, and how many (unrounded). */
export function summary(samples: number[]): { median: number; p95: number; runs: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return { median: percentile(sorted, 50), p95: percentile(sorted, 95), runs: samples.length };
}

/** Times `fn` `runs` times (after `warmup` untimed runs) and returns median and p95 in milliseconds. */
export async function time(
  fn: () => unknown | Promise<unknown>,
  opts: { runs?: number; warmup?: number } = {},
): Promise<{ median: number; p95: number; runs: number; samples: number[] }> {
  const runs = opts.runs ?? 20;
  for (let i = 0; i < (opts.warmup ?? 2); i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  const { median, p95 } = summary(samples);
  return { median: round(median), p95: round(p95), runs, samples };
}

/** Times `fn` and reports it as `bench`, optionally beside a peer (ratio = ours / theirs). */
export async function bench(
  name: string,
  fn: () => unknown | Promise<unknown>,
  opts: {
    runs?: number;
    warmup?: number;
    peer?: { name: string; fn: () => unknown | Promise<unknown> };
  } = {},
): Promise<BenchResult> {
  const ours = await time(fn, opts);
  const result: BenchResult = {
    bench: name,
    unit: "ms",
    median: ours.median,
    p95: ours.p95,
    runs: ours.runs,
  };
  if (opts.peer) {
    const theirs = await time(opts.peer.fn, opts);
    result.peer = opts.peer.name;
    result.peer_median = theirs.median;
    result.ratio = round(ours.median / theirs.median);
  }
  return report(result);
}

export function printTable(): void {
  if (rows.length === 0) return;
  const cols = ["bench", "unit", "median", "p95", "runs", "peer", "peer_median", "ratio"] as const;
  const cells = rows.map((r) => cols.map((c) => (r[c] === undefined ? "" : String(r[c]))));
  const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (vals: readonly string[]) => vals.map((v, i) => v.padEnd(widths[i]!)).join("  ");
  process.stderr.write(`\n${line(cols)}\n${widths.map((w) => "-".repeat(w)).join("  ")}\n`);
  for (const row of cells) process.stderr.write(`${line(row)}\n`);
}

/** CPU time a process has used so far, in ms (utime + stime of /proc/<pid>/stat, in clock ticks of 10 ms). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 10;
}
