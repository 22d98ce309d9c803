// Hash commitments: SHA-256 over a domain tag, the session id, the committed values (length-prefixed) and 32
// random bytes. Binding by collision resistance, hiding by the random opening.
import { sha256 } from "@noble/hashes/sha2.js";
import { equalCT } from "../encoding.ts";
import { check } from "../errors.ts";
import type { Rng } from "../rng.ts";

export const BLIND_BYTES = 32;

function digest(domain: string, sessionId: Uint8Array, values: Uint8Array[], blind: Uint8Array): Uint8Array {
  const h = sha256.create();
  const put = (b: Uint8Array) => {
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, b.length);
    h.update(len).update(b);
  };
  put(new TextEncoder().encode(`ecdsa2p/v1/commit/${domain}`));
  put(sessionId);
  for (const v of values) put(v);
  put(blind);
  return h.digest();
}

export function commit(
  domain: string,
  sessionId: Uint8Array,
  values: Uint8Array[],
  rng: Rng,
): { commitment: Uint8Array; blind: Uint8Array } {
  const blind = rng(BLIND_BYTES);
  return { commitment: digest(domain, sessionId, values, blind), blind };
}

/** Throws COMMITMENT_MISMATCH unless `blind` opens `commitment` to `values`. */
export function checkOpening(
  domain: string,
  sessionId: Uint8Array,
  values: Uint8Array[],
  blind: Uint8Array,
  commitment: Uint8Array,
  what: string,
): void {
  check(
    blind.length === BLIND_BYTES,
    "COMMITMENT_OPENING",
    `${what}: opening must be ${BLIND_BYTES} bytes, got ${blind.length}`,
  );
  check(
    equalCT(digest(domain, sessionId, values, blind), commitment),
    "COMMITMENT_MISMATCH",
    `${what} does not match the commitment made in the first round`,
  );
}
