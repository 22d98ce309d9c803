// Two-party signing: every signature verifies with @noble/curves, the project's verifier and bitcoinjs-lib; a
// malicious owner's partial signature taints the key; replays, bad openings and proofs are refused; after a key
// update the old owner share no longer signs.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import * as bitcoin from "bitcoinjs-lib";
import { writeNat } from "../../../protocol/ecdsa2p/codec.ts";
import { commit } from "../../../protocol/ecdsa2p/commit.ts";
import { Q, randomScalar } from "../../../protocol/ecdsa2p/ec.ts";
import {
  MAX_SIGN_SESSIONS,
  type PartyOneKey,
  type PartyTwoKey,
  p1KeyGenFixed,
  p1SignFinish,
  p1SignStart,
  p2EncryptionNonce,
  p2KeyGenFinish,
  p2KeyGenShare,
  p2SignCommit,
  p2SignFinish,
  p2SignPartial,
  partyOnePublicInfo,
  rotateShare,
  verifyEcdsa,
  wipeKey,
} from "../../../protocol/ecdsa2p/index.ts";
import { modPowBigInt } from "../../../protocol/ecdsa2p/modexp.ts";
import { encrypt, encryptionNonce, paillierFactors } from "../../../protocol/ecdsa2p/paillier.ts";
import { proveDlog } from "../../../protocol/ecdsa2p/proofs/dlog.ts";
import { proveLogStar } from "../../../protocol/ecdsa2p/proofs/logstar.ts";
import { proverOps, verifyRingPedersen } from "../../../protocol/ecdsa2p/ring-pedersen.ts";
import { bytesToBigInt, Point, scalarBytes } from "../../../protocol/encoding.ts";
import { cache, code, deposit, ringPedersen, rng, sid, sign } from "./helpers.ts";

const { p1, p2 } = await deposit();

function verifiesEverywhere(compact: Uint8Array, der: Uint8Array, digest: Uint8Array, key: Point) {
  const pk = key.toBytes(true);
  assert.ok(secp256k1.verify(compact, digest, pk, { prehash: false, lowS: true }), "noble");
  assert.ok(verifyEcdsa(compact, digest, pk), "ours, compact");
  assert.ok(verifyEcdsa(der, digest, pk, { format: "der" }), "ours, DER");
}

test("signatures verify with noble (lowS, prehash false) and ours, are low-S, carry the right recovery id", () => {
  const digests = [rng(32), rng(32), new Uint8Array(32), new Uint8Array(32).fill(0xff), scalarBytes(Q - 1n)];
  for (const digest of digests) {
    const { compact, der, s, recoveryId } = sign(p1, p2, digest);
    verifiesEverywhere(compact, der, digest, p1.sharedPublicKey);
    assert.ok(s <= Q >> 1n, "low-S");
    const recovered = secp256k1.Signature.fromBytes(compact)
      .addRecoveryBit(recoveryId)
      .recoverPublicKey(digest);
    assert.ok(recovered.equals(p1.sharedPublicKey), "recovery id");
  }
});

