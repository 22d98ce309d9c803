// The attested, end-to-end encrypted channel between two enclaves of a replica set (DESIGN.md 4.1, issue #23).
// The host carries every byte and may drop, delay, reorder, replay or alter any of them; this file trusts none.
// Pure functions over explicit state objects: no sockets, no timers, time and attestation passed in.
//
// Handshake: a SIGMA-style signed Diffie-Hellman (Krawczyk, "SIGMA", CRYPTO 2003; in the shape of Noise's XX
// pattern, three messages), in which each side's identity is its attested Ed25519 instance key:
//   1. hello  I → R   e_I (fresh X25519 public key), pk_I (I's instance key), the configuration id
//   2. reply  R → I   e_R, pk_R, R's attestation document, R's signature
//   3. finish I → R   I's attestation document, I's signature
// Transcript hash th = SHA-256(domain, configuration id, e_I, pk_I, e_R, pk_R). Each side signs, under its
// instance key (InstanceKeys.signHandshake, a prefix no partial-signature statement has), and attests (the
// document's user_data) the hash of th with its role, so neither message can be reflected or used in the other
// role; the document's public_key is the instance key and its nonce the peer's ephemeral key (the peer's fresh
// challenge). Both sides admit the peer (admission.ts): trusted root, fresh, our PCRs or an accepted release.
// SIGMA's MAC over the identity is not needed: both instance keys are inside the signed transcript, which
// binds each identity to the session keys (no unknown-key-share), and identity hiding is no goal (the host sees
// the documents anyway). A host swapping an ephemeral key changes th, so the signatures fail; a host with its
// own keys has no document for them. Keys: HKDF-SHA256(ikm = X25519(e, e'), salt = th) → one chain key per direction; the
// ephemeral private keys and the DH output are dropped or zeroed as soon as the chain keys exist.
//
// Messages: Signal's symmetric-key ratchet (the "sending/receiving chains" of the Double Ratchet spec, §2.2):
// per direction a chain key CK_i and counter i; MK_i = HMAC-SHA256(CK_i, 0x01), CK_{i+1} = HMAC-SHA256(CK_i,
// 0x02); CK_i and MK_i are zeroed right after use, so a memory compromise later cannot decrypt recorded traffic
// (messages carry key shares that the protocol later deletes: DESIGN.md 4, "deletion is real"). AEAD is
// AES-256-GCM under MK_i, nonce = sender role ‖ counter, AAD = the frame header (version, type, channel id,
// counter, length). The receiver accepts only counters above the last it accepted: it may skip ahead (the host
// dropped messages; skipped message keys are never derived, the chain keys passed over are zeroed; at most
// maxSkip), never back: replays, duplicates and reorderings to an older counter are refused; the layer above
// (Raft) retransmits. A message that fails to open leaves the state as it was.
// There is no DH ratchet: a memory compromise now reads what follows until the next handshake (post-compromise
// security comes from rekeying, `replaceChannel`); what was sent before it stays unreadable.
//
// What JavaScript cannot promise: keys also live inside OpenSSL contexts (HMAC, cipher, the X25519 KeyObject)
// until they are freed; OpenSSL cleanses those on free, which happens when the garbage collector drops them.
// Every Buffer this file owns with key material is zeroed explicitly; a plaintext `open` returns is the
// caller's to zero once applied.
//
// Framing (all integers big-endian; strict: exact lengths, known version and type, bounds before allocation):
//   hello   01 01 | len(cfg) u8 | cfg (1..64) | e_I (32) | pk_I (32)
//   reply   01 02 | e_R (32) | pk_R (32) | len(doc) u16 | doc | sig (64)
//   finish  01 03 | len(doc) u16 | doc | sig (64)
//   sealed  01 04 | channel id (16) | counter u64 | len u32 | ciphertext (len) | tag (16)
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
  verify,
} from "node:crypto";
import { LIMITS } from "../../attestation/document.ts";
import type { AttestationProvider } from "../../attestation/providers/provider.ts";
import { instancePublicKey } from "../../protocol/ecdsa2p/partial-statement.ts";
import { equalCT } from "../../protocol/encoding.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import { handshakeSignedBytes, type InstanceKeys } from "../instance.ts";
import { type AdmissionPolicy, type AdmittedPeer, admitPeer } from "./admission.ts";

