// A small strict CBOR codec (RFC 8949) for attestation documents and the statements the enclave signs.
// Decoding refuses what an attacker could use to make two parties read one byte string differently: duplicate
// map keys, trailing bytes, indefinite-length strings, floats, undefined, unknown simple values, oversized
// items. Byte strings come back as copies of the bytes as received, so a signature can be checked over exactly
// the payload that was sent. Indefinite-length maps are accepted only when asked (real Nitro documents use
// them); `canonical` additionally requires shortest-form heads and definite lengths.
// Encoding is deterministic: definite lengths, shortest-form heads, map keys in insertion order.
import { ProtocolError } from "../protocol/errors.ts";

export type CborKey = number | string;
export type CborValue = number | string | boolean | null | Uint8Array | CborValue[] | CborMap | CborTagged;
export type CborMap = Map<CborKey, CborValue>;

export interface CborTagged {
  tag: number;
  value: CborValue;
}

export interface DecodeOptions {
  /** Deepest nesting of arrays, maps and tags (default 8). */
  maxDepth?: number;
  /** Most entries in one array or map (default 64). */
  maxItems?: number;
  /** Longest byte or text string (default 16 KiB). */
  maxLength?: number;
  /** Accept maps of indefinite length (major type 5, additional info 31). Default false. */
  allowIndefiniteMaps?: boolean;
  /** Require shortest-form integers and lengths (implies no indefinite lengths). Default false. */
  canonical?: boolean;
}

