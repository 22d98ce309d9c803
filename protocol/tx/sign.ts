// BIP143 digests and P2WPKH witnesses (SIGHASH_ALL only). The two-party signature over P arrives as 64 bytes
// r‖s; it is checked (valid for the digest, low-S) before it goes into a witness, so a wrong or malleable
// signature never reaches the network. Wallet-owned single-key inputs are signed here too.
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { script as btcScript, Transaction } from "bitcoinjs-lib";
import { decodeDer, type EcdsaSignature, verifyEcdsa } from "../ecdsa2p/verify.ts";
import { bytesToBigInt, concatBytes, N, parsePoint, parseScalar, scalarBytes } from "../encoding.ts";
import { check, fail } from "../errors.ts";
import { parseTx } from "./parse.ts";
import { ANCHOR_WITNESS_SCRIPT, p2wpkhScript, p2wpkhScriptCode, sameBytes } from "./script.ts";

export const SIGHASH_ALL = Transaction.SIGHASH_ALL;

function checkInputIndex(tx: Transaction, inputIndex: number): void {
  check(
    Number.isInteger(inputIndex) && inputIndex >= 0 && inputIndex < tx.ins.length,
    "TX_INPUT_INDEX",
    `input ${inputIndex} does not exist (the transaction has ${tx.ins.length})`,
  );
}

/** The BIP143 (segwit v0) SIGHASH_ALL digest of input `inputIndex` spending `amountSat` paid to P2WPKH(`publicKey`). */
export function bip143Digest(
  tx: Transaction | Uint8Array,
  inputIndex: number,
  publicKey: Uint8Array,
  amountSat: bigint,
): Uint8Array {
  const t = tx instanceof Uint8Array ? parseTx(tx) : tx;
  checkInputIndex(t, inputIndex);
  // Shape only: a digest for a key that is not on the curve is harmless (nothing can sign it), and callers
  // validate keys where they enter (context, builders, finalize).
  check(
    publicKey.length === 33 && (publicKey[0] === 2 || publicKey[0] === 3),
    "INVALID_POINT",
    "signing public key must be a 33-byte compressed point",
  );
  check(amountSat > 0n, "TX_AMOUNT", "the spent amount must be positive");
  return new Uint8Array(t.hashForWitnessV0(inputIndex, p2wpkhScriptCode(publicKey), amountSat, SIGHASH_ALL));
}

const HALF_N = N >> 1n;

/** True when a 64-byte r‖s signature has r, s in [1, n) and s ≤ n/2 (BIP62 low-S, required for relay). */
export function isLowS(signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  const r = bytesToBigInt(signature.subarray(0, 32));
  const s = bytesToBigInt(signature.subarray(32));
  return r > 0n && r < N && s > 0n && s <= HALF_N;
}

/** DER signature with the SIGHASH_ALL byte, as a witness item. */
export function encodeWitnessSignature(signature: Uint8Array): Uint8Array {
  check(signature.length === 64, "TX_SIGNATURE", `signature must be 64 bytes r‖s, got ${signature.length}`);
  check(isLowS(signature), "TX_SIGNATURE", "signature is not low-S (or r, s are out of range)");
  return new Uint8Array(btcScript.signature.encode(signature, SIGHASH_ALL));
}

/**
 * Puts a 64-byte signature by `publicKey` into input `inputIndex`'s witness ([DER sig ‖ 0x01, P]) after
 * checking it verifies against the BIP143 digest; returns the serialised transaction.
 */
export function finalizeP2wpkhInput(
  raw: Uint8Array,
  inputIndex: number,
  signature: Uint8Array,
  publicKey: Uint8Array,
  amountSat: bigint,
): Uint8Array {
  const tx = parseTx(raw);
  parsePoint(publicKey, "signing public key");
  const digest = bip143Digest(tx, inputIndex, publicKey, amountSat);
  const der = encodeWitnessSignature(signature);
  check(
    verifyEcdsa(signature, digest, publicKey, { format: "compact", lowS: true }),
    "TX_SIGNATURE",
    `signature for input ${inputIndex} does not verify under the given public key`,
  );
  tx.setWitness(inputIndex, [der, new Uint8Array(publicKey)]);
  return new Uint8Array(tx.toBuffer());
}