export const CHANNEL_VERSION = 1;
export const FRAME = { hello: 1, reply: 2, finish: 3, sealed: 4 } as const;
/** Default cap on one message's plaintext: a snapshot of 10,000 coins fits many times over. */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/** Default bound on how far a receiver skips ahead over dropped messages. */
export const DEFAULT_MAX_SKIP = 10_000;
/** Counters stay exact JavaScript integers; a channel this old must be replaced by a new handshake. */
export const MAX_COUNTER = Number.MAX_SAFE_INTEGER;
/** The largest maxSkip a configuration may ask for. */
export const MAX_SKIP_LIMIT = 1_000_000;
export const CHANNEL_ID_BYTES = 16;
export const MAX_CONFIG_ID_BYTES = 64;
const KEY_BYTES = 32;
const SIG_BYTES = 64;
const TAG_BYTES = 16;
const SEALED_HEADER_BYTES = 2 + CHANNEL_ID_BYTES + 8 + 4;

const DOMAIN = "statechain/v1/replica-channel/";
const X25519_SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");

export type Role = "initiator" | "responder";

export type ChannelCode =
  | "CHANNEL_FRAME" // malformed framing: length, bounds, unknown type
  | "CHANNEL_VERSION" // a version this code does not speak
  | "CHANNEL_CONTEXT" // another replica set's configuration id
  | "CHANNEL_KEY" // an ephemeral key that is not a usable X25519 key
  | "CHANNEL_SELF" // the peer presents our own instance key
  | "CHANNEL_SIGNATURE" // the handshake signature does not verify under the presented instance key
  | "CHANNEL_STATE" // a handshake state used twice, or a wiped channel
  | "CHANNEL_FOREIGN" // a sealed message of another channel
  | "CHANNEL_REPLAY" // a counter at or below the last accepted: replayed, duplicated or reordered
  | "CHANNEL_SKIP" // a counter further ahead than maxSkip
  | "CHANNEL_AUTH" // a sealed message whose tag does not verify: altered
  | "CHANNEL_TOO_LARGE" // above the size cap
  | "CHANNEL_EXHAUSTED"; // the send counter ran out: make a new handshake

export class ChannelError extends ProtocolError {
  override name = "ChannelError";
  constructor(
    override readonly code: ChannelCode,
    message: string,
  ) {
    super(
      code,
      message,
      code === "CHANNEL_TOO_LARGE" || code === "CHANNEL_EXHAUSTED"
        ? "exhausted"
        : code === "CHANNEL_STATE"
          ? "precondition"
          : code === "CHANNEL_FRAME" || code === "CHANNEL_VERSION"
            ? "invalid"
            : "unauthenticated",
    );
  }
}

const refuse = (code: ChannelCode, message: string): never => {
  throw new ChannelError(code, message);
};

/** Makes an attestation document carrying exactly these fields (the enclave's AttestationProvider). */
export type AttestFn = (
  userData: Uint8Array,
  publicKey: Uint8Array,
  nonce: Uint8Array,
) => Promise<Uint8Array>;

export function attestWith(provider: AttestationProvider): AttestFn {
  return (userData, publicKey, nonce) => provider.attest({ userData, publicKey, nonce });
}

/** The part of the instance keys a handshake uses. */
export type HandshakeSigner = Pick<InstanceKeys, "publicKey" | "signHandshake">;

export interface ChannelConfig {
  /** The replica set's configuration id (1..64 bytes): a channel of one configuration is none of another's. */
  configId: Uint8Array;
  signer: HandshakeSigner;
  attest: AttestFn;
  admission: AdmissionPolicy;
  /** Clock (ms), for the peer's document's age. */
  now: () => number;
  /** Cap on one message's plaintext; default DEFAULT_MAX_MESSAGE_BYTES. */
  maxMessageBytes?: number;
  /** Default DEFAULT_MAX_SKIP. */
  maxSkip?: number;
}

/** One direction's symmetric ratchet: the chain key for `counter`, the next message's. */
export interface ChainState {
  chainKey: Buffer;
  counter: number;
}

