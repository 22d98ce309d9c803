// Typed protocol errors. `code` is stable (tests and clients match on it); `kind` tells the host which gRPC
// status to answer with. Messages name the failed check and never contain secret material.
export type ErrorKind =
  | "invalid" // INVALID_ARGUMENT: malformed or out-of-range input
  | "precondition" // FAILED_PRECONDITION: well formed, but not allowed in the current state
  | "unauthenticated" // UNAUTHENTICATED: missing or wrong signature, replay
  | "not_found" // NOT_FOUND
  | "exhausted" // RESOURCE_EXHAUSTED: limits
  | "unavailable" // UNAVAILABLE: try again, here or elsewhere (e.g. an enclave that does not lead its set)
  | "internal"; // INTERNAL: a check of our own output failed

export class ProtocolError extends Error {
  override name = "ProtocolError";
  constructor(
    readonly code: string,
    message: string,
    readonly kind: ErrorKind = "invalid",
  ) {
    super(message);
  }
}

export function fail(code: string, message: string, kind: ErrorKind = "invalid"): never {
  throw new ProtocolError(code, message, kind);
}

export function check(
  cond: unknown,
  code: string,
  message: string | (() => string),
  kind: ErrorKind = "invalid",
): asserts cond {
  if (!cond) throw new ProtocolError(code, typeof message === "function" ? message() : message, kind);
}
