// Wraps the enclave's handlers for grpc-js: typed errors become status codes with "[CODE] message" details
// (the host reads some codes, e.g. UNKNOWN_STATECHAIN); anything unexpected is INTERNAL with no detail, because
// an unexpected error's text could carry secret material.
import {
  type ServerUnaryCall,
  type sendUnaryData,
  status,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { type ErrorKind, ProtocolError } from "../protocol/errors.ts";

const KIND_STATUS: Record<ErrorKind, status> = {
  invalid: status.INVALID_ARGUMENT,
  precondition: status.FAILED_PRECONDITION,
  unauthenticated: status.UNAUTHENTICATED,
  not_found: status.NOT_FOUND,
  exhausted: status.RESOURCE_EXHAUSTED,
  unavailable: status.UNAVAILABLE,
  internal: status.INTERNAL,
};

export type EnclaveHandler = (request: never) => Promise<unknown>;

export function serve(
  handlers: Record<string, EnclaveHandler>,
  onUnexpected: (method: string, err: unknown) => void,
) {
  const impl: UntypedServiceImplementation = {};
  for (const [name, handler] of Object.entries(handlers)) {
    impl[name] = (call: ServerUnaryCall<unknown, unknown>, cb: sendUnaryData<unknown>) => {
      handler(call.request as never).then(
        (res) => cb(null, res),
        (err: unknown) => {
          if (err instanceof ProtocolError) {
            cb({ code: KIND_STATUS[err.kind], details: `[${err.code}] ${err.message}` });
          } else {
            onUnexpected(name, err);
            cb({ code: status.INTERNAL, details: "[INTERNAL] the enclave failed to process the request" });
          }
        },
      );
    };
  }
  return impl;
}
