// The partial-signature statement (DESIGN.md section 3.1): the enclave signs (session id, shared key P, digest,
// R, c3) under its attested Ed25519 instance key, and the owner checks that signature before it decrypts c3.
// Without it the host that relays c3 could multiply it by c_key^(λ·q) and learn, from whether the finished
// signature verifies, bits of the owner's share (the abort attack, now aimed at o), with no secret of its own.
import { createPublicKey, type KeyObject, verify } from "node:crypto";
import type { Point } from "../encoding.ts";
import { check, fail } from "../errors.ts";
import { Transcript } from "./fiat-shamir.ts";

export const INSTANCE_KEY_BYTES = 32;
export const STATEMENT_SIGNATURE_BYTES = 64;

export interface PartialStatement {
  sessionId: Uint8Array;
  sharedPublicKey: Point;
  digest: Uint8Array;
  R: Point;
  c3: bigint;
}

/** The 64 bytes the enclave signs: a domain-separated SHA-512 transcript of the statement's fields. */
export function partialStatementBytes(st: PartialStatement): Uint8Array {
  return new Transcript("partial-signature-statement")
    .bytes("sid", st.sessionId)
    .point("P", st.sharedPublicKey)
    .bytes("digest", st.digest)
    .point("R", st.R)
    .int("c3", st.c3)
    .digest();
}

// SubjectPublicKeyInfo of an Ed25519 key (RFC 8410) minus its 32 key bytes.
const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

/** An Ed25519 public key from its 32 raw bytes (as the identity statement carries it). */
export function instancePublicKey(raw: Uint8Array): KeyObject {
  check(
    raw.length === INSTANCE_KEY_BYTES,
    "INSTANCE_KEY_INVALID",
    `the enclave's instance key must be ${INSTANCE_KEY_BYTES} bytes, got ${raw.length}`,
  );
  try {
    return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: "der", type: "spki" });
  } catch {
    return fail("INSTANCE_KEY_INVALID", "the enclave's instance key is not an Ed25519 public key");
  }
}

/** Throws PARTIAL_STATEMENT_INVALID unless `signature` is the instance key's signature over the statement. */
export function verifyPartialStatement(key: KeyObject, st: PartialStatement, signature: Uint8Array): void {
  check(
    signature.length === STATEMENT_SIGNATURE_BYTES,
    "PARTIAL_STATEMENT_INVALID",
    `the enclave's signature over the partial signature must be ${STATEMENT_SIGNATURE_BYTES} bytes, got ${signature.length}`,
  );
  check(
    verify(null, partialStatementBytes(st), key, signature),
    "PARTIAL_STATEMENT_INVALID",
    "the partial signature c3 is not the one the enclave signed (altered in transit, or another session's): it is not decrypted",
  );
}