test("a P2WPKH spend: BIP143 digest from bitcoinjs, signature encoded by script.signature.encode, PSBT finalised", () => {
  const pubkey = p1.sharedPublicKey.toBytes(true);
  const payment = bitcoin.payments.p2wpkh({ pubkey });
  const value = 100_000n;
  const prevTxid = rng(32);
  // Raw transaction and its BIP143 sighash.
  const tx = new bitcoin.Transaction();
  tx.addInput(prevTxid, 0);
  tx.addOutput(payment.output!, value - 500n);
  const scriptCode = bitcoin.payments.p2pkh({ hash: payment.hash! }).output!;
  const digest = tx.hashForWitnessV0(0, scriptCode, value, bitcoin.Transaction.SIGHASH_ALL);
  const { compact } = sign(p1, p2, digest);
  const encoded = bitcoin.script.signature.encode(compact, bitcoin.Transaction.SIGHASH_ALL);
  const decoded = bitcoin.script.signature.decode(encoded);
  assert.equal(decoded.hashType, bitcoin.Transaction.SIGHASH_ALL);
  assert.ok(
    verifyEcdsa(encoded.subarray(0, -1), digest, pubkey, { format: "der" }),
    "the DER signature verifies under the shared key",
  );
  assert.ok(
    secp256k1.verify(decoded.signature, digest, pubkey, { prehash: false }),
    "noble verifies the decoded signature under the shared key",
  );
  // The same through a PSBT whose signer is the two-party protocol.
  const psbt = new bitcoin.Psbt();
  psbt.addInput({ hash: prevTxid, index: 0, witnessUtxo: { script: payment.output!, value } });
  psbt.addOutput({ script: payment.output!, value: value - 500n });
  psbt.signInput(0, { publicKey: pubkey, sign: (hash) => sign(p1, p2, hash).compact });
  const validator = (key: Uint8Array, hash: Uint8Array, sig: Uint8Array) =>
    secp256k1.verify(sig, hash, key, { prehash: false });
  assert.ok(psbt.validateSignaturesOfInput(0, validator), "bitcoinjs validates the PSBT input's signature");
  psbt.finalizeAllInputs();
  const witness = psbt.extractTransaction().ins[0]!.witness;
  assert.equal(witness.length, 2);
  assert.deepEqual(new Uint8Array(witness[1]!), pubkey);
});

test("a precomputed encryption nonce (r^N made ahead) signs the same way", () => {
  const digest = rng(32);
  const sessionId = sid();
  const c = p2SignCommit(p2, { sessionId, digest, rng });
  const s = p1SignStart(p1, { sessionId, digest, ownerCommit: c.msg, rng });
  const nonce = p2EncryptionNonce(p2, rng);
  assert.equal(nonce.rn, modPowBigInt(nonce.r, p2.paillierModulus, p2.paillierModulus ** 2n));
  const partial = p2SignPartial(p2, c.state, s.msg, { rng, encryptionNonce: nonce });
  const sig = p1SignFinish(p1, s.session, partial);
  assert.ok(
    verifyEcdsa(new Uint8Array([...sig.r, ...sig.s]), digest, p1.sharedPublicKey),
    "the two-party signature verifies under the shared key",
  );
});

test("the owner checks the SE's signature: agreed r, recovery id, validity under P", () => {
  const digest = rng(32);
  const run = () => {
    const sessionId = sid();
    const c = p2SignCommit(p2, { sessionId, digest, rng });
    const s = p1SignStart(p1, { sessionId, digest, ownerCommit: c.msg, rng });
    return { state: c.state, sig: p1SignFinish(p1, s.session, p2SignPartial(p2, c.state, s.msg, { rng })) };
  };
  const a = run();
  const b = run();
  // b's signature is valid for the digest, but not the one session a agreed on.
  assert.throws(() => p2SignFinish(p2, a.state, b.sig), /not the one this session agreed on/);
  const c = run();
  assert.throws(
    () => p2SignFinish(p2, c.state, { ...c.sig, recoveryId: c.sig.recoveryId ^ 1 }),
    /recovery id/,
  );
  const d = run();
  const high = scalarBytes(Q - bytesToBigInt(d.sig.s));
  assert.throws(() => p2SignFinish(p2, d.state, { ...d.sig, s: Buffer.from(high) }), /does not verify/);
  // A key whose modulus could not hold the partial signature's plaintext (never from keygen; say, restored
  // from damaged storage) is refused rather than used.
  const weak: PartyTwoKey = { ...p2, paillierModulus: 2n ** 1100n + 1n, nonceEngine: undefined };
  const sessionId = sid();
  const e = p2SignCommit(weak, { sessionId, digest, rng });
  const s = p1SignStart(p1, { sessionId, digest, ownerCommit: e.msg, rng });
  assert.throws(() => p2SignPartial(weak, e.state, s.msg, { rng }), code("PAILLIER_MODULUS_TOO_SMALL"));
});