export interface Channel {
  /** Public: derived from the transcript; in every sealed frame and its AAD. */
  readonly id: Buffer;
  readonly role: Role;
  /** The peer as admitted: its verified instance key and PCRs. */
  readonly peer: AdmittedPeer;
  readonly maxMessageBytes: number;
  readonly maxSkip: number;
  readonly send: ChainState;
  /** `counter` is the lowest counter still acceptable: one above the last accepted. */
  readonly recv: ChainState;
  wiped: boolean;
}

export interface InitiatorHandshake {
  readonly role: "initiator";
  readonly config: ChannelConfig;
  /** Dropped (undefined) once the reply is accepted. */
  ephemeral: KeyObject | undefined;
  readonly ephemeralPublic: Buffer;
}

export interface ResponderHandshake {
  readonly role: "responder";
  readonly config: ChannelConfig;
  readonly th: Buffer;
  readonly initiatorEphemeral: Buffer;
  readonly responderEphemeral: Buffer;
  readonly initiatorKey: Buffer;
  /** The channel's keys, derived at reply time (the ephemeral private key is gone); used once finish checks. */
  pending: { id: Buffer; send: Buffer; recv: Buffer } | undefined;
}

// ---------------------------------------------------------------------------------------------- framing

class Reader {
  private at = 0;
  constructor(
    private readonly b: Uint8Array,
    private readonly what: string,
  ) {}
  take(n: number, field: string): Buffer {
    if (n > this.b.length - this.at)
      refuse(
        "CHANNEL_FRAME",
        `${this.what}: truncated in ${field} (${n} bytes needed, ${this.b.length - this.at} left)`,
      );
    const out = Buffer.from(this.b.subarray(this.at, this.at + n));
    this.at += n;
    return out;
  }
  u8(field: string): number {
    return this.take(1, field)[0]!;
  }
  u16(field: string): number {
    return this.take(2, field).readUInt16BE(0);
  }
  u32(field: string): number {
    return this.take(4, field).readUInt32BE(0);
  }
  u64(field: string): bigint {
    return this.take(8, field).readBigUInt64BE(0);
  }
  end(): void {
    if (this.at !== this.b.length)
      refuse("CHANNEL_FRAME", `${this.what}: ${this.b.length - this.at} bytes after the end of the frame`);
  }
}

const TYPE_NAMES: Record<number, string> = { 1: "hello", 2: "reply", 3: "finish", 4: "sealed message" };

function frameStart(b: Uint8Array, type: number): Reader {
  const what = TYPE_NAMES[type]!;
  if (!(b instanceof Uint8Array)) refuse("CHANNEL_FRAME", `${what}: not bytes`);
  const r = new Reader(b, what);
  const v = r.u8("version");
  if (v !== CHANNEL_VERSION)
    refuse("CHANNEL_VERSION", `${what}: channel version ${v} is not ${CHANNEL_VERSION}`);
  const t = r.u8("type");
  if (t !== type)
    refuse("CHANNEL_FRAME", `expected a ${what}, got frame type ${t} (${TYPE_NAMES[t] ?? "unknown"})`);
  return r;
}

const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};

function readDocument(r: Reader): Buffer {
  const n = r.u16("document length");
  if (n === 0 || n > LIMITS.document)
    refuse("CHANNEL_FRAME", `attestation document of ${n} bytes (1..${LIMITS.document} allowed)`);
  return r.take(n, "attestation document");
}

function encodeHello(configId: Uint8Array, e: Uint8Array, pk: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([CHANNEL_VERSION, FRAME.hello, configId.length]), configId, e, pk]);
}

function decodeHello(b: Uint8Array) {
  const r = frameStart(b, FRAME.hello);
  const n = r.u8("configuration id length");
  if (n === 0 || n > MAX_CONFIG_ID_BYTES)
    refuse("CHANNEL_FRAME", `hello: configuration id of ${n} bytes (1..${MAX_CONFIG_ID_BYTES} allowed)`);
  const configId = r.take(n, "configuration id");
  const e = r.take(KEY_BYTES, "ephemeral key");
  const pk = r.take(KEY_BYTES, "instance key");
  r.end();
  return { configId, e, pk };
}

