// secp256k1 point arithmetic in libsecp256k1, through the WebAssembly build that ships in the tiny-secp256k1
// package (Bitcoin Core's library: constant-time multiplication of secret scalars, ecmult_gen blinded by a random
// context). About 5x faster here than OpenSSL's generic-curve code and 10x faster than the JavaScript one.
//
// Our own instance of the module, not the package's wrapper, so that its linear memory is ours to scrub: the C code
// leaves copies of a secret scalar on its stack (its little-endian limbs, its signed digits), and the module is linked
// stack-first, so that stack is all the memory below the first data segment. Every call that takes a secret zeroes
// the input slot and that region before returning. A self-test at load checks the layout (a known scalar must leave
// no trace after a scrub, and results must match the JavaScript code); if it fails, `secretsSafe` is false and ec.ts
// keeps secret scalars out of this module.
import { randomBytes, randomInt } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { secp256k1 } from "@noble/curves/secp256k1.js";

// The WebAssembly global, typed here: the project's TypeScript libraries (ES2022 without DOM) do not declare it.
interface WasmGlobal {
  value: unknown;
}
interface WasmApi {
  Module: new (binary: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

interface Exports {
  memory: { buffer: ArrayBuffer };
  initializeContext(): void;
  pointFromScalar(outputLength: number): number;
  pointMultiply(inputLength: number, outputLength: number): number;
  pointAdd(lengthA: number, lengthB: number, outputLength: number): number;
  isPoint(length: number): number;
  pointCompress(inputLength: number, outputLength: number): void;
  verify(keyLength: number, strict: number): number;
  signSchnorr(withExtraData: number): void;
  verifySchnorr(): number;
  PRIVATE_INPUT: WasmGlobal;
  HASH_INPUT: WasmGlobal;
  EXTRA_DATA_INPUT: WasmGlobal;
  SIGNATURE_INPUT: WasmGlobal;
  X_ONLY_PUBLIC_KEY_INPUT: WasmGlobal;
  TWEAK_INPUT: WasmGlobal;
  PUBLIC_KEY_INPUT: WasmGlobal;
  PUBLIC_KEY_INPUT2: WasmGlobal;
}

const UNCOMPRESSED = 65;
// Not from encoding.ts, which builds on this module.
const G = secp256k1.Point.BASE;
const N = secp256k1.Point.Fn.ORDER;

function readLeb(b: Uint8Array, at: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = b[at++]!;
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (!(byte & 0x80)) return [value, at];
  }
}

/** The lowest offset of an active data segment (section 11): below it lies the stack of a stack-first module. */
function firstDataOffset(wasm: Uint8Array): number {
  let at = 8; // magic and version
  while (at < wasm.length) {
    const id = wasm[at]!;
    const [size, body] = readLeb(wasm, at + 1);
    if (id === 11) {
      let [count, p] = readLeb(wasm, body);
      let lowest = Number.POSITIVE_INFINITY;
      for (; count > 0; count--) {
        let flags: number;
        [flags, p] = readLeb(wasm, p);
        if (flags === 2) [, p] = readLeb(wasm, p); // memory index
        if (flags !== 1) {
          if (wasm[p] !== 0x41) return 0; // not i32.const: layout unknown
          let offset: number;
          [offset, p] = readLeb(wasm, p + 1); // non-negative offsets only (signed LEB, small values)
          if (wasm[p] !== 0x0b) return 0;
          p += 1;
          lowest = Math.min(lowest, offset);
        }
        let length: number;
        [length, p] = readLeb(wasm, p);
        p += length;
      }
      return Number.isFinite(lowest) ? lowest : 0;
    }
    at = body + size;
  }
  return 0;
}

const binary = readFileSync(
  join(dirname(createRequire(import.meta.url).resolve("tiny-secp256k1")), "..", "secp256k1.wasm"),
);
const lib = new Wasm.Instance(new Wasm.Module(binary), {
  "./rand.js": { generateInt32: () => randomInt(-(2 ** 31), 2 ** 31) },
  "./validate_error.js": {
    throwError: (code: number) => {
      throw new Error(`libsecp256k1 refused its input (code ${code})`);
    },
  },
}).exports as unknown as Exports;
lib.initializeContext();

const stackTop = firstDataOffset(binary);
const slot = (g: WasmGlobal, length: number) => ({ at: g.value as number, length });
const PRIVATE = slot(lib.PRIVATE_INPUT, 32);
const TWEAK = slot(lib.TWEAK_INPUT, 32);
const PUBLIC = slot(lib.PUBLIC_KEY_INPUT, UNCOMPRESSED);
const PUBLIC2 = slot(lib.PUBLIC_KEY_INPUT2, UNCOMPRESSED);
const HASH = slot(lib.HASH_INPUT, 32);
const EXTRA = slot(lib.EXTRA_DATA_INPUT, 32);
const SIGNATURE = slot(lib.SIGNATURE_INPUT, 64);
const XONLY = slot(lib.X_ONLY_PUBLIC_KEY_INPUT, 32);
const memory = () => new Uint8Array(lib.memory.buffer);

/** Writes a scalar in [1, q) big-endian into a slot, from its bytes or straight from the BigInt (no copy). */
function putScalar(s: { at: number }, k: bigint | Uint8Array): void {
  const m = memory();
  if (k instanceof Uint8Array) {
    if (k.length !== 32) throw new Error("libsecp256k1: a scalar is 32 bytes");
    m.set(k, s.at);
    return;
  }
  for (let i = 31; i >= 0; i--) {
    m[s.at + i] = Number(k & 0xffn);
    k >>= 8n;
  }
}

/** SEC1 compressed (02/03 + x) or uncompressed (04 + x + y) only: libsecp256k1 would also take the hybrid 06/07. */
const sec1 = (P: Uint8Array): boolean =>
  (P.length === 33 && (P[0] === 2 || P[0] === 3)) || (P.length === UNCOMPRESSED && P[0] === 4);

function putPoint(s: { at: number }, P: Uint8Array): void {
  memory().set(P, s.at);
}

/** Zeroes every input and output slot and the stack. */
function scrub(): void {
  const m = memory();
  for (const s of [PRIVATE, TWEAK, HASH, EXTRA, SIGNATURE, XONLY]) m.fill(0, s.at, s.at + s.length);
  m.fill(0, 0, stackTop);
}

function output(ok: number): Uint8Array | undefined {
  const m = memory();
  const out = ok === 1 ? m.slice(PUBLIC.at, PUBLIC.at + UNCOMPRESSED) : undefined;
  m.fill(0, PUBLIC.at, PUBLIC.at + PUBLIC.length);
  m.fill(0, PUBLIC2.at, PUBLIC2.at + PUBLIC2.length);
  return out;
}

/** k·G, uncompressed; k in [1, q) (may be secret). */
export function mulBase(k: bigint | Uint8Array): Uint8Array {
  try {
    putScalar(PRIVATE, k);
    const out = output(lib.pointFromScalar(UNCOMPRESSED));
    if (!out) throw new Error("libsecp256k1: scalar out of range");
    return out;
  } finally {
    scrub();
  }
}

/** k·P, uncompressed; P a valid SEC1 point (33 or 65 bytes), k in [1, q) (may be secret). */
export function mul(P: Uint8Array, k: bigint | Uint8Array): Uint8Array {
  try {
    putPoint(PUBLIC, P);
    putScalar(TWEAK, k);
    const out = output(lib.pointMultiply(P.length, UNCOMPRESSED));
    if (!out) throw new Error("libsecp256k1: point or scalar refused");
    return out;
  } finally {
    scrub();
  }
}

/** The 65-byte form of a SEC1 point (33 or 65 bytes); undefined when it is not a point of the curve. */
export function uncompressed(P: Uint8Array): Uint8Array | undefined {
  if (!sec1(P)) return undefined;
  try {
    putPoint(PUBLIC, P);
    if (lib.isPoint(P.length) !== 1) return output(0);
    putPoint(PUBLIC, P);
    lib.pointCompress(P.length, UNCOMPRESSED);
    return output(1);
  } catch {
    return output(0);
  }
}

/**
 * ECDSA verification of a 64-byte r‖s signature on a 32-byte digest under a SEC1 key: valid only with low S
 * (Bitcoin's rule) and r, s in [1, n); false for anything malformed.
 */
export function verifyEcdsa(signature: Uint8Array, digest: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== 64 || digest.length !== 32) return false;
  if (!sec1(publicKey)) return false;
  try {
    const m = memory();
    m.set(signature, SIGNATURE.at);
    m.set(digest, HASH.at);
    m.set(publicKey, PUBLIC.at);
    return lib.verify(publicKey.length, 1) === 1;
  } catch {
    return false;
  } finally {
    output(0);
    const m = memory();
    m.fill(0, SIGNATURE.at, SIGNATURE.at + SIGNATURE.length);
    m.fill(0, HASH.at, HASH.at + HASH.length);
  }
}

