// Statechain ids: a statechain is named by its funding outpoint. Bytes form (SMT keys, receipts, database
// keys): txid in internal byte order ‖ vout as u32 big-endian = 36 bytes. Text form: display txid ":" vout.
import type { Outpoint } from "../proto/gen/common.ts";
import { check } from "./errors.ts";
import { statechainIdBytes } from "./statechain.ts";

export function checkOutpoint(o: Outpoint | undefined, what = "statechain id"): Outpoint {
  check(o, "MISSING_OUTPOINT", `${what} is missing`);
  check(o.txid.length === 32, "INVALID_OUTPOINT", `${what} txid must be 32 bytes, got ${o.txid.length}`);
  return o;
}

/** The statechain id bytes of `o` as a Buffer (database keys). */
export function outpointBytes(o: Outpoint): Buffer {
  return Buffer.from(statechainIdBytes(o));
}

export function outpointFromBytes(b: Uint8Array): Outpoint {
  check(b.length === 36, "INVALID_OUTPOINT", "statechain id bytes must be 36 long");
  const buf = Buffer.from(b);
  return { txid: buf.subarray(0, 32), vout: buf.readUInt32BE(32) };
}

export function outpointString(o: Outpoint): string {
  return `${Buffer.from(o.txid).reverse().toString("hex")}:${o.vout}`;
}

export function parseOutpointString(s: string): Outpoint {
  const m = /^([0-9a-fA-F]{64}):(\d{1,10})$/.exec(s.trim());
  check(m && Number(m[2]) <= 0xffffffff, "INVALID_OUTPOINT", `"${s}" is not a txid:vout outpoint`);
  return { txid: Buffer.from(m[1]!, "hex").reverse(), vout: Number(m[2]) };
}
