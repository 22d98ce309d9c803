// Mainstay proof verification, pure (DESIGN.md 3.7). Rules as implemented by commerceblock/mainstay (Go service)
// and commerceblock/pymainstay (verifier):
//
// Slot tree. Each client owns a slot (position); every attestation commits one Merkle root over the latest
// commitment of every position 0..max (missing positions hold 32 zero bytes), Bitcoin style: double SHA-256,
// leaves padded to a power of two, a node without a right sibling is hashed with itself. A slot proof is the
// list of ops from the commitment up to the root; `append: true` means the sibling goes on the right
// (h = H(h || sibling)), false on the left. Hashes are shown byte-reversed like txids; in this module they
// are bytes in internal order (hex shown to people reverses them).
//
// Staychain. An attestation transaction has exactly one output, so the chain of attestations cannot fork;
// each one spends the previous attestation's output. The output commits to the slot-tree root by a
// pay-to-contract key tweak: the 32 root bytes (internal order) split into 16 big-endian 16-bit numbers, which
// are a non-hardened BIP32 derivation path from the service's base public key and chain code; the output is
// P2WPKH of the derived key (pymainstay `verify_p2c_commitment`, mainstay `TweakExtendedKey`).
//
// Our commitment: the SE commits its SMT root R as the Mainstay commitment whose internal bytes are R (so the
// hex string sent to the API is R reversed, as Mainstay shows every hash).
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { hmac } from "@noble/hashes/hmac.js";
import { ripemd160 } from "@noble/hashes/legacy.js";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import { Transaction } from "bitcoinjs-lib";
import type { MainstayProof } from "../proto/gen/statechain.ts";
import { bigIntToBytes, bytesToBigInt, concatBytes, N, Point, parsePoint } from "./encoding.ts";
import { check, fail } from "./errors.ts";

export interface SlotOp {
  /** true: the sibling goes on the right. */
  append: boolean;
  /** 32 bytes, internal order. */
  commitment: Uint8Array;
}

export interface SlotProof {
  /** 32 bytes, internal order. */
  commitment: Uint8Array;
  merkleRoot: Uint8Array;
  ops: SlotOp[];
  /** The slot, when the source names it. */
  position?: number;
  /** Attestation txid (internal order), when the source names it. */
  txid?: Uint8Array;
}

