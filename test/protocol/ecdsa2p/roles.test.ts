// The swapped roles of DESIGN.md section 3.1: the owner is the Paillier holder (holder.ts), the enclave the
// homomorphic signer (signer.ts). Each rule and each threat row of section 3.1 has a case here: the host
// tampering with c3, an owner with a malformed modulus (prime, non-Blum, small factor, too small, even), c_key
// out of range or for another share, openings that do not match, replayed sessions, a key update whose O2 does
// not give P, and the taint a failed final verification leaves in the wallet.
import assert from "node:assert/strict";
import { generatePrimeSync } from "node:crypto";
import { test } from "node:test";
import type { HolderKeyGenShare, SignSePartial } from "../../../proto/gen/ecdsa2p.ts";
import { writeNat } from "../../../protocol/ecdsa2p/codec.ts";
import { Q } from "../../../protocol/ecdsa2p/ec.ts";
import {
  holderKeyGenCommit,
  holderKeyGenFinish,
  holderKeyUpdate,
  holderKeyUpdateFinish,
  holderSignCommit,
  holderSignFinish,
  holderSignNonce,
  wipeHolderKey,
} from "../../../protocol/ecdsa2p/holder.ts";
import { modPowBigInt } from "../../../protocol/ecdsa2p/modexp.ts";
import {
  decrypt,
  encrypt,
  encryptionNonce,
  generatePaillierKey,
  paillierKeyFromPrimes,
} from "../../../protocol/ecdsa2p/paillier.ts";
import { proveLogStar } from "../../../protocol/ecdsa2p/proofs/logstar.ts";
import { proverOps } from "../../../protocol/ecdsa2p/ring-pedersen.ts";
import {
  signerKeyGenFinish,
  signerKeyGenShare,
  signerKeyUpdate,
  signerSignPartial,
  signerSignStart,
  wipeSignerKey,
} from "../../../protocol/ecdsa2p/signer.ts";
import { verifyEcdsa } from "../../../protocol/ecdsa2p/verify.ts";
import { bytesToBigInt, G, pointBytes } from "../../../protocol/encoding.ts";
import { ProtocolError } from "../../../protocol/errors.ts";
import {
  type Coin,
  code,
  depositCoin,
  enclaveRingPedersen,
  instanceKey,
  rng,
  sid,
  signCoin,
  signStatement,
} from "./helpers.ts";

const blum = (bits: number) => generatePrimeSync(bits, { bigint: true, add: 4n, rem: 3n });
const big = (b: Uint8Array) => bytesToBigInt(b);
/** Matches a ProtocolError with any of these codes (where which check fires first depends on random values). */
const oneOf =
  (...codes: string[]) =>
  (e: unknown) => {
    if (e instanceof ProtocolError && codes.includes(e.code)) return true;
    throw e;
  };

const { holder: holderRp, signer: signerRp } = enclaveRingPedersen();
let coin: Coin;

test("deposit: P = o·S = s·O; the enclave keeps s, N and c_key and no Paillier secret; c_key encrypts o", async () => {
  coin = await depositCoin();
  const { holder, signer } = coin;
  assert.ok(
    holder.sharedPublicKey.equals(signer.sharedPublicKey),
    "both parties derive the same shared key P",
  );
  assert.ok(holder.ownerPublicShare.equals(signer.ownerPublicShare), "the enclave keeps the owner's O");
  assert.ok(holder.sePublicShare.equals(signer.sePublicShare), "the owner keeps the enclave's S");
  assert.ok(
    holder.sharedPublicKey.equals(G.multiply((big(holder.share) * big(signer.share)) % Q)),
    "P = o·s·G",
  );
  assert.equal(signer.paillierModulus, holder.paillier.n, "the enclave holds the owner's modulus");
  assert.equal(signer.encryptedShare, holder.encryptedShare, "the enclave holds the owner's c_key");
  assert.equal(decrypt(holder.paillier, signer.encryptedShare), big(holder.share), "c_key = Enc_N(o)");
  assert.deepEqual(
    Object.keys(signer).sort(),
    [
      "encryptedShare",
      "ownerPublicShare",
      "paillierModulus",
      "sePublicShare",
      "sessionId",
      "share",
      "sharedPublicKey",
      "usedSignSessions",
      "wiped",
    ],
    "the enclave's key has no field for a Paillier secret",
  );
  assert.equal(signer.share.length, 32, "the enclave's secret for the coin is one 32-byte share");
  assert.equal(holder.paillier.used, true, "the owner's Paillier key is spent on this coin");
});

