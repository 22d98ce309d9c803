// Key generation with the owner as Paillier holder (holder.ts) and the enclave as homomorphic signer (signer.ts):
// a deposit (the owner commits first) and a key update (the receiver's fixed share, no commitment). One Paillier
// key per coin; single-use states; the receiver's check that o2·S2 = P; what the enclave refuses in the owner's
// messages before it keeps anything. roles.test.ts has the deposit itself, the key update with erasure, and the
// malicious owner's modulus and c_key.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { HolderKeyGenShare } from "../../../proto/gen/ecdsa2p.ts";
import { commit } from "../../../protocol/ecdsa2p/commit.ts";
import { Q, randomScalar } from "../../../protocol/ecdsa2p/ec.ts";
import {
  holderKeyGenCommit,
  holderKeyGenFinish,
  holderKeyUpdate,
  holderKeyUpdateFinish,
} from "../../../protocol/ecdsa2p/holder.ts";
import { generatePaillierKey, KEYGEN_NONCES } from "../../../protocol/ecdsa2p/paillier.ts";
import { proveDlog } from "../../../protocol/ecdsa2p/proofs/dlog.ts";
import { ROLE, shareCommitValues } from "../../../protocol/ecdsa2p/roles.ts";
import { signerKeyGenFinish, signerKeyGenShare, signerKeyUpdate } from "../../../protocol/ecdsa2p/signer.ts";
import { bytesToBigInt, G, type Point, scalarBytes } from "../../../protocol/encoding.ts";
import { code, depositCoin, enclaveRingPedersen, rng, sid } from "./helpers.ts";

const rp = enclaveRingPedersen();

/**
 * A key update for a coin of its own, P = o2·s·G with a random enclave share s (only s·O2 = P matters here); the
 * receiver expects `expected` (P unless given). `signerSide` runs the enclave's step on a message (the receiver's
 * unless given).
 */
async function keyUpdate(opts: { expected?: Point } = {}) {
  const sessionId = sid();
  const o2 = randomScalar(rng);
  const s = randomScalar(rng);
  const P = G.multiply((o2 * s) % Q);
  const r = holderKeyUpdate({
    sessionId,
    share: scalarBytes(o2),
    sharedPublicKey: opts.expected ?? P,
    paillier: await generatePaillierKey({ rng }),
    ringPedersen: rp.holder,
    rng,
  });
  const signerSide = (holderShare: HolderKeyGenShare = r.msg) =>
    signerKeyUpdate({
      sessionId,
      share: scalarBytes(s),
      holderShare,
      sharedPublicKey: P,
      ringPedersen: rp.signer,
      rng,
    });
  return { ...r, P, signerSide };
}

test("one Paillier key, one coin: a spent key is refused by a deposit and a key update; of two deposits started with one key only the first to finish gets it", async () => {
  const paillier = await generatePaillierKey({ rng });
  assert.equal(paillier.nonces.length, KEYGEN_NONCES, "the key comes with its keygen nonces");
  const coin = await depositCoin({ paillier });
  assert.ok(paillier.used, "the deposit marks the Paillier key spent");
  assert.equal(paillier.nonces.length, 0, "the deposit used up the key's precomputed nonces");
  await assert.rejects(depositCoin({ paillier }), code("PAILLIER_KEY_USED"));
  assert.throws(
    () =>
      holderKeyUpdate({
        sessionId: sid(),
        share: scalarBytes(5n),
        sharedPublicKey: coin.holder.sharedPublicKey,
        paillier,
        ringPedersen: rp.holder,
        rng,
      }),
    code("PAILLIER_KEY_USED"),
  );
  // Two deposits started with one key: only the first to send its proofs gets it.
  const shared = await generatePaillierKey({ rng, nonces: 0 });
  const [a, b] = [sid(), sid()].map((sessionId) => {
    const h = holderKeyGenCommit({ sessionId, paillier: shared, ringPedersen: rp.holder, rng });
    return { h, s: signerKeyGenShare({ sessionId, commit: h.msg, rng }) };
  });
  holderKeyGenFinish(a!.h.state, a!.s.msg, { rng });
  assert.throws(() => holderKeyGenFinish(b!.h.state, b!.s.msg, { rng }), code("PAILLIER_KEY_USED"));
});

test("keygen states are single-use, and a deposit's and a key update's do not finish as each other", async () => {
  const sessionId = sid();
  const h1 = holderKeyGenCommit({
    sessionId,
    paillier: await generatePaillierKey({ rng }),
    ringPedersen: rp.holder,
    rng,
  });
  const s1 = signerKeyGenShare({ sessionId, commit: h1.msg, rng });
  assert.throws(() => holderKeyUpdateFinish(h1.state, s1.msg), code("KEYGEN_STATE_KIND"));
  const h2 = holderKeyGenFinish(h1.state, s1.msg, { rng });
  assert.throws(() => holderKeyGenFinish(h1.state, s1.msg, { rng }), code("KEYGEN_STATE_USED"));
  signerKeyGenFinish(s1.state, h2.msg, { ringPedersen: rp.signer });
  assert.throws(
    () => signerKeyGenFinish(s1.state, h2.msg, { ringPedersen: rp.signer }),
    code("KEYGEN_STATE_USED"),
  );
  const u = await keyUpdate();
  const { msg } = u.signerSide();
  assert.throws(() => holderKeyGenFinish(u.state, msg, { rng }), code("KEYGEN_STATE_KIND"));
  const key = holderKeyUpdateFinish(u.state, msg);
  assert.ok(key.sharedPublicKey.equals(u.P), "the key update finishes with the coin's key");
  assert.throws(() => holderKeyUpdateFinish(u.state, msg), code("KEYGEN_STATE_USED"));
});

