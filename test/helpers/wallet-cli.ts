// The wallet CLI run in this process (client/cli.ts `main` with an in-memory terminal), for tests: what it
// printed and its exit status. `mine` runs every 200 ms while the command runs (a simulator chain's blocks).
import { Readable } from "node:stream";
import { type CliIo, main } from "../../client/cli.ts";
import { lineReader } from "../../client/prompt.ts";
import { ROOT } from "./se-process.ts";

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** The last stdout line as JSON (a `--json` command's result): parsed, unchecked, as each test reads it. */
  // biome-ignore lint/suspicious/noExplicitAny: a command's JSON output, whose shape each test asserts
  json: () => any;
}

export interface CliRunOptions {
  /** The command's whole environment (spread process.env into it for the usual one). */
  env: Record<string, string | undefined>;
  /** What stdin holds (default: nothing). */
  input?: string;
  mine?: () => Promise<unknown>;
  cwd?: string;
}

export async function runWallet(args: string[], opts: CliRunOptions): Promise<CliRun> {
  let stdout = "";
  let stderr = "";
  const io: CliIo = {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    stderrIsTTY: false,
    stdinIsTTY: false,
    readLine: lineReader(Readable.from([opts.input ?? ""])),
    env: opts.env,
    cwd: opts.cwd ?? ROOT,
  };
  const mine = opts.mine;
  const timer = mine ? setInterval(() => void mine().catch(() => {}), 200) : undefined;
  try {
    const code = await main(args, io);
    return { code, stdout, stderr, json: () => JSON.parse(stdout.trim().split("\n").pop()!) };
  } finally {
    if (timer) clearInterval(timer);
  }
}
