// Two-party signing with the owner as Paillier holder (holder.ts) and the enclave as homomorphic signer
// (signer.ts): every signature verifies with @noble/curves, the project's verifier and bitcoinjs-lib; refusals
// that must not taint the owner's key; a taint that stops sessions opened before it; bounded and wiped keys; and
// after a key update the previous owner's share and Paillier key sign nothing. roles.test.ts has the threat rows
// of DESIGN.md section 3.1 (the host altering c3, a malicious owner's modulus and c_key, the taint itself).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import * as bitcoin from "bitcoinjs-lib";
import type { SignSePartial } from "../../../proto/gen/ecdsa2p.ts";
import { writeNat } from "../../../protocol/ecdsa2p/codec.ts";
import { commit } from "../../../protocol/ecdsa2p/commit.ts";
import { Q, randomScalar } from "../../../protocol/ecdsa2p/ec.ts";
import {
  type HolderKey,
  holderKeyUpdate,
  holderKeyUpdateFinish,
  holderSignCommit,
  holderSignFinish,
  holderSignNonce,
  wipeHolderKey,
} from "../../../protocol/ecdsa2p/holder.ts";
import { modPowBigInt } from "../../../protocol/ecdsa2p/modexp.ts";
import {
  encryptionNonce,
  generatePaillierKey,
  nonceEngine,
  paillierFactors,
} from "../../../protocol/ecdsa2p/paillier.ts";
import type { PartialStatement } from "../../../protocol/ecdsa2p/partial-statement.ts";
import { proveDlog } from "../../../protocol/ecdsa2p/proofs/dlog.ts";
import { ROLE, signCommitValues } from "../../../protocol/ecdsa2p/roles.ts";
import { rotateShare } from "../../../protocol/ecdsa2p/rotation.ts";
import {
  MAX_SIGNER_SESSIONS,
  type SignerKey,
  signerKeyUpdate,
  signerSignPartial,
  signerSignStart,
  wipeSignerKey,
} from "../../../protocol/ecdsa2p/signer.ts";
import { verifyEcdsa } from "../../../protocol/ecdsa2p/verify.ts";
import { bytesToBigInt, Point, scalarBytes } from "../../../protocol/encoding.ts";
import { ProtocolError } from "../../../protocol/errors.ts";
import {
  code,
  depositCoin,
  enclaveRingPedersen,
  instanceKey,
  rng,
  sid,
  signature,
  signCoin,
  signerPartial,
  signStatement,
} from "./helpers.ts";

const coin = await depositCoin();

function verifiesEverywhere(compact: Uint8Array, der: Uint8Array, digest: Uint8Array, key: Point) {
  const pk = key.toBytes(true);
  assert.ok(secp256k1.verify(compact, digest, pk, { prehash: false, lowS: true }), "noble");
  assert.ok(verifyEcdsa(compact, digest, pk), "ours, compact");
  assert.ok(verifyEcdsa(der, digest, pk, { format: "der" }), "ours, DER");
}

/**
 * Signing up to the owner's last step, which the returned function runs with the enclave's partial edited (`edit`
 * also gets the statement the enclave signed, to sign another c3 the way an enclave that meant it would).
 */
function withPartial(
  holder: HolderKey,
  signer: SignerKey,
  edit: (p: SignSePartial, statement: PartialStatement) => SignSePartial = (p) => p,
) {
  const digest = rng(32);
  const sessionId = sid();
  const c = holderSignCommit(holder, { sessionId, digest, rng });
  const s = signerSignStart(signer, { sessionId, digest, ownerCommit: c.msg, rng });
  const opening = holderSignNonce(holder, c.state, s.msg, { rng });
  const { c3, statement } = signerSignPartial(signer, s.session, opening, { rng });
  const partial = { partialSignature: writeNat(c3), statementSignature: signStatement(statement) };
  return () => holderSignFinish(holder, c.state, edit(partial, statement), { instanceKey });
}

/** Another c3 with its statement signed under the instance key. */
const signedC3 = (statement: PartialStatement, c3: bigint): SignSePartial => ({
  partialSignature: writeNat(c3),
  statementSignature: signStatement({ ...statement, c3 }),
});

