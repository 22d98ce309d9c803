// One interface for where attestation documents come from: the Nitro Secure Module (/dev/nsm) or the
// simulator. Both return the bytes of a COSE_Sign1 document that the same verifier checks.
import { ProtocolError } from "../../protocol/errors.ts";
import { LIMITS } from "../document.ts";

export interface AttestationRequest {
  nonce?: Uint8Array;
  userData?: Uint8Array;
  publicKey?: Uint8Array;
}

export interface AttestationProvider {
  readonly mode: "simulator" | "nitro";
  /** Returns the bytes of a COSE_Sign1 attestation document carrying the request's fields. */
  attest(req: AttestationRequest): Promise<Uint8Array>;
}

export class AttestationError extends ProtocolError {
  override name = "AttestationError";
}

/** Refuses fields the NSM would refuse, with the same limits on both providers. */
export function checkRequest(req: AttestationRequest): void {
  for (const [name, v] of [
    ["nonce", req.nonce],
    ["user_data", req.userData],
    ["public_key", req.publicKey],
  ] as const) {
    if (v !== undefined && v.length > LIMITS.userField) {
      throw new AttestationError(
        "ATTESTATION_INPUT_TOO_LARGE",
        `${name} of ${v.length} bytes exceeds the ${LIMITS.userField} bytes an attestation document can carry`,
        "invalid",
      );
    }
  }
}
