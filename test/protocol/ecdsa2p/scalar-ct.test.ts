// Scalar arithmetic on bytes (protocol/ecdsa2p/scalar-ct.ts) against BigInt: products and inverses modulo n on
// random and edge values, the range check, and the rotation built on it.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { modInverse } from "../../../protocol/ecdsa2p/arith.ts";
import { rotateShare } from "../../../protocol/ecdsa2p/rotation.ts";
import { invModN, isScalarInRange, mulModN, randomSecretBytes } from "../../../protocol/ecdsa2p/scalar-ct.ts";
import { bytesToBigInt, N, scalarBytes } from "../../../protocol/encoding.ts";
import { code, rng } from "./helpers.ts";

const random = (): bigint => (bytesToBigInt(randomBytes(32)) % (N - 1n)) + 1n;
const EDGE = [1n, 2n, N - 1n, N - 2n, N >> 1n, (N >> 1n) + 1n, 1n << 255n, (1n << 128n) - 1n, 1n << 128n];

test("a·b mod n on bytes equals BigInt's, edge values included (products up to (n−1)²)", () => {
  const values = [...EDGE, ...Array.from({ length: 200 }, random)];
  const out = new Uint8Array(32);
  for (let i = 0; i < values.length; i++) {
    const a = values[i]!;
    for (const b of [values[(i * 7 + 3) % values.length]!, N - 1n, a]) {
      mulModN(scalarBytes(a), scalarBytes(b), out);
      assert.equal(bytesToBigInt(out), (a * b) % N, `${a} · ${b}`);
    }
  }
});

test("the output may alias an input", () => {
  const a = random();
  const b = random();
  const x = scalarBytes(a);
  mulModN(x, scalarBytes(b), x);
  assert.equal(bytesToBigInt(x), (a * b) % N);
});

test("x⁻¹ mod n on bytes (blinded) equals BigInt's", () => {
  const out = new Uint8Array(32);
  for (const x of [...EDGE, ...Array.from({ length: 50 }, random)]) {
    invModN(scalarBytes(x), rng, out);
    assert.equal(bytesToBigInt(out), modInverse(x, N), `inverse of ${x}`);
  }
});

test("range check and random draw: [1, n) exactly", () => {
  for (const [x, ok] of [
    [0n, false],
    [1n, true],
    [N - 1n, true],
    [N, false],
    [N + 1n, false],
    [(1n << 256n) - 1n, false],
  ] as const)
    assert.equal(isScalarInRange(scalarBytes(x)), ok, `${x}`);
  for (let i = 0; i < 100; i++) {
    const x = bytesToBigInt(randomSecretBytes(rng));
    assert.ok(x > 0n && x < N, "a random secret scalar is in [1, n)");
  }
  // A draw at or above n is rejected and drawn again.
  const draws = [scalarBytes(N), new Uint8Array(32), scalarBytes(5n)];
  assert.equal(bytesToBigInt(randomSecretBytes(() => draws.shift()!)), 5n);
});

test("rotateShare: s2 = t2·x1⁻¹·s1, refuses scalars out of range", () => {
  for (let i = 0; i < 20; i++) {
    const [s1, x1, t2] = [random(), random(), random()];
    const s2 = rotateShare(scalarBytes(s1), scalarBytes(x1), scalarBytes(t2), rng);
    assert.equal(bytesToBigInt(s2), (((t2 * modInverse(x1, N)) % N) * s1) % N);
  }
  const ok = scalarBytes(random());
  assert.throws(() => rotateShare(scalarBytes(0n), ok, ok, rng), code("INVALID_SCALAR"));
  assert.throws(() => rotateShare(ok, scalarBytes(N), ok, rng), code("INVALID_SCALAR"));
  assert.throws(() => rotateShare(ok, ok, new Uint8Array(31), rng), code("INVALID_SCALAR"));
});
