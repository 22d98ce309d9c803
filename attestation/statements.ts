// The other canonical statements the enclave attests (same codec as deletion receipts). Each starts with
// v and type, so one kind of statement can never be read as another:
//   identity:     {v, type: "identity", instance (16 bytes), log (32), policy (32), key (32: the Ed25519
//                  instance key that signs each partial signature c3), rp (64: the id of the instance's
//                  ring-Pedersen parameters, ring-pedersen.ts), time (ms)}
//   transfer-key: {v, type: "transfer-key", statechain (36), epoch, receiver (33-byte proof key), instance (16),
//                  share (33: the SE share S the key update will erase), kickoff (32 or null: the one kick-off
//                  co-signed, internal order), backup (32: the one backup co-signed for owner `epoch`),
//                  policy (32: SHA-256 of the policy JSON)}
// The receiver checks its backup is that backup, spends that kick-off, and the deletion receipt erases that S.
import { createHash } from "node:crypto";
import { check } from "../protocol/errors.ts";
import { decodeStatement, encodeStatement, type FieldSpec } from "./canonical.ts";

export const STATEMENT_VERSION = 1;

export interface IdentityStatement {
  v: typeof STATEMENT_VERSION;
  type: "identity";
  instance: Uint8Array;
  log: Uint8Array;
  policy: Uint8Array;
  key: Uint8Array;
  rp: Uint8Array;
  time: number;
}

export interface TransferKeyStatement {
  v: typeof STATEMENT_VERSION;
  type: "transfer-key";
  statechain: Uint8Array;
  epoch: number;
  receiver: Uint8Array;
  instance: Uint8Array;
  share: Uint8Array;
  kickoff: Uint8Array | null;
  backup: Uint8Array;
  policy: Uint8Array;
}

export const IDENTITY_FIELDS: readonly FieldSpec[] = [
  { key: "v", kind: "uint" },
  { key: "type", kind: "text", values: ["identity"] },
  { key: "instance", kind: "bytes", length: 16 },
  { key: "log", kind: "bytes", length: 32 },
  { key: "policy", kind: "bytes", length: 32 },
  { key: "key", kind: "bytes", length: 32 },
  { key: "rp", kind: "bytes", length: 64 },
  { key: "time", kind: "uint" },
];

export const TRANSFER_KEY_FIELDS: readonly FieldSpec[] = [
  { key: "v", kind: "uint" },
  { key: "type", kind: "text", values: ["transfer-key"] },
  { key: "statechain", kind: "bytes", length: 36 },
  { key: "epoch", kind: "uint" },
  { key: "receiver", kind: "bytes", length: 33, point: true },
  { key: "instance", kind: "bytes", length: 16 },
  { key: "share", kind: "bytes", length: 33, point: true },
  { key: "kickoff", kind: "bytes", length: 32, nullable: true },
  { key: "backup", kind: "bytes", length: 32 },
  { key: "policy", kind: "bytes", length: 32 },
];

function version(v: number, what: string): void {
  check(v === STATEMENT_VERSION, "STATEMENT_INVALID", `${what}: version ${v} is not ${STATEMENT_VERSION}`);
}

export function encodeIdentityStatement(s: Omit<IdentityStatement, "v" | "type">): Uint8Array {
  return encodeStatement(
    IDENTITY_FIELDS,
    { v: STATEMENT_VERSION, type: "identity", ...s },
    "identity statement",
    "STATEMENT_INVALID",
  );
}

export function decodeIdentityStatement(bytes: Uint8Array): IdentityStatement {
  const s = decodeStatement(IDENTITY_FIELDS, bytes, "identity statement", "STATEMENT_INVALID");
  version(s.v as number, "identity statement");
  return s as unknown as IdentityStatement;
}

export function encodeTransferKeyStatement(s: Omit<TransferKeyStatement, "v" | "type">): Uint8Array {
  return encodeStatement(
    TRANSFER_KEY_FIELDS,
    { v: STATEMENT_VERSION, type: "transfer-key", ...s },
    "transfer-key statement",
    "STATEMENT_INVALID",
  );
}

export function decodeTransferKeyStatement(bytes: Uint8Array): TransferKeyStatement {
  const s = decodeStatement(TRANSFER_KEY_FIELDS, bytes, "transfer-key statement", "STATEMENT_INVALID");
  version(s.v as number, "transfer-key statement");
  return s as unknown as TransferKeyStatement;
}

/** SHA-256 of a statement's bytes: what goes into the attestation's user_data. */
export function statementHash(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}
