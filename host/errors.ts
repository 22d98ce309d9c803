// Maps every failure to a gRPC status with a message a person understands. Protocol and enclave messages name
// the failed check and carry no secrets, so they pass through; anything unexpected becomes INTERNAL with an
// incident id, and its details go to the log only.
import { randomBytes } from "node:crypto";
import { type ServiceError, status } from "@grpc/grpc-js";
import { ChainError } from "../chain/backend.ts";
import { type ErrorKind, ProtocolError } from "../protocol/errors.ts";

export interface RpcFailure {
  code: status;
  details: string;
  /** Set for unexpected errors: log it with the incident id. */
  incident?: string;
}

const KIND_STATUS: Record<ErrorKind, status> = {
  invalid: status.INVALID_ARGUMENT,
  precondition: status.FAILED_PRECONDITION,
  unauthenticated: status.UNAUTHENTICATED,
  not_found: status.NOT_FOUND,
  exhausted: status.RESOURCE_EXHAUSTED,
  unavailable: status.UNAVAILABLE,
  internal: status.INTERNAL,
};

/** A failure the host itself decides on (state, limits, lookups). */
export class RpcError extends ProtocolError {}

export function isServiceError(err: unknown): err is ServiceError {
  return (
    typeof err === "object" &&
    err !== null &&
    "code" in err &&
    typeof (err as ServiceError).code === "number" &&
    "details" in err
  );
}

export function toFailure(err: unknown): RpcFailure {
  if (err instanceof ProtocolError) return { code: KIND_STATUS[err.kind], details: err.message };
  if (err instanceof ChainError) {
    if (err.code === "unavailable")
      return { code: status.UNAVAILABLE, details: `chain backend unavailable: ${err.message}` };
    return { code: status.FAILED_PRECONDITION, details: err.message };
  }
  if (isServiceError(err)) {
    // From the enclave: its status codes and messages are part of its contract.
    if (err.code === status.UNAVAILABLE || err.code === status.DEADLINE_EXCEEDED) {
      return { code: status.UNAVAILABLE, details: "the enclave is unavailable; try again shortly" };
    }
    return { code: err.code, details: err.details };
  }
  const incident = randomBytes(6).toString("hex");
  return { code: status.INTERNAL, details: `internal error (incident ${incident})`, incident };
}
