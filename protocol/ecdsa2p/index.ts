// Two-party ECDSA (Lindell 2017, multiplicative shares) for the statechain: party one = the SE in the enclave,
// party two = the owner. Messages are the protobuf types of proto/ecdsa2p.proto, so enclave, host and wallet
// share this code. See DESIGN.md section 3.1.
//
// Timing. Constant-time: every modular exponentiation with a secret exponent or base (OpenSSL's
// BN_mod_exp_mont_consttime, modexp.ts; only the exponent's length in 64-bit words shows), multiplications of
// points by secret scalars (noble's G·k; OpenSSL's ECDH ladder for k·R), comparisons of commitments. Not
// constant-time: JavaScript BigInt arithmetic outside exponentiations (CRT recombination in Paillier decryption
// and in Π^mod, modular inverses made at key generation, the owner's exponent reductions with its ring-Pedersen
// trapdoor), the public-exponent path modPowPublic, and public-scalar point arithmetic (proof verification).
import { type PartyOneKey, wipePartyOneKey } from "./party-one.ts";
import { type PartyTwoKey, wipePartyTwoKey } from "./party-two.ts";

/** Erases the share (and, for the SE, the Paillier secret) of either party's key. */
export function wipeKey(key: PartyOneKey | PartyTwoKey): void {
  if ("paillier" in key) wipePartyOneKey(key);
  else wipePartyTwoKey(key);
}

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
  MAX_SIGN_SESSIONS,
  type PartyOneKey,
  type PartyOneKeyGenState,
  type PartyOneSignSession,
  p1KeyGenCommit,
  p1KeyGenFinish,
  p1KeyGenFixed,
  p1SignFinish,
  p1SignStart,
  partyOnePublicInfo,
  wipePartyOneKey,
  wipeSignSession,
} from "./party-one.ts";
export {
  type PartyTwoKey,
  type PartyTwoKeyGenState,
  type PartyTwoSignState,
  p2CheckPaillierModulus,
  p2EncryptionNonce,
  p2KeyGenFinish,
  p2KeyGenShare,
  p2PartialNonce,
  p2SignCommit,
  p2SignFinish,
  p2SignPartial,
  wipePartyTwoKey,
} from "./party-two.ts";
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
export { decodeDer, type EcdsaSignature, encodeDer, verifyEcdsa } from "./verify.ts";
