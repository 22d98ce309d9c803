// Statechain transactions and the state hash chain (DESIGN.md 3.3, 3.4, 3.7; formulas in proto/common.proto).
//   s_1     = SHA-256(C1)
//   TRANSFER: sig_{C_k} over SHA-256("statechain/v1/transfer" || s_k || C_{k+1});  s_{k+1} = SHA-256(s_k || C_{k+1} || sig)
//   WITHDRAW: sig_{C_k} over SHA-256("statechain/v1/withdraw" || s_k || script);  closing = SHA-256(s_k || "WITHDRAW" || script || sig)
// Signatures are BIP340 Schnorr by the x-only form of the 33-byte proof key.
import { sha256 } from "@noble/hashes/sha2.js";
import { type StatechainTx, StatechainTxKind } from "../proto/gen/common.ts";
import { bip340Sign, bip340Verify } from "./bip340.ts";
import { concatBytes, equalCT, parsePoint, parseScalar } from "./encoding.ts";
import { check, fail, ProtocolError } from "./errors.ts";
import type { Rng } from "./rng.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);
const TRANSFER_TAG = utf8("statechain/v1/transfer");
const WITHDRAW_TAG = utf8("statechain/v1/withdraw");
const WITHDRAW_MARK = utf8("WITHDRAW");
/** Consensus limit on a script's size; anything longer can never be spent to. */
export const MAX_WITHDRAW_SCRIPT = 10_000;

export interface OutpointLike {
  /** 32 bytes, internal byte order. */
  txid: Uint8Array;
  vout: number;
}

/** The 36 bytes naming a statechain everywhere (SMT key input, receipts): txid (internal order) || vout u32 BE. */
export function statechainIdBytes(outpoint: OutpointLike): Uint8Array {
  check(
    outpoint.txid.length === 32,
    "STATECHAIN_ID",
    `statechain id txid must be 32 bytes, got ${outpoint.txid.length}`,
  );
  check(
    Number.isInteger(outpoint.vout) && outpoint.vout >= 0 && outpoint.vout <= 0xffffffff,
    "STATECHAIN_ID",
    `statechain id vout ${outpoint.vout} is not a 32-bit unsigned integer`,
  );
  const out = new Uint8Array(36);
  out.set(outpoint.txid, 0);
  new DataView(out.buffer).setUint32(32, outpoint.vout, false);
  return out;
}

/** The statechain's key in the sparse Merkle tree: SHA-256 of its 36 id bytes. */
export function statechainKey(outpoint: OutpointLike): Uint8Array {
  return sha256(statechainIdBytes(outpoint));
}

function checkState(s: Uint8Array, what: string): void {
  check(s.length === 32, "STATECHAIN_STATE", `${what} must be a 32-byte state hash, got ${s.length} bytes`);
}

function checkScript(script: Uint8Array): void {
  check(
    script.length > 0 && script.length <= MAX_WITHDRAW_SCRIPT,
    "STATECHAIN_WITHDRAW_SCRIPT",
    `withdraw script must be 1 to ${MAX_WITHDRAW_SCRIPT} bytes, got ${script.length}`,
  );
}

/** s_1 = SHA-256(C1), C1 a 33-byte compressed proof key. */
export function initialState(c1: Uint8Array): Uint8Array {
  parsePoint(c1, "deposit proof key C1");
  return sha256(c1);
}

export function transferDigest(state: Uint8Array, nextProofKey: Uint8Array): Uint8Array {
  return sha256(concatBytes(TRANSFER_TAG, state, nextProofKey));
}

export function withdrawDigest(state: Uint8Array, withdrawScript: Uint8Array): Uint8Array {
  return sha256(concatBytes(WITHDRAW_TAG, state, withdrawScript));
}

/** The current owner (secret proof key c_k) hands the coin to the owner of proof key C_{k+1}. */
export function signTransfer(
  proofSecret: Uint8Array,
  state: Uint8Array,
  nextProofKey: Uint8Array,
  rng: Rng,
): StatechainTx {
  parseScalar(proofSecret, "proof secret key");
  checkState(state, "current state");
  parsePoint(nextProofKey, "next proof key");
  const signature = bip340Sign(transferDigest(state, nextProofKey), proofSecret, rng(32));
  return {
    kind: StatechainTxKind.STATECHAIN_TX_KIND_TRANSFER,
    previousState: Buffer.from(state),
    nextProofKey: Buffer.from(nextProofKey),
    withdrawScript: Buffer.alloc(0),
    signature: Buffer.from(signature),
  };
}

/** The current owner closes the statechain, withdrawing the coin to `withdrawScript`. */
export function signWithdraw(
  proofSecret: Uint8Array,
  state: Uint8Array,
  withdrawScript: Uint8Array,
  rng: Rng,
): StatechainTx {
  parseScalar(proofSecret, "proof secret key");
  checkState(state, "current state");
  checkScript(withdrawScript);
  const signature = bip340Sign(withdrawDigest(state, withdrawScript), proofSecret, rng(32));
  return {
    kind: StatechainTxKind.STATECHAIN_TX_KIND_WITHDRAW,
    previousState: Buffer.from(state),
    nextProofKey: Buffer.alloc(0),
    withdrawScript: Buffer.from(withdrawScript),
    signature: Buffer.from(signature),
  };
}

