// The replica channel (issue #23) between two in-process "enclaves" with real instance keys and real simulator
// attestation documents, and a host in the middle that drops, replays, reorders, alters and swaps bytes.
import assert from "node:assert/strict";
import { generateKeyPairSync, type KeyObject, sign, verify } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { type SimulatedPcrs, SimulatorProvider } from "../../../attestation/providers/simulator.ts";
import { SimulatorCa } from "../../../attestation/sim-ca.ts";
import { CertCache } from "../../../attestation/verify.ts";
import { handshakeSignedBytes, instanceKeysFrom } from "../../../enclave/instance.ts";
import type { AdmissionPolicy } from "../../../enclave/replica/admission.ts";
import {
  attestWith,
  type Channel,
  type ChannelConfig,
  completeInitiator,
  completeResponder,
  type HandshakeSigner,
  initiate,
  open,
  replaceChannel,
  respond,
  seal,
  wipeChannel,
  wipeHandshake,
} from "../../../enclave/replica/channel.ts";
import { instancePublicKey } from "../../../protocol/ecdsa2p/partial-statement.ts";
import { ringPedersenFromPrimes } from "../../../protocol/ecdsa2p/ring-pedersen.ts";
import { ProtocolError } from "../../../protocol/errors.ts";
import { systemRng } from "../../../protocol/rng.ts";

const ca = SimulatorCa.open(mkdtempSync(path.join(tmpdir(), "channel-")));
const otherCa = SimulatorCa.open(mkdtempSync(path.join(tmpdir(), "channel-other-")));
const PCRS = {
  pcr0: new Uint8Array(48).fill(0x30),
  pcr1: new Uint8Array(48).fill(0x31),
  pcr2: new Uint8Array(48).fill(0x32),
};
const CONFIG_ID = Buffer.from("replica-set/config/7");
const certCache = new CertCache();
const admission: AdmissionPolicy = {
  mode: "simulator",
  pcrs: PCRS,
  simulatorRootPem: ca.rootPem(),
  certCache,
};

const primes = JSON.parse(
  readFileSync(
    path.join(import.meta.dirname, "../../protocol/ecdsa2p/fixtures/ring-pedersen-primes.json"),
    "utf8",
  ),
);
/** Real instance keys, as an enclave makes them at boot (ring-Pedersen from checked-in primes: test data). */
const realInstance = () =>
  instanceKeysFrom(ringPedersenFromPrimes(BigInt(`0x${primes.p}`), BigInt(`0x${primes.q}`), systemRng));
const A = realInstance();
const B = realInstance();

/** A signer over a bare Ed25519 key, signing exactly what InstanceKeys.signHandshake signs. */
function rawSigner(key?: KeyObject, presented?: Buffer): HandshakeSigner {
  const pair = generateKeyPairSync("ed25519");
  const privateKey = key ?? pair.privateKey;
  const own = Buffer.from(pair.publicKey.export({ format: "jwk" }).x!, "base64url");
  return {
    publicKey: presented ?? own,
    signHandshake: (h) => sign(null, handshakeSignedBytes(h), privateKey),
  };
}

function config(
  signer: HandshakeSigner,
  opts: { pcrs?: SimulatedPcrs; ca?: SimulatorCa; clock?: () => number; more?: Partial<ChannelConfig> } = {},
): ChannelConfig {
  const provider = new SimulatorProvider({
    ca: opts.ca ?? ca,
    pcrs: opts.pcrs ?? PCRS,
    ...(opts.clock ? { now: opts.clock } : {}),
  });
  return {
    configId: CONFIG_ID,
    signer,
    attest: attestWith(provider),
    admission,
    now: Date.now,
    ...opts.more,
  };
}

/** A full handshake carried faithfully by the host. */
async function connect(ci: ChannelConfig, cr: ChannelConfig): Promise<{ a: Channel; b: Channel }> {
  const { state: si, hello } = initiate(ci);
  const { state: sr, reply } = await respond(cr, hello);
  const { channel: a, finish } = await completeInitiator(si, reply);
  const b = completeResponder(sr, finish);
  assert.equal(si.ephemeral, undefined, "the initiator's ephemeral private key is dropped");
  assert.equal(sr.pending, undefined, "the responder's pending keys now belong to the channel");
  return { a, b };
}