/** Runs signing up to the owner's partial and lets the test replace it. */
function withPartial(
  one: PartyOneKey,
  two: PartyTwoKey,
  edit: (m: ReturnType<typeof p2SignPartial>) => ReturnType<typeof p2SignPartial>,
) {
  const digest = rng(32);
  const sessionId = sid();
  const c = p2SignCommit(two, { sessionId, digest, rng });
  const s = p1SignStart(one, { sessionId, digest, ownerCommit: c.msg, rng });
  const partial = p2SignPartial(two, c.state, s.msg, { rng });
  return () => p1SignFinish(one, s.session, edit(partial));
}

test("refused without tainting: opening mismatch, oversized or zero c3, replayed or finished session", async () => {
  const d = await deposit();
  const other = Buffer.from(Point.BASE.multiply(7n).toBytes(true));
  assert.throws(
    withPartial(d.p1, d.p2, (m) => ({ ...m, publicNonce: other })),
    code("COMMITMENT_MISMATCH"),
  );
  assert.throws(
    withPartial(d.p1, d.p2, (m) => ({ ...m, blind: Buffer.from(rng(32)) })),
    code("COMMITMENT_MISMATCH"),
  );
  const n2bytes = writeNat(d.p1.paillier.n * d.p1.paillier.n).length;
  assert.throws(
    withPartial(d.p1, d.p2, (m) => ({ ...m, partialSignature: Buffer.alloc(n2bytes + 1, 1) })),
    code("NUMBER_TOO_LARGE"),
  );
  assert.throws(
    withPartial(d.p1, d.p2, (m) => ({ ...m, partialSignature: Buffer.alloc(0) })),
    code("NUMBER_OUT_OF_RANGE"),
  );
  // Replay of a session id with the same key.
  const digest = rng(32);
  const sessionId = sid();
  const c = p2SignCommit(d.p2, { sessionId, digest, rng });
  const s = p1SignStart(d.p1, { sessionId, digest, ownerCommit: c.msg, rng });
  assert.throws(
    () => p1SignStart(d.p1, { sessionId, digest, ownerCommit: c.msg, rng }),
    code("SESSION_REPLAY"),
  );
  const partial = p2SignPartial(d.p2, c.state, s.msg, { rng });
  p1SignFinish(d.p1, s.session, partial);
  assert.ok(
    s.session.nonce.every((b) => b === 0),
    "k1 is wiped",
  );
  assert.throws(() => p1SignFinish(d.p1, s.session, partial), code("SIGN_SESSION_USED"));
  assert.throws(() => p2SignPartial(d.p2, c.state, s.msg, { rng }), code("SIGN_STATE_USED"));
  assert.equal(d.p1.tainted, false);
  sign(d.p1, d.p2, rng(32)); // still signs
});

test("refused: a bad owner nonce proof (committed), a digest the parties disagree on, malformed inputs", async () => {
  const digest = rng(32);
  const sessionId = sid();
  // A malicious owner commits to R2 with a proof made for another session.
  const k2 = randomScalar(rng);
  const R2 = Point.BASE.multiply(k2);
  const proof = proveDlog(k2, R2, { sessionId: sid(), role: "owner-nonce", bind: [digest] }, rng);
  const { commitment, blind } = commit(
    "sign",
    sessionId,
    [digest, R2.toBytes(true), proof.commitment, proof.response],
    rng,
  );
  const s = p1SignStart(p1, { sessionId, digest, ownerCommit: { commitment: Buffer.from(commitment) }, rng });
  assert.throws(
    () =>
      p1SignFinish(p1, s.session, {
        publicNonce: Buffer.from(R2.toBytes(true)),
        proof,
        blind: Buffer.from(blind),
        partialSignature: writeNat(12345n),
      }),
    code("DLOG_PROOF_INVALID"),
  );
  // The host hands the SE a different digest: the owner sees the SE's nonce proof fail before sending c3.
  const sid2 = sid();
  const c = p2SignCommit(p2, { sessionId: sid2, digest, rng });
  const wrong = p1SignStart(p1, { sessionId: sid2, digest: rng(32), ownerCommit: c.msg, rng });
  assert.throws(() => p2SignPartial(p2, c.state, wrong.msg, { rng }), code("DLOG_PROOF_INVALID"));
  const ownerCommit = c.msg;
  assert.throws(
    () => p1SignStart(p1, { sessionId: sid(), digest: rng(31), ownerCommit, rng }),
    code("DIGEST_LENGTH"),
  );
  assert.throws(
    () => p1SignStart(p1, { sessionId: rng(8), digest, ownerCommit, rng }),
    code("SESSION_ID_LENGTH"),
  );
  assert.throws(
    () => p1SignStart(p1, { sessionId: sid(), digest, ownerCommit: { commitment: Buffer.alloc(31) }, rng }),
    code("COMMITMENT_LENGTH"),
  );
  assert.equal(p1.tainted, false);
});