export interface MainstayKeyParams {
  /** 33-byte compressed base public key of the attestation service. */
  basePubkey: Uint8Array;
  /** 32-byte BIP32 chain code. */
  chainCode: Uint8Array;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** The public Mainstay service's attestation key (the constants pymainstay verifies mainnet proofs with). */
export const MAINSTAY_PUBLIC_KEY_PARAMS: MainstayKeyParams = {
  basePubkey: Buffer.from("03e31877426407458858948993f6af1fc70dd2928a328dec6cdf5c215770e40ed2", "hex"),
  chainCode: Buffer.from("14df7ece79e83f0f479a37832d770294014edc6884b0c8bfa2e0aaf51fb00229", "hex"),
};

/** Slot trees deeper than this would hold more than 2^32 positions (Mainstay positions are 32-bit). */
export const MAX_SLOT_OPS = 32;

export const hash256 = (data: Uint8Array): Uint8Array => sha256(sha256(data));
export const hash160 = (data: Uint8Array): Uint8Array => ripemd160(sha256(data));

/** Internal bytes of a hash shown byte-reversed (txids, Mainstay commitments and roots). */
export function fromDisplayHex(s: unknown, what: string): Uint8Array {
  check(
    typeof s === "string" && /^[0-9a-fA-F]{64}$/.test(s),
    "MAINSTAY_BAD_HASH",
    () =>
      `${what} must be 64 hex characters, got ${typeof s === "string" ? `"${s.slice(0, 80)}"` : typeof s}`,
  );
  return Uint8Array.from(Buffer.from(s, "hex").reverse());
}

export function toDisplayHex(b: Uint8Array): string {
  return Buffer.from(b).reverse().toString("hex");
}

/** The commitment string to send to Mainstay for an SMT root (see the header). */
export function commitmentHexForRoot(root: Uint8Array): string {
  check(root.length === 32, "MAINSTAY_BAD_HASH", `a commitment must be 32 bytes, got ${root.length}`);
  return toDisplayHex(root);
}

function parseOps(raw: unknown): SlotOp[] {
  check(Array.isArray(raw), "MAINSTAY_BAD_PROOF", "slot proof ops must be a list");
  check(
    raw.length <= MAX_SLOT_OPS,
    "MAINSTAY_BAD_PROOF",
    `slot proof has ${raw.length} ops (limit ${MAX_SLOT_OPS})`,
  );
  return raw.map((op, i) => {
    const o = op as { append?: unknown; commitment?: unknown };
    check(
      typeof op === "object" && op !== null && typeof o.append === "boolean",
      "MAINSTAY_BAD_PROOF",
      `slot proof op ${i} lacks a boolean "append"`,
    );
    return {
      append: o.append as boolean,
      commitment: fromDisplayHex(o.commitment, `slot proof op ${i} commitment`),
    };
  });
}

/**
 * Reads a slot proof in the Mainstay API's JSON shape: { commitment, merkle_root, ops: [{ append, commitment }] }
 * with optional txid and position (as in /commitment/latestproof, the `merkleproof` of /commitment/commitment,
 * and pymainstay's .msp files).
 */
export function parseSlotProofJson(json: unknown): SlotProof {
  check(typeof json === "object" && json !== null, "MAINSTAY_BAD_PROOF", "slot proof must be a JSON object");
  const o = json as Record<string, unknown>;
  const proof: SlotProof = {
    commitment: fromDisplayHex(o.commitment, "slot proof commitment"),
    merkleRoot: fromDisplayHex(o.merkle_root, "slot proof merkle_root"),
    ops: parseOps(o.ops),
  };
  if (o.txid !== undefined) proof.txid = fromDisplayHex(o.txid, "attestation txid");
  if (o.position !== undefined) {
    const p = typeof o.position === "string" ? Number(o.position) : o.position;
    check(
      typeof p === "number" && Number.isInteger(p) && p >= 0 && p <= 0xffffffff,
      "MAINSTAY_BAD_PROOF",
      `slot position ${String(o.position)} is not a 32-bit unsigned integer`,
    );
    proof.position = p;
  }
  return proof;
}

/** The JSON shape the Mainstay API serves for a slot proof. */
export function slotProofToJson(p: { commitment: Uint8Array; merkleRoot: Uint8Array; ops: SlotOp[] }) {
  return {
    merkle_root: toDisplayHex(p.merkleRoot),
    commitment: toDisplayHex(p.commitment),
    ops: p.ops.map((op) => ({ append: op.append, commitment: toDisplayHex(op.commitment) })),
  };
}

/** The slot-tree root the ops lead to from `commitment`. */
export function slotProofRoot(commitment: Uint8Array, ops: readonly SlotOp[]): Uint8Array {
  let h = commitment;
  for (const op of ops)
    h = hash256(op.append ? concatBytes(h, op.commitment) : concatBytes(op.commitment, h));
  return h;
}

/**
 * Throws unless the ops lead from the proof's commitment to its merkle root; with `position`, the ops must also
 * take exactly that slot's path (op i appends iff bit i of the position is 0).
 */
export function verifySlotProof(proof: SlotProof, opts: { position?: number } = {}): void {
  check(
    proof.commitment.length === 32 && proof.merkleRoot.length === 32,
    "MAINSTAY_BAD_PROOF",
    "hashes must be 32 bytes",
  );
  check(proof.ops.length <= MAX_SLOT_OPS, "MAINSTAY_BAD_PROOF", `slot proof has ${proof.ops.length} ops`);
  for (const op of proof.ops)
    check(op.commitment.length === 32, "MAINSTAY_BAD_PROOF", "op hashes must be 32 bytes");
  const position = opts.position ?? proof.position;
  if (position !== undefined) {
    check(
      proof.ops.length === MAX_SLOT_OPS || position < 2 ** proof.ops.length,
      "MAINSTAY_SLOT_POSITION",
      `slot proof of ${proof.ops.length} levels cannot reach position ${position}`,
    );
    proof.ops.forEach((op, i) => {
      const bit = Math.floor(position / 2 ** i) % 2;
      check(
        op.append === (bit === 0),
        "MAINSTAY_SLOT_POSITION",
        `slot proof op ${i} goes ${op.append ? "left" : "right"}, but position ${position} goes the other way`,
      );
    });
  }
  const root = slotProofRoot(proof.commitment, proof.ops);
  check(
    Buffer.compare(Buffer.from(root), Buffer.from(proof.merkleRoot)) === 0,
    "MAINSTAY_SLOT_PROOF",
    `commitment ${toDisplayHex(proof.commitment)} does not lead to slot-tree root ${toDisplayHex(proof.merkleRoot)}`,
  );
}

/** A MainstayProof as received from the SE (statechain.v1), as a slot proof. */
export function slotProofFromProto(m: MainstayProof): SlotProof & { position: number; txid: Uint8Array } {
  check(
    m.txid.length === 32,
    "MAINSTAY_BAD_PROOF",
    `attestation txid must be 32 bytes, got ${m.txid.length}`,
  );
  return {
    commitment: Uint8Array.from(m.commitment),
    merkleRoot: Uint8Array.from(m.merkleRoot),
    ops: m.ops.map((op) => ({ append: op.append, commitment: Uint8Array.from(op.commitment) })),
    position: m.position,
    txid: Uint8Array.from(m.txid),
  };
}

/**
 * What a wallet checks of the SE's Mainstay proof: it commits `root` (the SMT root its statechain proof was
 * checked against), in the SE's slot, up to the slot-tree root. With the attestation transaction and the
 * service's key (from a chain backend), also that the transaction commits to that slot-tree root.
 */
export function verifyMainstayProof(
  m: MainstayProof,
  root: Uint8Array,
  opts: { attestationTx?: Uint8Array; params?: MainstayKeyParams } = {},
): void {
  const proof = slotProofFromProto(m);
  check(
    proof.commitment.length === 32 && Buffer.compare(Buffer.from(proof.commitment), Buffer.from(root)) === 0,
    "MAINSTAY_COMMITMENT",
    "the Mainstay proof commits to another root than the SMT root",
  );
  verifySlotProof(proof, { position: proof.position });
  if (opts.attestationTx && opts.params) {
    const txid = verifyAttestationTx(opts.attestationTx, proof.merkleRoot, opts.params);
    check(
      Buffer.compare(Buffer.from(txid), Buffer.from(proof.txid)) === 0,
      "MAINSTAY_STAYCHAIN",
      `the transaction given is ${toDisplayHex(txid)}, not the attestation ${toDisplayHex(proof.txid)}`,
    );
  }
}

// --- the slot tree itself (what the local Mainstay-compatible service builds) -----------------------------

/** Levels of the slot tree over `leaves` positions, bottom first; `undefined` marks a padding node. */
function slotTreeLevels(leaves: readonly Uint8Array[]): Array<Array<Uint8Array | undefined>> {
  check(leaves.length > 0, "MAINSTAY_EMPTY_TREE", "a slot tree needs at least one position");
  let width = 2;
  while (width < leaves.length) width *= 2;
  let level: Array<Uint8Array | undefined> = Array.from({ length: width }, (_, i) => leaves[i]);
  const levels = [level];
  while (level.length > 1) {
    const up: Array<Uint8Array | undefined> = [];
    for (let i = 0; i < level.length; i += 2) {
      const l = level[i];
      const r = level[i + 1];
      up.push(l === undefined ? undefined : hash256(concatBytes(l, r ?? l)));
    }
    levels.push(up);
    level = up;
  }
  return levels;
}

/** The slot-tree root over the commitments of positions 0..n-1 (zero bytes for a slot without one). */
export function slotTreeRoot(leaves: readonly Uint8Array[]): Uint8Array {
  const levels = slotTreeLevels(leaves);
  return levels[levels.length - 1]![0]!;
}

/** The ops proving position `position` in the slot tree over `leaves`. */
export function slotTreeProof(leaves: readonly Uint8Array[], position: number): SlotOp[] {
  check(
    position >= 0 && position < leaves.length,
    "MAINSTAY_SLOT_POSITION",
    `position ${position} is not in the tree`,
  );
  const levels = slotTreeLevels(leaves);
  const ops: SlotOp[] = [];
  let index = position;
  for (const level of levels.slice(0, -1)) {
    const self = level[index]!;
    ops.push(
      index % 2 === 0
        ? { append: true, commitment: level[index + 1] ?? self }
        : { append: false, commitment: level[index - 1]! },
    );
    index = Math.floor(index / 2);
  }
  return ops;
}

// --- pay-to-contract attestation key ----------------------------------------------------------------------

/** The 16 derivation indexes a 32-byte root (internal order) selects: big-endian 16-bit chunks. */
export function commitmentPath(root: Uint8Array): number[] {
  check(root.length === 32, "MAINSTAY_BAD_HASH", `a slot-tree root must be 32 bytes, got ${root.length}`);
  return Array.from({ length: 16 }, (_, i) => (root[2 * i]! << 8) | root[2 * i + 1]!);
}

function ser32(i: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, i, false);
  return b;
}

