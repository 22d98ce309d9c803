import assert from "node:assert/strict";
import { test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { bech32, bech32m } from "@scure/base";
import { decodeReceiveAddress, encodeReceiveAddress, type WalletNetwork } from "../../client/address.ts";

const key = (i: number) => Buffer.from(secp256k1.getPublicKey(Buffer.alloc(32, i), true));
const A = { proofKey: key(1), backupKey: key(2) };

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

const raw = (hrp: string, payload: Uint8Array, coder = bech32m) =>
  coder.encode(hrp, coder.toWords(payload), false);

test("addresses round-trip on every network, with the network's prefix", () => {
  for (const [network, prefix] of [
    ["bitcoin", "sc1"],
    ["testnet", "tsc1"],
    ["signet", "tsc1"],
    ["regtest", "rsc1"],
  ] as const) {
    const a = encodeReceiveAddress(A, network);
    assert.ok(a.startsWith(prefix), a);
    assert.equal(a.length, prefix.length + 108 + 6);
    const d = decodeReceiveAddress(a, network);
    assert.deepEqual(Buffer.from(d.proofKey), A.proofKey);
    assert.deepEqual(Buffer.from(d.backupKey), A.backupKey);
    assert.deepEqual(decodeReceiveAddress(a.toUpperCase(), network).proofKey, d.proofKey, "case-insensitive");
  }
});

test("a changed character fails the checksum, anywhere in the address", () => {
  const a = encodeReceiveAddress(A, "regtest");
  for (const i of [4, 20, 60, 100, a.length - 1]) {
    const c = a[i] === "q" ? "p" : "q";
    assert.equal(
      code(() => decodeReceiveAddress(a.slice(0, i) + c + a.slice(i + 1), "regtest")),
      "ADDRESS_CHECKSUM",
    );
  }
  // Same payload under bech32 (not bech32m): a different checksum constant.
  const payload = Buffer.concat([Buffer.of(0), A.proofKey, A.backupKey]);
  assert.equal(
    code(() => decodeReceiveAddress(raw("rsc", payload, bech32), "regtest")),
    "ADDRESS_CHECKSUM",
  );
});

test("network, prefix, version, length and both points are checked", () => {
  const a = encodeReceiveAddress(A, "regtest");
  for (const other of ["bitcoin", "testnet"] as WalletNetwork[])
    assert.equal(
      code(() => decodeReceiveAddress(a, other)),
      "ADDRESS_NETWORK",
    );
  const payload = Buffer.concat([Buffer.of(0), A.proofKey, A.backupKey]);
  assert.equal(
    code(() => decodeReceiveAddress(raw("bc", payload), "regtest")),
    "ADDRESS_PREFIX",
  );
  assert.equal(
    code(() =>
      decodeReceiveAddress(raw("rsc", Buffer.concat([Buffer.of(1), payload.subarray(1)])), "regtest"),
    ),
    "ADDRESS_VERSION",
  );
  assert.equal(
    code(() => decodeReceiveAddress(raw("rsc", payload.subarray(0, 66)), "regtest")),
    "ADDRESS_LENGTH",
  );
  // x = 5 is not the x-coordinate of any secp256k1 point (5³ + 7 = 132 is not a square mod p).
  const offCurve = Buffer.concat([Buffer.of(2), Buffer.alloc(31), Buffer.of(5)]);
  for (const bad of [
    Buffer.concat([Buffer.of(0), offCurve, A.backupKey]),
    Buffer.concat([Buffer.of(0), A.proofKey, offCurve]),
    Buffer.concat([Buffer.of(0), Buffer.of(4), A.proofKey.subarray(1), A.backupKey]),
  ])
    assert.equal(
      code(() => decodeReceiveAddress(raw("rsc", bad), "regtest")),
      "ADDRESS_POINT",
    );
  assert.throws(() => encodeReceiveAddress({ proofKey: offCurve, backupKey: A.backupKey }, "regtest"));
});
