import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { HDKey } from "@scure/bip32";
import { Transaction } from "bitcoinjs-lib";
import { ProtocolError } from "../../protocol/errors.ts";
import {
  attestationPrivkey,
  attestationPubkey,
  attestationScript,
  commitmentHexForRoot,
  commitmentPath,
  fromDisplayHex,
  MAINSTAY_PUBLIC_KEY_PARAMS,
  type MainstayKeyParams,
  parseSlotProofJson,
  slotProofToJson,
  slotTreeProof,
  slotTreeRoot,
  toDisplayHex,
  txidOf,
  verifyAttestationTx,
  verifyMainstayProof,
  verifySlotProof,
  verifyStaychain,
} from "../../protocol/mainstay.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const fixture = (n: number): unknown[] =>
  JSON.parse(readFileSync(path.resolve(ROOT, `../shared/fixtures/mainstay/test_sequence_${n}.msp`), "utf8"));
/** pymainstay's tests verify these proofs as slot 2. */
const SLOT = 2;
const code = (c: string) => (e: unknown) => e instanceof ProtocolError && e.code === c;
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function failing(entries: unknown[]): number[] {
  return entries.flatMap((e, i) => {
    try {
      verifySlotProof(parseSlotProofJson(e), { position: SLOT });
      return [];
    } catch (err) {
      assert.ok(err instanceof ProtocolError && err.code === "MAINSTAY_SLOT_PROOF", `entry ${i}: ${err}`);
      return [i];
    }
  });
}

test("every real slot proof of test_sequence_1 verifies", () => {
  const seq = fixture(1);
  assert.equal(seq.length, 6);
  assert.deepEqual(failing(seq), []);
  // Hashes are shown reversed: internal bytes are the reverse of the JSON hex, and survive the round trip.
  const p = parseSlotProofJson(seq[0]);
  assert.equal(
    hex(p.merkleRoot),
    hex(Buffer.from((seq[0] as { merkle_root: string }).merkle_root, "hex").reverse()),
  );
  const { merkle_root, commitment, ops } = seq[0] as Record<string, unknown>;
  assert.deepEqual(slotProofToJson(p), { merkle_root, commitment, ops });
});

test("in test_sequence_2 and _3 exactly the altered entries fail", () => {
  const genuine = fixture(1);
  for (const n of [2, 3]) {
    const seq = fixture(n);
    const altered = seq.flatMap((e, i) => (JSON.stringify(e) === JSON.stringify(genuine[i]) ? [] : [i]));
    assert.equal(altered.length, 1, `sequence ${n} has one altered entry`);
    assert.deepEqual(failing(seq), altered, `sequence ${n}`);
  }
});

test("a slot proof only verifies for the position whose path it takes", () => {
  const p = parseSlotProofJson(fixture(1)[0]);
  verifySlotProof(p, { position: 2 });
  verifySlotProof(p); // without a position: the hash chain alone
  for (const wrong of [0, 1, 3, 6])
    assert.throws(() => verifySlotProof(p, { position: wrong }), code("MAINSTAY_SLOT_POSITION"));
  // Changed root, swapped op direction.
  assert.throws(() => verifySlotProof({ ...p, merkleRoot: randomBytes(32) }), code("MAINSTAY_SLOT_PROOF"));
  const swapped = { ...p, ops: p.ops.map((op, i) => (i === 1 ? { ...op, append: !op.append } : op)) };
  assert.throws(() => verifySlotProof(swapped), code("MAINSTAY_SLOT_PROOF"));
});

test("slot proof JSON is parsed strictly", () => {
  const good = fixture(1)[0] as Record<string, unknown>;
  const bad = (patch: Record<string, unknown>, c: string) =>
    assert.throws(() => parseSlotProofJson({ ...good, ...patch }), code(c));
  bad({ commitment: "abc" }, "MAINSTAY_BAD_HASH");
  bad({ merkle_root: 7 }, "MAINSTAY_BAD_HASH");
  bad({ ops: "x" }, "MAINSTAY_BAD_PROOF");
  bad({ ops: [{ commitment: good.commitment }] }, "MAINSTAY_BAD_PROOF");
  bad({ ops: Array(33).fill({ append: true, commitment: good.commitment }) }, "MAINSTAY_BAD_PROOF");
  bad({ position: -1 }, "MAINSTAY_BAD_PROOF");
  assert.equal(parseSlotProofJson({ ...good, position: "2" }).position, 2);
  assert.throws(() => parseSlotProofJson(null), code("MAINSTAY_BAD_PROOF"));
});

test("the slot tree we build has the real service's shape and proves every position", () => {
  // Three positions, as in the fixtures: slot 2 has no right neighbour and is paired with itself.
  const leaves = [randomBytes(32), randomBytes(32), randomBytes(32)];
  const ops = slotTreeProof(leaves, 2);
  assert.equal(ops.length, 2);
  assert.deepEqual(ops[0], { append: true, commitment: leaves[2] });
  assert.equal(ops[1]!.append, false);
  for (let n = 1; n <= 9; n++) {
    const ls = Array.from({ length: n }, () => new Uint8Array(randomBytes(32)));
    const root = slotTreeRoot(ls);
    for (let pos = 0; pos < n; pos++) {
      verifySlotProof(
        { commitment: ls[pos]!, merkleRoot: root, ops: slotTreeProof(ls, pos) },
        { position: pos },
      );
    }
  }
  // One position still makes a tree (the commitment hashed with itself), as Mainstay does.
  const one = [new Uint8Array(randomBytes(32))];
  assert.equal(slotTreeProof(one, 0).length, 1);
});

