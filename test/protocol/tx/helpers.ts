// Deterministic keys and coin contexts for the transaction tests.
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { sha256 } from "@noble/hashes/sha2.js";
import type { CoinPolicyContext } from "../../../protocol/tx/index.ts";

export interface Key {
  sk: Uint8Array;
  pk: Uint8Array;
}

/** A key derived from a label, so failures are reproducible. */
export function key(label: string): Key {
  const sk = sha256(new TextEncoder().encode(`tx-test/${label}`));
  return { sk, pk: secp256k1.getPublicKey(sk, true) };
}

/** The owner's and the SE's shares multiply to the coin key: here one party holds x = o·s for the tests. */
export const shared = key("shared-P");

export function ctxFor(over: Partial<CoinPolicyContext> = {}): CoinPolicyContext {
  return {
    outpoint: { txid: new Uint8Array(32).fill(7), vout: 1 },
    amountSat: 1_000_000n,
    sharedPublicKey: shared.pk,
    mode: "absolute",
    initialLock: 1000,
    interval: 10,
    safetyMargin: 6,
    minFeeRateSatVb: 1,
    ...over,
  };
}

/** Signs a digest as the two parties together would (a single key here): 64-byte low-S r‖s. */
export const signDigest = (digest: Uint8Array, sk: Uint8Array = shared.sk): Uint8Array =>
  secp256k1.sign(digest, sk, { prehash: false, lowS: true });
