// Sparse Merkle proofs: wire encoding (statechain.v1.SmtProof) and verification without the SE.
// A proof lists the siblings on the key's path from the proven position up to the root. The proven position
// holds the key's own leaf (inclusion), another key's leaf whose key shares the path (non-inclusion), or the
// empty subtree (non-inclusion). The proof comes from an untrusted host: decoding checks every size and rejects
// non-canonical encodings, so one tree state has exactly one valid proof per key.
import type { SmtProof } from "../../proto/gen/statechain.ts";
import { check, fail } from "../errors.ts";
import {
  BODY_BYTES,
  commonPrefixBits,
  EMPTY,
  HASH_BYTES,
  INTERNAL_TAG,
  isEmpty,
  KEY_BITS,
  keyBit,
  leafHash,
  sameBytes,
  sha256,
} from "./hash.ts";

export interface SmtProofData {
  /** One per level, from the proven position upwards; EMPTY for an empty sibling. */
  siblings: Uint8Array[];
  /** For non-inclusion ending at another key's leaf. */
  other?: { key: Uint8Array; value: Uint8Array };
}

function bad(message: string): never {
  return fail("SMT_PROOF_MALFORMED", `sparse Merkle proof: ${message}`);
}

export function encodeSmtProof(proof: SmtProofData): SmtProof {
  const depth = proof.siblings.length;
  const bitmap = Buffer.alloc(Math.ceil(depth / 8));
  const present: Buffer[] = [];
  proof.siblings.forEach((s, i) => {
    if (isEmpty(s)) bitmap[i >> 3]! |= 1 << (i & 7);
    else present.push(Buffer.from(s));
  });
  return {
    bitmap,
    siblings: present,
    depth,
    otherKey: Buffer.from(proof.other?.key ?? []),
    otherLeaf: Buffer.from(proof.other?.value ?? []),
  };
}

/** Decodes a proof received from the SE; throws SMT_PROOF_MALFORMED on any size or canonical-form violation. */
export function decodeSmtProof(pb: SmtProof): SmtProofData {
  const depth = pb.depth;
  if (!Number.isInteger(depth) || depth < 0 || depth > KEY_BITS) bad(`depth ${depth} is outside 0..256`);
  const bytes = Math.ceil(depth / 8);
  if (pb.bitmap.length !== bytes)
    bad(`bitmap is ${pb.bitmap.length} bytes, expected ${bytes} for depth ${depth}`);
  if (depth % 8 !== 0 && pb.bitmap[bytes - 1]! >> (depth % 8) !== 0)
    bad("bitmap has bits set beyond the depth");
  const siblings: Uint8Array[] = [];
  let next = 0;
  for (let i = 0; i < depth; i++) {
    if ((pb.bitmap[i >> 3]! >> (i & 7)) & 1) {
      siblings.push(EMPTY);
      continue;
    }
    const s = pb.siblings[next++];
    if (!s) bad(`bitmap announces more siblings than the ${pb.siblings.length} given`);
    if (s.length !== HASH_BYTES) bad(`sibling ${next} is ${s.length} bytes, expected 32`);
    if (isEmpty(s)) bad(`sibling ${next} is the empty hash but the bitmap does not mark it`);
    siblings.push(Uint8Array.from(s));
  }
  if (next !== pb.siblings.length) bad(`${pb.siblings.length} siblings given but the bitmap uses ${next}`);
  const k = pb.otherKey.length;
  const v = pb.otherLeaf.length;
  if (k === 0 && v === 0) return { siblings };
  if (k !== HASH_BYTES || v !== HASH_BYTES)
    bad(`other leaf key and value must be 32 bytes each, got ${k} and ${v}`);
  return { siblings, other: { key: Uint8Array.from(pb.otherKey), value: Uint8Array.from(pb.otherLeaf) } };
}

/** The root a decoded proof implies for `key` holding `leaf` (null: absent). Throws on inconsistent proofs. */
export function smtProofRoot(key: Uint8Array, leaf: Uint8Array | null, proof: SmtProofData): Uint8Array {
  check(key.length === HASH_BYTES, "SMT_KEY", `tree key must be 32 bytes, got ${key.length}`);
  const depth = proof.siblings.length;
  if (depth > KEY_BITS) bad(`depth ${depth} exceeds 256`);
  let h: Uint8Array;
  if (leaf !== null) {
    check(leaf.length === HASH_BYTES, "SMT_VALUE", `leaf value must be 32 bytes, got ${leaf.length}`);
    if (proof.other) bad("an inclusion proof must not carry another leaf");
    h = leafHash(key, leaf);
  } else if (proof.other) {
    const { key: otherKey, value } = proof.other;
    if (sameBytes(otherKey, key)) bad("the other leaf has the very key claimed absent");
    if (commonPrefixBits(otherKey, key) < depth)
      bad(`the other leaf's key leaves the path above depth ${depth}`);
    h = leafHash(otherKey, value);
  } else {
    h = EMPTY;
  }
  // In canonical form an empty or single-leaf subtree never sits beside an empty sibling: it would have
  // replaced its parent.
  if (depth > 0 && isEmpty(proof.siblings[0]!))
    bad("the lowest sibling is empty, which canonical trees never have");
  // One scratch body for the whole walk: a fresh 65-byte array per level would cost more than its hash.
  const body = new Uint8Array(BODY_BYTES);
  body[0] = INTERNAL_TAG;
  for (let i = 0; i < depth; i++) {
    const sibling = proof.siblings[i]!;
    const right = keyBit(key, depth - 1 - i) === 1;
    body.set(right ? sibling : h, 1);
    body.set(right ? h : sibling, 1 + HASH_BYTES);
    h = sha256(body);
  }
  return h;
}

/**
 * What the wallet calls: throws unless `proof` shows that, under `root`, `key` holds `leaf` (or, for null, holds
 * nothing). Codes: SMT_PROOF_MALFORMED (decoding), SMT_PROOF_MISMATCH (a valid-looking proof of another root).
 */
export function verifySmtProof(
  root: Uint8Array,
  key: Uint8Array,
  leaf: Uint8Array | null,
  proof: SmtProof,
): void {
  check(root.length === HASH_BYTES, "SMT_ROOT", `tree root must be 32 bytes, got ${root.length}`);
  const computed = smtProofRoot(key, leaf, decodeSmtProof(proof));
  check(
    sameBytes(computed, root),
    "SMT_PROOF_MISMATCH",
    leaf === null
      ? "sparse Merkle proof does not show the statechain absent under the published root"
      : "sparse Merkle proof does not show this state hash under the published root",
  );
}
