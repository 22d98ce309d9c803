// Key generation through both parties: deposit (with commitment round) and key update (fixed SE share), and the
// checks each party makes on the other's messages.
import assert from "node:assert/strict";
import { generatePrimeSync } from "node:crypto";
import { test } from "node:test";
import type { KeyGenSeShare } from "../../../proto/gen/ecdsa2p.ts";
import { writeNat } from "../../../protocol/ecdsa2p/codec.ts";
import { Q, randomScalar } from "../../../protocol/ecdsa2p/ec.ts";
import {
  checkRotatedShare,
  p1KeyGenCommit,
  p1KeyGenFinish,
  p1KeyGenFixed,
  p2CheckPaillierModulus,
  p2KeyGenFinish,
  p2KeyGenShare,
  partyOnePublicInfo,
  RingPedersenCache,
  rotateShare,
} from "../../../protocol/ecdsa2p/index.ts";
import {
  decrypt,
  encrypt,
  encryptionNonce,
  generatePaillierKey,
  paillierKeyFromPrimes,
} from "../../../protocol/ecdsa2p/paillier.ts";
import { proveLogStar } from "../../../protocol/ecdsa2p/proofs/logstar.ts";
import {
  proverOps,
  ringPedersenFromPrimes,
  verifyRingPedersen,
} from "../../../protocol/ecdsa2p/ring-pedersen.ts";
import { bytesToBigInt, G, Point, scalarBytes } from "../../../protocol/encoding.ts";
import { cache, code, deposit, ringPedersen, rng, safePrimes, sid } from "./helpers.ts";

const blum = (bits: number) => generatePrimeSync(bits, { bigint: true, add: 4n, rem: 3n });
const share = (p1: { share: Uint8Array }) => bytesToBigInt(p1.share);

test("deposit: both parties get P = o·S = s·O, c_key decrypts to s, the pool key is spent", async () => {
  const paillier = await generatePaillierKey({ rng });
  const { p1, p2 } = await deposit({ paillier });
  assert.ok(p1.sharedPublicKey.equals(p2.sharedPublicKey), "both parties hold the same shared public key P");
  assert.ok(
    p1.sharedPublicKey.equals(p2.sePublicShare.multiply(bytesToBigInt(p2.share))),
    "the shared key P is the owner's share times the SE's public share (o·S)",
  );
  assert.ok(
    p1.ownerPublicShare.equals(p2.ownerPublicShare),
    "both parties hold the same owner public share O",
  );
  assert.ok(G.multiply(share(p1)).equals(p2.sePublicShare), "the SE's public share S is its share times G");
  assert.equal(decrypt(p1.paillier, p2.encryptedShare), share(p1));
  assert.equal(p2.paillierModulus, paillier.n);
  assert.ok(paillier.used, "the pool's Paillier key is marked spent");
  assert.equal(paillier.nonces.length, 0);
  const info = partyOnePublicInfo(p1);
  assert.deepEqual(info.sharedPublicKey, p1.sharedPublicKey.toBytes(true));
  assert.equal(bytesToBigInt(info.paillierModulus), paillier.n);
  assert.equal(info.tainted, false);
  await assert.rejects(deposit({ paillier }), code("PAILLIER_KEY_USED"));
  // A spent key is refused up front, before any of the owner's input is even looked at.
  assert.throws(() => p1KeyGenCommit({ sessionId: sid(), rng, paillier }), code("PAILLIER_KEY_USED"));
  await assert.rejects(
    p1KeyGenFixed({
      sessionId: sid(),
      share: scalarBytes(5n),
      ownerShare: { publicShare: Buffer.alloc(0), proof: undefined, ringPedersen: undefined },
      sharedPublicKey: G,
      paillier,
      rng,
    }),
    code("PAILLIER_KEY_USED"),
  );
  // Two keygens started with one pool key: only the first to finish gets it.
  const shared = await generatePaillierKey({ rng, nonces: 0 });
  const starts = [sid(), sid()].map((sessionId) => {
    const one = p1KeyGenCommit({ sessionId, rng, paillier: shared });
    return { one, two: p2KeyGenShare({ sessionId, commit: one.msg, ringPedersen: ringPedersen(), rng }) };
  });
  await p1KeyGenFinish(starts[0]!.one.state, starts[0]!.two.msg, { rng, ringPedersenCache: cache });
  await assert.rejects(
    p1KeyGenFinish(starts[1]!.one.state, starts[1]!.two.msg, { rng, ringPedersenCache: cache }),
    code("PAILLIER_KEY_USED"),
  );
});