function childTweak(pub: Uint8Array, chainCode: Uint8Array, index: number) {
  check(
    Number.isInteger(index) && index >= 0 && index < 0x80000000,
    "MAINSTAY_DERIVATION",
    `index ${index} is not a non-hardened BIP32 index`,
  );
  const I = hmac(sha512, chainCode, concatBytes(pub, ser32(index)));
  const il = bytesToBigInt(I.subarray(0, 32));
  if (il >= N)
    fail("MAINSTAY_DERIVATION", `BIP32 child ${index} is invalid (tweak not below the group order)`);
  return { il, chainCode: I.slice(32) };
}

/** BIP32 public child derivation CKDpub (non-hardened). */
export function ckdPub(pub: Uint8Array, chainCode: Uint8Array, index: number) {
  const parent = parsePoint(pub, "parent public key");
  const { il, chainCode: c } = childTweak(pub, chainCode, index);
  const child = Point.BASE.multiply(il).add(parent);
  if (child.equals(Point.ZERO)) fail("MAINSTAY_DERIVATION", `BIP32 child ${index} is the point at infinity`);
  return { pub: child.toBytes(true), chainCode: c };
}

/** BIP32 private child derivation CKDpriv (non-hardened); the local service signs with the result. */
export function ckdPriv(priv: Uint8Array, chainCode: Uint8Array, index: number) {
  const k = bytesToBigInt(priv);
  check(k > 0n && k < N, "MAINSTAY_DERIVATION", "parent private key is out of range");
  const pub = secp256k1.getPublicKey(priv, true);
  const { il, chainCode: c } = childTweak(pub, chainCode, index);
  const child = (il + k) % N;
  if (child === 0n) fail("MAINSTAY_DERIVATION", `BIP32 child ${index} is zero`);
  return { priv: bigIntToBytes(child, 32), chainCode: c };
}