export class CborError extends ProtocolError {
  override name = "CborError";
  constructor(message: string) {
    super("CBOR_INVALID", message, "invalid");
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const textEncoder = new TextEncoder();

export function isTagged(v: CborValue | undefined): v is CborTagged {
  return (
    v !== undefined &&
    typeof v === "object" &&
    v !== null &&
    !(v instanceof Uint8Array) &&
    !Array.isArray(v) &&
    !isMap(v)
  );
}

export function isMap(v: CborValue | undefined): v is CborMap {
  return v instanceof Map;
}

/** Decodes exactly one CBOR item that must fill `bytes` completely. */
export function decodeCbor(bytes: Uint8Array, opts: DecodeOptions = {}): CborValue {
  const d = new Decoder(bytes, opts);
  const v = d.item(0);
  if (d.pos !== bytes.length)
    throw new CborError(`${bytes.length - d.pos} trailing bytes after the CBOR item`);
  return v;
}

class Decoder {
  pos = 0;
  private readonly maxDepth: number;
  private readonly maxItems: number;
  private readonly maxLength: number;
  private readonly indefiniteMaps: boolean;
  private readonly canonical: boolean;

  constructor(
    private readonly buf: Uint8Array,
    opts: DecodeOptions,
  ) {
    this.maxDepth = opts.maxDepth ?? 8;
    this.maxItems = opts.maxItems ?? 64;
    this.maxLength = opts.maxLength ?? 16 * 1024;
    this.canonical = opts.canonical ?? false;
    this.indefiniteMaps = !this.canonical && (opts.allowIndefiniteMaps ?? false);
  }

  private byte(): number {
    if (this.pos >= this.buf.length) throw new CborError("CBOR input ends in the middle of an item");
    return this.buf[this.pos++]!;
  }

  private take(n: number): Uint8Array {
    if (n > this.buf.length - this.pos) throw new CborError("CBOR input ends in the middle of an item");
    const out = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Reads the argument of a head with additional info `ai`; null means indefinite length. */
  private argument(ai: number): number | null {
    if (ai < 24) return ai;
    if (ai === 31) return null;
    if (ai > 27) throw new CborError(`reserved CBOR additional information ${ai}`);
    const width = 1 << (ai - 24);
    if (width > this.buf.length - this.pos) throw new CborError("CBOR input ends in the middle of an item");
    let v = 0;
    for (let i = 0; i < width; i++) {
      // Multiplication, not shifts: the value may exceed 32 bits. Past 2^53 it is refused below anyway.
      v = v * 256 + this.buf[this.pos++]!;
      if (v > Number.MAX_SAFE_INTEGER) throw new CborError("CBOR integer is too large");
    }
    if (this.canonical) {
      const min = ai === 24 ? 24 : 2 ** (8 * (width / 2));
      if (v < min) throw new CborError("CBOR integer or length is not in its shortest form");
    }
    return v;
  }

  private length(ai: number, what: string, limit: number): number {
    const n = this.argument(ai);
    if (n === null) throw new CborError(`indefinite-length ${what} is not accepted`);
    if (n > limit) throw new CborError(`CBOR ${what} of ${n} exceeds the limit of ${limit}`);
    return n;
  }

  item(depth: number): CborValue {
    if (depth > this.maxDepth) throw new CborError(`CBOR nesting deeper than ${this.maxDepth}`);
    const head = this.byte();
    const major = head >> 5;
    const ai = head & 0x1f;
    switch (major) {
      case 0: {
        const n = this.argument(ai);
        if (n === null) throw new CborError("an integer cannot have indefinite length");
        return n;
      }
      case 1: {
        const n = this.argument(ai);
        if (n === null) throw new CborError("an integer cannot have indefinite length");
        if (n >= Number.MAX_SAFE_INTEGER) throw new CborError("CBOR integer is too large");
        return -1 - n;
      }
      case 2:
        return this.take(this.length(ai, "byte string", this.maxLength));
      case 3: {
        const raw = this.take(this.length(ai, "text string", this.maxLength));
        try {
          return utf8.decode(raw);
        } catch {
          throw new CborError("CBOR text string is not valid UTF-8");
        }
      }
      case 4: {
        const n = this.length(ai, "array", this.maxItems);
        const out: CborValue[] = [];
        for (let i = 0; i < n; i++) out.push(this.item(depth + 1));
        return out;
      }
      case 5:
        return this.map(ai, depth);
      case 6: {
        const tag = this.argument(ai);
        if (tag === null) throw new CborError("a tag cannot have indefinite length");
        return { tag, value: this.item(depth + 1) };
      }
      default:
        return this.simple(ai);
    }
  }

  private map(ai: number, depth: number): CborMap {
    const out: CborMap = new Map();
    const n = this.argument(ai);
    if (n === null && !this.indefiniteMaps) throw new CborError("indefinite-length map is not accepted");
    if (n !== null && n > this.maxItems) {
      throw new CborError(`CBOR map of ${n} entries exceeds the limit of ${this.maxItems}`);
    }
    for (let i = 0; n === null || i < n; i++) {
      if (n === null) {
        if (this.pos >= this.buf.length) throw new CborError("indefinite-length map is not terminated");
        if (this.buf[this.pos] === 0xff) {
          this.pos++;
          break;
        }
        if (i >= this.maxItems) {
          throw new CborError(`CBOR map of more than ${this.maxItems} entries exceeds the limit`);
        }
      }
      const key = this.item(depth + 1);
      if (typeof key !== "number" && typeof key !== "string") {
        throw new CborError("CBOR map keys must be integers or text strings");
      }
      if (out.has(key)) throw new CborError(`duplicate CBOR map key ${JSON.stringify(key)}`);
      out.set(key, this.item(depth + 1));
    }
    return out;
  }

  private simple(ai: number): CborValue {
    switch (ai) {
      case 20:
        return false;
      case 21:
        return true;
      case 22:
        return null;
      case 25:
      case 26:
      case 27:
        throw new CborError("CBOR floating-point values are not accepted");
      case 31:
        throw new CborError("unexpected CBOR break outside an indefinite-length item");
      default:
        throw new CborError(`CBOR simple value ${ai} is not accepted`);
    }
  }
}

/** Appends a CBOR head (major type + argument) in shortest form. */
function head(out: number[], major: number, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new CborError("cannot encode an integer outside the safe range");
  const m = major << 5;
  if (n < 24) out.push(m | n);
  else if (n < 0x100) out.push(m | 24, n);
  else if (n < 0x10000) out.push(m | 25, n >> 8, n & 0xff);
  else if (n < 0x100000000)
    out.push(m | 26, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  else {
    const hi = Math.floor(n / 0x100000000);
    const lo = n >>> 0;
    out.push(m | 27, 0, (hi >>> 16) & 0xff, (hi >>> 8) & 0xff, hi & 0xff);
    out.push((lo >>> 24) & 0xff, (lo >>> 16) & 0xff, (lo >>> 8) & 0xff, lo & 0xff);
  }
}

function encodeInto(out: number[], chunks: Uint8Array[], v: CborValue): void {
  // Byte strings are appended as whole chunks: `out` collects the small heads between them.
  const flush = () => {
    if (out.length > 0) {
      chunks.push(Uint8Array.from(out));
      out.length = 0;
    }
  };
  if (v === null) out.push(0xf6);
  else if (v === true) out.push(0xf5);
  else if (v === false) out.push(0xf4);
  else if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) throw new CborError("only safe integers can be encoded");
    if (v >= 0) head(out, 0, v);
    else head(out, 1, -1 - v);
  } else if (typeof v === "string") {
    const b = textEncoder.encode(v);
    head(out, 3, b.length);
    flush();
    chunks.push(b);
  } else if (v instanceof Uint8Array) {
    head(out, 2, v.length);
    flush();
    chunks.push(v);
  } else if (Array.isArray(v)) {
    head(out, 4, v.length);
    for (const x of v) encodeInto(out, chunks, x);
  } else if (isMap(v)) {
    head(out, 5, v.size);
    for (const [k, x] of v) {
      encodeInto(out, chunks, k);
      encodeInto(out, chunks, x);
    }
  } else {
    head(out, 6, v.tag);
    encodeInto(out, chunks, v.value);
  }
}

/** Deterministic encoding: definite lengths, shortest heads, map keys in the order the map holds them. */
export function encodeCbor(v: CborValue): Uint8Array {
  const out: number[] = [];
  const chunks: Uint8Array[] = [];
  encodeInto(out, chunks, v);
  if (out.length > 0) chunks.push(Uint8Array.from(out));
  return new Uint8Array(Buffer.concat(chunks));
}
