// The enclave's hash-chained action log: head' = SHA-256(head ‖ u64(seq) ‖ entry). Every state change the
// enclave makes (deposit, signature, transfer, key update, erasure) is appended; the head goes into every
// deletion receipt and identity statement, so a verifier sees one unbroken history per enclave instance.
// Entries hold public data only.
import { createHash } from "node:crypto";

export interface LogEntry {
  type: string;
  /** 36-byte statechain id or 16-byte deposit id, hex. */
  subject: string;
  detail?: Record<string, string | number>;
  at: number;
}

export class ActionLog {
  private headBytes: Buffer = Buffer.alloc(32);
  private count = 0n;

  /** The head the log will have after appending `entry` (a receipt names it before the commit). */
  peek(entry: LogEntry): Buffer {
    const seq = Buffer.alloc(8);
    seq.writeBigUInt64BE(this.count);
    return createHash("sha256").update(this.headBytes).update(seq).update(JSON.stringify(entry)).digest();
  }

  append(entry: LogEntry): Buffer {
    this.headBytes = this.peek(entry);
    this.count += 1n;
    return this.headBytes;
  }

  /** Takes the head and length a replica set's leader reached (DESIGN.md 4.1: one log per replica set). */
  restore(head: Uint8Array, length: bigint): void {
    this.headBytes = Buffer.from(head);
    this.count = length;
  }

  get head(): Buffer {
    return this.headBytes;
  }

  get length(): bigint {
    return this.count;
  }
}