function encodeReply(e: Uint8Array, pk: Uint8Array, doc: Uint8Array, sig: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([CHANNEL_VERSION, FRAME.reply]), e, pk, u16(doc.length), doc, sig]);
}

function decodeReply(b: Uint8Array) {
  const r = frameStart(b, FRAME.reply);
  const e = r.take(KEY_BYTES, "ephemeral key");
  const pk = r.take(KEY_BYTES, "instance key");
  const doc = readDocument(r);
  const sig = r.take(SIG_BYTES, "signature");
  r.end();
  return { e, pk, doc, sig };
}

function encodeFinish(doc: Uint8Array, sig: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([CHANNEL_VERSION, FRAME.finish]), u16(doc.length), doc, sig]);
}

function decodeFinish(b: Uint8Array) {
  const r = frameStart(b, FRAME.finish);
  const doc = readDocument(r);
  const sig = r.take(SIG_BYTES, "signature");
  r.end();
  return { doc, sig };
}

// ---------------------------------------------------------------------------------------------- handshake

const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
};
const ascii = (s: string) => Buffer.from(s, "ascii");

function transcriptHash(
  configId: Uint8Array,
  eI: Uint8Array,
  pkI: Uint8Array,
  eR: Uint8Array,
  pkR: Uint8Array,
) {
  return sha256(ascii(`${DOMAIN}transcript`), Buffer.from([configId.length]), configId, eI, pkI, eR, pkR);
}

/** What a side signs and attests for its role: a role can never stand in for the other. */
const roleHash = (th: Uint8Array, role: Role) => sha256(ascii(`${DOMAIN}role/${role}`), th);

function ephemeral(): { key: KeyObject; pub: Buffer } {
  const { publicKey, privateKey } = generateKeyPairSync("x25519");
  return { key: privateKey, pub: Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url") };
}

function x25519(own: KeyObject, peer: Uint8Array): Buffer {
  let shared: Buffer | undefined;
  try {
    shared = diffieHellman({
      privateKey: own,
      publicKey: createPublicKey({
        key: Buffer.concat([X25519_SPKI_PREFIX, peer]),
        format: "der",
        type: "spki",
      }),
    });
  } catch {
    shared = undefined;
  }
  // OpenSSL refuses a small-order point's all-zero output; refuse it here too in case a build does not.
  if (!shared || shared.every((x) => x === 0)) {
    shared?.fill(0);
    return refuse("CHANNEL_KEY", "the peer's ephemeral key is not a usable X25519 public key");
  }
  return shared;
}

/** The channel id and the two directional chain keys: I→R, R→I. The DH output is zeroed here. */
function deriveKeys(shared: Buffer, th: Buffer): { id: Buffer; ir: Buffer; ri: Buffer } {
  const okm = Buffer.from(hkdfSync("sha256", shared, th, ascii(`${DOMAIN}chain-keys`), 2 * KEY_BYTES));
  shared.fill(0);
  const ir = Buffer.from(okm.subarray(0, KEY_BYTES));
  const ri = Buffer.from(okm.subarray(KEY_BYTES));
  okm.fill(0);
  const id = sha256(ascii(`${DOMAIN}channel-id`), th).subarray(0, CHANNEL_ID_BYTES);
  return { id: Buffer.from(id), ir, ri };
}

function checkConfig(c: ChannelConfig): void {
  if (c.configId.length === 0 || c.configId.length > MAX_CONFIG_ID_BYTES)
    throw new RangeError(`a configuration id is 1..${MAX_CONFIG_ID_BYTES} bytes`);
  if (c.signer.publicKey.length !== KEY_BYTES) throw new RangeError("an instance key is 32 bytes");
  const cap = c.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isSafeInteger(cap) || cap < 0 || cap > 0xffff_ffff)
    throw new RangeError("maxMessageBytes must fit the 32-bit length field");
  const skip = c.maxSkip ?? DEFAULT_MAX_SKIP;
  // Each skipped message costs one HMAC: the bound keeps a forged counter from buying seconds of CPU.
  if (!Number.isSafeInteger(skip) || skip < 0 || skip > MAX_SKIP_LIMIT)
    throw new RangeError(`maxSkip must be an integer in 0..${MAX_SKIP_LIMIT}`);
}

