// Two-party ECDSA (Lindell 2017, multiplicative shares) for the statechain, DESIGN.md section 3.1. The owner is the
// Paillier holder (holder.ts): it holds its share o, a per-coin Paillier key made ahead on its own machine and
// c_key = Enc_N(o); it proves N (Π^mod, Π^fac) and c_key (Π^log*) against the enclave's ring-Pedersen parameters,
// and finishes every signature by decrypting c3, after checking the enclave's signature over it. The enclave is
// the homomorphic signer (signer.ts): per coin it holds its share s, the owner's N and c_key and no Paillier
// secret; it checks those proofs before it keeps anything, and answers with c3 = Enc_N(k⁻¹·m + ρ·q) ⊕
// c_key^(k⁻¹·r·s), signed under its attested instance key (partial-statement.ts). roles.ts holds what both sides
// hash alike. Messages are the protobuf types of proto/ecdsa2p.proto, so enclave, host and wallet share this code.
//
// Timing. Constant-time: every modular exponentiation with a secret exponent or base (OpenSSL's
// BN_mod_exp_mont_consttime, modexp.ts; only the exponent's length in 64-bit words shows), multiplications of
// points by secret scalars (libsecp256k1, ec.ts; if its self-test fails, noble's G·k and OpenSSL's ECDH ladder),
// comparisons of commitments, and the scalar arithmetic on bytes of a key update (scalar-ct.ts). The nonce
// inversions are blinded: the variable-time inversion sees k·β, never k. Not constant-time: JavaScript BigInt
// arithmetic outside exponentiations (the partial signature's and the final s's products modulo q, CRT
// recombination in Paillier decryption and in Π^mod, modular inverses made at key generation), the
// public-exponent path modPowPublic, and public-scalar point arithmetic (proof verification).
export {
  type HolderKey,
  type HolderKeyGenState,
  type HolderSignature,
  type HolderSignOutcome,
  type HolderSignState,
  holderKeyGenCommit,
  holderKeyGenFinish,
  holderKeyUpdate,
  holderKeyUpdateFinish,
  holderKeyUpdateResume,
  holderSignCommit,
  holderSignFinish,
  holderSignNonce,
  wipeHolderKey,
} from "./holder.ts";
export { modPow, modPowBigInt, modPowPublic } from "./modexp.ts";
export {
  checkPaillierModulus,
  decrypt as paillierDecrypt,
  type EncryptionNonce,
  encrypt as paillierEncrypt,
  encryptionNonce,
  generatePaillierKey,
  generatePaillierKeySync,
  type PaillierKey,
  wipePaillierKey,
} from "./paillier.ts";
export {
  instancePublicKey,
  type PartialStatement,
  partialStatementBytes,
  verifyPartialStatement,
} from "./partial-statement.ts";
export {
  generateRingPedersen,
  RingPedersenCache,
  type RingPedersenKey,
  type RingPedersenSecret,
  wipeRingPedersen,
} from "./ring-pedersen.ts";
export { checkRotatedShare, rotateShare } from "./rotation.ts";
export { randomSecretBytes } from "./scalar-ct.ts";
export { SESSION_ID_MAX_BYTES, SESSION_ID_MIN_BYTES } from "./session.ts";
export {
  MAX_SIGNER_SESSIONS,
  type SignerKey,
  type SignerKeyGenState,
  type SignerSignSession,
  signerKeyGenFinish,
  signerKeyGenShare,
  signerKeyUpdate,
  signerSignPartial,
  signerSignStart,
  wipeSignerKey,
  wipeSignerSession,
} from "./signer.ts";
export { decodeDer, type EcdsaSignature, encodeDer, verifyEcdsa } from "./verify.ts";
