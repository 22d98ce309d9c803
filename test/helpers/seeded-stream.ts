// The byte stream an enclave started with --insecure-test-rng-seed draws its randomness from, as one buffer a test
// can search: where the enclave drew a public value (a deposit id), and which window of it is a secret whose
// public key the test knows (a share, a transfer key), so it can look for that secret in the enclave's memory.
import { seededTestRng } from "../../protocol/rng.ts";

const GROW = 64 << 10;

export class SeededStream {
  private readonly next: (n: number) => Uint8Array;
  private bytes = Buffer.alloc(0);

  constructor(seed: Uint8Array) {
    this.next = seededTestRng(seed);
  }

  /** The stream's bytes [at, at + length), drawing more of it as needed. */
  slice(at: number, length: number): Buffer {
    this.extend(at + length);
    return this.bytes.subarray(at, at + length);
  }

  /** Where `needle` first occurs at or after `from`, looking at most `span` bytes ahead; -1 if not there. */
  indexOf(needle: Uint8Array, from: number, span: number): number {
    this.extend(from + span + needle.length);
    const i = this.bytes.indexOf(needle, from);
    return i >= 0 && i < from + span ? i : -1;
  }

  /** The first offset in [from, from + span) whose `width` bytes `match` accepts; -1 if none does. */
  find(from: number, span: number, width: number, match: (window: Buffer) => boolean): number {
    this.extend(from + span + width);
    for (let i = from; i < from + span; i++) if (match(this.bytes.subarray(i, i + width))) return i;
    return -1;
  }

  private extend(length: number): void {
    if (this.bytes.length >= length) return;
    const parts: Uint8Array[] = [this.bytes];
    let have = this.bytes.length;
    // 32 bytes a call: the generator then makes one SHA-256 block at a time (a larger draw copies its buffer
    // once per block).
    for (const target = Math.max(length, have + GROW); have < target; have += 32) parts.push(this.next(32));
    this.bytes = Buffer.concat(parts);
  }
}
