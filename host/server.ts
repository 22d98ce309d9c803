// The SE's public gRPC server: StatechainService and grpc.health.v1 on a TCP port (TLS optional).
import { readFileSync } from "node:fs";
import { Server, ServerCredentials, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { HealthService } from "../proto/gen/grpc/health/v1/health.ts";
import { statechainDefinition } from "./api/index.ts";
import type { HostConfig } from "./config.ts";
import { type HealthSource, healthService } from "./health.ts";

export async function startPublicServer(
  cfg: HostConfig,
  statechain: UntypedServiceImplementation,
  health: HealthSource,
): Promise<{ server: Server; port: number }> {
  const server = new Server({
    "grpc.max_receive_message_length": cfg.grpc.maxMessageBytes,
    "grpc.max_send_message_length": 16 << 20,
    "grpc.max_concurrent_streams": 100,
    "grpc.keepalive_permit_without_calls": 0,
  });
  server.addService(statechainDefinition, statechain);
  server.addService(HealthService, healthService(health));
  const creds = cfg.grpc.tlsCertFile
    ? ServerCredentials.createSsl(null, [
        { cert_chain: readFileSync(cfg.grpc.tlsCertFile), private_key: readFileSync(cfg.grpc.tlsKeyFile) },
      ])
    : ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${cfg.grpc.host}:${cfg.grpc.port}`, creds, (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { server, port };
}

export function shutdown(server: Server, graceMs = 3000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