/** Cheap checks first: a peer presenting our own key, then the signature, then the (costly) attestation. */
function checkPeer(
  c: ChannelConfig,
  peerRole: Role,
  th: Buffer,
  peerKey: Buffer,
  sig: Buffer,
  doc: Buffer,
  ourEphemeral: Buffer,
): AdmittedPeer {
  if (equalCT(peerKey, c.signer.publicKey))
    refuse("CHANNEL_SELF", "the peer presents our own instance key (a reflected handshake)");
  const signed = roleHash(th, peerRole);
  let ok = false;
  try {
    ok = verify(null, handshakeSignedBytes(signed), instancePublicKey(peerKey), sig);
  } catch {
    ok = false;
  }
  if (!ok)
    refuse(
      "CHANNEL_SIGNATURE",
      `the ${peerRole}'s handshake signature does not verify under its instance key`,
    );
  return admitPeer(
    { document: doc, instanceKey: peerKey, userData: signed, nonce: ourEphemeral },
    c.admission,
    c.now(),
  );
}

function channelOf(
  c: ChannelConfig,
  role: Role,
  peer: AdmittedPeer,
  id: Buffer,
  send: Buffer,
  recv: Buffer,
): Channel {
  return {
    id,
    role,
    peer,
    maxMessageBytes: c.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    maxSkip: c.maxSkip ?? DEFAULT_MAX_SKIP,
    send: { chainKey: send, counter: 0 },
    recv: { chainKey: recv, counter: 0 },
    wiped: false,
  };
}

/** Step 1 (initiator): a fresh ephemeral key and the hello to send. */
export function initiate(config: ChannelConfig): { state: InitiatorHandshake; hello: Buffer } {
  checkConfig(config);
  const e = ephemeral();
  return {
    state: { role: "initiator", config, ephemeral: e.key, ephemeralPublic: e.pub },
    hello: encodeHello(config.configId, e.pub, config.signer.publicKey),
  };
}

/**
 * Step 2 (responder): answers a hello with its own ephemeral key, attestation and signature. The chain keys are
 * derived now and the ephemeral private key dropped; they serve only once `completeResponder` accepts the finish.
 */
export async function respond(
  config: ChannelConfig,
  hello: Uint8Array,
): Promise<{ state: ResponderHandshake; reply: Buffer }> {
  checkConfig(config);
  const h = decodeHello(hello);
  if (!equalCT(h.configId, config.configId))
    refuse("CHANNEL_CONTEXT", "the hello names another replica-set configuration than ours");
  if (equalCT(h.pk, config.signer.publicKey))
    refuse("CHANNEL_SELF", "the hello presents our own instance key (a reflected handshake)");
  const e = ephemeral();
  const shared = x25519(e.key, h.e);
  const pkR = Buffer.from(config.signer.publicKey);
  const th = transcriptHash(config.configId, h.e, h.pk, e.pub, pkR);
  const keys = deriveKeys(shared, th);
  const own = roleHash(th, "responder");
  const sig = config.signer.signHandshake(own);
  let doc: Uint8Array;
  try {
    doc = await config.attest(own, pkR, h.e);
  } catch (err) {
    keys.ir.fill(0);
    keys.ri.fill(0);
    throw err;
  }
  return {
    state: {
      role: "responder",
      config,
      th,
      initiatorEphemeral: h.e,
      responderEphemeral: e.pub,
      initiatorKey: h.pk,
      pending: { id: keys.id, send: keys.ri, recv: keys.ir },
    },
    reply: encodeReply(e.pub, pkR, doc, sig),
  };
}

/**
 * Step 3 (initiator): checks the responder (signature, admission), derives the channel, drops the ephemeral
 * private key, and returns the channel with the finish to send. A reply that fails leaves the state usable.
 */
