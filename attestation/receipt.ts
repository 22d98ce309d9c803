// Deletion receipts: what the enclave attests after it erases a share. Canonical CBOR map, keys in this order:
//   v (1), type ("key-update" | "erasure"), statechain (36 bytes: txid in internal byte order || vout u32 BE),
//   epoch (the owner index the coin moved to; for "erasure" the last owner index),
//   erased (SHA-256("statechain/v1/erased-share" || S_old), 32 bytes), S2 (33 bytes, null for "erasure"),
//   prev (SHA-256 of this enclave instance's previous receipt, zeros for the first), log (enclave log head
//   after the action, 32 bytes), time (ms).
// The attestation's user_data is SHA-256 of these bytes; `prev` chains the receipts so gaps and forks show.
import { createHash } from "node:crypto";
import { parsePoint } from "../protocol/encoding.ts";
import { check } from "../protocol/errors.ts";
import { decodeStatement, encodeStatement, type FieldSpec } from "./canonical.ts";

export const RECEIPT_VERSION = 1;
export type ReceiptType = "key-update" | "erasure";

export interface DeletionReceipt {
  v: typeof RECEIPT_VERSION;
  type: ReceiptType;
  statechain: Uint8Array;
  epoch: number;
  erased: Uint8Array;
  S2: Uint8Array | null;
  prev: Uint8Array;
  log: Uint8Array;
  time: number;
}

export const RECEIPT_FIELDS: readonly FieldSpec[] = [
  { key: "v", kind: "uint" },
  { key: "type", kind: "text", values: ["key-update", "erasure"] },
  { key: "statechain", kind: "bytes", length: 36 },
  { key: "epoch", kind: "uint" },
  { key: "erased", kind: "bytes", length: 32 },
  { key: "S2", kind: "bytes", length: 33, nullable: true, point: true },
  { key: "prev", kind: "bytes", length: 32 },
  { key: "log", kind: "bytes", length: 32 },
  { key: "time", kind: "uint" },
];

export const ZERO_HASH: Uint8Array = new Uint8Array(32);
const ERASED_SHARE_TAG = new TextEncoder().encode("statechain/v1/erased-share");
const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

/** The commitment to an erased share: SHA-256("statechain/v1/erased-share" || S_old), S_old compressed. */
export function erasedShareCommitment(sOld: Uint8Array): Uint8Array {
  parsePoint(sOld, "erased share point S_old");
  return sha256(ERASED_SHARE_TAG, sOld);
}

function validate(r: DeletionReceipt): void {
  check(
    r.v === RECEIPT_VERSION,
    "RECEIPT_INVALID",
    `deletion receipt: version ${r.v} is not ${RECEIPT_VERSION}`,
  );
  if (r.type === "erasure") {
    check(r.S2 === null, "RECEIPT_INVALID", "deletion receipt: an erasure receipt has no new share point S2");
  } else {
    check(
      r.S2 !== null,
      "RECEIPT_INVALID",
      "deletion receipt: a key-update receipt needs the new share point S2",
    );
  }
}

export function encodeReceipt(r: Omit<DeletionReceipt, "v"> & { v?: number }): Uint8Array {
  const full = { ...r, v: r.v ?? RECEIPT_VERSION } as DeletionReceipt;
  validate(full);
  return encodeStatement(RECEIPT_FIELDS, { ...full }, "deletion receipt", "RECEIPT_INVALID");
}

/** Strict: refuses anything but the canonical encoding of a valid receipt (code RECEIPT_INVALID). */
export function decodeReceipt(bytes: Uint8Array): DeletionReceipt {
  const r = decodeStatement(
    RECEIPT_FIELDS,
    bytes,
    "deletion receipt",
    "RECEIPT_INVALID",
  ) as unknown as DeletionReceipt;
  validate(r);
  return r;
}

/** SHA-256 of the receipt bytes: the attestation's user_data and the next receipt's `prev`. */
export function receiptHash(bytes: Uint8Array): Uint8Array {
  return sha256(bytes);
}

