// Randomness is passed in, so protocol code stays free of hidden globals and tests can inject a recorder.
import { createHash, randomBytes } from "node:crypto";

export type Rng = (n: number) => Uint8Array;

/** The operating system's CSPRNG (OpenSSL's RAND_bytes seeded from getrandom). */
export const systemRng: Rng = (n) => new Uint8Array(randomBytes(n));

/**
 * A deterministic byte stream (SHA-256 in counter mode over a seed). FOR TESTS ONLY: it lets a test recompute
 * values an enclave drew (to search its memory for them after erasure). Never use it for real keys.
 */
export function seededTestRng(seed: Uint8Array): Rng {
  let counter = 0;
  let buf = new Uint8Array(0);
  return (n) => {
    while (buf.length < n) {
      const c = new Uint8Array(8);
      new DataView(c.buffer).setBigUint64(0, BigInt(counter++));
      const block = new Uint8Array(createHash("sha256").update(seed).update(c).digest());
      const next = new Uint8Array(buf.length + block.length);
      next.set(buf);
      next.set(block, buf.length);
      buf = next;
    }
    const out = buf.slice(0, n);
    buf = buf.slice(n);
    return out;
  };
}