/** Checks the shape of a transaction (not its signature): sizes, kind, and the fields its kind forbids. */
function checkShape(tx: StatechainTx): void {
  checkState(tx.previousState, "previous state");
  check(
    tx.signature.length === 64,
    "STATECHAIN_SIGNATURE",
    `signature must be 64 bytes, got ${tx.signature.length}`,
  );
  if (tx.kind === StatechainTxKind.STATECHAIN_TX_KIND_TRANSFER) {
    parsePoint(tx.nextProofKey, "next proof key");
    check(
      tx.withdrawScript.length === 0,
      "STATECHAIN_TX_FIELDS",
      "a TRANSFER transaction must not carry a withdraw script",
    );
  } else if (tx.kind === StatechainTxKind.STATECHAIN_TX_KIND_WITHDRAW) {
    checkScript(tx.withdrawScript);
    check(
      tx.nextProofKey.length === 0,
      "STATECHAIN_TX_FIELDS",
      "a WITHDRAW transaction must not carry a next proof key",
    );
  } else {
    fail("STATECHAIN_TX_KIND", `statechain transaction kind ${tx.kind} is neither TRANSFER nor WITHDRAW`);
  }
}

/** The state after `tx` (the caller has verified it): s_{k+1} for TRANSFER, the closing state for WITHDRAW. */
export function nextState(tx: StatechainTx): Uint8Array {
  checkShape(tx);
  return stateAfter(tx);
}

function stateAfter(tx: StatechainTx): Uint8Array {
  if (tx.kind === StatechainTxKind.STATECHAIN_TX_KIND_TRANSFER)
    return sha256(concatBytes(tx.previousState, tx.nextProofKey, tx.signature));
  return sha256(concatBytes(tx.previousState, WITHDRAW_MARK, tx.withdrawScript, tx.signature));
}

/** Throws unless `tx` extends state `state` and is signed by the current proof key `currentKey` (33 bytes). */
export function verifyStatechainTx(tx: StatechainTx, currentKey: Uint8Array, state: Uint8Array): void {
  checkShape(tx);
  checkState(state, "current state");
  parsePoint(currentKey, "current proof key");
  verifyLink(tx, currentKey, state);
}

/** The link's state and signature, for a tx whose shape and a key whose encoding are checked already. */
function verifyLink(tx: StatechainTx, currentKey: Uint8Array, state: Uint8Array): void {
  check(
    equalCT(tx.previousState, state),
    "STATECHAIN_PREVIOUS_STATE",
    "statechain transaction does not extend the current state (previous_state differs)",
    "precondition",
  );
  const digest =
    tx.kind === StatechainTxKind.STATECHAIN_TX_KIND_TRANSFER
      ? transferDigest(state, tx.nextProofKey)
      : withdrawDigest(state, tx.withdrawScript);
  // BIP340 verifies under the x coordinate: the 33-byte key without its parity byte.
  const ok = bip340Verify(tx.signature, digest, currentKey.subarray(1));
  check(
    ok,
    "STATECHAIN_SIGNATURE",
    "statechain transaction signature does not verify under the current proof key",
    "unauthenticated",
  );
}

export interface VerifiedChain {
  /** s_1 … s_n, then the closing state when withdrawn. */
  states: Uint8Array[];
  /** The proof key of the last owner (the one who signed the WITHDRAW when closed). */
  currentKey: Uint8Array;
  /** The last state hash: the SMT leaf value. */
  currentState: Uint8Array;
  closed: boolean;
  /** Set when closed. */
  withdrawScript?: Uint8Array;
}

/**
 * Verifies a whole chain from the deposit proof key C1: every link must extend the previous state and be signed
 * by the then-current proof key; nothing may follow a WITHDRAW. Errors name the first bad link (1-based).
 */
export function verifyChain(c1: Uint8Array, txs: readonly StatechainTx[]): VerifiedChain {
  let state = initialState(c1);
  let key: Uint8Array = c1;
  const states = [state];
  let closed = false;
  let withdrawScript: Uint8Array | undefined;
  txs.forEach((tx, i) => {
    const link = `statechain transaction ${i + 1} (from owner ${i + 1})`;
    check(!closed, "STATECHAIN_CLOSED", `${link} follows the WITHDRAW that closed the statechain`);
    // Each key is decoded once: C1 by initialState, every next key by its transaction's checkShape (it was
    // three times, through verifyStatechainTx and nextState: 14 → 10 ms for a chain of 20).
    try {
      checkShape(tx);
      verifyLink(tx, key, state);
    } catch (err) {
      if (err instanceof ProtocolError) fail(err.code, `${link}: ${err.message}`, err.kind);
      throw err;
    }
    state = stateAfter(tx);
    states.push(state);
    if (tx.kind === StatechainTxKind.STATECHAIN_TX_KIND_TRANSFER) key = tx.nextProofKey;
    else {
      closed = true;
      withdrawScript = tx.withdrawScript;
    }
  });
  return { states, currentKey: key, currentState: state, closed, withdrawScript };
}