function code(e: unknown): string {
  assert.ok(e instanceof ProtocolError, `a ProtocolError, got ${String(e)}`);
  assert.ok(e.message.length > 0, "with a plain message");
  return e.code;
}

function refusedWith(expected: string | RegExp, f: () => unknown, what: string): void {
  let thrown: unknown;
  try {
    f();
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown !== undefined, `${what}: refused`);
  const c = code(thrown);
  if (typeof expected === "string") assert.equal(c, expected, `${what}: ${(thrown as Error).message}`);
  else assert.match(c, expected, `${what}: ${(thrown as Error).message}`);
}

async function rejectsWith(expected: string, f: () => Promise<unknown>, what: string): Promise<void> {
  let thrown: unknown;
  try {
    await f();
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown !== undefined, `${what}: refused`);
  assert.equal(code(thrown), expected, `${what}: ${(thrown as Error).message}`);
}

const text = (s: string) => Buffer.from(s, "utf8");
const flipped = (b: Uint8Array, i: number, mask = 0x01) => {
  const c = Buffer.from(b);
  c[i]! ^= mask;
  return c;
};
const snapshot = (ch: Channel) => ({
  send: { key: Buffer.from(ch.send.chainKey), counter: ch.send.counter },
  recv: { key: Buffer.from(ch.recv.chainKey), counter: ch.recv.counter },
});

test("two replicas complete the handshake and talk both ways; each knows the other's attested instance key", async () => {
  const { a, b } = await connect(config(A), config(B));
  assert.deepEqual(a.id, b.id, "one channel id on both sides");
  assert.deepEqual(a.peer.instanceKey, B.publicKey, "A sees B's instance key");
  assert.deepEqual(b.peer.instanceKey, A.publicKey, "B sees A's instance key");
  assert.equal(a.peer.simulator, true, "a simulator peer, and said so");
  for (let i = 0; i < 5; i++) {
    assert.deepEqual(open(b, seal(a, text(`A→B ${i}`))), text(`A→B ${i}`), `A to B, message ${i}`);
    assert.deepEqual(open(a, seal(b, text(`B→A ${i}`))), text(`B→A ${i}`), `B to A, message ${i}`);
  }
  assert.deepEqual(open(b, seal(a, new Uint8Array(0))), Buffer.alloc(0), "an empty message");
  const frame = seal(a, text("secret share"));
  assert.equal(frame.includes(text("secret share")), false, "the plaintext is not in the frame");
  // A frame for B cannot be reflected back to its sender: the directions have different keys and nonces.
  refusedWith("CHANNEL_AUTH", () => open(a, frame), "A's own frame reflected to A");
  assert.deepEqual(open(b, frame), text("secret share"), "and B still opens it");
});

test("a handshake signature covers its own prefix, so it is no signature over a bare digest (a partial statement)", () => {
  const h = Buffer.from(systemRng(32));
  const sig = A.signHandshake(h);
  const key = instancePublicKey(A.publicKey);
  assert.equal(verify(null, handshakeSignedBytes(h), key, sig), true, "it verifies over the prefixed bytes");
  assert.equal(verify(null, h, key, sig), false, "not over the bare hash");
  assert.equal(
    handshakeSignedBytes(h).length === 64,
    false,
    "never the 64 bytes of a partial statement's digest",
  );
});

test("the host altering any byte of a sealed message is refused, and the genuine message still opens", async () => {
  const { a, b } = await connect(config(A), config(B));
  open(b, seal(a, text("first"))); // counter 1 next, so that counter edits can go both ways
  const frame = seal(a, text("a raft append entries carrying a key share"));
  const before = snapshot(b);
  for (let i = 0; i < frame.length; i++) {
    for (const mask of [0x01, 0x80]) {
      refusedWith(
        /^CHANNEL_(AUTH|FRAME|VERSION|FOREIGN|REPLAY|SKIP|TOO_LARGE)$/,
        () => open(b, flipped(frame, i, mask)),
        `byte ${i} ^ ${mask}`,
      );
    }
    assert.deepEqual(snapshot(b), before, `byte ${i}: a refused frame leaves the receiver's state as it was`);
  }
  refusedWith("CHANNEL_FRAME", () => open(b, Buffer.concat([frame, Buffer.from([0])])), "a byte appended");
  refusedWith("CHANNEL_FRAME", () => open(b, frame.subarray(0, frame.length - 1)), "a byte cut");
  assert.deepEqual(
    open(b, frame),
    text("a raft append entries carrying a key share"),
    "the genuine one opens",
  );
});

