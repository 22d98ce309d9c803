// Minimal DER (X.690) reader and writer: enough to read the X.509 fields node:crypto does not expose (validity,
// basic constraints, key usage, critical extensions) and to issue the simulator's certificates.
// The reader is strict: definite, minimal lengths only, and every element must end inside its parent.
import { ProtocolError } from "../protocol/errors.ts";

export class DerError extends ProtocolError {
  override name = "DerError";
  constructor(message: string) {
    super("DER_INVALID", message, "invalid");
  }
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

export interface DerNode {
  /** The identifier octet (class, constructed bit and tag number < 31). */
  tag: number;
  /** The whole element (header + content), a view into the input. */
  raw: Uint8Array;
  /** The content octets, a view into the input. */
  content: Uint8Array;
}

/** Reads one element starting at `offset`; returns it and the offset just after it. */
export function readElement(buf: Uint8Array, offset = 0): { node: DerNode; next: number } {
  let p = offset;
  if (p + 2 > buf.length) throw new DerError("DER element is truncated");
  const tag = buf[p++]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError("DER high tag numbers are not supported");
  let len = buf[p++]!;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new DerError("indefinite length is not allowed in DER");
    if (n > 3) throw new DerError("DER length is too large");
    if (p + n > buf.length) throw new DerError("DER element is truncated");
    if (buf[p] === 0) throw new DerError("DER length is not minimal");
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | buf[p++]!;
    if (len < 0x80) throw new DerError("DER length is not minimal");
  }
  if (p + len > buf.length) throw new DerError("DER element is longer than its container");
  return {
    node: { tag, raw: buf.subarray(offset, p + len), content: buf.subarray(p, p + len) },
    next: p + len,
  };
}

/** Parses `buf` as exactly one element. */
export function readDer(buf: Uint8Array): DerNode {
  const { node, next } = readElement(buf, 0);
  if (next !== buf.length) throw new DerError("trailing bytes after the DER element");
  return node;
}

/** The elements inside a constructed element. */
export function children(node: DerNode): DerNode[] {
  if (!(node.tag & 0x20)) throw new DerError("expected a constructed DER element");
  const out: DerNode[] = [];
  let p = 0;
  while (p < node.content.length) {
    const r = readElement(node.content, p);
    out.push(r.node);
    p = r.next;
  }
  return out;
}

export function expectTag(node: DerNode | undefined, tag: number, what: string): DerNode {
  if (!node) throw new DerError(`${what} is missing`);
  if (node.tag !== tag) {
    throw new DerError(`${what} has DER tag 0x${node.tag.toString(16)}, expected 0x${tag.toString(16)}`);
  }
  return node;
}

export function readOid(node: DerNode): string {
  expectTag(node, TAG.OID, "object identifier");
  const b = node.content;
  if (b.length === 0) throw new DerError("empty object identifier");
  const arcs: number[] = [];
  let v = 0;
  for (let i = 0; i < b.length; i++) {
    if (v === 0 && b[i] === 0x80) throw new DerError("object identifier arc is not minimal");
    v = v * 128 + (b[i]! & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 128) throw new DerError("object identifier arc is too large");
    if (!(b[i]! & 0x80)) {
      arcs.push(v);
      v = 0;
    } else if (i === b.length - 1) throw new DerError("object identifier is truncated");
  }
  const first = arcs[0]!;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...arcs.slice(1)].join(".");
}

export function readBoolean(node: DerNode): boolean {
  expectTag(node, TAG.BOOLEAN, "boolean");
  if (node.content.length !== 1) throw new DerError("DER boolean must be one byte");
  if (node.content[0] === 0xff) return true;
  if (node.content[0] === 0x00) return false;
  throw new DerError("DER boolean must be 0x00 or 0xff");
}

/** A non-negative INTEGER as a bigint (negative integers are refused: no field we read may be negative). */
export function readUnsigned(node: DerNode): bigint {
  expectTag(node, TAG.INTEGER, "integer");
  const b = node.content;
  if (b.length === 0) throw new DerError("empty DER integer");
  if (b.length > 1 && ((b[0] === 0 && !(b[1]! & 0x80)) || (b[0] === 0xff && b[1]! & 0x80))) {
    throw new DerError("DER integer is not minimal");
  }
  if (b[0]! & 0x80) throw new DerError("negative DER integer");
  return b.length === 0 ? 0n : BigInt(`0x${Buffer.from(b).toString("hex")}`);
}

/** A BIT STRING's bits (content after the unused-bits octet) and the unused count. */
export function readBitString(node: DerNode): { bits: Uint8Array; unused: number } {
  expectTag(node, TAG.BIT_STRING, "bit string");
  const c = node.content;
  if (c.length === 0) throw new DerError("empty DER bit string");
  const unused = c[0]!;
  if (unused > 7 || (c.length === 1 && unused !== 0)) throw new DerError("invalid DER bit string padding");
  if (unused > 0 && c[c.length - 1]! & ((1 << unused) - 1)) {
    throw new DerError("DER bit string has non-zero padding bits");
  }
  return { bits: c.subarray(1), unused };
}

/** UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ) as milliseconds since the epoch. */
export function readTime(node: DerNode): number {
  const s = Buffer.from(node.content).toString("latin1");
  let m: RegExpExecArray | null;
  let year: number;
  if (node.tag === TAG.UTC_TIME) {
    m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (!m) throw new DerError("malformed UTCTime");
    const yy = Number(m[1]);
    year = yy < 50 ? 2000 + yy : 1900 + yy;
  } else if (node.tag === TAG.GENERALIZED_TIME) {
    m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (!m) throw new DerError("malformed GeneralizedTime");
    year = Number(m[1]);
  } else throw new DerError("expected a UTCTime or GeneralizedTime");
  const [mo, d, h, mi, se] = [m[2], m[3], m[4], m[5], m[6]].map(Number) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const t = Date.UTC(year, mo - 1, d, h, mi, se);
  const check = new Date(t);
  if (
    check.getUTCMonth() !== mo - 1 ||
    check.getUTCDate() !== d ||
    h > 23 ||
    mi > 59 ||
    se > 59 ||
    check.getUTCFullYear() !== year
  ) {
    throw new DerError("time value is out of range");
  }
  return t;
}

// ---- writer ----

function lengthBytes(n: number): number[] {
  if (n < 0x80) return [n];
  const out: number[] = [];
  while (n > 0) {
    out.unshift(n & 0xff);
    n = Math.floor(n / 256);
  }
  return [0x80 | out.length, ...out];
}

export function tlv(tag: number, ...content: Uint8Array[]): Uint8Array {
  const body = Buffer.concat(content);
  return new Uint8Array(Buffer.concat([Uint8Array.from([tag, ...lengthBytes(body.length)]), body]));
}

export const seq = (...items: Uint8Array[]) => tlv(TAG.SEQUENCE, ...items);
export const set = (...items: Uint8Array[]) => tlv(TAG.SET, ...items);
export const octetString = (b: Uint8Array) => tlv(TAG.OCTET_STRING, b);
export const utf8String = (s: string) => tlv(TAG.UTF8_STRING, new TextEncoder().encode(s));
export const printableString = (s: string) => {
  if (!/^[A-Za-z0-9 '()+,\-./:=?]*$/.test(s)) throw new DerError("not a PrintableString");
  return tlv(TAG.PRINTABLE_STRING, Buffer.from(s, "latin1"));
};
export const boolean = (v: boolean) => tlv(TAG.BOOLEAN, Uint8Array.of(v ? 0xff : 0x00));
/** [n] EXPLICIT: a constructed context-specific wrapper. */
export const explicit = (n: number, inner: Uint8Array) => tlv(0xa0 | n, inner);

export function unsigned(x: bigint | number): Uint8Array {
  const v = BigInt(x);
  if (v < 0n) throw new DerError("cannot encode a negative integer");
  let hex = v.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let b = Buffer.from(hex, "hex");
  if (b[0]! & 0x80) b = Buffer.concat([Buffer.of(0), b]);
  return tlv(TAG.INTEGER, b);
}

/** A positive INTEGER from big-endian bytes (serial numbers), minimal as DER requires. */
export function unsignedFromBytes(bytes: Uint8Array): Uint8Array {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  let b = Buffer.from(bytes.subarray(i));
  if (b[0]! & 0x80) b = Buffer.concat([Buffer.of(0), b]);
  return tlv(TAG.INTEGER, b);
}

export function oid(dotted: string): Uint8Array {
  const arcs = dotted.split(".").map(Number);
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0)) {
    throw new DerError(`bad object identifier ${dotted}`);
  }
  const out: number[] = [];
  const push = (v: number) => {
    const groups = [v & 0x7f];
    for (v = Math.floor(v / 128); v > 0; v = Math.floor(v / 128)) groups.unshift((v & 0x7f) | 0x80);
    out.push(...groups);
  };
  push(arcs[0]! * 40 + arcs[1]!);
  for (const a of arcs.slice(2)) push(a);
  return tlv(TAG.OID, Uint8Array.from(out));
}

/** A BIT STRING holding whole bytes (keys, signatures). */
export const bitStringBytes = (b: Uint8Array) => tlv(TAG.BIT_STRING, Uint8Array.of(0), b);

/** A named-bit BIT STRING (key usage) with trailing zero bits removed, as DER requires. */
export function namedBits(bitIndexes: number[]): Uint8Array {
  if (bitIndexes.length === 0) return tlv(TAG.BIT_STRING, Uint8Array.of(0));
  const highest = Math.max(...bitIndexes);
  const bytes = new Uint8Array(Math.floor(highest / 8) + 1);
  for (const i of bitIndexes) bytes[i >> 3]! |= 0x80 >> (i & 7);
  const unused = 7 - (highest & 7);
  return tlv(TAG.BIT_STRING, Uint8Array.of(unused), bytes);
}

/** UTCTime up to 2049, GeneralizedTime from 2050 (RFC 5280 section 4.1.2.5). Whole seconds. */
export function time(ms: number): Uint8Array {
  const d = new Date(Math.floor(ms / 1000) * 1000);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  const y = d.getUTCFullYear();
  if (y >= 1950 && y < 2050) return tlv(TAG.UTC_TIME, Buffer.from(`${p(y % 100)}${rest}`, "latin1"));
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(`${p(y, 4)}${rest}`, "latin1"));
}
