// The enclave's gRPC server. It binds a Unix socket only (bridged to vsock on Nitro) and never opens a TCP port.
import { chmodSync, rmSync } from "node:fs";
import { Server, ServerCredentials, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { EnclaveServiceService } from "../proto/gen/enclave.ts";

/** Largest message the enclave accepts from the host. */
export const MAX_MESSAGE_BYTES = 1 << 20;

export async function serveUnix(socketPath: string, impl: UntypedServiceImplementation): Promise<Server> {
  rmSync(socketPath, { force: true });
  const server = new Server({
    "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
    "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
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
