// A child process serving the public gRPC server alone (GetInfo answers an empty message), with connection
// limits from SE_GRPC_* variables: tests measure its memory apart from their own. IPC: it sends { port } once
// listening; { op: "mem" } is answered with its memory after a full collection, and the highest RSS it sampled.
import { loadConfig } from "../../../host/config.ts";
import { startPublicServer } from "../../../host/server.ts";

const cfg = loadConfig({ env: { ...process.env, SE_GRPC_PORT: "0" } });
const health = {
  snapshot: () => ({
    enclave: { reachable: true, instanceId: "", error: "" },
    chain: { reachable: true, height: 0, error: "" },
  }),
  onChange: () => () => {},
};
let peakRss = process.memoryUsage.rss();
setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
}, 20);
const ps = await startPublicServer(
  cfg,
  { getInfo: (_call: unknown, cb: (e: null, r: object) => void) => cb(null, {}) },
  health,
);
process.on("message", (m: { op: string }) => {
  if (m.op !== "mem") return;
  (globalThis as { gc?: () => void }).gc?.();
  const u = process.memoryUsage();
  process.send?.({
    rss: u.rss,
    peakRss,
    external: u.external,
    arrayBuffers: u.arrayBuffers,
    heapUsed: u.heapUsed,
    connections: [...ps.connections().values()].reduce((a, b) => a + b, 0),
    refused: ps.refused(),
  });
  peakRss = u.rss;
});
process.send?.({ port: ps.port });
