// The statechain sparse Merkle tree (DESIGN.md 3.7): hashing, node stores, the tree, and proofs.
export { EMPTY, internalHash, leafHash } from "./hash.ts";
export { decodeSmtProof, encodeSmtProof, type SmtProofData, smtProofRoot, verifySmtProof } from "./proof.ts";
export { MemoryNodeStore, type NewNode, type NodeStore } from "./store.ts";
export { computeUpdate, lookup, prove, type SmtChange, SparseMerkleTree } from "./tree.ts";