test("without a pool key, party one generates its Paillier key during the owner's round trip", async () => {
  const sessionId = sid();
  const one = p1KeyGenCommit({ sessionId, rng });
  const two = p2KeyGenShare({ sessionId, commit: one.msg, ringPedersen: ringPedersen(), rng });
  const { key, msg } = await p1KeyGenFinish(one.state, two.msg, { rng });
  const owner = p2KeyGenFinish(two.state, msg);
  assert.ok(owner.sharedPublicKey.equals(key.sharedPublicKey), "owner and SE agree on the shared public key");
  await assert.rejects(p1KeyGenFinish(one.state, two.msg, { rng }), code("KEYGEN_STATE_USED"));
  assert.throws(() => p2KeyGenFinish(two.state, msg), code("KEYGEN_STATE_USED"));
  assert.ok(
    one.state.share.every((b) => b === 0),
    "the keygen state's copy of s is wiped",
  );
});

test("key update: s2 = t2·x1⁻¹·s1 under a new Paillier key keeps P; the receiver checks o2·S2 = P", async () => {
  const { p1, p2 } = await deposit();
  const o1 = share(p2);
  const x1 = randomScalar(rng);
  const o2 = randomScalar(rng);
  const t2 = (((o1 * x1) % Q) * Point.Fn.inv(o2)) % Q;
  const s2 = rotateShare(p1.share, scalarBytes(x1), scalarBytes(t2), rng);
  assert.equal(bytesToBigInt(s2), (share(p1) * o1 * Point.Fn.inv(o2)) % Q);
  const sessionId = sid();
  const two = p2KeyGenShare({ sessionId, ringPedersen: ringPedersen(), rng, share: scalarBytes(o2) });
  checkRotatedShare(s2, two.state.O, p1.sharedPublicKey);
  const { key, msg } = await p1KeyGenFixed({
    sessionId,
    share: s2,
    ownerShare: two.msg,
    sharedPublicKey: p1.sharedPublicKey.toBytes(true),
    rng,
    ringPedersenCache: cache,
  });
  assert.equal(msg.blind.length, 0);
  assert.notEqual(key.paillier.n, p1.paillier.n);
  const receiver = p2KeyGenFinish(two.state, msg, { expectedSharedKey: p1.sharedPublicKey.toBytes(true) });
  assert.ok(
    receiver.sharedPublicKey.equals(p1.sharedPublicKey),
    "the receiver keeps the coin's shared public key",
  );
  assert.ok(
    key.sharedPublicKey.equals(p1.sharedPublicKey),
    "the SE's new key has the coin's shared public key",
  );
  // The wrong t2 (or O2) is caught by the enclave before anything is erased.
  const wrong = rotateShare(p1.share, scalarBytes(x1), scalarBytes((t2 + 1n) % Q), rng);
  assert.throws(() => checkRotatedShare(wrong, two.state.O, p1.sharedPublicKey), code("ROTATION_MISMATCH"));
  const againId = sid();
  const again = p2KeyGenShare({
    sessionId: againId,
    ringPedersen: ringPedersen(),
    rng,
    share: scalarBytes(o2),
  });
  await assert.rejects(
    p1KeyGenFixed({
      sessionId: againId,
      share: wrong,
      ownerShare: again.msg,
      sharedPublicKey: p1.sharedPublicKey,
      rng,
    }),
    code("ROTATION_MISMATCH"),
  );
});