export async function completeInitiator(
  state: InitiatorHandshake,
  reply: Uint8Array,
): Promise<{ channel: Channel; finish: Buffer }> {
  const c = state.config;
  if (!state.ephemeral) return refuse("CHANNEL_STATE", "this handshake is already complete or wiped");
  const r = decodeReply(reply);
  const pkI = Buffer.from(c.signer.publicKey);
  const th = transcriptHash(c.configId, state.ephemeralPublic, pkI, r.e, r.pk);
  const peer = checkPeer(c, "responder", th, r.pk, r.sig, r.doc, state.ephemeralPublic);
  const shared = x25519(state.ephemeral, r.e);
  state.ephemeral = undefined;
  const keys = deriveKeys(shared, th);
  const own = roleHash(th, "initiator");
  const sig = c.signer.signHandshake(own);
  let doc: Uint8Array;
  try {
    doc = await c.attest(own, pkI, r.e);
  } catch (err) {
    keys.ir.fill(0);
    keys.ri.fill(0);
    throw err;
  }
  return {
    channel: channelOf(c, "initiator", peer, keys.id, keys.ir, keys.ri),
    finish: encodeFinish(doc, sig),
  };
}

/** Step 4 (responder): checks the initiator (signature, admission) and opens the channel. */
export function completeResponder(state: ResponderHandshake, finish: Uint8Array): Channel {
  const pending = state.pending;
  if (!pending) return refuse("CHANNEL_STATE", "this handshake is already complete or wiped");
  const f = decodeFinish(finish);
  const peer = checkPeer(
    state.config,
    "initiator",
    state.th,
    state.initiatorKey,
    f.sig,
    f.doc,
    state.responderEphemeral,
  );
  state.pending = undefined;
  return channelOf(state.config, "responder", peer, pending.id, pending.send, pending.recv);
}

/** Abandons a handshake: its ephemeral key is dropped, its pending keys zeroed. */
export function wipeHandshake(state: InitiatorHandshake | ResponderHandshake): void {
  if (state.role === "initiator") state.ephemeral = undefined;
  else if (state.pending) {
    state.pending.send.fill(0);
    state.pending.recv.fill(0);
    state.pending = undefined;
  }
}

// ---------------------------------------------------------------------------------------------- messages

const MK_STEP = Buffer.from([0x01]);
const CK_STEP = Buffer.from([0x02]);
const hmac = (key: Buffer, step: Buffer) => createHmac("sha256", key).update(step).digest();

function nonceOf(sender: Role, counter: number): Buffer {
  const n = Buffer.alloc(12);
  n[0] = sender === "initiator" ? 0x49 : 0x52;
  n.writeBigUInt64BE(BigInt(counter), 4);
  return n;
}

function header(id: Buffer, counter: number, length: number): Buffer {
  const h = Buffer.alloc(SEALED_HEADER_BYTES);
  h[0] = CHANNEL_VERSION;
  h[1] = FRAME.sealed;
  id.copy(h, 2);
  h.writeBigUInt64BE(BigInt(counter), 2 + CHANNEL_ID_BYTES);
  h.writeUInt32BE(length, 2 + CHANNEL_ID_BYTES + 8);
  return h;
}

const peerRole = (r: Role): Role => (r === "initiator" ? "responder" : "initiator");

function live(ch: Channel): void {
  if (ch.wiped) refuse("CHANNEL_STATE", "this channel was wiped or replaced");
}

/** Encrypts the next message; the chain key and message key used are zeroed before this returns. */
export function seal(ch: Channel, plaintext: Uint8Array): Buffer {
  live(ch);
  if (plaintext.length > ch.maxMessageBytes)
    refuse(
      "CHANNEL_TOO_LARGE",
      `message of ${plaintext.length} bytes exceeds the cap of ${ch.maxMessageBytes}`,
    );
  const i = ch.send.counter;
  if (i >= MAX_COUNTER) refuse("CHANNEL_EXHAUSTED", "the send counter is exhausted: make a new handshake");
  const ck = ch.send.chainKey;
  const mk = hmac(ck, MK_STEP);
  const next = hmac(ck, CK_STEP);
  ck.fill(0);
  ch.send.chainKey = next;
  ch.send.counter = i + 1;
  try {
    const h = header(ch.id, i, plaintext.length);
    const cipher = createCipheriv("aes-256-gcm", mk, nonceOf(ch.role, i), { authTagLength: TAG_BYTES });
    cipher.setAAD(h);
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([h, body, cipher.getAuthTag()]);
  } finally {
    mk.fill(0);
  }
}