test("signatures verify with noble (lowS, prehash false) and ours, are low-S, carry the right recovery id", () => {
  const digests = [rng(32), rng(32), new Uint8Array(32), new Uint8Array(32).fill(0xff), scalarBytes(Q - 1n)];
  for (const digest of digests) {
    const { compact, der, s, recoveryId } = signature(coin, digest);
    verifiesEverywhere(compact, der, digest, coin.holder.sharedPublicKey);
    assert.ok(s <= Q >> 1n, "low-S");
    const recovered = secp256k1.Signature.fromBytes(compact)
      .addRecoveryBit(recoveryId)
      .recoverPublicKey(digest);
    assert.ok(recovered.equals(coin.holder.sharedPublicKey), "recovery id");
  }
});

test("a P2WPKH spend: BIP143 digest from bitcoinjs, signature encoded by script.signature.encode, PSBT finalised", () => {
  const pubkey = coin.holder.sharedPublicKey.toBytes(true);
  const payment = bitcoin.payments.p2wpkh({ pubkey });
  const value = 100_000n;
  const prevTxid = rng(32);
  // Raw transaction and its BIP143 sighash.
  const tx = new bitcoin.Transaction();
  tx.addInput(prevTxid, 0);
  tx.addOutput(payment.output!, value - 500n);
  const scriptCode = bitcoin.payments.p2pkh({ hash: payment.hash! }).output!;
  const digest = tx.hashForWitnessV0(0, scriptCode, value, bitcoin.Transaction.SIGHASH_ALL);
  const { compact } = signature(coin, digest);
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
  psbt.signInput(0, { publicKey: pubkey, sign: (hash) => signature(coin, hash).compact });
  const validator = (key: Uint8Array, hash: Uint8Array, sig: Uint8Array) =>
    secp256k1.verify(sig, hash, key, { prehash: false });
  assert.ok(psbt.validateSignaturesOfInput(0, validator), "bitcoinjs validates the PSBT input's signature");
  psbt.finalizeAllInputs();
  const witness = psbt.extractTransaction().ins[0]!.witness;
  assert.equal(witness.length, 2);
  assert.deepEqual(new Uint8Array(witness[1]!), pubkey);
});

test("a precomputed encryption nonce (r^N made ahead) signs the same way", () => {
  const { holder, signer } = coin;
  const n = signer.paillierModulus;
  const digest = rng(32);
  const sessionId = sid();
  const c = holderSignCommit(holder, { sessionId, digest, rng });
  const s = signerSignStart(signer, { sessionId, digest, ownerCommit: c.msg, rng });
  const opening = holderSignNonce(holder, c.state, s.msg, { rng });
  const nonce = encryptionNonce(n, rng, nonceEngine(n));
  assert.equal(nonce.rn, modPowBigInt(nonce.r, n, n * n));
  const partial = signerPartial(signer, s.session, opening, { encryptionNonce: nonce });
  const out = holderSignFinish(holder, c.state, partial, { instanceKey });
  assert.ok(
    out.ok && verifyEcdsa(out.signature.compact, digest, holder.sharedPublicKey),
    "the two-party signature verifies under the shared key",
  );
  // A nonce made for another modulus is refused, not used.
  const c2 = holderSignCommit(holder, { sessionId: sid(), digest, rng });
  const s2 = signerSignStart(signer, { sessionId: c2.state.sessionId, digest, ownerCommit: c2.msg, rng });
  const opening2 = holderSignNonce(holder, c2.state, s2.msg, { rng });
  const foreign = encryptionNonce(holder.paillier.n + 2n, rng);
  assert.throws(
    () => signerSignPartial(signer, s2.session, opening2, { rng, encryptionNonce: foreign }),
    code("PAILLIER_NONCE_KEY"),
  );
});