/** A + B, uncompressed, or undefined for the point at infinity; A, B valid SEC1 points. */
export function add(A: Uint8Array, B: Uint8Array): Uint8Array | undefined {
  putPoint(PUBLIC, A);
  putPoint(PUBLIC2, B);
  return output(lib.pointAdd(A.length, B.length, UNCOMPRESSED));
}

/**
 * BIP340 signature of a 32-byte message with a 32-byte secret key and 32 bytes of auxiliary randomness (the
 * nonce is derived from all three, as BIP340 specifies).
 */
export function signSchnorr(message: Uint8Array, secretKey: Uint8Array, aux: Uint8Array): Uint8Array {
  if (message.length !== 32 || secretKey.length !== 32 || aux.length !== 32)
    throw new Error("libsecp256k1: BIP340 signing takes 32-byte message, key and randomness");
  try {
    const m = memory();
    m.set(message, HASH.at);
    m.set(secretKey, PRIVATE.at);
    m.set(aux, EXTRA.at);
    lib.signSchnorr(1);
    return memory().slice(SIGNATURE.at, SIGNATURE.at + SIGNATURE.length);
  } finally {
    scrub();
  }
}

/** BIP340 verification: 64-byte signature, 32-byte message, 32-byte x-only key; false for anything malformed. */
export function verifySchnorr(signature: Uint8Array, message: Uint8Array, xOnlyKey: Uint8Array): boolean {
  if (signature.length !== 64 || message.length !== 32 || xOnlyKey.length !== 32) return false;
  try {
    const m = memory();
    m.set(signature, SIGNATURE.at);
    m.set(message, HASH.at);
    m.set(xOnlyKey, XONLY.at);
    return lib.verifySchnorr() === 1;
  } catch {
    return false; // a key that is not an x coordinate on the curve
  } finally {
    scrub();
  }
}

/** Whether the module's memory holds k in any byte order (big-endian bytes, or little-endian limbs). */
export function traces(k: bigint): boolean {
  const be = Buffer.from(k.toString(16).padStart(64, "0"), "hex");
  const all = Buffer.from(lib.memory.buffer);
  const found = all.indexOf(be) >= 0 || all.indexOf(be.reverse()) >= 0;
  be.fill(0);
  return found;
}

/** Whether secret scalars may be given to this module: its stack is where scrub() zeroes it. */
export const secretsSafe: boolean = (() => {
  if (stackTop <= 0 || stackTop > PRIVATE.at) return false;
  try {
    const k = (BigInt(`0x${randomBytes(32).toString("hex")}`) % (N - 1n)) + 1n;
    const want = Buffer.from(G.multiply(k).toBytes(false));
    const same = want.equals(mulBase(k)) && want.equals(mul(G.toBytes(true), k));
    return same && !traces(k);
  } catch {
    return false;
  }
})();