test("signing: the owner finishes a low-S signature that verifies under P; the enclave never sees it", () => {
  const digest = rng(32);
  const out = signCoin(coin.holder, coin.signer, digest);
  assert.equal(out.ok, true, "the signature is finished");
  if (!out.ok) return;
  assert.ok(out.signature.s <= Q >> 1n, "low-S");
  assert.ok(
    verifyEcdsa(out.signature.compact, digest, pointBytes(coin.holder.sharedPublicKey)),
    "the signature verifies under the shared key",
  );
});

test("host relaying c3: c3·c_key^(λ·q) is refused before the owner decrypts, and the key is not tainted", () => {
  const { holder, signer } = coin;
  const n2 = signer.paillierModulus ** 2n;
  const lambda = big(rng(16)) + 1n;
  const out = () =>
    signCoin(holder, signer, rng(32), (p) => ({
      ...p,
      partialSignature: writeNat(
        (big(p.partialSignature) * modPowBigInt(signer.encryptedShare, lambda * Q, n2)) % n2,
      ),
    }));
  assert.throws(out, code("PARTIAL_STATEMENT_INVALID"));
  assert.equal(holder.tainted, false, "nothing was decrypted, so nothing is tainted");
  // Another session's c3 with its genuine statement signature is refused too.
  let other: SignSePartial | undefined;
  signCoin(holder, signer, rng(32), (p) => {
    other = p;
    return p;
  });
  assert.throws(() => signCoin(holder, signer, rng(32), () => other!), code("PARTIAL_STATEMENT_INVALID"));
  assert.throws(
    () =>
      signCoin(holder, signer, rng(32), (p) => ({
        ...p,
        statementSignature: p.statementSignature.subarray(1),
      })),
    code("PARTIAL_STATEMENT_INVALID"),
  );
  assert.equal(holder.tainted, false, "refused statements taint nothing");
  const ok = signCoin(holder, signer, rng(32));
  assert.equal(ok.ok, true, "the key still signs after the host's attempts");
});

test("a wrong c3 that the enclave did sign taints the owner's key for good; the coin's way out is its backup", async () => {
  const fresh = await depositCoin();
  const { holder, signer } = fresh;
  const sessionId = sid();
  const digest = rng(32);
  const c = holderSignCommit(holder, { sessionId, digest, rng });
  const s = signerSignStart(signer, { sessionId, digest, ownerCommit: c.msg, rng });
  const opening = holderSignNonce(holder, c.state, s.msg, { rng });
  const { c3, statement } = signerSignPartial(signer, s.session, opening, { rng });
  const n = signer.paillierModulus;
  const bad = (c3 * encrypt(n, 1n, encryptionNonce(n, rng))) % (n * n);
  const out = holderSignFinish(
    holder,
    c.state,
    {
      partialSignature: writeNat(bad),
      statementSignature: signStatement({ ...statement, c3: bad }),
    },
    { instanceKey },
  );
  assert.equal(out.ok, false, "the signature is not released");
  assert.ok(
    !out.ok && out.tainted && /backup/.test(out.reason),
    "the outcome says the key is tainted and names the backup",
  );
  assert.equal(holder.tainted, true, "the key is marked tainted");
  assert.throws(() => holderSignCommit(holder, { sessionId: sid(), digest, rng }), code("KEY_TAINTED"));
});

