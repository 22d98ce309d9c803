// Promise wrapper for grpc-js unary calls on ts-proto generated clients, shared by the host and the wallet.
import { type CallOptions, type ClientUnaryCall, Metadata, type ServiceError } from "@grpc/grpc-js";

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** Calls `method` on `client` with a deadline (default 30 s) and resolves with the response. */
export function unary<Req, Res>(
  client: object,
  method: UnaryMethod<Req, Res>,
  request: Req,
  opts: { deadlineMs?: number; metadata?: Metadata } = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + (opts.deadlineMs ?? 30_000);
    method.call(client, request, opts.metadata ?? new Metadata(), { deadline }, (err, res) =>
      err ? reject(err) : resolve(res),
    );
  });
}
