// Turns typed async handlers into a grpc-js service: malformed messages get INVALID_ARGUMENT (not INTERNAL),
// every call is rate limited per peer, timed, counted, logged without its payload, and every failure is mapped
// to a proper status code (host/errors.ts). Mutating calls are idempotent: a request already answered is
// answered again from the store, byte for byte.
import { createHash } from "node:crypto";
import type {
  MethodDefinition,
  ServerUnaryCall,
  ServiceDefinition,
  sendUnaryData,
  UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import { toFailure } from "./errors.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import type { RateLimiter } from "./ratelimit.ts";

const MALFORMED: unique symbol = Symbol("malformed request");
type Malformed = { [MALFORMED]: string };
const RAW: unique symbol = Symbol("raw request bytes");

export interface CallContext {
  method: string;
  /** Full gRPC path, the `method` input of request signatures. */
  path: string;
  peer: string;
  now: number;
  /** SHA-256 of the method path and the request's encoding: the idempotency key. */
  requestHash: Buffer;
  /** The request's protobuf encoding (what the owner signed, modulo the signature field). */
  requestBytes: Buffer;
}

export type Handler<Req = unknown, Res = unknown> = (req: Req, ctx: CallContext) => Promise<Res>;

export interface RpcOptions {
  log: Logger;
  metrics: Metrics;
  peerLimiter: RateLimiter;
  /** Keyed by address and port: one connection cannot spend its whole address's budget alone. */
  connectionLimiter?: RateLimiter;
  clock: () => number;
  /** Stored answers of mutating calls, looked up before the handler runs. */
  idempotency?: {
    lookup(hash: Buffer): Promise<Buffer | undefined>;
    methods: ReadonlySet<string>;
  };
}

/** A copy of `def` whose request decoding never throws: broken input reaches the handler wrapper as MALFORMED. */
export function tolerant<D extends ServiceDefinition>(def: D): D {
  const out: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const [name, m] of Object.entries(def)) {
    out[name] = {
      ...m,
      requestDeserialize: (buf: Buffer) => {
        try {
          const msg = m.requestDeserialize(buf);
          Object.defineProperty(msg, RAW, { value: buf, enumerable: false });
          return msg;
        } catch (err) {
          return { [MALFORMED]: (err as Error).message } satisfies Malformed;
        }
      },
    };
  }
  return out as D;
}

export function implement(
  def: ServiceDefinition,
  handlers: Record<string, Handler<never, unknown>>,
  opts: RpcOptions,
): UntypedServiceImplementation {
  const impl: UntypedServiceImplementation = {};
  for (const [name, m] of Object.entries(def)) {
    const handler = handlers[name];
    if (!handler) continue;
    const method = m.path.split("/").pop()!;
    impl[name] = async (call: ServerUnaryCall<unknown, unknown>, cb: sendUnaryData<unknown>) => {
      const started = process.hrtime.bigint();
      const connection = call.getPeer();
      const peer = connection.replace(/:\d+$/, "");
      let code: status = status.OK;
      try {
        // Every request counts against its connection's and its address's budgets, broken ones too: junk must
        // not be free to send. A request its connection may not send is not charged to the address.
        if (opts.connectionLimiter && !opts.connectionLimiter.take(connection)) {
          code = status.RESOURCE_EXHAUSTED;
          cb({ code, details: "too many requests on this connection; slow down" });
          return;
        }
        if (!opts.peerLimiter.take(peer)) {
          code = status.RESOURCE_EXHAUSTED;
          cb({ code, details: "too many requests from this address; slow down" });
          return;
        }
        const req = call.request as object;
        if (MALFORMED in req) {
          code = status.INVALID_ARGUMENT;
          cb({ code, details: `request is not a valid ${method} message` });
          return;
        }
        const requestBytes = (req as { [RAW]?: Buffer })[RAW] ?? m.requestSerialize(req);
        const requestHash = createHash("sha256").update(m.path).update(requestBytes).digest();
        if (opts.idempotency?.methods.has(name)) {
          const stored = await opts.idempotency.lookup(requestHash);
          if (stored) {
            cb(null, m.responseDeserialize(stored));
            return;
          }
        }
        const res = await handler(req as never, {
          method,
          path: m.path,
          peer,
          now: opts.clock(),
          requestHash,
          requestBytes,
        });
        cb(null, res);
      } catch (err) {
        const f = toFailure(err);
        code = f.code;
        if (f.incident)
          opts.log.error(
            { method, incident: f.incident, err: (err as Error)?.stack ?? String(err) },
            "unexpected error",
          );
        cb({ code: f.code, details: f.details });
      } finally {
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        const labels = { method, code: status[code] ?? String(code) };
        opts.metrics.inc("se_requests_total", labels, "Public API requests by method and status code");
        opts.metrics.observe("se_request_seconds", { method }, seconds, "Public API latency by method");
        opts.log.debug({ method, code: labels.code, ms: Math.round(seconds * 1000), peer }, "rpc");
      }
    };
  }
  return impl;
}