export interface OwnInput {
  inputIndex: number;
  /** The spent output: its script must be P2WPKH of the key's public key. */
  prevout: { script: Uint8Array; valueSat: bigint };
  privateKey: Uint8Array;
}

/** Signs inputs the wallet owns outright (single-key P2WPKH: funding inputs, CPFP fee inputs, B_n outputs). */
export function signP2wpkhInputs(raw: Uint8Array, inputs: readonly OwnInput[]): Uint8Array {
  let out = raw;
  for (const input of inputs) {
    parseScalar(input.privateKey, "wallet private key");
    const publicKey = secp256k1.getPublicKey(input.privateKey, true);
    check(
      sameBytes(p2wpkhScript(publicKey), input.prevout.script),
      "TX_WRONG_KEY",
      `input ${input.inputIndex} does not pay P2WPKH of the key given to sign it`,
    );
    const digest = bip143Digest(out, input.inputIndex, publicKey, input.prevout.valueSat);
    const signature = secp256k1.sign(digest, input.privateKey, { prehash: false, lowS: true });
    out = finalizeP2wpkhInput(out, input.inputIndex, signature, publicKey, input.prevout.valueSat);
  }
  return out;
}

/**
 * Strict DER (BIP66) → 64-byte r‖s. Rejects BER variants, padding, negative or oversized integers, and r or s
 * outside [1, n), so a signature has exactly one accepted encoding.
 */
export function decodeDerSignature(der: Uint8Array): Uint8Array {
  let sig: EcdsaSignature;
  try {
    sig = decodeDer(der);
  } catch (err) {
    return fail("TX_SIGNATURE", `signature is not strict DER: ${(err as Error).message}`);
  }
  const { r, s } = sig;
  check(r > 0n && r < N && s > 0n && s < N, "TX_SIGNATURE", "signature r or s is out of range");
  return concatBytes(scalarBytes(r), scalarBytes(s));
}

/** True when `der` is a strict-DER, low-S signature by `publicKey` over `digest` (the rules Bitcoin relays). */
export function verifyDerSignature(der: Uint8Array, digest: Uint8Array, publicKey: Uint8Array): boolean {
  return verifyEcdsa(der, digest, publicKey, { format: "der", lowS: true });
}

/**
 * Checks that input `inputIndex` carries a complete P2WPKH witness [DER sig ‖ SIGHASH_ALL, publicKey] that
 * verifies for spending `amountSat` (the watchtower refuses to keep a backup it could not broadcast).
 */
export function checkP2wpkhWitness(
  tx: Transaction,
  inputIndex: number,
  publicKey: Uint8Array,
  amountSat: bigint,
): void {
  checkInputIndex(tx, inputIndex);
  const w = tx.ins[inputIndex]!.witness;
  check(
    w.length === 2,
    "TX_WITNESS",
    `input ${inputIndex} is not signed (witness has ${w.length} items, expected 2)`,
  );
  check(
    sameBytes(w[1]!, publicKey),
    "TX_WITNESS",
    `input ${inputIndex} is signed with a different public key`,
  );
  const item = w[0]!;
  check(
    item.length > 0 && item[item.length - 1] === SIGHASH_ALL,
    "TX_WITNESS",
    `input ${inputIndex} signature is not SIGHASH_ALL`,
  );
  const digest = bip143Digest(tx, inputIndex, publicKey, amountSat);
  check(
    verifyDerSignature(item.subarray(0, item.length - 1), digest, publicKey),
    "TX_WITNESS",
    `input ${inputIndex} signature does not verify (or is not strict DER, low-S)`,
  );
}

/** Completes an input spending a P2WSH(OP_TRUE) anchor: its witness is the script alone. */
export function finalizeAnchorInput(raw: Uint8Array, inputIndex: number): Uint8Array {
  const tx = parseTx(raw);
  checkInputIndex(tx, inputIndex);
  tx.setWitness(inputIndex, [new Uint8Array(ANCHOR_WITNESS_SCRIPT)]);
  return new Uint8Array(tx.toBuffer());
}