test("replays, duplicates and reorderings to an older counter are refused; drops are skipped over", async () => {
  const { a, b } = await connect(config(A), config(B));
  const m = [0, 1, 2, 3, 4, 5].map((i) => seal(a, text(`m${i}`)));
  assert.deepEqual(open(b, m[0]!), text("m0"), "m0");
  refusedWith("CHANNEL_REPLAY", () => open(b, m[0]!), "m0 replayed");
  assert.deepEqual(open(b, m[2]!), text("m2"), "m1 dropped: m2 opens, skipping ahead");
  refusedWith("CHANNEL_REPLAY", () => open(b, m[1]!), "m1 arriving late (reordered)");
  refusedWith("CHANNEL_REPLAY", () => open(b, m[2]!), "m2 duplicated");
  assert.deepEqual(open(b, m[5]!), text("m5"), "m3 and m4 dropped");
  refusedWith("CHANNEL_REPLAY", () => open(b, m[4]!), "m4 after m5");
  refusedWith("CHANNEL_REPLAY", () => open(b, m[3]!), "m3 after m5");
  assert.equal(b.recv.counter, 6, "the receiver expects counter 6 next");
});

test("a skip beyond the bound is refused without moving the chain", async () => {
  const { a, b } = await connect(config(A), config(B, { more: { maxSkip: 3 } }));
  const m = [0, 1, 2, 3, 4, 5].map((i) => seal(a, text(`m${i}`)));
  refusedWith("CHANNEL_SKIP", () => open(b, m[4]!), "four messages skipped, three allowed");
  assert.equal(b.recv.counter, 0, "nothing moved");
  assert.deepEqual(open(b, m[3]!), text("m3"), "three skipped is within the bound");
  assert.deepEqual(open(b, m[5]!), text("m5"), "and on from there");
});

test("forward secrecy: after N messages every earlier chain key either side held is zero", async () => {
  const { a, b } = await connect(config(A), config(B));
  const sendKeys: Buffer[] = [];
  const recvKeys: Buffer[] = [];
  const frames: Buffer[] = [];
  const N = 20;
  for (let i = 0; i < N; i++) {
    sendKeys.push(a.send.chainKey);
    recvKeys.push(b.recv.chainKey);
    const f = seal(a, text(`message ${i}`));
    frames.push(f);
    if (i % 4 !== 3) open(b, f); // every fourth one is dropped by the host, and skipped over
  }
  open(b, seal(a, text("last")));
  assert.equal(new Set(sendKeys).size, N, "a new chain key buffer per message");
  for (const [i, k] of sendKeys.entries())
    assert.ok(
      k.every((x) => x === 0),
      `sender's CK_${i} is zero`,
    );
  for (const [i, k] of recvKeys.entries())
    assert.ok(
      k.every((x) => x === 0),
      `receiver's CK_${i} is zero`,
    );
  assert.ok(
    a.send.chainKey.some((x) => x !== 0),
    "the current chain key is not zero (the check above can fail)",
  );
  // The keys now held do not open anything recorded earlier: the chain only moves forward.
  for (const [i, f] of frames.entries())
    refusedWith("CHANNEL_REPLAY", () => open(b, f), `recorded message ${i}`);
});