export interface ReceiptChainFailure {
  /** Position in the list given to verifyReceiptChain (-1: the `previous` receipt). */
  index: number;
  check:
    | "receipt.structure"
    | "receipt.genesis"
    | "receipt.prev_link"
    | "receipt.fork"
    | "receipt.epoch_order"
    | "receipt.after_erasure"
    | "receipt.time_order";
  message: string;
}

export interface ReceiptChainResult {
  valid: boolean;
  failures: ReceiptChainFailure[];
  /** Decoded receipts (null where one could not be decoded). */
  receipts: (DeletionReceipt | null)[];
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const eq = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

/**
 * Checks an ordered run of one enclave instance's receipts: each `prev` is the hash of the one before (no gap),
 * no two receipts claim the same predecessor (no fork), epochs strictly increase per statechain (an "erasure"
 * may repeat the last owner index, and nothing may follow it for that statechain), time never goes back.
 * `genesis`: the first receipt must be the instance's first (prev all zero). `previous`: the receipt just
 * before the first one given, already trusted.
 */
export function verifyReceiptChain(
  receiptBytes: readonly Uint8Array[],
  opts: { genesis?: boolean; previous?: Uint8Array } = {},
): ReceiptChainResult {
  const failures: ReceiptChainFailure[] = [];
  const receipts = receiptBytes.map((b, index) => {
    try {
      return decodeReceipt(b);
    } catch (e) {
      failures.push({
        index,
        check: "receipt.structure",
        message: `receipt ${index}: ${(e as Error).message}`,
      });
      return null;
    }
  });
  const byPrev = new Map<string, number>();
  const epochs = new Map<string, { epoch: number; closed: boolean }>();
  let lastTime = -1;
  if (opts.previous) {
    const p = decodeReceiptOrNull(opts.previous);
    if (!p) {
      failures.push({
        index: -1,
        check: "receipt.structure",
        message: "the previous receipt cannot be decoded",
      });
    } else {
      epochs.set(hex(p.statechain), { epoch: p.epoch, closed: p.type === "erasure" });
      lastTime = p.time;
    }
  }
  receipts.forEach((r, index) => {
    if (!r) return;
    if (index === 0 && opts.genesis && !eq(r.prev, ZERO_HASH)) {
      failures.push({
        index,
        check: "receipt.genesis",
        message: "receipt 0 is not the instance's first receipt (prev is not zero)",
      });
    }
    const before = index > 0 ? receiptBytes[index - 1]! : opts.previous;
    if (before && !eq(r.prev, receiptHash(before))) {
      failures.push({
        index,
        check: "receipt.prev_link",
        message: `receipt ${index} does not link to the receipt before it: a receipt is missing or the chain forked`,
      });
    }
    const prevKey = hex(r.prev);
    const other = byPrev.get(prevKey);
    if (other !== undefined) {
      failures.push({
        index,
        check: "receipt.fork",
        message: `receipts ${other} and ${index} both follow the same receipt: the chain forked`,
      });
    } else byPrev.set(prevKey, index);
    const sc = hex(r.statechain);
    const state = epochs.get(sc);
    if (state?.closed) {
      failures.push({
        index,
        check: "receipt.after_erasure",
        message: `receipt ${index} acts on statechain ${sc.slice(0, 16)}… after its share was erased`,
      });
    } else if (state && (r.type === "erasure" ? r.epoch < state.epoch : r.epoch <= state.epoch)) {
      failures.push({
        index,
        check: "receipt.epoch_order",
        message: `receipt ${index}: epoch ${r.epoch} does not follow epoch ${state.epoch} of statechain ${sc.slice(0, 16)}…`,
      });
    }
    epochs.set(sc, {
      epoch: Math.max(r.epoch, state?.epoch ?? 0),
      closed: r.type === "erasure" || !!state?.closed,
    });
    if (r.time < lastTime) {
      failures.push({
        index,
        check: "receipt.time_order",
        message: `receipt ${index} is dated before its predecessor`,
      });
    }
    lastTime = Math.max(lastTime, r.time);
  });
  return { valid: failures.length === 0, failures, receipts };
}

function decodeReceiptOrNull(b: Uint8Array): DeletionReceipt | null {
  try {
    return decodeReceipt(b);
  } catch {
    return null;
  }
}
