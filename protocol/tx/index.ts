// Bitcoin transactions of a statechain coin (DESIGN.md §3.2–§3.6): builders for the wallet, the co-signing
// policy for the enclave. Pure code (bitcoinjs-lib for serialisation and BIP143, @noble/curves for ECDSA).
//
// Conventions: every input the coin's transactions spend is P2WPKH(P) and is signed SIGHASH_ALL under BIP143;
// signatures are 64-byte r‖s, low-S, DER-encoded with the sighash byte in the witness [sig, P]. Outpoint txids
// are 32 bytes in internal order; txids shown to people (and exchanged with chain backends) are reversed hex.
// Fees are fixed at signing time from the worst-case signed size (72-byte signatures); every transaction pays at
// least the relay minimum on its own, because bcoin 1.0.2 (the embedded node) has no package relay.
//
// Exact shapes the policy accepts (anything else is refused with a ProtocolError naming the rule):
//
//   funding      (wallet only, not co-signed) v2; the wallet's own P2WPKH inputs, nSequence 0xFFFFFFFF, so
//                the txid is final before signing; outputs [P2WPKH(P) of A, change?]; nLockTime 0.
//   backup,      v2; 1 input = the statechain outpoint, nSequence 0xFFFFFFFE; nLockTime = h0 − (n−1)·c,
//   absolute     which must be > tip + safety margin; 1 output P2WPKH(B_n) of A − fee (the owner can CPFP
//                from it); relay minimum ≤ fee ≤ absurd-fee bound; output ≥ dust.
//   kick-off     v2; 1 input = the statechain outpoint, nSequence 0xFFFFFFFF; nLockTime 0; outputs exactly
//                [P2WPKH(P) of K, P2WSH(OP_TRUE) anchor of 330 sat]; pays its own relay fee; K ≥ a backup
//                fee at the minimum rate + dust. The anchor is P2WSH(OP_TRUE), not bare OP_TRUE, because
//                bcoin 1.0.2's mempool refuses bare OP_TRUE outputs as non-standard; anyone spends it with the
//                witness [0x51]. At most one kick-off is co-signed per coin (the same one may be re-signed).
//   backup,      v2; 1 input = kick-off output 0, nSequence = L1 − (n−1)·c (BIP68 blocks), > safety margin
//   kick-off     and, once the kick-off confirmed at height K, K + lock > tip + margin; nLockTime 0;
//                1 output P2WPKH(B_n) of K − fee.
//   withdrawal   v2; 1 input, nSequence 0xFFFFFFFF, nLockTime 0, spending the statechain outpoint or — in
//                kick-off mode after the kick-off was co-signed — kick-off output 0 (only one of the two can
//                exist unspent, so either is safe); outputs [withdraw script the owner signed] or
//                [withdraw script, SE fee script ≥ fee]; nothing else.
//   CPFP child   (wallet/watchtower, not co-signed) v2; spends the kick-off anchor (or the owner's backup
//                output) plus wallet coins so parent + child reach the package rate; change or OP_RETURN.
export * from "./build.ts";
export * from "./parse.ts";
export * from "./policy.ts";
export * from "./script.ts";
export * from "./sign.ts";
export * from "./size.ts";