/** The public key an attestation of slot-tree root `root` pays to. */
export function attestationPubkey(root: Uint8Array, params: MainstayKeyParams): Uint8Array {
  let key = { pub: params.basePubkey, chainCode: params.chainCode };
  for (const index of commitmentPath(root)) key = ckdPub(key.pub, key.chainCode, index);
  return key.pub;
}

/** Its private key, for the holder of the base private key. */
export function attestationPrivkey(
  root: Uint8Array,
  basePriv: Uint8Array,
  chainCode: Uint8Array,
): Uint8Array {
  let key = { priv: basePriv, chainCode };
  for (const index of commitmentPath(root)) key = ckdPriv(key.priv, key.chainCode, index);
  return key.priv;
}

export function p2wpkhScript(pub: Uint8Array): Uint8Array {
  return concatBytes(new Uint8Array([0x00, 0x14]), hash160(pub));
}

/** The only output script an attestation of `root` may have. */
export function attestationScript(root: Uint8Array, params: MainstayKeyParams): Uint8Array {
  return p2wpkhScript(attestationPubkey(root, params));
}

// --- the staychain rule -----------------------------------------------------------------------------------

function parseTx(raw: Uint8Array, what: string): Transaction {
  try {
    return Transaction.fromBuffer(raw);
  } catch (err) {
    return fail(
      "MAINSTAY_BAD_TX",
      `${what} does not parse as a Bitcoin transaction: ${(err as Error).message}`,
    );
  }
}