test("malicious owner: a modulus that is even, too small, prime, non-Blum, with a small or a 264-bit factor is refused", async () => {
  const n = (m: HolderKeyGenShare) => big(m.paillierModulus);
  await assert.rejects(
    depositCoin({ tamper: (m) => (m.paillierModulus = writeNat(n(m) + 1n)) }),
    code("PAILLIER_MODULUS_EVEN"),
  );
  await assert.rejects(
    depositCoin({ tamper: (m) => (m.paillierModulus = writeNat(n(m) * 3n)) }),
    code("PAILLIER_MODULUS_SMALL_FACTOR"),
  );
  // A prime N above the real one (so the proof's numbers stay in range): Π^mod's compositeness check refuses it.
  await assert.rejects(
    depositCoin({
      tamper: (m) => {
        let prime: bigint;
        do prime = blum(2048);
        while (prime <= n(m));
        m.paillierModulus = writeNat(prime);
      },
    }),
    oneOf("PAILLIER_MODULUS_PRIME", "PAILLIER_BLUM_PROOF_INVALID"),
  );

  const small = paillierKeyFromPrimes(blum(512), blum(512), { rng, modulusProof: true });
  assert.throws(
    () => holderKeyGenCommit({ sessionId: sid(), paillier: small, ringPedersen: holderRp, rng }),
    code("PAILLIER_MODULUS_TOO_SMALL"),
  );
  await assert.rejects(
    depositCoin({ tamper: (m) => (m.paillierModulus = writeNat(big(m.paillierModulus.subarray(128)) | 1n)) }),
    oneOf("PAILLIER_MODULUS_TOO_SMALL", "PAILLIER_MODULUS_SMALL_FACTOR"),
  );
  let p: bigint;
  let q: bigint;
  do [p, q] = [generatePrimeSync(1024, { bigint: true, add: 4n, rem: 1n }), blum(1024)];
  while ((p * q).toString(2).length !== 2048);
  const notBlum = paillierKeyFromPrimes(p, q, { rng, modulusProof: true });
  await assert.rejects(depositCoin({ paillier: notBlum }), code("PAILLIER_BLUM_PROOF_INVALID"));
  do [p, q] = [blum(264), blum(1784)];
  while ((p * q).toString(2).length !== 2048);
  const unbalanced = paillierKeyFromPrimes(p, q, { rng, modulusProof: true });
  await assert.rejects(depositCoin({ paillier: unbalanced }), code("NO_SMALL_FACTOR_PROOF_RANGE"));
  await assert.rejects(
    depositCoin({ tamper: (m) => (m.modulusProof = undefined) }),
    code("PAILLIER_BLUM_PROOF_MISSING"),
  );
});

test("malicious owner: c_key out of range, not a unit, or encrypting another value than log O is refused", async () => {
  await assert.rejects(
    depositCoin({ tamper: (m) => (m.encryptedShare = Buffer.concat([m.encryptedShare, m.encryptedShare])) }),
    code("NUMBER_TOO_LARGE"),
  );
  await assert.rejects(
    depositCoin({ tamper: (m) => (m.encryptedShare = Buffer.from(m.paillierModulus)) }),
    code("ENCRYPTED_SHARE_NOT_UNIT"),
  );
  await assert.rejects(
    depositCoin({ tamper: (m) => (m.encryptedShare = Buffer.alloc(0)) }),
    code("NUMBER_OUT_OF_RANGE"),
  );
  await assert.rejects(
    depositCoin({
      tamper: (m) => {
        const n = big(m.paillierModulus);
        m.encryptedShare = writeNat(
          (big(m.encryptedShare) * encrypt(n, 1n, encryptionNonce(n, rng))) % (n * n),
        );
      },
    }),
    code("ENCRYPTED_SHARE_PROOF_INVALID"),
  );
  await assert.rejects(
    depositCoin({ tamper: (m) => (m.shareProof = undefined) }),
    code("ENCRYPTED_SHARE_PROOF_MISSING"),
  );
  await assert.rejects(
    depositCoin({ tamper: (m) => (m.factorProof = undefined) }),
    (e: unknown) => e instanceof Error,
  );
});

