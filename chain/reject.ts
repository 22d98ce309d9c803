// Why a node refused a transaction, normalised across bcoin's mempool reasons, Bitcoin Core's reject strings
// (sendrawtransaction, also relayed verbatim by Esplora) and Core's RPC error codes.
import type { ChainError } from "./backend.ts";

type Code = ChainError["code"];

const EXACT: Record<string, Code> = {
  // bcoin 1.0.2 (mempool.insertTX / verify)
  "non-final": "non-final",
  "non-BIP68-final": "non-final",
  "bad-txns-inputs-spent": "conflict", // bcoin's name for a double spend of a mempool input
  "txn-already-in-mempool": "already-known",
  "txn-already-known": "already-known",
  "insufficient priority": "fee",
  "rate limited free transaction": "fee",
  "absurdly-high-fee": "fee",
  "mempool full": "fee",
  "replace-by-fee": "nonstandard", // bcoin refuses v1 transactions signalling RBF
  "premature-version2-tx": "nonstandard",
  "no-witness-yet": "nonstandard",
  scriptpubkey: "nonstandard",
  dust: "nonstandard",
  "multi-op-return": "nonstandard",
  "bare-multisig": "nonstandard",
  coinbase: "invalid",
  // Bitcoin Core
  "bad-txns-inputs-missingorspent": "missing-inputs",
  "missing-inputs": "missing-inputs",
  "Missing inputs": "missing-inputs",
  "txn-mempool-conflict": "conflict",
  "txn-same-nonwitness-data-in-mempool": "already-known",
  "Transaction already in block chain": "already-known",
  "Transaction outputs already in utxo set": "already-known",
  "min relay fee not met": "fee",
  "mempool min fee not met": "fee",
  "insufficient fee": "fee",
  "max-fee-exceeded": "fee",
  "tx-size-small": "nonstandard",
  "too-long-mempool-chain": "nonstandard",
};

/** Classifies a reject reason (the part before any ", details" or " (details)"). */
export function classifyReject(reason: string): Code {
  // Core: "insufficient fee, rejecting replacement <txid>…" is a double spend that failed RBF.
  if (/rejecting replacement/i.test(reason)) return "conflict";
  const head = reason.split(/[,(]/)[0]!.trim();
  const exact = EXACT[head] ?? EXACT[reason];
  if (exact) return exact;
  if (/already (in|known)|already-known|already in block chain/i.test(reason)) return "already-known";
  if (/non-?(BIP68-)?final/i.test(reason)) return "non-final";
  if (/missing ?inputs|missingorspent/i.test(reason)) return "missing-inputs";
  if (/conflict/i.test(reason)) return "conflict";
  // A failed script: a bad witness signature shows up as the "non-mandatory" kind (witness rules are a soft
  // fork), but either way the transaction can never be valid.
  if (/script-verify-flag/i.test(reason)) return "invalid";
  if (/standard|dust|scriptsig|script-size|version|tx-size|sigops/i.test(reason)) return "nonstandard";
  if (/fee/i.test(reason)) return "fee";
  return "invalid";
}

/** Bitcoin Core JSON-RPC error codes around sendrawtransaction. */
export const RPC_VERIFY_ERROR = -25;
export const RPC_VERIFY_REJECTED = -26;
export const RPC_VERIFY_ALREADY_IN_CHAIN = -27;
export const RPC_DESERIALIZATION_ERROR = -22;

/** Maps a sendrawtransaction error (code + message) from bitcoind, or from Esplora relaying it, to a code. */
export function classifyRpcReject(code: number, message: string): Code {
  if (code === RPC_VERIFY_ALREADY_IN_CHAIN) return "already-known";
  if (code === RPC_DESERIALIZATION_ERROR) return "invalid";
  const byReason = classifyReject(message);
  // -25 without a recognisable reason is Core's "Missing inputs" family.
  if (byReason === "invalid" && code === RPC_VERIFY_ERROR) return "missing-inputs";
  return byReason;
}