test("a modulus checked ahead (shown with the transfer key) skips its Π^mod in the answer; any other N is checked", async () => {
  const { p1, p2 } = await deposit();
  const o2 = randomScalar(rng);
  const rotated = (x1: bigint) =>
    rotateShare(p1.share, scalarBytes(x1), scalarBytes((((share(p2) * x1) % Q) * Point.Fn.inv(o2)) % Q), rng);
  const update = async () => {
    const sessionId = sid();
    const two = p2KeyGenShare({ sessionId, ringPedersen: ringPedersen(), rng, share: scalarBytes(o2) });
    const paillier = await generatePaillierKey({ rng });
    const announced = p2CheckPaillierModulus(writeNat(paillier.n), paillier.modulusProof);
    assert.equal(announced, paillier.n);
    const { msg } = await p1KeyGenFixed({
      sessionId,
      share: rotated(randomScalar(rng)),
      ownerShare: two.msg,
      sharedPublicKey: p1.sharedPublicKey,
      paillier,
      rng,
      ringPedersenCache: cache,
    });
    return { two, announced, noProof: { ...msg, modulusProof: undefined } };
  };
  const expectedSharedKey = p1.sharedPublicKey;
  const a = await update();
  const key = p2KeyGenFinish(a.two.state, a.noProof, { expectedSharedKey, verifiedModulus: a.announced });
  assert.equal(key.paillierModulus, a.announced);
  // The answer names another N than the one checked: its own proof is required.
  const b = await update();
  assert.throws(
    () => p2KeyGenFinish(b.two.state, b.noProof, { expectedSharedKey, verifiedModulus: a.announced }),
    code("PAILLIER_BLUM_PROOF_MISSING"),
  );
  // The check ahead refuses what the answer's check refuses.
  let p: bigint;
  let q: bigint;
  do [p, q] = [generatePrimeSync(1024, { bigint: true, add: 4n, rem: 1n }), blum(1024)];
  while ((p * q).toString(2).length !== 2048);
  const notBlum = paillierKeyFromPrimes(p, q, { rng, modulusProof: true });
  assert.throws(
    () => p2CheckPaillierModulus(writeNat(notBlum.n), notBlum.modulusProof),
    code("PAILLIER_BLUM_PROOF_INVALID"),
  );
  assert.throws(
    () => p2CheckPaillierModulus(writeNat(notBlum.n * 2n), undefined),
    code("PAILLIER_MODULUS_EVEN"),
  );
});

test("key update, owner side: needs the expected key, refuses another key, an opening, a replayed message", async () => {
  const { p1 } = await deposit();
  const fixed = async () => {
    const sessionId = sid();
    const o2 = randomScalar(rng);
    const two = p2KeyGenShare({ sessionId, ringPedersen: ringPedersen(), rng, share: scalarBytes(o2) });
    // A key update for a coin P = s·O2 of its own (the SE share is any s; only s·O2 = P matters here).
    const s = randomScalar(rng);
    const P = two.state.O.multiply(s);
    const { msg } = await p1KeyGenFixed({
      sessionId,
      share: scalarBytes(s),
      ownerShare: two.msg,
      sharedPublicKey: P,
      rng,
      ringPedersenCache: cache,
    });
    return { two, msg, P };
  };
  const a = await fixed();
  assert.throws(() => p2KeyGenFinish(a.two.state, a.msg), code("KEYGEN_EXPECTED_KEY_MISSING"));
  const b = await fixed();
  assert.throws(
    () => p2KeyGenFinish(b.two.state, b.msg, { expectedSharedKey: p1.sharedPublicKey }),
    code("SHARED_KEY_MISMATCH"),
  );
  const c = await fixed();
  const withBlind = { ...c.msg, blind: Buffer.from(rng(32)) };
  assert.throws(
    () => p2KeyGenFinish(c.two.state, withBlind, { expectedSharedKey: c.P }),
    code("KEYGEN_UNEXPECTED_OPENING"),
  );
  // A KeyGenSeShare from another session: its proofs are bound to that session id.
  const d = await fixed();
  assert.throws(
    () => p2KeyGenFinish(d.two.state, c.msg, { expectedSharedKey: c.P }),
    code("DLOG_PROOF_INVALID"),
  );
});