test("a malicious owner's partial signature taints the key for good (BitForge)", async () => {
  const d = await deposit();
  const n = d.p1.paillier.n;
  // c3 encrypting a value unrelated to the key: the finished signature cannot verify.
  const forged = writeNat(encrypt(n, 123456789n, encryptionNonce(n, rng)));
  assert.throws(
    withPartial(d.p1, d.p2, (m) => ({ ...m, partialSignature: forged })),
    code("SIGNATURE_INVALID"),
  );
  assert.equal(d.p1.tainted, true);
  assert.equal(partyOnePublicInfo(d.p1).tainted, true);
  const sessionId = sid();
  const digest = rng(32);
  const c = p2SignCommit(d.p2, { sessionId, digest, rng });
  assert.throws(() => p1SignStart(d.p1, { sessionId, digest, ownerCommit: c.msg, rng }), code("KEY_TAINTED"));
  // Sessions opened before the taint cannot finish either: one bit per key, at most.
  const f = await deposit();
  const honest = withPartial(f.p1, f.p2, (m) => m);
  const nf = f.p1.paillier.n;
  const forgedF = writeNat(encrypt(nf, 987654321n, encryptionNonce(nf, rng)));
  assert.throws(
    withPartial(f.p1, f.p2, (m) => ({ ...m, partialSignature: forgedF })),
    code("SIGNATURE_INVALID"),
  );
  assert.throws(honest, code("KEY_TAINTED"));
  // A ciphertext sharing a factor with N (decryption itself fails) taints too.
  const e = await deposit();
  const notUnit = writeNat(paillierFactors(e.p1.paillier.secret).p);
  assert.throws(
    withPartial(e.p1, e.p2, (m) => ({ ...m, partialSignature: notUnit })),
    code("SIGNATURE_INVALID"),
  );
  assert.equal(e.p1.tainted, true);
});

test("per-key session record is bounded; a wiped key refuses to sign", async () => {
  const d = await deposit();
  for (let i = d.p1.usedSignSessions.size; i < MAX_SIGN_SESSIONS; i++)
    d.p1.usedSignSessions.add(`filler-${i}`);
  const c = p2SignCommit(d.p2, { sessionId: sid(), digest: rng(32), rng });
  assert.throws(
    () => p1SignStart(d.p1, { sessionId: sid(), digest: rng(32), ownerCommit: c.msg, rng }),
    code("SIGN_SESSIONS_EXHAUSTED"),
  );
  wipeKey(d.p1);
  assert.ok(
    d.p1.share.every((b) => b === 0) && d.p1.paillier.secret.p.every((b) => b === 0),
    "wiping the key zeroes the owner's share and Paillier p",
  );
  assert.throws(
    () => p1SignStart(d.p1, { sessionId: sid(), digest: rng(32), ownerCommit: c.msg, rng }),
    code("KEY_WIPED"),
  );
  wipeKey(d.p2);
  assert.throws(() => p2SignCommit(d.p2, { sessionId: sid(), digest: rng(32), rng }), code("KEY_WIPED"));
});