test("keygen: the owner cannot change O after the commitment; a refused keygen wipes the enclave's share", async () => {
  const sessionId = sid();
  const paillier = await generatePaillierKey({ rng });
  const h1 = holderKeyGenCommit({ sessionId, paillier, ringPedersen: holderRp, rng });
  const s1 = signerKeyGenShare({ sessionId, commit: h1.msg, rng });
  const h2 = holderKeyGenFinish(h1.state, s1.msg, { rng });
  const other = { ...h2.msg, publicShare: Buffer.from(G.multiply(7n).toBytes(true)) };
  assert.throws(
    () => signerKeyGenFinish(s1.state, other, { ringPedersen: signerRp }),
    code("COMMITMENT_MISMATCH"),
  );
  assert.ok(
    s1.state.share.every((b) => b === 0),
    "the enclave's share of the refused keygen is zeroed",
  );
  assert.throws(
    () => signerKeyGenFinish(s1.state, h2.msg, { ringPedersen: signerRp }),
    code("KEYGEN_STATE_USED"),
  );
  // The enclave's S must be bound to the owner's commitment.
  const h1b = holderKeyGenCommit({
    sessionId: sid(),
    paillier: await generatePaillierKey({ rng }),
    ringPedersen: holderRp,
    rng,
  });
  assert.throws(() => holderKeyGenFinish(h1b.state, s1.msg, { rng }), code("DLOG_PROOF_INVALID"));
  // One Paillier key, one coin.
  assert.throws(
    () => holderKeyGenCommit({ sessionId: sid(), paillier, ringPedersen: holderRp, rng }),
    code("PAILLIER_KEY_USED"),
  );
});

test("key update: s2 = s1·o1·o2⁻¹ with the receiver's own Paillier key; checks before erasure; old keys wiped", async () => {
  const { holder, signer } = await depositCoin();
  const o2 = rng(32);
  o2[0] = 0x11;
  const sessionId = sid();
  const paillier2 = await generatePaillierKey({ rng });
  const r = holderKeyUpdate({
    sessionId,
    share: o2,
    sharedPublicKey: holder.sharedPublicKey,
    paillier: paillier2,
    ringPedersen: holderRp,
    rng,
  });
  const o1 = big(holder.share);
  const s1 = big(signer.share);
  const s2 = (s1 * o1 * modPowBigInt(big(o2), Q - 2n, Q)) % Q;
  const s2bytes = Buffer.from(s2.toString(16).padStart(64, "0"), "hex");
  // A wrong s2 (O2 does not give P) is refused before anything is kept.
  const wrong = Buffer.from(((s2 + 1n) % Q).toString(16).padStart(64, "0"), "hex");
  const upd = (share: Uint8Array, msg = r.msg) =>
    signerKeyUpdate({
      sessionId,
      share,
      holderShare: msg,
      sharedPublicKey: signer.sharedPublicKey,
      ringPedersen: signerRp,
      rng,
    });
  assert.throws(() => upd(wrong), code("ROTATION_MISMATCH"));
  assert.throws(
    () => upd(s2bytes, { ...r.msg, blind: Buffer.from(rng(32)) }),
    code("KEYGEN_UNEXPECTED_OPENING"),
  );
  assert.throws(
    () => upd(s2bytes, { ...r.msg, modulusProof: holder.paillier.modulusProof }),
    // Another key's Π^mod: its numbers are out of range for this N, or its rounds fail.
    oneOf("NUMBER_OUT_OF_RANGE", "PAILLIER_BLUM_PROOF_INVALID"),
  );
  const { key: signer2, msg } = upd(s2bytes);
  const holder2 = holderKeyUpdateFinish(r.state, msg);
  assert.ok(holder2.sharedPublicKey.equals(holder.sharedPublicKey), "the coin keeps its shared key");
  assert.notEqual(holder2.paillier.n, holder.paillier.n, "the receiver's modulus is its own");
  wipeSignerKey(signer);
  wipeHolderKey(holder);
  assert.ok(
    signer.share.every((b) => b === 0),
    "s1 is zeroed",
  );
  assert.throws(
    () =>
      signerSignStart(signer, {
        sessionId: sid(),
        digest: rng(32),
        ownerCommit: { commitment: Buffer.alloc(32) },
        rng,
      }),
    code("KEY_WIPED"),
  );
  const digest = rng(32);
  const out = signCoin(holder2, signer2, digest);
  assert.ok(
    out.ok && verifyEcdsa(out.signature.compact, digest, pointBytes(holder2.sharedPublicKey)),
    "the new owner signs",
  );
  // The receiver's check: o2·S2 must give P.
  const r3 = holderKeyUpdate({
    sessionId: sid(),
    share: o2,
    sharedPublicKey: G.multiply(3n),
    paillier: await generatePaillierKey({ rng }),
    ringPedersen: holderRp,
    rng,
  });
  assert.throws(
    () => holderKeyUpdateFinish(r3.state, { ...msg }),
    oneOf("DLOG_PROOF_INVALID", "SHARED_KEY_MISMATCH"),
  );
});

