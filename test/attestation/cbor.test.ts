import assert from "node:assert/strict";
import { test } from "node:test";
import { encode as cbor2Encode } from "cbor2";
import { CborError, type CborValue, decodeCbor, encodeCbor } from "../../attestation/cbor.ts";

const hex = (s: string) => new Uint8Array(Buffer.from(s.replace(/\s+/g, ""), "hex"));
const rejects = (h: string, re: RegExp, opts = {}) =>
  assert.throws(
    () => decodeCbor(hex(h), opts),
    (e: unknown) => e instanceof CborError && re.test(e.message),
  );

test("decodes the basic types", () => {
  assert.equal(decodeCbor(hex("00")), 0);
  assert.equal(decodeCbor(hex("1903e8")), 1000);
  assert.equal(decodeCbor(hex("3903e7")), -1000);
  assert.equal(decodeCbor(hex("1b0000019191cceb42")), 0x19191cceb42);
  assert.deepEqual(decodeCbor(hex("43010203")), new Uint8Array([1, 2, 3]));
  assert.equal(decodeCbor(hex("6449455446")), "IETF");
  assert.deepEqual(decodeCbor(hex("83010203")), [1, 2, 3]);
  assert.deepEqual(
    decodeCbor(hex("a201020304")),
    new Map([
      [1, 2],
      [3, 4],
    ]),
  );
  assert.deepEqual(decodeCbor(hex("d24100")), { tag: 18, value: new Uint8Array([0]) });
  assert.equal(decodeCbor(hex("f6")), null);
  assert.equal(decodeCbor(hex("f5")), true);
  assert.equal(decodeCbor(hex("f4")), false);
});

test("refuses duplicate map keys, also in indefinite-length maps", () => {
  rejects("a2 01 02 01 03", /duplicate CBOR map key 1/);
  rejects("a2 6161 01 6161 02", /duplicate CBOR map key "a"/);
  rejects("bf 01 02 01 03 ff", /duplicate/, { allowIndefiniteMaps: true });
});

test("refuses trailing bytes and truncation", () => {
  rejects("01 00", /1 trailing bytes/);
  rejects("a1 01", /ends in the middle/);
  rejects("43 0102", /ends in the middle/);
  rejects("1a 0001", /ends in the middle/);
});

test("indefinite-length maps only when allowed; indefinite strings and arrays never", () => {
  rejects("bf 01 02 ff", /indefinite-length map is not accepted/);
  assert.deepEqual(
    decodeCbor(hex("bf 01 02 03 04 ff"), { allowIndefiniteMaps: true }),
    new Map([
      [1, 2],
      [3, 4],
    ]),
  );
  rejects("bf 01 02", /not terminated/, { allowIndefiniteMaps: true });
  rejects("bf 01 02 ff", /not accepted/, { allowIndefiniteMaps: true, canonical: true });
  rejects("5f 41 00 ff", /indefinite-length byte string/);
  rejects("7f 61 61 ff", /indefinite-length text string/);
  rejects("9f 01 ff", /indefinite-length array/);
  rejects("ff", /unexpected CBOR break/);
});

test("refuses floats, undefined, unknown simple values, reserved heads and non-text/int keys", () => {
  rejects("f93c00", /floating-point/);
  rejects("fa3f800000", /floating-point/);
  rejects("f7", /simple value 23/);
  rejects("f820", /simple value 24/);
  rejects("1c", /reserved/);
  rejects("a1 41 00 01", /keys must be integers or text/);
  rejects("a1 f6 01", /keys must be integers or text/);
});

test("enforces size limits and depth", () => {
  rejects("45 0102030405", /exceeds the limit of 4/, { maxLength: 4 });
  rejects("83 01 02 03", /array of 3 exceeds the limit of 2/, { maxItems: 2 });
  rejects("a3 01 01 02 02 03 03", /map of 3 entries/, { maxItems: 2 });
  rejects("bf 01 01 02 02 03 03 ff", /more than 2 entries/, { maxItems: 2, allowIndefiniteMaps: true });
  rejects("81 81 81 00", /deeper than 2/, { maxDepth: 2 });
  // A length far beyond the input is refused before allocating anything.
  rejects("5b 00000000 ffffffff", /exceeds the limit/);
  rejects("1b 0020000000000000", /too large/);
});

test("text strings must be valid UTF-8", () => {
  rejects("62 c328", /UTF-8/);
  assert.equal(decodeCbor(hex("62 c3a9")), "é");
});

test("canonical mode requires shortest-form heads", () => {
  rejects("1817", /shortest form/, { canonical: true });
  rejects("190017", /shortest form/, { canonical: true });
  rejects("1a000000ff", /shortest form/, { canonical: true });
  rejects("1b00000000ffffffff", /shortest form/, { canonical: true });
  rejects("5801 00", /shortest form/, { canonical: true });
  assert.equal(decodeCbor(hex("1818"), { canonical: true }), 24);
  assert.equal(decodeCbor(hex("1817")), 23, "non-canonical forms are fine outside canonical mode");
});

test("the encoder is deterministic, shortest-form, and agrees with cbor2 on what both write", () => {
  const values: CborValue[] = [
    0,
    23,
    24,
    255,
    256,
    65535,
    65536,
    2 ** 32 - 1,
    2 ** 32,
    Number.MAX_SAFE_INTEGER,
    -1,
    -24,
    -25,
    -(2 ** 40),
    "",
    "statechain",
    new Uint8Array(0),
    new Uint8Array(300).fill(7),
    [1, [2, [3]]],
    null,
    true,
    false,
  ];
  for (const v of values) {
    const ours = encodeCbor(v);
    assert.deepEqual(Buffer.from(ours), Buffer.from(cbor2Encode(v)), `encoding of ${String(v)}`);
    assert.deepEqual(decodeCbor(ours, { canonical: true, maxLength: 1000 }), v);
  }
  const m = new Map<string | number, CborValue>([
    ["z", 1],
    ["a", new Uint8Array([1])],
    [3, null],
  ]);
  const bytes = encodeCbor(m);
  assert.equal(
    Buffer.from(bytes).toString("hex"),
    "a3617a0161614101 03f6".replace(" ", ""),
    "keys keep insertion order",
  );
  assert.deepEqual(decodeCbor(bytes), m);
  assert.deepEqual(Buffer.from(encodeCbor({ tag: 18, value: [] })), Buffer.from("d280", "hex"));
  assert.throws(() => encodeCbor(1.5), /safe integers/);
});
