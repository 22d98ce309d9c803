// Runs a command on a pseudo-terminal (python3's pty module), typing each answer once its prompt shows: how a
// user at a terminal sees a CLI, echo and all.
import { spawn } from "node:child_process";

const DRIVER = `
import json, os, pty, select, signal, sys, time
steps = json.loads(os.environ["PTY_STEPS"])
deadline = time.time() + float(os.environ.get("PTY_TIMEOUT", "60"))
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
out = b""
seen = 0
while True:
    if steps and steps[0][0].encode() in out[seen:]:
        seen = out.index(steps[0][0].encode(), seen) + len(steps[0][0].encode())
        time.sleep(0.05)
        os.write(fd, steps.pop(0)[1].encode())
        continue
    if time.time() > deadline:
        os.kill(pid, signal.SIGKILL)
        break
    r, _, _ = select.select([fd], [], [], 0.1)
    if r:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
_, status = os.waitpid(pid, 0)
print(json.dumps({"output": out.decode("utf8", "replace"), "code": os.waitstatus_to_exitcode(status), "unanswered": [s[0] for s in steps]}))
`;

export interface PtyRun {
  /** Everything the terminal showed (stdout and stderr together, as a terminal has them). */
  output: string;
  code: number;
  /** Prompts that never showed. */
  unanswered: string[];
}

/** Runs `cmd` on a terminal; each [prompt, answer] is typed once `prompt` appears (after the previous one). */
export function runOnPty(
  cmd: string[],
  steps: Array<[string, string]>,
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutS?: number } = {},
): Promise<PtyRun> {
  return new Promise((resolve, reject) => {
    const child = spawn("python3", ["-c", DRIVER, ...cmd], {
      cwd: opts.cwd,
      env: { ...opts.env, PTY_STEPS: JSON.stringify(steps), PTY_TIMEOUT: String(opts.timeoutS ?? 60) },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
    });
    child.on("error", reject);
    child.on("exit", () => {
      try {
        resolve(JSON.parse(out));
      } catch {
        reject(new Error(`pty driver said: ${out}`));
      }
    });
  });
}
