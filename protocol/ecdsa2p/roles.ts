// What the two roles of DESIGN.md section 3.1 share: the names their DLog proofs are bound to and the values
// their commitments cover, so that the Paillier holder (holder.ts) and the homomorphic signer (signer.ts) hash
// exactly the same bytes.
import type { DlogProof } from "../../proto/gen/ecdsa2p.ts";
import { type Point, pointBytes } from "../encoding.ts";

/** The role strings in each DLog proof's transcript: a proof for one value never passes as another's. */
export const ROLE = {
  ownerShare: "owner-share",
  seShare: "se-share",
  ownerNonce: "owner-nonce",
  seNonce: "se-nonce",
} as const;

/** A keygen commitment covers the public share and its proof. */
export const shareCommitValues = (X: Point, proof: DlogProof): Uint8Array[] => [
  pointBytes(X),
  proof.commitment,
  proof.response,
];

/** A signing commitment covers the digest, the nonce point and its proof. */
export const signCommitValues = (digest: Uint8Array, R: Point, proof: DlogProof): Uint8Array[] => [
  digest,
  pointBytes(R),
  proof.commitment,
  proof.response,
];
