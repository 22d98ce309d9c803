import assert from "node:assert/strict";
import { test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { TransferSenderInitRequest } from "../../proto/gen/statechain.ts";
import { signRequest, verifyRequest } from "../../protocol/auth.ts";
import { decrypt, ECIES_OVERHEAD, eciesPublicKey, encrypt } from "../../protocol/ecies.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import { systemRng } from "../../protocol/rng.ts";

const METHOD = "/statechain.v1.StatechainService/TransferSenderInit";
const now = 1_800_000_000_000;

function fixture() {
  const sk = secp256k1.utils.randomSecretKey();
  const pk = secp256k1.getPublicKey(sk);
  const req = TransferSenderInitRequest.fromPartial({
    statechainId: { txid: Buffer.alloc(32, 7), vout: 1 },
    receiverProofKey: Buffer.from(secp256k1.getPublicKey(secp256k1.utils.randomSecretKey())),
    receiverBackupKey: Buffer.from(secp256k1.getPublicKey(secp256k1.utils.randomSecretKey())),
  });
  return {
    sk,
    pk,
    signed: signRequest(TransferSenderInitRequest, METHOD, req, sk, { nowMs: now, rng: systemRng }),
  };
}

const code = (c: string) => (e: unknown) =>
  e instanceof ProtocolError && e.code === c && e.kind === "unauthenticated";

test("a signed request verifies, also after a wire round trip", () => {
  const { pk, signed } = fixture();
  verifyRequest(TransferSenderInitRequest, METHOD, signed, pk, { nowMs: now });
  const wire = TransferSenderInitRequest.decode(TransferSenderInitRequest.encode(signed).finish());
  verifyRequest(TransferSenderInitRequest, METHOD, wire, pk, { nowMs: now + 1000 });
});

test("any change to the request, method, key or time is refused", () => {
  const { pk, signed } = fixture();
  const other = secp256k1.getPublicKey(secp256k1.utils.randomSecretKey());
  assert.throws(
    () => verifyRequest(TransferSenderInitRequest, METHOD, signed, other, { nowMs: now }),
    code("AUTH_SIGNATURE"),
  );
  assert.throws(
    () => verifyRequest(TransferSenderInitRequest, `${METHOD}x`, signed, pk, { nowMs: now }),
    code("AUTH_SIGNATURE"),
  );
  const tampered = { ...signed, statechainId: { txid: Buffer.alloc(32, 8), vout: 1 } };
  assert.throws(
    () => verifyRequest(TransferSenderInitRequest, METHOD, tampered, pk, { nowMs: now }),
    code("AUTH_SIGNATURE"),
  );
  const moved = { ...signed, auth: { ...signed.auth!, nonce: Buffer.alloc(32, 1) } };
  assert.throws(
    () => verifyRequest(TransferSenderInitRequest, METHOD, moved, pk, { nowMs: now }),
    code("AUTH_SIGNATURE"),
  );
  assert.throws(
    () => verifyRequest(TransferSenderInitRequest, METHOD, signed, pk, { nowMs: now + 6 * 60_000 }),
    code("AUTH_STALE"),
  );
  assert.throws(
    () =>
      verifyRequest(TransferSenderInitRequest, METHOD, { ...signed, auth: undefined }, pk, { nowMs: now }),
    code("AUTH_MISSING"),
  );
  const shortNonce = { ...signed, auth: { ...signed.auth!, nonce: Buffer.alloc(8) } };
  assert.throws(
    () => verifyRequest(TransferSenderInitRequest, METHOD, shortNonce, pk, { nowMs: now }),
    code("AUTH_NONCE"),
  );
});

test("ECIES round trip; wrong key and tampering fail with one typed error", () => {
  const sk = secp256k1.utils.randomSecretKey();
  const pk = secp256k1.getPublicKey(sk);
  const msg = new Uint8Array(32).fill(5);
  const ct = encrypt(pk, msg);
  assert.equal(ct.length, msg.length + ECIES_OVERHEAD);
  assert.deepEqual(decrypt(sk, ct), msg);
  const wrong = secp256k1.utils.randomSecretKey();
  assert.throws(
    () => decrypt(wrong, ct),
    (e: unknown) => e instanceof ProtocolError && e.code === "ECIES_DECRYPT",
  );
  const flipped = new Uint8Array(ct);
  flipped[ct.length - 1]! ^= 1;
  assert.throws(
    () => decrypt(sk, flipped),
    (e: unknown) => e instanceof ProtocolError && e.code === "ECIES_DECRYPT",
  );
  assert.throws(
    () => decrypt(sk, ct.subarray(0, 50)),
    (e: unknown) => e instanceof ProtocolError && e.code === "ECIES_MALFORMED",
  );
  assert.throws(
    () => encrypt(new Uint8Array(33), msg),
    (e: unknown) => e instanceof ProtocolError && e.code === "INVALID_POINT",
  );
});

test("ECIES interoperates with eciesjs in both directions (same wire format)", async () => {
  const ecies = await import("eciesjs");
  for (const size of [1, 32, 2000]) {
    const sk = secp256k1.utils.randomSecretKey();
    const pk = secp256k1.getPublicKey(sk);
    const msg = new Uint8Array(size).map((_, i) => i * 7);
    assert.deepEqual(new Uint8Array(ecies.decrypt(sk, encrypt(pk, msg))), msg, "ours → eciesjs");
    assert.deepEqual(decrypt(sk, ecies.encrypt(pk, msg)), msg, "eciesjs → ours");
  }
});

test("eciesPublicKey is the key's compressed public key; a plaintext is not a view into shared memory", () => {
  for (let i = 0; i < 8; i++) {
    const sk = secp256k1.utils.randomSecretKey();
    const pk = eciesPublicKey(sk);
    assert.deepEqual(Buffer.from(pk), Buffer.from(secp256k1.getPublicKey(sk, true)));
    const plain = decrypt(sk, encrypt(pk, systemRng(32)));
    assert.equal(plain.byteOffset, 0);
    assert.equal(
      plain.buffer.byteLength,
      32,
      "not a slice of Buffer's shared pool, which the caller could not wipe alone",
    );
  }
  assert.throws(() => eciesPublicKey(new Uint8Array(32)));
});