test("malicious SE, found by the owner: commitment, modulus size, parity, small factors, oversized numbers", async () => {
  const tampered = (t: (m: KeyGenSeShare) => void) => deposit({ tamper: t });
  await assert.rejects(
    tampered((m) => {
      m.publicShare = Buffer.from(G.multiply(5n).toBytes(true));
    }),
    code("COMMITMENT_MISMATCH"),
  );
  await assert.rejects(
    tampered((m) => {
      m.blind = Buffer.from(rng(32));
    }),
    code("COMMITMENT_MISMATCH"),
  );
  const n = (m: KeyGenSeShare) => BigInt(`0x${m.paillierModulus.toString("hex")}`);
  await assert.rejects(
    tampered((m) => {
      m.paillierModulus = writeNat(n(m) * 3n);
    }),
    code("PAILLIER_MODULUS_SMALL_FACTOR"),
  );
  await assert.rejects(
    tampered((m) => {
      m.paillierModulus = writeNat(n(m) + 1n);
    }),
    code("PAILLIER_MODULUS_EVEN"),
  );
  await assert.rejects(
    tampered((m) => {
      m.paillierModulus = Buffer.alloc(513, 0xff);
    }),
    code("NUMBER_TOO_LARGE"),
  );
  await assert.rejects(
    tampered((m) => {
      m.encryptedShare = Buffer.concat([m.encryptedShare, m.encryptedShare]);
    }),
    code("NUMBER_TOO_LARGE"),
  );
  await assert.rejects(
    tampered((m) => {
      m.shareProof = undefined;
    }),
    code("ENCRYPTED_SHARE_PROOF_MISSING"),
  );
  const small = paillierKeyFromPrimes(blum(512), blum(512), { rng, modulusProof: true });
  await assert.rejects(deposit({ paillier: small }), code("PAILLIER_MODULUS_TOO_SMALL"));
});

test("malicious SE: a non-Blum modulus, a modulus with a 264-bit factor", async () => {
  let p: bigint;
  let q: bigint;
  do [p, q] = [generatePrimeSync(1024, { bigint: true, add: 4n, rem: 1n }), blum(1024)];
  while ((p * q).toString(2).length !== 2048);
  const notBlum = paillierKeyFromPrimes(p, q, { rng, modulusProof: true });
  await assert.rejects(deposit({ paillier: notBlum }), code("PAILLIER_BLUM_PROOF_INVALID"));
  do [p, q] = [blum(264), blum(1784)];
  while ((p * q).toString(2).length !== 2048);
  const unbalanced = paillierKeyFromPrimes(p, q, { rng, modulusProof: true });
  await assert.rejects(deposit({ paillier: unbalanced }), code("NO_SMALL_FACTOR_PROOF_RANGE"));
});

test("malicious SE: c_key = Enc(s + q) under the proof for s; Enc(s + 2^600·q) with its own proof", async () => {
  await assert.rejects(
    deposit({
      tamper: (m, p1) => {
        m.encryptedShare = writeNat(
          encrypt(p1.paillier.n, share(p1) + Q, encryptionNonce(p1.paillier.n, rng)),
        );
      },
    }),
    code("ENCRYPTED_SHARE_PROOF_INVALID"),
  );
  await assert.rejects(
    deposit({
      tamper: (m, p1, sessionId) => {
        const n0 = p1.paillier.n;
        const x = share(p1) + 2n ** 600n * Q;
        const nonce = encryptionNonce(n0, rng);
        const c = encrypt(n0, x, nonce);
        const ops = proverOps(verifyRingPedersen(ringPedersen().params, cache));
        m.encryptedShare = writeNat(c);
        m.shareProof = proveLogStar({ sessionId, n0, c, X: p1.sePublicShare }, { x, rho: nonce.r }, ops, rng);
      },
    }),
    code("ENCRYPTED_SHARE_PROOF_RANGE"),
  );
});

