// The enclave's gRPC server. It binds a Unix socket only (bridged to vsock on Nitro) and never opens a TCP port.
import { chmodSync, rmSync } from "node:fs";
import { Server, ServerCredentials, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { EnclaveServiceService } from "../proto/gen/enclave.ts";

/** Largest message the enclave accepts from the host. */
export const MAX_MESSAGE_BYTES = 1 << 20;
/** A replica member's: a snapshot for a joiner travels in one envelope (replica/process.ts MAX_ENVELOPE_BYTES). */
export const MAX_REPLICA_MESSAGE_BYTES = 64 << 20;

export async function serveUnix(
  socketPath: string,
  impl: UntypedServiceImplementation,
  maxMessageBytes = MAX_MESSAGE_BYTES,
): Promise<Server> {
  rmSync(socketPath, { force: true });
  const server = new Server({
    "grpc.max_receive_message_length": maxMessageBytes,
    "grpc.max_send_message_length": maxMessageBytes,
  });
  server.addService(EnclaveServiceService, impl);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${socketPath}`, ServerCredentials.createInsecure(), (err) =>
      err ? reject(err) : resolve(),
    ),
  );
  // Only the host's user may talk to the enclave.
  chmodSync(socketPath, 0o600);
  return server;
}
