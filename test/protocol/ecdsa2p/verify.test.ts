// The project's ECDSA verifier against Wycheproof's secp256k1/SHA-256 Bitcoin vectors (strict DER per BIP66,
// low-S), plus DER encoding round trips and the rules one by one.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { decodeDer, ecdsaVerifyPoint, encodeDer, verifyEcdsa } from "../../../protocol/ecdsa2p/verify.ts";
import { code, rng } from "./helpers.ts";

const root = path.resolve(import.meta.dirname, "../../..");
const vectors = JSON.parse(
  readFileSync(
    path.resolve(root, "../shared/fixtures/wycheproof/ecdsa_secp256k1_sha256_bitcoin_test.json"),
    "utf8",
  ),
) as {
  numberOfTests: number;
  testGroups: {
    publicKey: { uncompressed: string };
    tests: {
      tcId: number;
      comment: string;
      msg: string;
      sig: string;
      result: "valid" | "invalid" | "acceptable";
    }[];
  }[];
};
const hex = (h: string) => new Uint8Array(Buffer.from(h, "hex"));

test("every Wycheproof secp256k1 Bitcoin vector gets its expected verdict", () => {
  let count = 0;
  const wrong: string[] = [];
  for (const group of vectors.testGroups) {
    const pk = hex(group.publicKey.uncompressed);
    for (const t of group.tests) {
      count++;
      const ok = verifyEcdsa(hex(t.sig), sha256(hex(t.msg)), pk, { format: "der" });
      if (ok !== (t.result === "valid")) wrong.push(`#${t.tcId} (${t.comment}): got ${ok}, want ${t.result}`);
    }
  }
  assert.equal(count, vectors.numberOfTests);
  assert.deepEqual(wrong, []);
});

test("high-S is refused unless lowS: false; compact and DER forms verify alike", () => {
  const sk = secp256k1.utils.randomSecretKey();
  const pk = secp256k1.getPublicKey(sk);
  const digest = rng(32);
  const compact = secp256k1.sign(digest, sk, { prehash: false });
  const sig = secp256k1.Signature.fromBytes(compact);
  const high = new secp256k1.Signature(sig.r, secp256k1.Point.Fn.ORDER - sig.s).toBytes();
  assert.ok(verifyEcdsa(compact, digest, pk), "a compact low-s signature verifies");
  assert.ok(verifyEcdsa(encodeDer(sig), digest, pk, { format: "der" }), "the DER form verifies");
  assert.ok(!verifyEcdsa(high, digest, pk), "a high-s signature is refused by default");
  assert.ok(verifyEcdsa(high, digest, pk, { lowS: false }), "a high-s signature verifies with lowS: false");
  assert.ok(!verifyEcdsa(compact, rng(32), pk), "a signature over another digest is refused");
  assert.ok(
    !verifyEcdsa(compact, digest, secp256k1.getPublicKey(secp256k1.utils.randomSecretKey())),
    "a signature under another key is refused",
  );
  assert.ok(
    !verifyEcdsa(compact, digest, new Uint8Array(33)),
    "33 zero bytes (not a point) as the key are refused",
  );
});

test("r and s outside [1, n) are invalid, never an exception, also when the range is all that is wrong", () => {
  const sk = secp256k1.utils.randomSecretKey();
  const P = secp256k1.Point.fromBytes(secp256k1.getPublicKey(sk));
  const digest = rng(32);
  const sig = secp256k1.Signature.fromBytes(secp256k1.sign(digest, sk, { prehash: false }));
  const n = secp256k1.Point.Fn.ORDER;
  assert.ok(
    ecdsaVerifyPoint({ r: sig.r, s: sig.s }, digest, P),
    "the signature verifies against the public point",
  );
  for (const [r, s] of [
    [0n, sig.s],
    [sig.r, 0n],
    [sig.r, n],
    [sig.r, sig.s + n],
    [sig.r + n, sig.s],
    [n, sig.s],
  ] as [bigint, bigint][]) {
    assert.equal(ecdsaVerifyPoint({ r, s }, digest, P, { lowS: false }), undefined);
  }
});

test("DER: encode/decode round trip, and each BIP66 rule refuses its violation", () => {
  for (let i = 0; i < 50; i++) {
    const r = BigInt(`0x${Buffer.from(rng(32)).toString("hex")}`) >> BigInt(i * 4);
    const s = BigInt(`0x${Buffer.from(rng(32)).toString("hex")}`) | 1n;
    assert.deepEqual(decodeDer(encodeDer({ r: r || 1n, s })), { r: r || 1n, s });
  }
  const good = encodeDer({ r: 0x80n, s: 1n }); // 30 07 02 02 00 80 02 01 01
  assert.deepEqual([...good], [0x30, 7, 2, 2, 0, 0x80, 2, 1, 1]);
  const bad: [string, number[]][] = [
    ["not a SEQUENCE", [0x31, 7, 2, 2, 0, 0x80, 2, 1, 1]],
    ["SEQUENCE length", [0x30, 8, 2, 2, 0, 0x80, 2, 1, 1]],
    ["r is not an INTEGER", [0x30, 7, 3, 2, 0, 0x80, 2, 1, 1]],
    ["r is negative", [0x30, 6, 2, 1, 0x80, 2, 1, 1]],
    ["unnecessary leading zero", [0x30, 7, 2, 2, 0, 0x7f, 2, 1, 1]],
    ["s is empty", [0x30, 6, 2, 2, 0, 0x80, 2, 0]],
    ["lengths of r and s", [0x30, 7, 2, 2, 0, 0x80, 2, 2, 1]],
    ["length", [0x30, 4, 2, 0, 2, 0]],
  ];
  for (const [rule, bytes] of bad)
    assert.throws(() => decodeDer(new Uint8Array(bytes)), code("DER_INVALID"), rule);
});
