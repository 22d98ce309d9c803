// The SE's public gRPC server: StatechainService and grpc.health.v1 on a TCP port (TLS optional).
//
// Connection limits (audit #19.6: stalled and idle connections grew host memory without bound):
// - The port is a plain `net.Server` of ours; each accepted socket is handed to grpc-js through its public
//   connection injector (`Server.createConnectionInjector`). That is where connections are counted per client
//   address and overall: one beyond `maxConnectionsPerPeer` / `maxConnections` is closed as it arrives, before any
//   byte of it is read. grpc-js has no such cap of its own.
// - Idle connections (no call in flight) get a GOAWAY after `idleTimeoutMs` and every connection one after
//   `maxConnectionAgeMs`, cut `maxConnectionAgeGraceMs` later (grpc-js's max_connection_idle_ms / _age_ms).
// - A request must arrive in full (headers to end of stream) within `receiveTimeoutMs`. A call that stalls
//   mid-message never reaches its handler, and grpc-js keeps what it received of the message; nothing short of
//   closing the HTTP/2 stream frees it, and grpc-js shows no stream to a server interceptor. So the interceptor
//   below answers DEADLINE_EXCEEDED and cuts the call's connection (found by its address and port in our socket
//   map), which frees every buffer of it. A working client sends a request in one go (the host reads eagerly, so
//   HTTP/2 flow control never holds it back): a connection that stalls one for that long is broken or hostile.
// - Per connection at most `maxConcurrentStreams` calls, each at most `maxMessageBytes`, and nghttp2's own
//   buffers at most `maxSessionMemoryMb`: with the connection caps this bounds what one address can make the
//   host hold, and the receive timeout bounds for how long.
import { readFileSync } from "node:fs";
import net from "node:net";
import {
  Server,
  ServerCredentials,
  ServerInterceptingCall,
  type ServerInterceptor,
  ServerListenerBuilder,
  status,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { HealthService } from "../proto/gen/grpc/health/v1/health.ts";
import { statechainDefinition } from "./api/index.ts";
import type { HostConfig } from "./config.ts";
import { type HealthSource, healthService } from "./health.ts";
import type { Logger } from "./log.ts";

export interface PublicServer {
  server: Server;
  port: number;
  /** Open connections by client address (for tests and metrics). */
  connections(): Map<string, number>;
  /** Connections closed on arrival because their address (or the host) had too many open. */
  refused(): number;
}

interface Front {
  listener: net.Server;
  sockets: Set<net.Socket>;
}
const fronts = new WeakMap<Server, Front>();

export async function startPublicServer(
  cfg: HostConfig,
  statechain: UntypedServiceImplementation,
  health: HealthSource,
  log?: Logger,
): Promise<PublicServer> {
  const g = cfg.grpc;
  /** Accepted sockets by "address:port", as grpc-js reports a call's connection. */
  const byEndpoint = new Map<string, net.Socket>();
  const receiveDeadline: ServerInterceptor = (_method, call) => {
    let timer: NodeJS.Timeout | undefined = setTimeout(() => {
      timer = undefined;
      const { remoteAddress, remotePort } = call.getConnectionInfo();
      log?.warn(
        { peer: remoteAddress, ms: g.receiveTimeoutMs },
        "request not received in time: connection cut",
      );
      call.sendStatus({
        code: status.DEADLINE_EXCEEDED,
        details: `the request did not arrive in full within ${g.receiveTimeoutMs} ms; the connection is closed`,
      });
      const socket = byEndpoint.get(`${remoteAddress}:${remotePort}`);
      // After the status had its chance to be written.
      if (socket) setImmediate(() => socket.destroy());
    }, g.receiveTimeoutMs);
    timer.unref();
    const clear = () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
    };
    return new ServerInterceptingCall(call, {
      start(next) {
        next(
          new ServerListenerBuilder()
            .withOnReceiveHalfClose((done) => {
              clear();
              done();
            })
            .withOnCancel(clear)
            .build(),
        );
      },
    });
  };
  const server = new Server({
    "grpc.max_receive_message_length": g.maxMessageBytes,
    "grpc.max_send_message_length": 16 << 20,
    "grpc.max_concurrent_streams": g.maxConcurrentStreams,
    "grpc.keepalive_permit_without_calls": 0,
    "grpc.max_connection_idle_ms": g.idleTimeoutMs,
    "grpc.max_connection_age_ms": g.maxConnectionAgeMs,
    "grpc.max_connection_age_grace_ms": g.maxConnectionAgeGraceMs,
    "grpc-node.max_session_memory": g.maxSessionMemoryMb,
    interceptors: [receiveDeadline],
  });
  server.addService(statechainDefinition, statechain);
  server.addService(HealthService, healthService(health));
  const creds = g.tlsCertFile
    ? ServerCredentials.createSsl(null, [
        { cert_chain: readFileSync(g.tlsCertFile), private_key: readFileSync(g.tlsKeyFile) },
      ])
    : ServerCredentials.createInsecure();
  const injector = server.createConnectionInjector(creds);

  const perPeer = new Map<string, number>();
  const sockets = new Set<net.Socket>();
  let refused = 0;
  const listener = net.createServer((socket) => {
    const peer = socket.remoteAddress ?? "";
    const open = perPeer.get(peer) ?? 0;
    if (open >= g.maxConnectionsPerPeer || sockets.size >= g.maxConnections) {
      refused++;
      // One line per refusal would let a flood fill the log: every 100th.
      if (refused % 100 === 1)
        log?.warn(
          { peer, open, total: sockets.size, refused },
          "connection refused: too many open connections",
        );
      socket.destroy();
      return;
    }
    perPeer.set(peer, open + 1);
    sockets.add(socket);
    const endpoint = `${peer}:${socket.remotePort}`;
    byEndpoint.set(endpoint, socket);
    socket.on("error", () => {}); // a reset by the client; the HTTP/2 session sees it too
    socket.once("close", () => {
      sockets.delete(socket);
      if (byEndpoint.get(endpoint) === socket) byEndpoint.delete(endpoint);
      const n = (perPeer.get(peer) ?? 1) - 1;
      if (n > 0) perPeer.set(peer, n);
      else perPeer.delete(peer);
    });
    injector.injectConnection(socket);
  });
  const port = await new Promise<number>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(g.port, g.host, () => {
      listener.off("error", reject);
      resolve((listener.address() as net.AddressInfo).port);
    });
  });
  fronts.set(server, { listener, sockets });
  return { server, port, connections: () => new Map(perPeer), refused: () => refused };
}

export function shutdown(server: Server, graceMs = 3000): Promise<void> {
  const front = fronts.get(server);
  front?.listener.close();
  const done = () => {
    for (const s of front?.sockets ?? []) s.destroy();
  };
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      done();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      done();
      resolve();
    });
  });
}
