import assert from "node:assert/strict";
import { test } from "node:test";
import { deriveKey, MIN_SCRYPT_N, newKdfParams, open, seal } from "../../client/secret-box.ts";

test("sealed values open only with the same key, the same label and unaltered bytes", async () => {
  const kdf = newKdfParams(MIN_SCRYPT_N);
  const key = await deriveKey("a passphrase", kdf);
  assert.deepEqual(await deriveKey("a passphrase", kdf), key, "deterministic for a salt");
  const secret = Buffer.from("the owner's share");
  const box = seal(key, secret, "coin/1/share");
  assert.ok(!box.includes(secret), "the sealed box does not contain the secret in clear");
  assert.notDeepEqual(seal(key, secret, "coin/1/share"), box, "a fresh IV every time");
  assert.deepEqual(open(key, box, "coin/1/share"), secret);
  const wrong = await deriveKey("another passphrase", kdf);
  const otherSalt = await deriveKey("a passphrase", newKdfParams(MIN_SCRYPT_N));
  for (const [k, b, label] of [
    [wrong, box, "coin/1/share"],
    [otherSalt, box, "coin/1/share"],
    [key, box, "coin/2/share"],
    [key, Buffer.concat([box.subarray(0, -1), Buffer.of(box[box.length - 1]! ^ 1)]), "coin/1/share"],
    [key, box.subarray(0, 20), "coin/1/share"],
  ] as const)
    assert.throws(
      () => open(k, b, label),
      (e: Error & { code?: string }) => e.code === "WRONG_PASSPHRASE",
    );
});

test("scrypt costs below 2^15 and empty passphrases are refused", async () => {
  assert.throws(() => newKdfParams(2 ** 14), /power of two/);
  await assert.rejects(deriveKey("x", { ...newKdfParams(MIN_SCRYPT_N), N: 3 * 2 ** 15 }), /power of two/);
  await assert.rejects(deriveKey("", newKdfParams(MIN_SCRYPT_N)), /empty/);
});
