// Node hashing for the sparse Merkle tree. A node's hash is SHA-256 of its 65-byte body, whose first byte
// separates the domains, so a leaf can never be passed off as an internal node or the reverse:
//   leaf     = 0x00 || key (32) || value (32)
//   internal = 0x01 || left (32) || right (32)
// An empty subtree hashes to 32 zero bytes at every depth (no SHA-256 output is known to be all zeros).
import { createHash, hash as oneShotHash } from "node:crypto";

export const HASH_BYTES = 32;
export const BODY_BYTES = 65;
export const KEY_BITS = 256;
export const EMPTY: Uint8Array = new Uint8Array(HASH_BYTES);

export const LEAF_TAG = 0x00;
export const INTERNAL_TAG = 0x01;

// node:crypto's one-shot hash (Node >= 20.12) skips the Hash object: about a third faster on 65-byte inputs.
export const sha256: (data: Uint8Array) => Uint8Array =
  typeof oneShotHash === "function"
    ? (data) => oneShotHash("sha256", data, "buffer")
    : (data) => createHash("sha256").update(data).digest();

export function isEmpty(h: Uint8Array): boolean {
  for (let i = 0; i < HASH_BYTES; i++) if (h[i] !== 0) return false;
  return true;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Bit `depth` of `key`, most significant bit of byte 0 first: 0 goes left, 1 goes right. */
export function keyBit(key: Uint8Array, depth: number): 0 | 1 {
  return ((key[depth >> 3]! >> (7 - (depth & 7))) & 1) as 0 | 1;
}

/** Number of leading bits `a` and `b` share (256 when equal). */
export function commonPrefixBits(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < HASH_BYTES; i++) {
    const x = a[i]! ^ b[i]!;
    if (x !== 0) return i * 8 + Math.clz32(x) - 24;
  }
  return KEY_BITS;
}

function body(tag: number, a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(BODY_BYTES);
  out[0] = tag;
  out.set(a, 1);
  out.set(b, 1 + HASH_BYTES);
  return out;
}

export const leafBody = (key: Uint8Array, value: Uint8Array) => body(LEAF_TAG, key, value);
export const internalBody = (left: Uint8Array, right: Uint8Array) => body(INTERNAL_TAG, left, right);
export const leafHash = (key: Uint8Array, value: Uint8Array) => sha256(leafBody(key, value));
export const internalHash = (left: Uint8Array, right: Uint8Array) => sha256(internalBody(left, right));

export type SmtNode =
  | { leaf: true; key: Uint8Array; value: Uint8Array }
  | { leaf: false; left: Uint8Array; right: Uint8Array };

/** Decodes a stored body (views into it, no copies); throws on anything that is not a node body. */
export function decodeBody(b: Uint8Array): SmtNode {
  if (b.length !== BODY_BYTES || (b[0] !== LEAF_TAG && b[0] !== INTERNAL_TAG))
    throw new Error(`not a sparse Merkle tree node body (${b.length} bytes, tag ${b[0]})`);
  const x = b.subarray(1, 1 + HASH_BYTES);
  const y = b.subarray(1 + HASH_BYTES, BODY_BYTES);
  return b[0] === LEAF_TAG ? { leaf: true, key: x, value: y } : { leaf: false, left: x, right: y };
}
