// Fiat-Shamir transcripts: SHA-512 over length-prefixed, labelled fields, starting with a domain tag. Every proof
// appends its session id (or, for proofs that outlive a session, the id it is bound to) and all public values of
// its statement before its first message, so a challenge is never reused across sessions or statements.
// SHA-512 is OpenSSL's (node:crypto): statements hold 2048-bit moduli and proofs of several KB.
import { createHash } from "node:crypto";
import { bigIntToBytes, bytesToBigInt, type Point } from "../encoding.ts";
import { bitLength } from "./arith.ts";
import { Q } from "./ec.ts";

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

export class Transcript {
  private readonly hash = createHash("sha512");

  constructor(domain: string) {
    this.bytes("domain", utf8(`ecdsa2p/v1/${domain}`));
  }

  bytes(label: string, data: Uint8Array): this {
    const l = utf8(label);
    this.hash.update(u32(l.length)).update(l).update(u32(data.length)).update(data);
    return this;
  }

  int(label: string, x: bigint): this {
    return this.bytes(label, bigIntToBytes(x));
  }

  point(label: string, p: Point): this {
    return this.bytes(label, p.toBytes(true));
  }

  /** Finishes the transcript: its 64-byte digest. */
  digest(): Uint8Array {
    return new Uint8Array(this.hash.digest());
  }
}

/** A challenge in [0, q) from a transcript digest (512 bits reduced mod q: bias below 2⁻²⁵⁶). */
export const challengeScalar = (digest: Uint8Array): bigint => bytesToBigInt(digest) % Q;

/** `count` pseudo-random bytes expanded from a digest (SHA-512 in counter mode). */
export function expand(digest: Uint8Array, label: string, count: number): Uint8Array {
  const out = new Uint8Array(count);
  for (let i = 0, off = 0; off < count; i++, off += 64) {
    const block = createHash("sha512").update(digest).update(utf8(label)).update(u32(i)).digest();
    out.set(block.subarray(0, Math.min(64, count - off)), off);
  }
  return out;
}

/** `count` challenges in [0, n), each from bitLength(n) + 128 expanded bits. */
export function challengesModN(digest: Uint8Array, label: string, n: bigint, count: number): bigint[] {
  const len = (bitLength(n) + 128 + 7) >> 3;
  const bytes = expand(digest, label, len * count);
  return Array.from({ length: count }, (_, i) => bytesToBigInt(bytes.subarray(i * len, (i + 1) * len)) % n);
}

/** `count` challenge bits. */
export function challengeBits(digest: Uint8Array, label: string, count: number): boolean[] {
  const bytes = expand(digest, label, (count + 7) >> 3);
  return Array.from({ length: count }, (_, i) => ((bytes[i >> 3]! >> (i & 7)) & 1) === 1);
}
