// Starts the enclave as a child process (simulator mode) and connects to its Unix socket. The child exits when
// its stdin closes, so it never outlives the host, even when the host is killed with SIGKILL.
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { credentials } from "@grpc/grpc-js";
import { EnclaveServiceClient, type GetStatusResponse } from "../proto/gen/enclave.ts";
import { unary } from "../proto/unary.ts";
import type { Logger } from "./log.ts";

/**
 * Node flags of the enclave process (deploy/nitro/enclave-entry.sh gives the same). A full collection after a
 * co-signature zeroes the copies of secrets it leaves (enclave scrubFreedMemory); with V8's parallel collector
 * it took both cores and held the host's next requests back ~15 ms, single-threaded it takes one. Only valid
 * on the command line: set at run time, V8 aborts.
 */
export const ENCLAVE_NODE_FLAGS = ["--single-threaded-gc"];
/**
 * glibc's M_PERTURB with a low byte of 0: every block free() returns is zeroed. OpenSSL's BIGNUMs (the Paillier
 * primes inside a KeyObject, freed without clearing) and Node buffers live in malloc'd memory, which
 * --clear-free-memory (V8's heap only) does not reach (audit #18.3). Read by glibc at process start.
 */
export const ENCLAVE_ENV = { MALLOC_PERTURB_: "256" };

export interface EnclaveHandle {
  client: EnclaveServiceClient;
  status(deadlineMs?: number): Promise<GetStatusResponse>;
  /** The child process when the host spawned it (simulator mode). */
  child: ChildProcess | undefined;
  stop(): Promise<void>;
}

/** `maxMessageBytes`: 1 MiB, or a replica member's 64 MiB (a joiner's snapshot travels in one envelope). */
export function connectEnclave(socketPath: string, maxMessageBytes = 1 << 20): EnclaveServiceClient {
  return new EnclaveServiceClient(`unix:${socketPath}`, credentials.createInsecure(), {
    "grpc.max_receive_message_length": maxMessageBytes,
    "grpc.max_send_message_length": maxMessageBytes,
  });
}

export async function startEnclave(opts: {
  socketPath: string;
  spawn: boolean;
  startTimeoutMs: number;
  projectRoot: string;
  /** Extra arguments for the enclave process (data dir, policy file). */
  args?: string[];
  maxMessageBytes?: number;
  log: Logger;
}): Promise<EnclaveHandle> {
  let child: ChildProcess | undefined;
  let stopping = false;
  let exited: Promise<void> = Promise.resolve();
  if (opts.spawn) {
    child = spawn(
      process.execPath,
      [
        ...ENCLAVE_NODE_FLAGS,
        path.join(opts.projectRoot, "bin/enclave.js"),
        "--socket",
        opts.socketPath,
        "--exit-with-stdin",
        ...(opts.args ?? []),
      ],
      {
        stdio: ["pipe", "inherit", "inherit"],
        cwd: opts.projectRoot,
        env: { ...process.env, ...ENCLAVE_ENV },
      },
    );
    exited = new Promise((resolve) => child!.once("exit", () => resolve()));
    child.once("exit", (code, signal) => {
      if (stopping) opts.log.info({ code, signal }, "enclave process stopped");
      else opts.log.error({ code, signal }, "enclave process exited unexpectedly");
    });
  }
  const client = connectEnclave(opts.socketPath, opts.maxMessageBytes);
  const status = (deadlineMs = 2000) => unary(client, client.getStatus, {}, { deadlineMs });
  const stop = async () => {
    stopping = true;
    client.close();
    if (child && child.exitCode === null && child.signalCode === null) {
      child.stdin?.end();
      child.kill("SIGTERM");
      const timer = setTimeout(() => child!.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(timer);
    }
  };

  const deadline = Date.now() + opts.startTimeoutMs;
  for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      await stop();
      throw new Error(`enclave process exited during start (code ${child.exitCode ?? child.signalCode})`);
    }
    try {
      await status(1000);
      return { client, status, child, stop };
    } catch (err) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(
          `enclave did not answer on ${opts.socketPath} within ${opts.startTimeoutMs} ms: ${(err as Error).message}`,
        );
      }
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}