test("the host altering any byte of the handshake makes it fail; the genuine messages still complete it", async () => {
  const ci = config(A);
  const cr = config(B);
  // hello: the responder cannot tell, the initiator then refuses the reply (or the hello is refused outright).
  const { state: si0, hello } = initiate(ci);
  for (let i = 0; i < hello.length; i++) {
    let failed = false;
    try {
      const { reply } = await respond(cr, flipped(hello, i));
      await completeInitiator(si0, reply);
    } catch (e) {
      failed = true;
      assert.match(code(e), /^CHANNEL_(FRAME|VERSION|CONTEXT|KEY|SIGNATURE|SELF)$/, `hello byte ${i}`);
    }
    assert.ok(failed, `hello byte ${i} altered: the handshake fails`);
  }
  // reply: every byte outside the attestation document, and a sample inside it (the document's own byte by byte
  // flip test is test/attestation/flip.test.ts).
  const { state: si, hello: hello2 } = initiate(ci);
  const { state: sr, reply } = await respond(cr, hello2);
  const docEnd = reply.length - 64;
  const positions = [...Array(reply.length).keys()].filter((i) => i < 70 || i >= docEnd || i % 7 === 0);
  for (const i of positions) {
    let failed = false;
    try {
      await completeInitiator(si, flipped(reply, i));
    } catch (e) {
      failed = true;
      assert.match(code(e), /^(CHANNEL_(FRAME|VERSION|SIGNATURE|KEY)|PEER_[A-Z]+)$/, `reply byte ${i}`);
    }
    assert.ok(failed, `reply byte ${i} altered: refused`);
  }
  const { channel: a, finish } = await completeInitiator(si, reply);
  const finishPositions = [...Array(finish.length).keys()].filter(
    (i) => i < 8 || i >= finish.length - 64 || i % 7 === 0,
  );
  for (const i of finishPositions) {
    let failed = false;
    try {
      completeResponder(sr, flipped(finish, i));
    } catch (e) {
      failed = true;
      assert.match(code(e), /^(CHANNEL_(FRAME|VERSION|SIGNATURE)|PEER_[A-Z]+)$/, `finish byte ${i}`);
    }
    assert.ok(failed, `finish byte ${i} altered: refused`);
  }
  const b = completeResponder(sr, finish);
  assert.deepEqual(open(b, seal(a, text("after all that"))), text("after all that"), "the channel works");
  refusedWith(
    "CHANNEL_STATE",
    () => completeResponder(sr, finish),
    "a finish replayed to a completed handshake",
  );
  await rejectsWith(
    "CHANNEL_STATE",
    () => completeInitiator(si, reply),
    "a reply replayed to a completed one",
  );
});

test("a man in the middle swapping either ephemeral key is refused by the signatures", async () => {
  const ci = config(A);
  const cr = config(B);
  const mallory = generateKeyPairSync("x25519");
  const eM = Buffer.from(mallory.publicKey.export({ format: "jwk" }).x!, "base64url");
  // hello: e_I at offset 3 + len(config id).
  const { state: si, hello } = initiate(ci);
  const eAt = 3 + CONFIG_ID.length;
  const swappedHello = Buffer.from(hello);
  eM.copy(swappedHello, eAt);
  const { reply: r1 } = await respond(cr, swappedHello);
  await rejectsWith("CHANNEL_SIGNATURE", () => completeInitiator(si, r1), "e_I swapped in the hello");
  // reply: e_R at offset 2.
  const { state: sr, reply } = await respond(cr, hello);
  const swappedReply = Buffer.from(reply);
  eM.copy(swappedReply, 2);
  await rejectsWith(
    "CHANNEL_SIGNATURE",
    () => completeInitiator(si, swappedReply),
    "e_R swapped in the reply",
  );
  // The host as a responder with keys of its own has no document under the trusted root.
  const host = config(rawSigner(), { ca: otherCa });
  const { reply: fake } = await respond(host, hello);
  await rejectsWith("PEER_ROOT", () => completeInitiator(si, fake), "the host answering with its own keys");
  // None of this spoiled the genuine handshake.
  const { channel: a, finish } = await completeInitiator(si, reply);
  const b = completeResponder(sr, finish);
  assert.deepEqual(open(a, seal(b, text("ok"))), text("ok"), "the genuine channel works");
});

test("peers with other PCRs, another root or a stale document are refused, in both directions", async () => {
  const other = { ...PCRS, pcr2: new Uint8Array(48).fill(0x99) };
  await rejectsWith("PEER_PCRS", () => connect(config(A), config(B, { pcrs: other })), "responder's PCRs");
  await rejectsWith("PEER_PCRS", () => connect(config(A, { pcrs: other }), config(B)), "initiator's PCRs");
  await rejectsWith("PEER_ROOT", () => connect(config(A), config(B, { ca: otherCa })), "responder's root");
  await rejectsWith("PEER_ROOT", () => connect(config(A, { ca: otherCa }), config(B)), "initiator's root");
  const old = () => Date.now() - 10 * 60_000;
  await rejectsWith(
    "PEER_STALE",
    () => connect(config(A), config(B, { clock: old })),
    "responder's document",
  );
  await rejectsWith(
    "PEER_STALE",
    () => connect(config(A, { clock: old }), config(B)),
    "initiator's document",
  );
  // #24's hook: the same PCRs pass once named as an accepted release.
  const accepting = { ...admission, acceptedReleases: [{ name: "next", ...other }] };
  const { a } = await connect(config(A, { more: { admission: accepting } }), config(B, { pcrs: other }));
  assert.equal(a.peer.release, "next", "admitted as the accepted release");
});