/** The counter of a sealed frame, decoded strictly; the channel itself is not touched. */
function decodeSealed(ch: Channel, frame: Uint8Array) {
  const r = frameStart(frame, FRAME.sealed);
  const id = r.take(CHANNEL_ID_BYTES, "channel id");
  const counter = r.u64("counter");
  const length = r.u32("length");
  if (length > ch.maxMessageBytes)
    refuse("CHANNEL_TOO_LARGE", `sealed message of ${length} bytes exceeds the cap of ${ch.maxMessageBytes}`);
  if (frame.length !== SEALED_HEADER_BYTES + length + TAG_BYTES)
    refuse(
      "CHANNEL_FRAME",
      `sealed message: ${frame.length} bytes, its length field says ${SEALED_HEADER_BYTES + length + TAG_BYTES}`,
    );
  if (!equalCT(id, ch.id)) refuse("CHANNEL_FOREIGN", "the sealed message belongs to another channel");
  if (counter > BigInt(MAX_COUNTER)) refuse("CHANNEL_SKIP", "counter beyond any this channel reaches");
  return { counter: Number(counter), length };
}

/**
 * Decrypts a sealed frame. Accepts only a counter above the last accepted, at most maxSkip ahead; the chain keys
 * passed over and the one used are zeroed, skipped message keys are never derived. A frame that fails (any
 * check, any altered byte) leaves the channel exactly as it was.
 */
export function open(ch: Channel, frame: Uint8Array): Buffer {
  live(ch);
  const { counter, length } = decodeSealed(ch, frame);
  const expected = ch.recv.counter;
  if (counter < expected)
    refuse(
      "CHANNEL_REPLAY",
      `counter ${counter} is not above the last accepted (${expected - 1}): replayed, duplicated or reordered`,
    );
  if (counter - expected > ch.maxSkip)
    refuse(
      "CHANNEL_SKIP",
      `counter ${counter} skips ${counter - expected} messages, more than ${ch.maxSkip}`,
    );
  // Walk the chain on copies; commit only once the tag verifies.
  let ck = ch.recv.chainKey;
  for (let i = expected; i < counter; i++) {
    const next = hmac(ck, CK_STEP);
    if (ck !== ch.recv.chainKey) ck.fill(0);
    ck = next;
  }
  const mk = hmac(ck, MK_STEP);
  const next = hmac(ck, CK_STEP);
  const head = Buffer.from(frame.subarray(0, SEALED_HEADER_BYTES));
  let plain: Buffer | undefined;
  try {
    const decipher = createDecipheriv("aes-256-gcm", mk, nonceOf(peerRole(ch.role), counter), {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(head);
    decipher.setAuthTag(Buffer.from(frame.subarray(SEALED_HEADER_BYTES + length)));
    plain = decipher.update(frame.subarray(SEALED_HEADER_BYTES, SEALED_HEADER_BYTES + length));
    decipher.final();
  } catch {
    plain?.fill(0);
    plain = undefined;
  } finally {
    mk.fill(0);
  }
  if (!plain) {
    if (ck !== ch.recv.chainKey) ck.fill(0);
    next.fill(0);
    return refuse("CHANNEL_AUTH", `sealed message ${counter} does not authenticate: altered or forged`);
  }
  if (ck !== ch.recv.chainKey) ck.fill(0);
  ch.recv.chainKey.fill(0);
  ch.recv.chainKey = next;
  ch.recv.counter = counter + 1;
  return plain;
}

/** Zeroes every key of the channel; it can neither seal nor open afterwards. */
export function wipeChannel(ch: Channel): void {
  ch.send.chainKey.fill(0);
  ch.recv.chainKey.fill(0);
  ch.wiped = true;
}

/** A new handshake's channel takes the place of the old one, whose keys are zeroed. */
export function replaceChannel(old: Channel | undefined, next: Channel): Channel {
  if (old && old !== next) wipeChannel(old);
  return next;
}
