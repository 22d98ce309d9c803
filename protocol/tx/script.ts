// Output scripts the statechain uses, their classification and their dust limits. Everything here is computed
// from bytes, so the enclave, the host and the wallet agree on what "pays P2WPKH(B_n)" means.
import { sha256 } from "@noble/hashes/sha2.js";
import { crypto as btcCrypto } from "bitcoinjs-lib";
import { equalCT, parsePoint } from "../encoding.ts";
import { check } from "../errors.ts";

const OP_0 = 0x00;
const OP_1 = 0x51;
const OP_TRUE = 0x51;
const OP_RETURN = 0x6a;
const OP_DUP = 0x76;
const OP_HASH160 = 0xa9;
const OP_EQUAL = 0x87;
const OP_EQUALVERIFY = 0x88;
const OP_CHECKSIG = 0xac;

export const hash160 = (b: Uint8Array): Uint8Array => btcCrypto.hash160(b);

/** OP_0 <20-byte HASH160(pubkey)>; the key must be a valid 33-byte compressed point. */
export function p2wpkhScript(publicKey: Uint8Array, what = "public key"): Uint8Array {
  parsePoint(publicKey, what);
  return Uint8Array.from([OP_0, 20, ...hash160(publicKey)]);
}

/** The BIP143 scriptCode of a P2WPKH input: OP_DUP OP_HASH160 <HASH160(pubkey)> OP_EQUALVERIFY OP_CHECKSIG. */
export function p2wpkhScriptCode(publicKey: Uint8Array): Uint8Array {
  return Uint8Array.from([OP_DUP, OP_HASH160, 20, ...hash160(publicKey), OP_EQUALVERIFY, OP_CHECKSIG]);
}

/**
 * The kick-off anchor: P2WSH(OP_TRUE). A bare OP_TRUE output is non-standard for bcoin 1.0.2's mempool (and
 * for Bitcoin Core before v28's pay-to-anchor), so anyone-can-spend is expressed as a witness script hash:
 * the spender reveals the one-byte script OP_TRUE as its only witness item.
 */
export const ANCHOR_WITNESS_SCRIPT: Uint8Array = Uint8Array.from([OP_TRUE]);
export const ANCHOR_SCRIPT: Uint8Array = Uint8Array.from([OP_0, 32, ...sha256(ANCHOR_WITNESS_SCRIPT)]);
/** The anchor's value: the P2WSH dust limit at the 1 sat/vB relay minimum (330 sat). */
export const ANCHOR_VALUE_SAT = 330n;

/** OP_RETURN <data>: an unspendable output with no dust limit, used when a CPFP child has no change. */
export function opReturnScript(data: Uint8Array): Uint8Array {
  check(data.length <= 75, "TX_SCRIPT", "OP_RETURN data is limited to 75 bytes here");
  return Uint8Array.from([OP_RETURN, data.length, ...data]);
}

export type ScriptType = "p2wpkh" | "p2wsh" | "p2tr" | "p2pkh" | "p2sh" | "nulldata" | "nonstandard";

export function classifyScript(s: Uint8Array): ScriptType {
  if (s.length === 22 && s[0] === OP_0 && s[1] === 20) return "p2wpkh";
  if (s.length === 34 && s[0] === OP_0 && s[1] === 32) return "p2wsh";
  if (s.length === 34 && s[0] === OP_1 && s[1] === 32) return "p2tr";
  if (
    s.length === 25 &&
    s[0] === OP_DUP &&
    s[1] === OP_HASH160 &&
    s[2] === 20 &&
    s[23] === OP_EQUALVERIFY &&
    s[24] === OP_CHECKSIG
  )
    return "p2pkh";
  if (s.length === 23 && s[0] === OP_HASH160 && s[1] === 20 && s[22] === OP_EQUAL) return "p2sh";
  if (s.length >= 1 && s[0] === OP_RETURN && s.length <= 83) return "nulldata";
  return "nonstandard";
}

/** Scripts a withdrawal or a change output may pay: the address types every wallet and node relays. */
export function isPayableScript(s: Uint8Array): boolean {
  const t = classifyScript(s);
  return t !== "nulldata" && t !== "nonstandard";
}

/**
 * The smallest value an output may carry and still relay: three times the cost, at 1 sat/vB, of the output
 * plus the input that would spend it (Bitcoin Core's and bcoin's rule; 294 sat for P2WPKH, 330 for P2WSH,
 * 546 for P2PKH). OP_RETURN outputs have no limit.
 */
export function dustThreshold(s: Uint8Array): bigint {
  const type = classifyScript(s);
  if (type === "nulldata") return 0n;
  const outputSize = 8 + varIntSize(s.length) + s.length;
  const witnessProgram = type === "p2wpkh" || type === "p2wsh" || type === "p2tr";
  // Spending input: outpoint 36 + script length 1 + sequence 4, plus a 107-byte signature script that the
  // witness discount divides by four for witness programs.
  const inputSize = witnessProgram ? 32 + 4 + 1 + Math.floor(107 / 4) + 4 : 32 + 4 + 1 + 107 + 4;
  return 3n * BigInt(outputSize + inputSize);
}

export function varIntSize(n: number): number {
  return n < 0xfd ? 1 : n <= 0xffff ? 3 : n <= 0xffffffff ? 5 : 9;
}

export const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => equalCT(a, b);