test("signing sessions: replay, a wrong opening of R_o, a missing proof, and reuse of a state are refused", () => {
  const { holder, signer } = coin;
  const sessionId = sid();
  const digest = rng(32);
  const c = holderSignCommit(holder, { sessionId, digest, rng });
  const s = signerSignStart(signer, { sessionId, digest, ownerCommit: c.msg, rng });
  assert.throws(
    () => signerSignStart(signer, { sessionId, digest, ownerCommit: c.msg, rng }),
    code("SESSION_REPLAY"),
  );
  const opening = holderSignNonce(holder, c.state, s.msg, { rng });
  assert.throws(() => holderSignNonce(holder, c.state, s.msg, { rng }), code("SIGN_STATE_USED"));
  assert.throws(
    () => signerSignPartial(signer, s.session, { ...opening, blind: Buffer.from(rng(32)) }, { rng }),
    code("COMMITMENT_MISMATCH"),
  );
  assert.throws(() => signerSignPartial(signer, s.session, opening, { rng }), code("SIGN_SESSION_USED"));
  assert.ok(
    s.session.nonce.every((b) => b === 0),
    "the enclave's nonce is wiped once the session ends",
  );
  // The owner refuses an enclave nonce whose proof is for another digest.
  const c2 = holderSignCommit(holder, { sessionId: sid(), digest, rng });
  const s2 = signerSignStart(signer, { sessionId: sid(), digest, ownerCommit: c2.msg, rng });
  assert.throws(() => holderSignNonce(holder, c2.state, s2.msg, { rng }), code("DLOG_PROOF_INVALID"));
  assert.ok(
    c2.state.nonce.every((b) => b === 0),
    "the owner's nonce is wiped after a refusal",
  );
});

test("malicious owner: c_key = Enc(o + 2^600·q) with its own Π^log* is refused by the range; Enc(o + q) passes and signs correctly", async () => {
  const build = async (extra: bigint) => {
    const sessionId = sid();
    const paillier = await generatePaillierKey({ rng });
    const h1 = holderKeyGenCommit({ sessionId, paillier, ringPedersen: holderRp, rng });
    const s1 = signerKeyGenShare({ sessionId, commit: h1.msg, rng });
    const h2 = holderKeyGenFinish(h1.state, s1.msg, { rng });
    // Same point (x·G = o·G), another plaintext: the wrap the range proof exists to stop.
    const x = big(h2.key.share) + extra * Q;
    const nonce = encryptionNonce(paillier.n, rng);
    const c = encrypt(paillier.n, x, nonce);
    const shareProof = proveLogStar(
      { sessionId, n0: paillier.n, c, X: h2.key.ownerPublicShare },
      { x, rho: nonce.r },
      proverOps(holderRp),
      rng,
    );
    const msg = { ...h2.msg, encryptedShare: writeNat(c), shareProof };
    return { holder: h2.key, finish: () => signerKeyGenFinish(s1.state, msg, { ringPedersen: signerRp }) };
  };
  const far = await build(1n << 600n);
  assert.throws(far.finish, code("ENCRYPTED_SHARE_PROOF_RANGE"));
  const near = await build(1n);
  const signer = near.finish();
  const digest = rng(32);
  const out = signCoin(near.holder, signer, digest);
  assert.ok(
    out.ok && verifyEcdsa(out.signature.compact, digest, pointBytes(near.holder.sharedPublicKey)),
    "with c_key = Enc(o + q) the plaintext still does not wrap: the signature verifies",
  );
});