/** Txid in internal byte order. */
export function txidOf(raw: Uint8Array): Uint8Array {
  return Uint8Array.from(parseTx(raw, "transaction").getHash());
}

/**
 * Throws unless `rawTx` is an attestation of slot-tree root `root`: exactly one output, paying the key the root
 * derives, and, given `previousTxid`, spending the previous attestation's output. Returns its txid (internal).
 */
export function verifyAttestationTx(
  rawTx: Uint8Array,
  root: Uint8Array,
  params: MainstayKeyParams,
  opts: { previousTxid?: Uint8Array } = {},
): Uint8Array {
  const tx = parseTx(rawTx, "attestation transaction");
  const txid = Uint8Array.from(tx.getHash());
  const name = `attestation ${toDisplayHex(txid)}`;
  check(
    tx.outs.length === 1,
    "MAINSTAY_STAYCHAIN",
    `${name} has ${tx.outs.length} outputs; a staychain transaction has exactly one`,
  );
  const expected = attestationScript(root, params);
  check(
    Buffer.compare(Buffer.from(tx.outs[0]!.script), Buffer.from(expected)) === 0,
    "MAINSTAY_COMMITMENT",
    `${name} pays ${hex(tx.outs[0]!.script)}, not the key tweaked by root ${toDisplayHex(root)} (${hex(expected)})`,
  );
  const prev = opts.previousTxid;
  if (prev) {
    check(
      tx.ins.some((i) => i.index === 0 && Buffer.compare(Buffer.from(i.hash), Buffer.from(prev)) === 0),
      "MAINSTAY_STAYCHAIN",
      `${name} does not spend the previous attestation ${toDisplayHex(prev)}:0`,
    );
  }
  return txid;
}

/**
 * Verifies a run of consecutive attestations, oldest first: each is an attestation of its root and spends the
 * one before. With `baseTxid` (the staychain's published base), the run must start at the base or spend it.
 */
export function verifyStaychain(
  links: ReadonlyArray<{ rawTx: Uint8Array; root: Uint8Array }>,
  params: MainstayKeyParams,
  opts: { baseTxid?: Uint8Array } = {},
): Uint8Array[] {
  check(links.length > 0, "MAINSTAY_STAYCHAIN", "an empty staychain proves nothing");
  const txids: Uint8Array[] = [];
  links.forEach((link, i) => {
    const previousTxid = i > 0 ? txids[i - 1] : undefined;
    txids.push(verifyAttestationTx(link.rawTx, link.root, params, { previousTxid }));
  });
  const base = opts.baseTxid;
  if (base) {
    const first = parseTx(links[0]!.rawTx, "attestation transaction");
    const atBase = Buffer.compare(Buffer.from(txids[0]!), Buffer.from(base)) === 0;
    const spendsBase = first.ins.some(
      (i) => i.index === 0 && Buffer.compare(Buffer.from(i.hash), Buffer.from(base)) === 0,
    );
    check(
      atBase || spendsBase,
      "MAINSTAY_STAYCHAIN",
      `the attestations do not start at the staychain base ${toDisplayHex(base)}`,
    );
  }
  return txids;
}