test("malicious owner, found by the SE: share proof, point encoding, ring-Pedersen proof and size", async () => {
  const paillier = await generatePaillierKey({ rng, modulusProof: false, nonces: 0 });
  const attempt = async (
    t: (m: ReturnType<typeof p2KeyGenShare>["msg"]) => void,
    rpCache?: RingPedersenCache,
  ) => {
    const sessionId = sid();
    const one = p1KeyGenCommit({ sessionId, rng, paillier });
    const two = p2KeyGenShare({ sessionId, commit: one.msg, ringPedersen: ringPedersen(), rng });
    t(two.msg);
    return p1KeyGenFinish(one.state, two.msg, { rng, ringPedersenCache: rpCache });
  };
  const other = p2KeyGenShare({ sessionId: sid(), ringPedersen: ringPedersen(), rng });
  await assert.rejects(
    attempt((m) => {
      m.proof = other.msg.proof;
    }),
    code("DLOG_PROOF_INVALID"),
  );
  await assert.rejects(
    attempt((m) => {
      m.publicShare = Buffer.alloc(33, 0);
    }),
    code("INVALID_POINT"),
  );
  await assert.rejects(
    attempt((m) => {
      m.publicShare = Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 1)]);
    }),
    code("INVALID_POINT"),
  );
  const fresh = ringPedersenFromPrimes(safePrimes.p, safePrimes.q, rng);
  const proof = fresh.params.proof!;
  await assert.rejects(
    attempt((m) => {
      m.ringPedersen = {
        ...fresh.params,
        proof: { ...proof, responses: [proof.responses[1]!, ...proof.responses.slice(1)] },
      };
    }),
    code("RING_PEDERSEN_PROOF_INVALID"),
  );
  await assert.rejects(
    attempt((m) => {
      m.ringPedersen = { ...fresh.params, modulus: writeNat(safePrimes.p * 3n) };
    }),
    code("RING_PEDERSEN_MODULUS_TOO_SMALL"),
  );
  assert.equal(paillier.used, false, "no failed attempt spent the Paillier key");
});

test("session ids must be 16 to 32 bytes; the ring-Pedersen cache remembers verified parameters, bounded", async () => {
  assert.throws(() => p1KeyGenCommit({ sessionId: rng(15), rng }), code("SESSION_ID_LENGTH"));
  assert.throws(
    () => p2KeyGenShare({ sessionId: rng(33), ringPedersen: ringPedersen(), rng }),
    code("SESSION_ID_LENGTH"),
  );
  assert.throws(
    () =>
      p2KeyGenShare({
        sessionId: sid(),
        commit: { commitment: Buffer.alloc(31) },
        ringPedersen: ringPedersen(),
        rng,
      }),
    code("COMMITMENT_LENGTH"),
  );
  const small = new RingPedersenCache(2);
  const params = [0, 1, 2].map(() => ringPedersenFromPrimes(safePrimes.p, safePrimes.q, rng).params);
  for (const p of params) verifyRingPedersen(p, small);
  assert.equal(small.size, 2);
  // A cached statement (N^, s, t) is not re-proved: even a now-broken proof for it is accepted from the cache...
  const broken = { ...params[2]!, proof: { commitments: [], responses: [] } };
  verifyRingPedersen(broken, small);
  // ...while the evicted, least recently used one is checked again.
  assert.throws(
    () => verifyRingPedersen({ ...params[0]!, proof: { commitments: [], responses: [] } }, small),
    code("PROOF_SHAPE"),
  );
});

test("a malformed owner share is refused without spending the keygen state", async () => {
  const sessionId = sid();
  const one = p1KeyGenCommit({ sessionId, rng });
  const two = p2KeyGenShare({ sessionId, commit: one.msg, ringPedersen: ringPedersen(), rng });
  const bad = { ...two.msg, proof: { ...two.msg.proof!, response: Buffer.alloc(32, 1) } };
  await assert.rejects(
    p1KeyGenFinish(one.state, bad, { rng, ringPedersenCache: cache }),
    code("DLOG_PROOF_INVALID"),
  );
  assert.equal(one.state.consumed, false);
  const { key, msg } = await p1KeyGenFinish(one.state, two.msg, { rng, ringPedersenCache: cache });
  assert.ok(
    p2KeyGenFinish(two.state, msg).sharedPublicKey.equals(key.sharedPublicKey),
    "with a cached Ring-Pedersen proof, owner and SE agree on the shared public key",
  );
});