test("after a key update the old owner share and the new SE share cannot produce a valid signature", async () => {
  const d = await deposit();
  const o1 = bytesToBigInt(d.p2.share);
  const x1 = randomScalar(rng);
  const o2 = randomScalar(rng);
  const t2 = (((o1 * x1) % Q) * Point.Fn.inv(o2)) % Q;
  const sessionId = sid();
  const two = p2KeyGenShare({ sessionId, ringPedersen: ringPedersen(), rng, share: scalarBytes(o2) });
  const { key: newSe, msg } = await p1KeyGenFixed({
    sessionId,
    share: rotateShare(d.p1.share, scalarBytes(x1), scalarBytes(t2), rng),
    ownerShare: two.msg,
    sharedPublicKey: d.p1.sharedPublicKey,
    rng,
    ringPedersenCache: cache,
  });
  wipeKey(d.p1); // the enclave erases s1
  const receiver = p2KeyGenFinish(two.state, msg, { expectedSharedKey: d.p1.sharedPublicKey });
  const digest = rng(32);
  const fresh = sign(newSe, receiver, digest);
  verifiesEverywhere(fresh.compact, fresh.der, digest, d.p1.sharedPublicKey);
  // The previous owner, holding o1, against the new SE share (it knows the new c_key and N from the host):
  assert.ok(!newSe.sePublicShare.multiply(o1).equals(d.p1.sharedPublicKey), "o1·S2 ≠ P");
  const oldOwner: PartyTwoKey = { ...receiver, share: scalarBytes(o1), wiped: false };
  assert.throws(
    withPartial(newSe, oldOwner, (m) => m),
    code("SIGNATURE_INVALID"),
  );
  assert.equal(newSe.tainted, true);
  // ...and the old SE share is gone.
  assert.throws(() => sign(d.p1, d.p2, digest), code("KEY_WIPED"));
});

test("c_key = Enc(s + q) with a consistent proof passes (Π^log* has slack), and ρ keeps signing correct", async () => {
  const d = await deposit({
    tamper: (m, one, sessionId) => {
      const n0 = one.paillier.n;
      const x = bytesToBigInt(one.share) + Q;
      const nonce = encryptionNonce(n0, rng);
      const c = encrypt(n0, x, nonce);
      m.encryptedShare = writeNat(c);
      const ops = proverOps(verifyRingPedersen(ringPedersen().params, cache));
      m.shareProof = proveLogStar({ sessionId, n0, c, X: one.sePublicShare }, { x, rho: nonce.r }, ops, rng);
    },
  });
  const digest = rng(32);
  const { compact, der } = sign(d.p1, d.p2, digest);
  verifiesEverywhere(compact, der, digest, d.p1.sharedPublicKey);
});

test("neither party inverts its secret nonce in variable time: only a blinded k·β meets the inversion (audit #18.10)", () => {
  // noble's field object is frozen (no spying on Fn.inv): the rule is checked on the source, every inversion in
  // the two parties' signing code taking a blinded product or going through scalar-ct's invModN.
  for (const file of ["party-one.ts", "party-two.ts", "holder.ts", "signer.ts"]) {
    const src = readFileSync(new URL(`../../../protocol/ecdsa2p/${file}`, import.meta.url), "utf8");
    for (const m of src.matchAll(/Fn\.inv\(([^)]*)\)/g)) {
      assert.match(m[1]!, /\*\s*beta/, `${file}: Fn.inv(${m[1]}) inverts an unblinded value`);
    }
    assert.doesNotMatch(src, /modInverse\(\s*k[12]?\b/, `${file}: a nonce is inverted unblinded`);
  }
  // And the blinded inversion still gives k⁻¹: signatures verify (the other tests here), here once more.
  const digest = rng(32);
  const { compact } = sign(p1, p2, digest);
  assert.ok(
    verifyEcdsa(compact, digest, p1.sharedPublicKey.toBytes(true)),
    "the two-party signature verifies under the shared key",
  );
});
