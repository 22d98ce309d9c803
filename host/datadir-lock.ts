// One SE per data dir: `se start` takes `<data dir>/se.pid` (created exclusively, holding its PID) before it
// touches anything there, as bitcoind takes its data dir's .lock. A second start on the same dir is refused with
// the PID that holds it, instead of deleting the running SE's database, RPC credentials and enclave socket. A lock
// whose PID is no longer alive (a crash, a kill -9) is stale and taken over.
import { closeSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import path from "node:path";

export const LOCK_FILE = "se.pid";

export class DataDirLockedError extends Error {
  override name = "DataDirLockedError";
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(
      `the data dir ${dataDir} is in use by another SE (PID ${pid}, lock ${path.join(dataDir, LOCK_FILE)}); stop it first, or give this one another --data-dir`,
    );
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Locks this process holds: its own PID in a lock file is stale (a reused PID) unless listed here. */
const held = new Set<string>();

export interface DataDirLock {
  file: string;
  release(): void;
}

/** Takes the data dir's lock for this process, or throws DataDirLockedError naming the live PID holding it. */
export function lockDataDir(dataDir: string): DataDirLock {
  const file = path.join(dataDir, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, "wx", 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 2) throw e;
      const text = (() => {
        try {
          return readFileSync(file, "utf8");
        } catch {
          return "";
        }
      })();
      const pid = Number.parseInt(text.trim(), 10);
      // A file just created by a start that has not written its PID yet is not stale: give it a moment.
      if (!text && attempt === 0) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
        continue;
      }
      const ours = pid === process.pid;
      if (Number.isInteger(pid) && pid > 0 && (ours ? held.has(file) : alive(pid)))
        throw new DataDirLockedError(dataDir, pid);
      rmSync(file, { force: true });
      continue;
    }
    try {
      writeSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
    held.add(file);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      held.delete(file);
      process.off("exit", release);
      try {
        // Only our own lock: never one a later start took over.
        if (readFileSync(file, "utf8").trim() === String(process.pid)) rmSync(file, { force: true });
      } catch {}
    };
    process.on("exit", release);
    return { file, release };
  }
}
