// Length-prefixed binary fields for what replicas exchange (coin records, state deltas, snapshots). The writer
// copies its parts once into a single buffer outside the V8 heap, so zeroing that buffer removes every secret
// written into it; the reader checks every length against what is left and fails with RECORD_PARSE, naming the
// field. Reads copy into buffers of their own (keep): nothing decoded is a view of the input.

import { bytesToBigInt } from "../../protocol/encoding.ts";
import { check } from "../../protocol/errors.ts";
import { keep } from "../coins.ts";

type Part = Uint8Array;

/** Collects parts, then copies them once into a single off-heap buffer. */
export class Writer {
  private readonly parts: Part[] = [];
  private size = 0;
  private push(p: Part): void {
    this.parts.push(p);
    this.size += p.length;
  }
  u8(x: number): void {
    this.push(Uint8Array.of(x));
  }
  u32(x: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(x);
    this.push(b);
  }
  u64(x: bigint | number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(x));
    this.push(b);
  }
  bytes(b: Uint8Array): void {
    this.u32(b.length);
    this.push(b);
  }
  /** A public natural number (N, c_key): through a hex string, ~10× faster than word by word for 4096 bits; never
   * used for a secret, whose string copy would outlive its erasure. */
  nat(x: bigint): void {
    const h = x === 0n ? "" : x.toString(16);
    this.bytes(Buffer.from(h.length % 2 ? `0${h}` : h, "hex"));
  }
  /** A presence flag, then the field when present. */
  opt<T>(v: T | undefined, write: (v: T) => void): void {
    this.u8(v === undefined ? 0 : 1);
    if (v !== undefined) write(v);
  }
  list<T>(items: Iterable<T>, write: (v: T) => void): void {
    const all = [...items];
    this.u32(all.length);
    for (const v of all) write(v);
  }
  finish(): Buffer {
    const out = Buffer.allocUnsafeSlow(this.size);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/** Bounded reads; any overrun or bad field is a RECORD_PARSE error naming the field. */
export class Reader {
  private at = 0;
  constructor(private readonly b: Uint8Array) {}
  private take(n: number, what: string): Uint8Array {
    check(n <= this.b.length - this.at, "RECORD_PARSE", `record ends inside ${what}`);
    const out = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  u8(what: string): number {
    return this.take(1, what)[0]!;
  }
  u32(what: string): number {
    return Buffer.from(this.take(4, what)).readUInt32BE();
  }
  u64(what: string): bigint {
    return Buffer.from(this.take(8, what)).readBigUInt64BE();
  }
  num(what: string): number {
    const x = this.u64(what);
    check(x <= BigInt(Number.MAX_SAFE_INTEGER), "RECORD_PARSE", `${what} is out of range`);
    return Number(x);
  }
  bytes(what: string, exact?: number): Buffer {
    const n = this.u32(what);
    check(exact === undefined || n === exact, "RECORD_PARSE", `${what} must be ${exact} bytes, not ${n}`);
    return keep(this.take(n, what));
  }
  /** A length-prefixed field as a view of the input, for a nested record decoded at once (no copy made). */
  view(what: string): Uint8Array {
    return this.take(this.u32(what), what);
  }
  nat(what: string): bigint {
    return bytesToBigInt(this.take(this.u32(what), what));
  }
  bool(what: string): boolean {
    const v = this.u8(what);
    check(v <= 1, "RECORD_PARSE", `${what} must be 0 or 1`);
    return v === 1;
  }
  opt<T>(what: string, read: () => T): T | undefined {
    return this.bool(`${what} flag`) ? read() : undefined;
  }
  list<T>(what: string, max: number, read: () => T): T[] {
    const n = this.u32(what);
    check(n <= max, "RECORD_PARSE", `${what} has ${n} items, more than ${max}`);
    return Array.from({ length: n }, read);
  }
  end(): void {
    check(this.at === this.b.length, "RECORD_PARSE", "record has trailing bytes");
  }
}
