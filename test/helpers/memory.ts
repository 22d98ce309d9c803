// Searches a live process's memory (/proc/<pid>/mem, every readable mapping) for byte strings: the test
// behind "no copy of the erased share remains", which a V8 heap snapshot alone cannot show (typed-array
// backing stores live outside the V8 heap).
import { closeSync, openSync, readFileSync, readSync } from "node:fs";

export interface MemoryHit {
  needle: string;
  region: string;
}

export function scanProcessMemory(pid: number, needles: Record<string, Uint8Array>): MemoryHit[] {
  const maps = readFileSync(`/proc/${pid}/maps`, "utf8").trim().split("\n");
  const fd = openSync(`/proc/${pid}/mem`, "r");
  const hits: MemoryHit[] = [];
  const chunk = Buffer.alloc(8 << 20);
  const overlap = Math.max(...Object.values(needles).map((n) => n.length)) - 1;
  try {
    for (const line of maps) {
      const [range, perms, , , , name = ""] = line.split(/\s+/);
      if (!perms!.startsWith("r") || name === "[vvar]" || name === "[vsyscall]" || name === "[vvar_vclock]")
        continue;
      const [lo, hi] = range!.split("-").map((x) => BigInt(`0x${x}`)) as [bigint, bigint];
      let carry = Buffer.alloc(0);
      for (let at = lo; at < hi; ) {
        const len = Number(hi - at < BigInt(chunk.length) ? hi - at : BigInt(chunk.length));
        let n: number;
        try {
          n = readSync(fd, chunk, 0, len, at);
        } catch {
          break; // unreadable (guard pages, device mappings)
        }
        if (n <= 0) break;
        const window = Buffer.concat([carry, chunk.subarray(0, n)]);
        for (const [label, needle] of Object.entries(needles)) {
          if (window.indexOf(needle) >= 0 && !hits.some((h) => h.needle === label))
            hits.push({ needle: label, region: name || range! });
        }
        carry = Buffer.from(window.subarray(Math.max(0, window.length - overlap)));
        at += BigInt(n);
      }
    }
  } finally {
    closeSync(fd);
  }
  return hits;
}

/** A 256-bit scalar as big-endian bytes and as V8's BigInt digits (64-bit little-endian words). */
export function scalarForms(x: bigint): { be: Buffer; le: Buffer } {
  const be = Buffer.from(x.toString(16).padStart(64, "0"), "hex");
  return { be, le: Buffer.from(be).reverse() };
}

/**
 * A prime factor of `n` found in a live process's memory: every 8-byte-aligned window of `bytes` bytes, read as a
 * big- or little-endian integer with its top bit set and ≡ 3 mod 4 (a Blum prime), that divides `n`. The test's
 * way to learn the enclave's secret Paillier primes before it erases them (they come from OpenSSL's prime
 * generator, not the seeded stream).
 */
export function findFactorInMemory(pid: number, n: bigint, bytes: number): bigint | undefined {
  const maps = readFileSync(`/proc/${pid}/maps`, "utf8").trim().split("\n");
  const fd = openSync(`/proc/${pid}/mem`, "r");
  const chunk = Buffer.alloc(8 << 20);
  const test = (w: Buffer): bigint | undefined => {
    const x = BigInt(`0x${w.toString("hex")}`);
    return x > 1n && x < n && n % x === 0n ? x : undefined;
  };
  try {
    for (const line of maps) {
      const [range, perms, , , , name = ""] = line.split(/\s+/);
      if (!perms!.startsWith("r") || name === "[vvar]" || name === "[vsyscall]" || name === "[vvar_vclock]")
        continue;
      const [lo, hi] = range!.split("-").map((x) => BigInt(`0x${x}`)) as [bigint, bigint];
      for (let at = lo; at < hi; ) {
        const len = Number(hi - at < BigInt(chunk.length) ? hi - at : BigInt(chunk.length));
        let got: number;
        try {
          got = readSync(fd, chunk, 0, len, at);
        } catch {
          break;
        }
        if (got <= 0) break;
        for (let i = 0; i + bytes <= got; i += 8) {
          const first = chunk[i]!;
          const last = chunk[i + bytes - 1]!;
          if (first >= 0x80 && (last & 3) === 3) {
            const f = test(chunk.subarray(i, i + bytes));
            if (f) return f;
          }
          if (last >= 0x80 && (first & 3) === 3) {
            const f = test(Buffer.from(chunk.subarray(i, i + bytes)).reverse());
            if (f) return f;
          }
        }
        // Windows across chunk boundaries are missed: the factor has several copies while it is live.
        at += BigInt(got);
      }
    }
  } finally {
    closeSync(fd);
  }
  return undefined;
}

/** A non-negative integer as big-endian bytes of `len` and as V8's BigInt digits (little-endian). */
export function bigForms(x: bigint, len: number): { be: Buffer; le: Buffer } {
  const be = Buffer.from(x.toString(16).padStart(len * 2, "0"), "hex");
  return { be, le: Buffer.from(be).reverse() };
}