test("pay-to-contract derivation is BIP32 CKDpub along the root's 16 big-endian 16-bit chunks", () => {
  const root = new Uint8Array(32).map((_, i) => i * 7 + 1);
  assert.deepEqual(commitmentPath(root).slice(0, 2), [(1 << 8) | 8, (15 << 8) | 22]);
  for (let trial = 0; trial < 3; trial++) {
    const master = HDKey.fromMasterSeed(randomBytes(32));
    const params: MainstayKeyParams = { basePubkey: master.publicKey!, chainCode: master.chainCode! };
    const r = new Uint8Array(randomBytes(32));
    // An independent BIP32 implementation walking the same path.
    let k = master;
    for (const i of commitmentPath(r)) k = k.deriveChild(i);
    assert.equal(hex(attestationPubkey(r, params)), hex(k.publicKey!));
    // The private path lands on the same key (the local service signs with it).
    const priv = attestationPrivkey(r, master.privateKey!, master.chainCode!);
    assert.equal(hex(secp256k1.getPublicKey(priv, true)), hex(k.publicKey!));
  }
  // The public service's constants are a valid key and chain code.
  assert.equal(attestationScript(root, MAINSTAY_PUBLIC_KEY_PARAMS).length, 22);
});

function attestation(params: MainstayKeyParams, root: Uint8Array, spends: Uint8Array, extraOutput = false) {
  const tx = new Transaction();
  tx.version = 2;
  tx.addInput(spends, 0, 0xfffffffd);
  tx.addOutput(attestationScript(root, params), 100_000n);
  if (extraOutput) tx.addOutput(new Uint8Array([0x51]), 1000n);
  return new Uint8Array(tx.toBuffer());
}

test("the staychain rule: one output, tweaked by the root, each attestation spending the previous one", () => {
  const master = HDKey.fromMasterSeed(randomBytes(32));
  const params = { basePubkey: master.publicKey!, chainCode: master.chainCode! };
  const base = new Uint8Array(randomBytes(32));
  const roots = [randomBytes(32), randomBytes(32), randomBytes(32)].map((b) => new Uint8Array(b));
  const raws: Uint8Array[] = [];
  let prev: Uint8Array = base;
  for (const root of roots) {
    const raw = attestation(params, root, prev);
    raws.push(raw);
    prev = txidOf(raw);
  }
  const links = raws.map((rawTx, i) => ({ rawTx, root: roots[i]! }));
  const txids = verifyStaychain(links, params, { baseTxid: base });
  assert.equal(txids.length, 3);
  verifyStaychain(links.slice(1), params, { baseTxid: txids[0]! }); // the base may be the run's parent…
  verifyStaychain(links, params, { baseTxid: txids[0]! }); // …or its first link

  // Wrong root for a transaction (the commitment is not the one attested).
  assert.throws(() => verifyAttestationTx(raws[1]!, roots[0]!, params), code("MAINSTAY_COMMITMENT"));
  // Another service's key.
  const other = HDKey.fromMasterSeed(randomBytes(32));
  assert.throws(
    () =>
      verifyAttestationTx(raws[0]!, roots[0]!, { basePubkey: other.publicKey!, chainCode: other.chainCode! }),
    code("MAINSTAY_COMMITMENT"),
  );
  // A second output would let the chain fork.
  assert.throws(
    () => verifyAttestationTx(attestation(params, roots[0]!, base, true), roots[0]!, params),
    code("MAINSTAY_STAYCHAIN"),
  );
  // A link that skips its predecessor, and a run that does not start at the base.
  assert.throws(() => verifyStaychain([links[0]!, links[2]!], params), code("MAINSTAY_STAYCHAIN"));
  assert.throws(
    () => verifyStaychain(links, params, { baseTxid: randomBytes(32) }),
    code("MAINSTAY_STAYCHAIN"),
  );
  assert.throws(
    () => verifyAttestationTx(new Uint8Array([1, 2, 3]), roots[0]!, params),
    code("MAINSTAY_BAD_TX"),
  );
});

test("an SMT root is committed as the hash whose internal bytes are the root", () => {
  const root = new Uint8Array(randomBytes(32));
  const h = commitmentHexForRoot(root);
  assert.equal(h, toDisplayHex(root));
  assert.equal(hex(fromDisplayHex(h, "x")), hex(root));
});

test("a wallet's check of the SE's MainstayProof: our root, our slot, the attested slot-tree root", () => {
  const p = parseSlotProofJson(fixture(1)[0]);
  const m = {
    commitment: Buffer.from(p.commitment),
    merkleRoot: Buffer.from(p.merkleRoot),
    ops: p.ops.map((op) => ({ append: op.append, commitment: Buffer.from(op.commitment) })),
    txid: Buffer.from(fromDisplayHex((fixture(1)[0] as { txid: string }).txid, "txid")),
    position: SLOT,
    blockHeight: 605527,
    confirmations: 1,
  };
  verifyMainstayProof(m, p.commitment);
  assert.throws(() => verifyMainstayProof(m, randomBytes(32)), code("MAINSTAY_COMMITMENT"));
  assert.throws(
    () => verifyMainstayProof({ ...m, position: 1 }, p.commitment),
    code("MAINSTAY_SLOT_POSITION"),
  );
  assert.throws(
    () => verifyMainstayProof({ ...m, merkleRoot: randomBytes(32) }, p.commitment),
    code("MAINSTAY_SLOT_PROOF"),
  );
  assert.throws(
    () => verifyMainstayProof({ ...m, txid: Buffer.alloc(31) }, p.commitment),
    code("MAINSTAY_BAD_PROOF"),
  );
});