test("key update, receiver side: an S2 that does not give P, or one from another session, is refused", async () => {
  // The enclave's answer is valid for its own P' = s·O2, not for the coin the receiver expects.
  const a = await keyUpdate({ expected: G.multiply(3n) });
  assert.equal(a.msg.blind.length, 0, "a key update message carries no opening");
  const answer = a.signerSide().msg;
  assert.throws(() => holderKeyUpdateFinish(a.state, answer), code("SHARED_KEY_MISMATCH"));
  // An answer made for another session: its proof is bound to that session id and O2.
  const b = await keyUpdate();
  assert.throws(() => holderKeyUpdateFinish(b.state, answer), code("DLOG_PROOF_INVALID"));
});

test("malicious owner, found by the enclave: another opening, a committed proof for another session, malformed points, an oversized modulus", async () => {
  await assert.rejects(
    depositCoin({ tamper: (m) => (m.blind = Buffer.from(rng(32))) }),
    code("COMMITMENT_MISMATCH"),
  );
  await assert.rejects(
    depositCoin({ tamper: (m) => (m.publicShare = Buffer.alloc(33, 0)) }),
    code("INVALID_POINT"),
  );
  await assert.rejects(
    depositCoin({ tamper: (m) => (m.publicShare = Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 1)])) }),
    code("INVALID_POINT"),
  );
  await assert.rejects(
    depositCoin({ tamper: (m) => (m.paillierModulus = Buffer.alloc(513, 0xff)) }),
    code("NUMBER_TOO_LARGE"),
  );
  // The owner commits to O with a DLog proof made for another session, and opens that commitment faithfully.
  const sessionId = sid();
  const h1 = holderKeyGenCommit({
    sessionId,
    paillier: await generatePaillierKey({ rng }),
    ringPedersen: rp.holder,
    rng,
  });
  const honest = holderKeyGenFinish(h1.state, signerKeyGenShare({ sessionId, commit: h1.msg, rng }).msg, {
    rng,
  });
  const O = honest.key.ownerPublicShare;
  const proof = proveDlog(
    bytesToBigInt(honest.key.share),
    O,
    { sessionId: sid(), role: ROLE.ownerShare },
    rng,
  );
  const { commitment, blind } = commit("holder-keygen", sessionId, shareCommitValues(O, proof), rng);
  const s1 = signerKeyGenShare({ sessionId, commit: { commitment: Buffer.from(commitment) }, rng });
  assert.throws(
    () =>
      signerKeyGenFinish(
        s1.state,
        { ...honest.msg, proof, blind: Buffer.from(blind) },
        { ringPedersen: rp.signer },
      ),
    code("DLOG_PROOF_INVALID"),
  );
  // The same in a key update: O2's proof from another session, a malformed O2.
  const u = await keyUpdate();
  const v = await keyUpdate();
  assert.throws(() => u.signerSide({ ...u.msg, proof: v.msg.proof }), code("DLOG_PROOF_INVALID"));
  assert.throws(() => u.signerSide({ ...u.msg, publicShare: Buffer.alloc(33, 0) }), code("INVALID_POINT"));
  assert.ok(u.signerSide().key.sharedPublicKey.equals(u.P), "the untampered message is accepted");
});

test("session ids must be 16 to 32 bytes, keygen commitments 32 bytes", async () => {
  const paillier = await generatePaillierKey({ rng, modulusProof: false, nonces: 0 });
  assert.throws(
    () => holderKeyGenCommit({ sessionId: rng(15), paillier, ringPedersen: rp.holder, rng }),
    code("SESSION_ID_LENGTH"),
  );
  assert.throws(
    () => signerKeyGenShare({ sessionId: rng(33), commit: { commitment: Buffer.alloc(32) }, rng }),
    code("SESSION_ID_LENGTH"),
  );
  assert.throws(
    () => signerKeyGenShare({ sessionId: sid(), commit: { commitment: Buffer.alloc(31) }, rng }),
    code("COMMITMENT_LENGTH"),
  );
  assert.throws(
    () =>
      holderKeyUpdate({
        sessionId: rng(33),
        share: scalarBytes(5n),
        sharedPublicKey: G,
        paillier,
        ringPedersen: rp.holder,
        rng,
      }),
    code("SESSION_ID_LENGTH"),
  );
  const u = await keyUpdate();
  assert.throws(
    () =>
      signerKeyUpdate({
        sessionId: rng(15),
        share: scalarBytes(5n),
        holderShare: u.msg,
        sharedPublicKey: u.P,
        ringPedersen: rp.signer,
        rng,
      }),
    code("SESSION_ID_LENGTH"),
  );
  assert.equal(paillier.used, false, "no refused call spent the Paillier key");
});
