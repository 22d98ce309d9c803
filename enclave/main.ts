// The enclave process. Started by the host in simulator mode (one child process) or by the enclave image on
// Nitro; it serves enclave.proto on a Unix socket and holds every SE share in its own memory.
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import type { ServerUnaryCall, sendUnaryData } from "@grpc/grpc-js";
import type { GetStatusRequest, GetStatusResponse } from "../proto/gen/enclave.ts";
import { measure } from "./measure.ts";
import { serveUnix } from "./server.ts";

const USAGE = `usage: enclave --socket <path> [--mode simulator|nitro] [--exit-with-stdin]

  --socket <path>     Unix socket to serve enclave.proto on (vsock is bridged to it on Nitro)
  --mode <mode>       attestation provider: simulator (default) or nitro
  --exit-with-stdin   exit when stdin closes (the host's way to never leave an orphan)
`;

const VERSION = "0.1.0";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      socket: { type: "string" },
      mode: { type: "string", default: "simulator" },
      "exit-with-stdin": { type: "boolean", default: false },
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
  const instanceId = randomBytes(16);
  const startedAt = Date.now();
  const pcrs = measure();
  const mode = values.mode;

  const server = await serveUnix(values.socket, {
    getStatus(
      _call: ServerUnaryCall<GetStatusRequest, GetStatusResponse>,
      cb: sendUnaryData<GetStatusResponse>,
    ) {
      cb(null, {
        instanceId,
        startedAtMs: BigInt(startedAt),
        logHead: Buffer.alloc(32),
        logLength: 0n,
        lastReceiptHash: Buffer.alloc(32),
        attestationMode: mode,
        pcr0: pcrs.pcr0.toString("hex"),
        pcr1: pcrs.pcr1.toString("hex"),
        pcr2: pcrs.pcr2.toString("hex"),
        statechainCount: 0,
        paillierPoolSize: 0,
        maxChainTip: 0,
        policyHash: Buffer.alloc(32),
        version: VERSION,
      });
    },
  });

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
  process.stderr.write(
    `${JSON.stringify({ level: 30, time: Date.now(), name: "enclave", msg: "serving", socket: values.socket, mode })}\n`,
  );
}

main().catch((err: Error) => {
  process.stderr.write(`enclave: ${err.message}\n`);
  process.exit(1);
});
