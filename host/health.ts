// Liveness of the SE's parts, served as the standard grpc.health.v1 service. Services: "" (the whole SE),
// "statechain.v1.StatechainService", "enclave" and "chain". Check replies carry `chain-height` and
// `enclave-instance-id` in their initial metadata, and `funding-lost-coins` once the funding watch has looked.
import {
  Metadata,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
  status,
} from "@grpc/grpc-js";
import {
  type HealthCheckRequest,
  type HealthCheckResponse,
  type HealthServer,
  HealthCheckResponse_ServingStatus as Serving,
} from "../proto/gen/grpc/health/v1/health.ts";

export interface HealthSnapshot {
  enclave: { reachable: boolean; instanceId: string; error: string };
  chain: { reachable: boolean; height: number; error: string };
  /** Coins whose funding transaction the funding watch found lost (#19.8), once it has looked. */
  fundingLost?: number;
}

export interface HealthSource {
  snapshot(): HealthSnapshot;
  /** Called whenever the snapshot may have changed. */
  onChange(listener: () => void): () => void;
}

const SERVICES = ["", "statechain.v1.StatechainService", "enclave", "chain"] as const;

export function servingStatus(service: string, snap: HealthSnapshot): Serving {
  switch (service) {
    case "":
    case "statechain.v1.StatechainService":
      return snap.enclave.reachable && snap.chain.reachable ? Serving.SERVING : Serving.NOT_SERVING;
    case "enclave":
      return snap.enclave.reachable ? Serving.SERVING : Serving.NOT_SERVING;
    case "chain":
      return snap.chain.reachable ? Serving.SERVING : Serving.NOT_SERVING;
    default:
      return Serving.SERVICE_UNKNOWN;
  }
}

function metadataOf(snap: HealthSnapshot): Metadata {
  const md = new Metadata();
  md.set("chain-height", String(snap.chain.height));
  md.set("enclave-instance-id", snap.enclave.instanceId);
  if (snap.fundingLost !== undefined) md.set("funding-lost-coins", String(snap.fundingLost));
  return md;
}

export function healthService(source: HealthSource): HealthServer {
  return {
    check(
      call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>,
      cb: sendUnaryData<HealthCheckResponse>,
    ) {
      const snap = source.snapshot();
      const st = servingStatus(call.request.service, snap);
      if (st === Serving.SERVICE_UNKNOWN) {
        cb({
          code: status.NOT_FOUND,
          details: `unknown service "${call.request.service}"; known: ${SERVICES.join(", ")}`,
        });
        return;
      }
      call.sendMetadata(metadataOf(snap));
      cb(null, { status: st });
    },
    watch(call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) {
      let last: Serving | undefined;
      const push = () => {
        const st = servingStatus(call.request.service, source.snapshot());
        if (st !== last) {
          last = st;
          call.write({ status: st });
        }
      };
      push();
      const unsubscribe = source.onChange(push);
      call.on("cancelled", unsubscribe);
      call.on("close", unsubscribe);
    },
  };
}