test("refused without tainting: another nonce point under the commitment, oversized or zero c3, a finished state", async () => {
  const d = await depositCoin();
  const { holder, signer } = d;
  // The enclave refuses an opening of another R_o.
  const digest = rng(32);
  const sessionId = sid();
  const c = holderSignCommit(holder, { sessionId, digest, rng });
  const s = signerSignStart(signer, { sessionId, digest, ownerCommit: c.msg, rng });
  const opening = holderSignNonce(holder, c.state, s.msg, { rng });
  const other = Buffer.from(Point.BASE.multiply(7n).toBytes(true));
  assert.throws(
    () => signerSignPartial(signer, s.session, { ...opening, publicNonce: other }, { rng }),
    code("COMMITMENT_MISMATCH"),
  );
  // The owner refuses a c3 outside [1, N²) before looking at its statement or decrypting it.
  const n2bytes = writeNat(holder.paillier.n ** 2n).length;
  assert.throws(
    withPartial(holder, signer, (p) => ({ ...p, partialSignature: Buffer.alloc(n2bytes + 1, 1) })),
    code("NUMBER_TOO_LARGE"),
  );
  assert.throws(
    withPartial(holder, signer, (p) => ({ ...p, partialSignature: Buffer.alloc(0) })),
    code("NUMBER_OUT_OF_RANGE"),
  );
  assert.throws(
    withPartial(holder, signer, (p) => ({ ...p, partialSignature: writeNat(holder.paillier.n ** 2n) })),
    code("NUMBER_OUT_OF_RANGE"),
  );
  // A finished signing state does not finish again.
  const digest2 = rng(32);
  const sid2 = sid();
  const c2 = holderSignCommit(holder, { sessionId: sid2, digest: digest2, rng });
  const s2 = signerSignStart(signer, { sessionId: sid2, digest: digest2, ownerCommit: c2.msg, rng });
  const partial = signerPartial(signer, s2.session, holderSignNonce(holder, c2.state, s2.msg, { rng }));
  const first = holderSignFinish(holder, c2.state, partial, { instanceKey });
  assert.equal(first.ok, true, "the first finish gives the signature");
  assert.ok(
    c2.state.nonceInverse.every((b) => b === 0),
    "the owner's k_o⁻¹ is wiped once the signature is finished",
  );
  assert.throws(() => holderSignFinish(holder, c2.state, partial, { instanceKey }), code("SIGN_STATE_USED"));
  assert.equal(holder.tainted, false, "no refusal here tainted the key");
  assert.equal(signCoin(holder, signer, rng(32)).ok, true, "the key still signs");
});

test("refused: a committed owner nonce proof for another session, a digest the parties disagree on, malformed inputs", () => {
  const { holder, signer } = coin;
  const digest = rng(32);
  const sessionId = sid();
  // A malicious owner commits to R_o with a proof made for another session.
  const k = randomScalar(rng);
  const Ro = Point.BASE.multiply(k);
  const proof = proveDlog(k, Ro, { sessionId: sid(), role: ROLE.ownerNonce, bind: [digest] }, rng);
  const { commitment, blind } = commit("sign", sessionId, signCommitValues(digest, Ro, proof), rng);
  const s = signerSignStart(signer, {
    sessionId,
    digest,
    ownerCommit: { commitment: Buffer.from(commitment) },
    rng,
  });
  assert.throws(
    () =>
      signerSignPartial(
        signer,
        s.session,
        { publicNonce: Buffer.from(Ro.toBytes(true)), proof, blind: Buffer.from(blind) },
        { rng },
      ),
    code("DLOG_PROOF_INVALID"),
  );
  assert.ok(
    s.session.nonce.every((b) => b === 0),
    "the enclave's nonce is wiped after the refusal",
  );
  // The host hands the enclave another digest: the owner sees the enclave's nonce proof fail before opening R_o.
  const sid2 = sid();
  const c = holderSignCommit(holder, { sessionId: sid2, digest, rng });
  const wrong = signerSignStart(signer, { sessionId: sid2, digest: rng(32), ownerCommit: c.msg, rng });
  assert.throws(() => holderSignNonce(holder, c.state, wrong.msg, { rng }), code("DLOG_PROOF_INVALID"));
  const ownerCommit = c.msg;
  assert.throws(
    () => signerSignStart(signer, { sessionId: sid(), digest: rng(31), ownerCommit, rng }),
    code("DIGEST_LENGTH"),
  );
  assert.throws(
    () => signerSignStart(signer, { sessionId: rng(8), digest, ownerCommit, rng }),
    code("SESSION_ID_LENGTH"),
  );
  assert.throws(
    () =>
      signerSignStart(signer, {
        sessionId: sid(),
        digest,
        ownerCommit: { commitment: Buffer.alloc(31) },
        rng,
      }),
    code("COMMITMENT_LENGTH"),
  );
  assert.throws(
    () => holderSignCommit(holder, { sessionId: sid(), digest: rng(33), rng }),
    code("DIGEST_LENGTH"),
  );
  assert.throws(
    () => holderSignCommit(holder, { sessionId: rng(33), digest, rng }),
    code("SESSION_ID_LENGTH"),
  );
  assert.equal(holder.tainted, false, "refusals before decryption taint nothing");
});

