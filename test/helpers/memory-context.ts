// Debug aid: the bytes around each place `needle` occurs in a process's readable memory.
import { closeSync, openSync, readFileSync, readSync } from "node:fs";

export function contextOf(pid: number, needle: Uint8Array, around = 48): string[] {
  const maps = readFileSync(`/proc/${pid}/maps`, "utf8").trim().split("\n");
  const fd = openSync(`/proc/${pid}/mem`, "r");
  const out: string[] = [];
  try {
    for (const line of maps) {
      const [range, perms, , , , name = ""] = line.split(/\s+/);
      if (!perms!.startsWith("r") || name.startsWith("[v")) continue;
      const [lo, hi] = range!.split("-").map((x) => BigInt(`0x${x}`)) as [bigint, bigint];
      const len = Number(hi - lo);
      if (len > 512 << 20) continue;
      const buf = Buffer.alloc(len);
      let n = 0;
      try {
        n = readSync(fd, buf, 0, len, lo);
      } catch {
        continue;
      }
      let i = buf.subarray(0, n).indexOf(needle);
      while (i >= 0) {
        out.push(
          `${name || range} +${i}: ${buf.subarray(Math.max(0, i - around), i).toString("hex")} [s1] ${buf.subarray(i + needle.length, i + needle.length + around).toString("hex")}`,
        );
        i = buf.indexOf(needle, i + 1);
      }
    }
  } finally {
    closeSync(fd);
  }
  return out;
}
