// Arithmetic modulo the curve order n on secret scalars held as 32 big-endian bytes, without ever making a BigInt
// (or any other V8 heap object) of them: the key update turns s1, x1, t2 into s2 this way, so erasing their bytes
// erases them, with no copy left for the garbage collector to free (and maybe not clear) later.
//
// Limbs are 16 bits, in typed arrays over ArrayBuffers of their own (outside the V8 heap, never moved: see
// secretBytes), zeroed before they are dropped; products of limbs fit a double exactly. The reduction and the
// final subtraction run the same steps whatever the values. The one inversion is blinded: x⁻¹ = β·(x·β)⁻¹ with β
// random, so the BigInt inversion only ever sees x·β, uniform and independent of x.
import { bigIntToBytes, bytesToBigInt, N } from "../encoding.ts";
import type { Rng } from "../rng.ts";
import { modInverse } from "./arith.ts";
import { secretBytes } from "./secret.ts";

const LIMBS = 16; // 16 × 16 bits = 256
const RADIX = 65536;

const limbsOf = (x: bigint, count: number): Float64Array => {
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    out[i] = Number(x & 0xffffn);
    x >>= 16n;
  }
  return out;
};
/** n, and c = 2^256 − n (129 bits): x·2^256 ≡ x·c (mod n). Public constants. */
const N_LIMBS = limbsOf(N, LIMBS);
const C_LIMBS = limbsOf((1n << 256n) - N, 9);

const scratch = (length: number): Float64Array => new Float64Array(new ArrayBuffer(length * 8));

function fromBytes(b: Uint8Array, out: Float64Array): void {
  for (let i = 0; i < LIMBS; i++) out[i] = b[31 - 2 * i]! + 256 * b[30 - 2 * i]!;
}

function toBytes(x: Float64Array, out: Uint8Array): void {
  for (let i = 0; i < LIMBS; i++) {
    out[31 - 2 * i] = x[i]! % 256;
    out[30 - 2 * i] = Math.floor(x[i]! / 256);
  }
}

/** Carries x (any non-negative limbs below 2^53) into 16-bit limbs, in place; x must have room for the result. */
function normalise(x: Float64Array): void {
  let carry = 0;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]! + carry;
    carry = Math.floor(v / RADIX);
    x[i] = v - carry * RADIX;
  }
}

/**
 * x mod n for x of 32 limbs (< 2^512), in place (the result in the low 16 limbs, the high ones zero). Four folds
 * x = H·2^256 + L ↦ L + H·c bring any 512-bit value below 2^256 (bounds: 2^385, 2^259, 2^133 + 2^256, then H = 0),
 * and one conditional subtraction of n finishes (2^256 < 2n).
 */
function reduce(x: Float64Array, t: Float64Array): void {
  for (let round = 0; round < 4; round++) {
    t.fill(0);
    for (let i = 0; i < LIMBS; i++) t[i] = x[i]!;
    for (let i = 0; i < LIMBS; i++) for (let j = 0; j < 9; j++) t[i + j] += x[LIMBS + i]! * C_LIMBS[j]!;
    normalise(t);
    for (let i = 0; i < 2 * LIMBS; i++) x[i] = t[i]!;
  }
  // d = x − n; keep d when there was no borrow, else x (selected arithmetically, no branch on the value).
  let borrow = 0;
  for (let i = 0; i < LIMBS; i++) {
    const v = x[i]! - N_LIMBS[i]! - borrow;
    borrow = v < 0 ? 1 : 0;
    t[i] = v + borrow * RADIX;
  }
  const keep = 1 - borrow;
  for (let i = 0; i < LIMBS; i++) x[i] = keep * t[i]! + borrow * x[i]!;
  t.fill(0);
}

/** a·b mod n on 32-byte big-endian scalars (each below n); writes into `out`. */
export function mulModN(a: Uint8Array, b: Uint8Array, out: Uint8Array): void {
  const x = scratch(LIMBS);
  const y = scratch(LIMBS);
  const p = scratch(2 * LIMBS);
  const t = scratch(2 * LIMBS);
  try {
    fromBytes(a, x);
    fromBytes(b, y);
    for (let i = 0; i < LIMBS; i++) for (let j = 0; j < LIMBS; j++) p[i + j] += x[i]! * y[j]!;
    normalise(p);
    reduce(p, t);
    toBytes(p, out);
  } finally {
    x.fill(0);
    y.fill(0);
    p.fill(0);
    t.fill(0);
  }
}

/** A fresh secret scalar in [1, n) drawn as bytes into memory of its own (no BigInt of it is ever made). */
export function randomSecretBytes(rng: Rng): Uint8Array {
  const out = secretBytes(32);
  for (;;) {
    const draw = rng(32);
    out.set(draw);
    draw.fill(0);
    if (isScalarInRange(out)) return out;
  }
}

/** 0 < b < n for a 32-byte big-endian b. */
export function isScalarInRange(b: Uint8Array): boolean {
  let nonZero = 0;
  for (let i = 0; i < 32; i++) nonZero |= b[i]!;
  return nonZero !== 0 && below(b, N_BYTES);
}
const N_BYTES = bigIntToBytes(N, 32);

/** a < b for 32-byte big-endian numbers, comparing every byte. */
function below(a: Uint8Array, b: Uint8Array): boolean {
  let result = 0; // −1 below, 1 above, 0 equal so far
  for (let i = 0; i < 32; i++) {
    const d = a[i]! - b[i]!;
    const undecided = result === 0 ? 1 : 0;
    result += undecided * Math.sign(d);
  }
  return result < 0;
}

/** x⁻¹ mod n for a secret x in [1, n), blinded: only x·β (uniform, independent of x) meets BigInt. */
export function invModN(x: Uint8Array, rng: Rng, out: Uint8Array): void {
  const beta = randomSecretBytes(rng);
  const blinded = secretBytes(32);
  try {
    mulModN(x, beta, blinded);
    const inverse = bigIntToBytes(modInverse(bytesToBigInt(blinded), N), 32);
    mulModN(beta, inverse, out);
  } finally {
    beta.fill(0);
    blinded.fill(0);
  }
}
