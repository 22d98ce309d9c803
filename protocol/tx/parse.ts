// Strict parsing of raw transactions, and the txid conventions: bytes in internal order (as serialised in an
// outpoint) inside the protocol, reversed hex when shown to people or sent to a chain backend.
import { Transaction } from "bitcoinjs-lib";
import { check, fail } from "../errors.ts";

export interface Outpoint {
  /** 32 bytes, internal byte order (as serialised in a transaction input). */
  txid: Uint8Array;
  vout: number;
}

/** A sanity bound far above any transaction the statechain builds (policy checks are exact anyway). */
export const MAX_TX_BYTES = 100_000;
export const MAX_MONEY_SAT = 21_000_000n * 100_000_000n;

/**
 * Parses a serialised transaction and insists that it re-serialises to exactly the same bytes: no trailing
 * data, no non-minimal encodings, no empty witness marker. What is signed is then exactly what was shown.
 */
export function parseTx(raw: Uint8Array, what = "transaction"): Transaction {
  check(raw instanceof Uint8Array, "TX_PARSE", `${what} must be bytes`);
  check(
    raw.length > 0 && raw.length <= MAX_TX_BYTES,
    "TX_PARSE",
    () => `${what} size ${raw.length} is out of range`,
  );
  let tx: Transaction;
  try {
    tx = Transaction.fromBuffer(raw);
  } catch (err) {
    return fail("TX_PARSE", `${what} does not parse: ${(err as Error).message}`);
  }
  check(
    Buffer.from(tx.toBuffer()).equals(Buffer.from(raw)),
    "TX_PARSE",
    `${what} is not canonically encoded`,
  );
  for (const out of tx.outs) {
    check(
      out.value >= 0n && out.value <= MAX_MONEY_SAT,
      "TX_PARSE",
      `${what} has an output value out of range`,
    );
  }
  return tx;
}

/** Internal-order txid bytes → the usual reversed hex. */
export function txidToHex(txid: Uint8Array): string {
  check(txid.length === 32, "TX_TXID", `txid must be 32 bytes, got ${txid.length}`);
  return Buffer.from(txid).reverse().toString("hex");
}

/** Reversed hex (as shown by explorers and nodes) → internal-order bytes. */
export function txidFromHex(hex: string): Uint8Array {
  check(/^[0-9a-fA-F]{64}$/.test(hex), "TX_TXID", "txid must be 64 hex characters");
  return new Uint8Array(Buffer.from(hex, "hex").reverse());
}

/** The txid of a transaction, internal byte order (witness data excluded). */
export const txidOf = (tx: Transaction): Uint8Array => new Uint8Array(tx.getHash(false));

export function outpointString(o: Outpoint): string {
  return `${txidToHex(o.txid)}:${o.vout}`;
}

export function sameOutpoint(a: Outpoint, b: Outpoint): boolean {
  return a.vout === b.vout && Buffer.from(a.txid).equals(Buffer.from(b.txid));
}

export function inputOutpoint(tx: Transaction, index: number): Outpoint {
  const input = tx.ins[index]!;
  return { txid: new Uint8Array(input.hash), vout: input.index };
}