test("a taint stops the sessions opened before it; a c3 that does not decrypt taints too", async () => {
  const d = await depositCoin();
  const opened = withPartial(d.holder, d.signer);
  const digest = rng(32);
  const sessionId = sid();
  const committed = holderSignCommit(d.holder, { sessionId, digest, rng });
  const started = signerSignStart(d.signer, { sessionId, digest, ownerCommit: committed.msg, rng });
  const n = d.holder.paillier.n;
  // c3 ⊕ Enc(1), signed: the finished signature cannot verify.
  const out = withPartial(d.holder, d.signer, (p, st) =>
    signedC3(st, (bytesToBigInt(p.partialSignature) * (n + 1n)) % (n * n)),
  )();
  assert.ok(!out.ok && out.tainted, "a signature that fails its final verification taints the key");
  assert.throws(opened, code("KEY_TAINTED"));
  assert.throws(() => holderSignNonce(d.holder, committed.state, started.msg, { rng }), code("KEY_TAINTED"));
  // A c3 that shares a factor with N (decryption itself refuses it): tainted as well, and said so.
  const e = await depositCoin();
  const factor = paillierFactors(e.holder.paillier.secret).p;
  const notUnit = withPartial(e.holder, e.signer, (_, st) => signedC3(st, factor))();
  assert.ok(
    !notUnit.ok && notUnit.tainted && /could not be decrypted/.test(notUnit.reason),
    "a c3 that is not a unit modulo N² taints the key, with its reason",
  );
  assert.equal(e.holder.tainted, true, "the key is marked tainted");
});

test("per-key session record is bounded; a wiped key refuses to sign", async () => {
  const d = await depositCoin();
  for (let i = d.signer.usedSignSessions.size; i < MAX_SIGNER_SESSIONS; i++)
    d.signer.usedSignSessions.add(`filler-${i}`);
  const c = holderSignCommit(d.holder, { sessionId: sid(), digest: rng(32), rng });
  assert.throws(
    () => signerSignStart(d.signer, { sessionId: sid(), digest: rng(32), ownerCommit: c.msg, rng }),
    code("SIGN_SESSIONS_EXHAUSTED"),
  );
  // Keys wiped between the rounds of an open session refuse its next step.
  const e = await depositCoin();
  const digest = rng(32);
  const sessionId = sid();
  const h = holderSignCommit(e.holder, { sessionId, digest, rng });
  const s = signerSignStart(e.signer, { sessionId, digest, ownerCommit: h.msg, rng });
  const opening = holderSignNonce(e.holder, h.state, s.msg, { rng });
  wipeSignerKey(e.signer);
  assert.ok(
    e.signer.share.every((b) => b === 0),
    "wiping the enclave's key zeroes s",
  );
  assert.throws(() => signerSignPartial(e.signer, s.session, opening, { rng }), code("KEY_WIPED"));
  wipeHolderKey(e.holder);
  assert.ok(
    e.holder.share.every((b) => b === 0) && e.holder.paillier.secret.p.every((b) => b === 0),
    "wiping the owner's key zeroes o and the Paillier p",
  );
  assert.throws(() => holderSignCommit(e.holder, { sessionId: sid(), digest, rng }), code("KEY_WIPED"));
  assert.throws(
    () =>
      holderSignFinish(
        e.holder,
        h.state,
        { partialSignature: writeNat(1n), statementSignature: Buffer.alloc(64) },
        { instanceKey },
      ),
    code("KEY_WIPED"),
  );
});