test("a handshake signed under another key than the attested instance key is refused", async () => {
  // The peer presents (and attests) C's key but signs with a key of its own.
  const C = rawSigner();
  const liar = rawSigner(generateKeyPairSync("ed25519").privateKey, C.publicKey);
  await rejectsWith(
    "CHANNEL_SIGNATURE",
    () => connect(config(A), config(liar)),
    "responder signs with another key",
  );
  await rejectsWith(
    "CHANNEL_SIGNATURE",
    () => connect(config(liar), config(B)),
    "initiator signs with another key",
  );
  assert.equal(
    (await connect(config(A), config(C))).a.peer.release,
    "self",
    "C itself is admitted (control)",
  );
  // The peer signs validly under the key it presents, but its document attests another instance key (C's).
  const signer = rawSigner();
  const provider = new SimulatorProvider({ ca, pcrs: PCRS });
  const misattest: ChannelConfig = {
    ...config(signer),
    attest: (userData, _publicKey, nonce) => provider.attest({ userData, publicKey: C.publicKey, nonce }),
  };
  await rejectsWith(
    "PEER_BINDING",
    () => connect(config(A), misattest),
    "responder's document names another key",
  );
  await rejectsWith(
    "PEER_BINDING",
    () => connect(misattest, config(B)),
    "initiator's document names another key",
  );
  // A document made for another handshake (an old one the host recorded) does not bind this one.
  const recorded = await provider.attest({
    userData: new Uint8Array(32),
    publicKey: signer.publicKey,
    nonce: new Uint8Array(32),
  });
  const replaying: ChannelConfig = { ...config(signer), attest: async () => recorded };
  await rejectsWith("PEER_BINDING", () => connect(config(A), replaying), "a recorded document");
});

test("handshakes are refused across configurations and when reflected to their sender", async () => {
  const { hello } = initiate(config(A));
  await rejectsWith(
    "CHANNEL_CONTEXT",
    () => respond(config(B, { more: { configId: Buffer.from("replica-set/config/8") } }), hello),
    "another configuration id",
  );
  await rejectsWith("CHANNEL_SELF", () => respond(config(A), hello), "our own hello reflected to us");
  const zeroKey = Buffer.from(hello);
  zeroKey.fill(0, 3 + CONFIG_ID.length, 3 + CONFIG_ID.length + 32);
  await rejectsWith(
    "CHANNEL_KEY",
    () => respond(config(B), zeroKey),
    "a small-order (all-zero) ephemeral key",
  );
});

