// The enclave process. Started by the host in simulator mode (a child process) or by the enclave image on
// Nitro; it serves enclave.proto on a Unix socket and holds every SE share in its own memory. Nothing it holds
// is persisted: if it restarts, its coins can only exit by their backup transactions.
import { randomBytes } from "node:crypto";
import path from "node:path";
import { parseArgs } from "node:util";
import { NitroProvider } from "../attestation/providers/nitro.ts";
import type { AttestationProvider } from "../attestation/providers/provider.ts";
import { SimulatorProvider } from "../attestation/providers/simulator.ts";
import { SimulatorCa } from "../attestation/sim-ca.ts";
import { seededTestRng, systemRng } from "../protocol/rng.ts";
import { createInstanceKeys, createMemberKeys, type InstanceKeys } from "./instance.ts";
import { ActionLog } from "./log.ts";
import { measure } from "./measure.ts";
import { loadPolicy } from "./policy.ts";
import { replicaMember } from "./replica/process.ts";
import { serve } from "./rpc.ts";
import { MAX_REPLICA_MESSAGE_BYTES, serveUnix } from "./server.ts";
import { Enclave } from "./service.ts";

export const VERSION = "0.1.0";

const USAGE = `usage: enclave --socket <path> [--mode simulator|nitro] [--data-dir <dir>] [--policy <file>]
               [--replica] [--exit-with-stdin]

  --socket <path>     Unix socket to serve enclave.proto on (vsock is bridged to it on Nitro)
  --mode <mode>       attestation provider: simulator (default) or nitro (/dev/nsm through nsm-helper)
  --data-dir <dir>    simulator only: where the simulator CA lives (default: the socket's directory)
  --policy <file>     co-signing policy JSON (enclave/policy.ts); defaults when absent
  --replica           be a member of a replica set (DESIGN.md 4.1): serve no coin step until the host founds a
                      set here (FoundReplicaSet) or a leader admits this enclave (AddReplica); replicate every
                      change through the set's log; wipe and exit (code 3) on losing the set's majority
  --exit-with-stdin   exit when stdin closes (the host's way to never leave an orphan)
  --insecure-test-rng-seed <hex>
                      simulator tests only: draw the enclave's randomness from a seeded stream so a test can
                      recompute a share and search the process memory for it after erasure; refused on Nitro,
                      and recorded in the attested policy (insecureTestRng); the memory scrubs that follow
                      answers then wait 20 s, so that test sees memory as an erasure's answer left it
`;

function log(level: number, msg: string, extra: Record<string, unknown> = {}): void {
  process.stderr.write(`${JSON.stringify({ level, time: Date.now(), name: "enclave", msg, ...extra })}\n`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      socket: { type: "string" },
      mode: { type: "string", default: "simulator" },
      "data-dir": { type: "string" },
      policy: { type: "string" },
      "insecure-test-rng-seed": { type: "string" },
      "exit-with-stdin": { type: "boolean", default: false },
      replica: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (!values.socket || (values.mode !== "simulator" && values.mode !== "nitro")) {
    process.stderr.write(USAGE);
    process.exit(2);
  }
  const seed = values["insecure-test-rng-seed"];
  if (seed !== undefined && (values.mode !== "simulator" || !/^([0-9a-f]{2}){16,64}$/.test(seed))) {
    process.stderr.write("--insecure-test-rng-seed needs simulator mode and 16 to 64 hex bytes\n");
    process.exit(2);
  }
  const policy = { ...loadPolicy(values.policy), ...(seed ? { insecureTestRng: true } : {}) };
  const rng = seed ? seededTestRng(Buffer.from(seed, "hex")) : systemRng;
  if (seed) log(40, "INSECURE: randomness is a seeded test stream; never hold real coins in this enclave");
  const pcrs = measure();
  let provider: AttestationProvider;
  let simulatorRootPem = "";
  if (values.mode === "simulator") {
    const ca = SimulatorCa.open(path.join(values["data-dir"] ?? path.dirname(values.socket), "sim-ca"));
    provider = new SimulatorProvider({ ca, pcrs });
    simulatorRootPem = ca.rootPem();
  } else {
    provider = new NitroProvider();
  }
  // Once per instance: ring-Pedersen parameters (trapdoor wiped once proven) and the Ed25519 instance key, from
  // the system's randomness even in a seeded test run (the seeded stream is kept for the coins' shares). The
  // safe primes take seconds (OpenSSL, on libuv's threads): the enclave serves meanwhile; the steps that need
  // the keys wait for them. An enclave that cannot make them stops.
  // A replica member makes only its own Ed25519 member key here (its id); the set's identity comes from the
  // founder (replica/member.ts), so joiners skip the safe primes.
  const member = values.replica
    ? replicaMember({
        keys: createMemberKeys(),
        provider,
        pcrs,
        policy,
        simulatorRootPem,
        mode: values.mode,
        log,
      })
    : undefined;
  const instance: Promise<InstanceKeys> = member
    ? new Promise(() => undefined)
    : createInstanceKeys(systemRng);
  instance.catch((err: Error) => {
    log(60, "enclave could not make its instance keys", { error: err.name });
    process.exit(1);
  });
  const enclave = new Enclave({
    policy,
    provider,
    instance,
    log: new ActionLog(),
    rng,
    now: Date.now,
    instanceId: randomBytes(16),
    pcrs,
    simulatorRootPem,
    version: VERSION,
    // With the test stream, the scrubs that follow answers wait, so the erasure test can check that an erasure
    // does not depend on them (the memory it scans is as the key update's answer left it).
    scrubDelayMs: seed ? 20_000 : undefined,
    replica: member?.member,
  });
  member?.member.attach(enclave);
  // Unexpected errors are logged by name and stack frame only: their messages could carry secret material.
  const impl = serve(enclave.handlers(), (method, err) =>
    log(50, "unexpected error", {
      method,
      error: (err as Error)?.name,
      at: (err as Error)?.stack?.split("\n")[1]?.trim(),
    }),
  );
  if (member) impl.peers = member.serveStream;
  const server = await serveUnix(values.socket, impl, member ? MAX_REPLICA_MESSAGE_BYTES : undefined);
  const sweep = setInterval(() => enclave.sweepDeposits(), 60_000);
  sweep.unref();

  let stopping = false;
  const stop = (code: number) => {
    if (stopping) return;
    stopping = true;
    server.tryShutdown(() => process.exit(code));
    setTimeout(() => process.exit(code), 2000).unref();
  };
  process.on("SIGINT", () => stop(0));
  process.on("SIGTERM", () => stop(0));
  if (values["exit-with-stdin"]) {
    process.stdin.on("end", () => stop(0));
    process.stdin.on("error", () => stop(0));
    process.stdin.resume();
  }
  if (member) {
    const tick = setInterval(() => member.member.tick(Date.now()), member.tickMs);
    tick.unref();
  }
  log(30, "serving", { socket: values.socket, mode: values.mode, replica: values.replica });
  if (!member) void instance.then(() => log(30, "instance keys ready"));
}

main().catch((err: Error) => {
  log(60, "enclave failed to start", { error: err.name, message: err.message });
  process.exit(1);
});
