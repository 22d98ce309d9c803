// Session ids and digests, checked the same way by both roles. The owner's wallet draws the session ids and both
// roles are given them; the enclave refuses a signing session id already used with a key; every commitment and
// proof challenge binds them.
import { check } from "../errors.ts";

export const SESSION_ID_MIN_BYTES = 16;
export const SESSION_ID_MAX_BYTES = 32;
export const DIGEST_BYTES = 32;

export function checkSessionId(sessionId: Uint8Array | undefined): Uint8Array {
  const n = sessionId?.length ?? 0;
  check(
    sessionId && n >= SESSION_ID_MIN_BYTES && n <= SESSION_ID_MAX_BYTES,
    "SESSION_ID_LENGTH",
    `session id must be ${SESSION_ID_MIN_BYTES} to ${SESSION_ID_MAX_BYTES} bytes, got ${n}`,
  );
  // A copy: the id usually arrives as a view of a decoded message or of an 8 KB Buffer pool slab, and a key that
  // keeps the view keeps all of that alive for the coin's life (it was 8 KB of each enclave coin's 14).
  return Uint8Array.from(sessionId);
}

export function checkDigest(digest: Uint8Array | undefined): Uint8Array {
  check(
    digest && digest.length === DIGEST_BYTES,
    "DIGEST_LENGTH",
    `digest to sign must be ${DIGEST_BYTES} bytes, got ${digest?.length ?? 0}`,
  );
  return digest;
}
