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
