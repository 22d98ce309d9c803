// Times every call the host makes to the enclave (se_enclave_seconds{method}), so the per-phase breakdown of a
// request can tell enclave work from the host's own (SQLite, checks) and from gRPC transport.
import type { EnclaveServiceClient } from "../proto/gen/enclave.ts";
import type { Metrics } from "./metrics.ts";

export function timedEnclave(client: EnclaveServiceClient, metrics: Metrics): EnclaveServiceClient {
  return new Proxy(client, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (
        typeof value !== "function" ||
        typeof prop !== "string" ||
        prop === "close" ||
        prop === "getChannel"
      ) {
        return value;
      }
      return (...args: unknown[]) => {
        const cb = args[args.length - 1];
        if (typeof cb !== "function") return value.apply(target, args);
        const started = process.hrtime.bigint();
        args[args.length - 1] = (err: unknown, res: unknown) => {
          metrics.observe(
            "se_enclave_seconds",
            { method: prop },
            Number(process.hrtime.bigint() - started) / 1e9,
            "Host to enclave call latency by method",
          );
          (cb as (e: unknown, r: unknown) => void)(err, res);
        };
        return value.apply(target, args);
      };
    },
  });
}