test("after a key update the old owner share and the new SE share cannot produce a valid signature", async () => {
  const d = await depositCoin();
  const rp = enclaveRingPedersen();
  const P = d.holder.sharedPublicKey;
  const o1 = bytesToBigInt(d.holder.share);
  // The transfer as the enclave runs it (rotation.ts): t2 = o1·x1·o2⁻¹, s2 = t2·x1⁻¹·s1.
  const x1 = randomScalar(rng);
  const o2 = randomScalar(rng);
  const t2 = (((o1 * x1) % Q) * Point.Fn.inv(o2)) % Q;
  const sessionId = sid();
  const r = holderKeyUpdate({
    sessionId,
    share: scalarBytes(o2),
    sharedPublicKey: P,
    paillier: await generatePaillierKey({ rng }),
    ringPedersen: rp.holder,
    rng,
  });
  const { key: newSe, msg } = signerKeyUpdate({
    sessionId,
    share: rotateShare(d.signer.share, scalarBytes(x1), scalarBytes(t2), rng),
    holderShare: r.msg,
    sharedPublicKey: d.signer.sharedPublicKey,
    ringPedersen: rp.signer,
    rng,
  });
  wipeSignerKey(d.signer); // the enclave erases s1
  const receiver = holderKeyUpdateFinish(r.state, msg);
  const digest = rng(32);
  const fresh = signature({ holder: receiver, signer: newSe }, digest);
  verifiesEverywhere(fresh.compact, fresh.der, digest, P);
  // The previous owner kept o1 and its own Paillier key; against the new SE share:
  assert.ok(!newSe.sePublicShare.multiply(o1).equals(P), "o1·S2 ≠ P");
  const oldOwner: HolderKey = {
    ...d.holder,
    sePublicShare: newSe.sePublicShare,
    tainted: false,
    wiped: false,
  };
  let out: ReturnType<typeof signCoin> | undefined;
  try {
    out = signCoin(oldOwner, newSe, digest);
  } catch (err) {
    // c3 is below N2², not necessarily below N1²: then it is refused as a number out of range.
    if (!(err instanceof ProtocolError && /^NUMBER_/.test(err.code))) throw err;
  }
  assert.ok(out === undefined || !out.ok, "the old owner gets no signature from the new SE share");
  // ...and the old SE share is gone.
  assert.throws(() => signCoin(d.holder, d.signer, digest), code("KEY_WIPED"));
});

test("neither party inverts its secret nonce in variable time: only a blinded k·β meets the inversion (audit #18.10)", () => {
  // noble's field object is frozen (no spying on Fn.inv): the rule is checked on the source. Each role's signing
  // code inverts its nonce through scalar-ct's invModN (blinded), and nothing else inverts a nonce.
  for (const [file, nonce] of [
    ["holder.ts", "state.nonce"],
    ["signer.ts", "session.nonce"],
  ] as const) {
    const src = readFileSync(new URL(`../../../protocol/ecdsa2p/${file}`, import.meta.url), "utf8");
    assert.ok(src.includes(`invModN(${nonce}, `), `${file}: the nonce ${nonce} is inverted by invModN`);
    for (const m of src.matchAll(/Fn\.inv\(([^)]*)\)/g)) {
      assert.match(m[1]!, /\*\s*beta/, `${file}: Fn.inv(${m[1]}) inverts an unblinded value`);
    }
    assert.doesNotMatch(src, /modInverse\(|invert\(/, `${file}: a value is inverted outside scalar-ct`);
  }
  // And the blinded inversion still gives k⁻¹: signatures verify (the other tests here), here once more.
  const digest = rng(32);
  const { compact } = signature(coin, digest);
  assert.ok(
    verifyEcdsa(compact, digest, coin.holder.sharedPublicKey.toBytes(true)),
    "the two-party signature verifies under the shared key",
  );
});