test("truncated, padded, mistyped and garbage framing is refused with a framing code, never a crash", async () => {
  const ci = config(A);
  const cr = config(B);
  const { state: si, hello } = initiate(ci);
  const { state: sr, reply } = await respond(cr, hello);
  const { channel: a, finish } = await completeInitiator(si, reply);
  const sealed = seal(a, text("x"));
  const b = completeResponder(sr, finish);
  const { state: si2 } = initiate(ci);
  const { state: sr2 } = await respond(cr, initiate(ci).hello);
  const decoders: [string, Buffer, (x: Uint8Array) => Promise<unknown>][] = [
    ["hello", hello, (x) => respond(cr, x)],
    ["reply", reply, (x) => completeInitiator(si2, x)],
    ["finish", finish, async (x) => completeResponder(sr2, x)],
    ["sealed", sealed, async (x) => open(b, x)],
  ];
  for (const [name, good, decode] of decoders) {
    await rejectsWith("CHANNEL_FRAME", () => decode(new Uint8Array(0)), `${name}: empty`);
    for (let n = 2; n < good.length; n += Math.max(1, Math.floor(good.length / 97)))
      await rejectsWith("CHANNEL_FRAME", () => decode(good.subarray(0, n)), `${name}: cut to ${n} bytes`);
    await rejectsWith(
      "CHANNEL_FRAME",
      () => decode(Buffer.concat([good, Buffer.from([7])])),
      `${name}: padded`,
    );
    await rejectsWith("CHANNEL_VERSION", () => decode(flipped(good, 0, 0x02)), `${name}: version 3`);
    for (let t = 0; t < 8; t++)
      if (t !== good[1])
        await rejectsWith(
          "CHANNEL_FRAME",
          () => decode(Buffer.from([1, t, ...good.subarray(2)])),
          `${name}: type ${t}`,
        );
    for (let k = 0; k < 20; k++) {
      const junk = Buffer.from(systemRng(1 + k * 13));
      junk[0] = 1;
      junk[1] = good[1]!;
      let thrown: unknown;
      try {
        await decode(junk);
      } catch (e) {
        thrown = e;
      }
      assert.ok(
        thrown instanceof ProtocolError,
        `${name}: garbage of ${junk.length} bytes is a ProtocolError`,
      );
    }
  }
  // Lengths over the bounds are refused before anything is allocated or read.
  const bigDoc = Buffer.from(reply);
  bigDoc.writeUInt16BE(0xffff, 66);
  await rejectsWith("CHANNEL_FRAME", () => completeInitiator(si2, bigDoc), "a document length over 16 KiB");
  const bigSealed = Buffer.from(sealed);
  bigSealed.writeUInt32BE(0xffff_ffff, 26);
  refusedWith("CHANNEL_TOO_LARGE", () => open(b, bigSealed), "a length field over the cap");
  assert.deepEqual(open(b, sealed), text("x"), "the genuine frame still opens");
});

test("message size is capped by a parameter; a large snapshot fits under the default", async () => {
  const small = await connect(config(A, { more: { maxMessageBytes: 1000 } }), config(B));
  refusedWith(
    "CHANNEL_TOO_LARGE",
    () => seal(small.a, new Uint8Array(1001)),
    "1001 bytes over a cap of 1000",
  );
  assert.equal(small.a.send.counter, 0, "nothing was consumed");
  const { a, b } = await connect(config(A), config(B, { more: { maxMessageBytes: 1000 } }));
  refusedWith("CHANNEL_TOO_LARGE", () => open(b, seal(a, new Uint8Array(1001))), "the receiver's cap");
  const big = await connect(config(A), config(B));
  const snapshotBytes = Buffer.from(systemRng(16 * 1024 * 1024));
  assert.deepEqual(open(big.b, seal(big.a, snapshotBytes)), snapshotBytes, "a 16 MiB snapshot goes through");
});

test("wiping zeroes every key; a new handshake replaces a channel and the old one's frames do not open", async () => {
  const first = await connect(config(A), config(B));
  const keys = [first.a.send.chainKey, first.a.recv.chainKey];
  const pending = seal(first.a, text("before the rekey"));
  const second = await connect(config(A), config(B));
  const a = replaceChannel(first.a, second.a);
  const b = replaceChannel(first.b, second.b);
  for (const k of [...keys, first.b.send.chainKey, first.b.recv.chainKey])
    assert.ok(
      k.every((x) => x === 0),
      "the replaced channel's keys are zero",
    );
  assert.notDeepEqual(a.id, first.a.id, "a new channel id");
  refusedWith("CHANNEL_STATE", () => seal(first.a, text("x")), "the old channel cannot seal");
  refusedWith("CHANNEL_STATE", () => open(first.b, pending), "nor open");
  refusedWith("CHANNEL_FOREIGN", () => open(b, pending), "the old channel's frame on the new one");
  assert.deepEqual(open(b, seal(a, text("after"))), text("after"), "the new channel works");
  wipeChannel(a);
  assert.ok(a.send.chainKey.every((x) => x === 0) && a.recv.chainKey.every((x) => x === 0), "wiped");
  // An abandoned handshake drops its ephemeral key and zeroes its pending keys.
  const { state: si, hello } = initiate(config(A));
  const { state: sr, reply } = await respond(config(B), hello);
  const held = [sr.pending!.send, sr.pending!.recv];
  wipeHandshake(si);
  wipeHandshake(sr);
  assert.ok(
    held.every((k) => k.every((x) => x === 0)),
    "the responder's pending keys are zero",
  );
  await rejectsWith("CHANNEL_STATE", () => completeInitiator(si, reply), "an abandoned initiator");
});
