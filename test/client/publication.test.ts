// The receiver's proof-of-publication check (client/receive.ts checkPublication, DESIGN.md 3.7) on crafted SE
// answers: a real sparse Merkle tree, a real slot tree and an attestation transaction under a Mainstay key. A
// wrong, stale or absent SMT proof is refused by name; a publication the SE does not show (no published leaf, no
// Mainstay proof, no trusted Mainstay parameters) is refused unless the wallet accepts unpublished coins, which
// marks the coin; a Mainstay proof for another slot than the trusted one, or without its transaction, is refused.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { Transaction } from "bitcoinjs-lib";
import type { ChainBackend } from "../../chain/backend.ts";
import { checkPublication } from "../../client/receive.ts";
import type { Outpoint } from "../../proto/gen/common.ts";
import { GetSmtProofResponse, type MainstayProof, type SmtProof } from "../../proto/gen/statechain.ts";
import {
  attestationScript,
  type MainstayKeyParams,
  slotTreeProof,
  slotTreeRoot,
  toDisplayHex,
} from "../../protocol/mainstay.ts";
import { encodeSmtProof, MemoryNodeStore, SparseMerkleTree } from "../../protocol/smt/index.ts";
import { statechainKey } from "../../protocol/statechain.ts";

const SLOT = 2;
const sid: Outpoint = { txid: randomBytes(32), vout: 1 };
const key = statechainKey(sid);
const s1 = randomBytes(32);
const s2 = randomBytes(32);
const states = [s1, s2];
const params: MainstayKeyParams = {
  basePubkey: Buffer.from(secp256k1.getPublicKey(secp256k1.utils.randomSecretKey(), true)),
  chainCode: randomBytes(32),
};

/** The tree with other coins, our coin at s1 (the published root), then at s2 (the current root). */
async function scenario() {
  const tree = await SparseMerkleTree.open(new MemoryNodeStore());
  await tree.update(
    Array.from({ length: 6 }, () => ({ key: randomBytes(32), value: randomBytes(32) })).concat([
      { key: Buffer.from(key), value: s1 },
    ]),
  );
  const publishedRoot = Buffer.from(tree.root);
  const published = await tree.prove(key, publishedRoot);
  await tree.update([
    { key: Buffer.from(key), value: s2 },
    { key: randomBytes(32), value: randomBytes(32) },
  ]);
  const currentRoot = Buffer.from(tree.root);
  const current = await tree.prove(key, currentRoot);

  // The slot tree over four slots, ours holding the published root, and the transaction attesting it.
  const leaves = [randomBytes(32), randomBytes(32), publishedRoot, randomBytes(32)];
  const merkleRoot = slotTreeRoot(leaves);
  const tx = new Transaction();
  tx.addInput(randomBytes(32), 0);
  tx.addOutput(Buffer.from(attestationScript(merkleRoot, params)), 1000n as never);
  const raw = Buffer.from(tx.toBuffer());
  const mainstay: MainstayProof = {
    commitment: publishedRoot,
    merkleRoot: Buffer.from(merkleRoot),
    ops: slotTreeProof(leaves, SLOT).map((o) => ({
      append: o.append,
      commitment: Buffer.from(o.commitment),
    })),
    txid: Buffer.from(tx.getHash()),
    position: SLOT,
    blockHeight: 120,
    confirmations: 3,
  };
  const response = GetSmtProofResponse.fromPartial({
    key: Buffer.from(key),
    leaf: Buffer.from(published.leaf!),
    root: publishedRoot,
    proof: encodeSmtProof(published.proof),
    mainstay,
    currentRoot,
    currentLeaf: Buffer.from(current.leaf!),
    currentProof: encodeSmtProof(current.proof),
  });
  const txs = new Map([[toDisplayHex(mainstay.txid), raw]]);
  const chain = {
    getTx: async (txid: string) => {
      const r = txs.get(txid);
      return r ? { raw: r, status: { confirmations: 3 } } : undefined;
    },
  } as unknown as ChainBackend;
  return { response, chain, txs, published, current, publishedRoot };
}

type Ctx = Parameters<typeof checkPublication>[0];
const strict = (chain: ChainBackend): Ctx => ({ chain, mainstayKey: params, mainstaySlot: SLOT });
const copy = (r: GetSmtProofResponse) => GetSmtProofResponse.decode(GetSmtProofResponse.encode(r).finish());

async function refused(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(p, (e: Error & { code?: string }) => {
    assert.equal(e.code, code, `${e.code}: ${e.message}`);
    if (message) assert.match(e.message, message);
    return true;
  });
}

/** The proof with one sibling changed (a bit of its last byte). */
function alterSibling(p: SmtProof, which = 0): SmtProof {
  const siblings = p.siblings.map((s) => Buffer.from(s));
  assert.ok(siblings.length > which, "the proof has siblings to alter");
  siblings[which]![31]! ^= 1;
  return { ...p, siblings };
}

test("a genuine publication passes fully checked: published root, slot proof, attestation transaction", async () => {
  const { response, chain } = await scenario();
  assert.equal(await checkPublication(strict(chain), sid, response, s2, states), "published");
});

test("a wrong SMT proof (a sibling altered) is refused, for the current state and for the published root", async () => {
  const { response, chain } = await scenario();
  for (let i = 0; i < response.currentProof!.siblings.length; i++) {
    const r = copy(response);
    r.currentProof = alterSibling(r.currentProof!, i);
    await refused(
      checkPublication(strict(chain), sid, r, s2, states),
      "SMT_PROOF_MISMATCH",
      /SMT proof of the current state does not verify/,
    );
  }
  const r = copy(response);
  r.proof = alterSibling(r.proof!);
  await refused(
    checkPublication(strict(chain), sid, r, s2, states),
    "SMT_PROOF_MISMATCH",
    /SMT proof under the published root does not verify/,
  );
  // A sibling dropped (the bitmap then names one more default sibling than the proof carries).
  const short = copy(response);
  short.currentProof = { ...short.currentProof!, siblings: short.currentProof!.siblings.slice(1) };
  await assert.rejects(checkPublication(strict(chain), sid, short, s2, states), /SMT|sparse Merkle/);
  // A root that is not the one the proof leads to.
  const otherRoot = copy(response);
  otherRoot.currentRoot = randomBytes(32);
  await refused(checkPublication(strict(chain), sid, otherRoot, s2, states), "SMT_PROOF_MISMATCH");
});

test("a stale SMT proof (of an earlier state or an earlier root) is refused", async () => {
  const { response, chain, published, publishedRoot } = await scenario();
  // The SE's answer from before the last transfer: the tree then held s1, which is no longer the state.
  const before = copy(response);
  before.currentRoot = publishedRoot;
  before.currentLeaf = s1;
  before.currentProof = encodeSmtProof(published.proof);
  await refused(
    checkPublication(strict(chain), sid, before, s2, states),
    "SMT_LEAF",
    /does not hold the statechain's current state/,
  );
  // The current state claimed, but with the proof (and root) of the earlier tree.
  const mixed = copy(response);
  mixed.currentProof = encodeSmtProof(published.proof);
  await refused(checkPublication(strict(chain), sid, mixed, s2, states), "SMT_PROOF_MISMATCH");
  const oldRoot = copy(response);
  oldRoot.currentRoot = publishedRoot;
  await refused(checkPublication(strict(chain), sid, oldRoot, s2, states), "SMT_PROOF_MISMATCH");
  // A published leaf that is no state of this statechain (the states the wallet verified stop before it).
  await refused(checkPublication(strict(chain), sid, response, s2, [s2]), "SMT_PUBLISHED_LEAF");
});

test("an absent SMT proof is refused with a clear error, not a crash", async () => {
  const { response, chain } = await scenario();
  const none = copy(response);
  none.currentProof = undefined;
  await refused(checkPublication(strict(chain), sid, none, s2, states), "SMT_PROOF_MISSING", /no SMT proof/);
  const empty = GetSmtProofResponse.fromPartial({});
  await refused(checkPublication(strict(chain), sid, empty, s2, states), "SMT_PROOF_MISSING");
  const noPublishedProof = copy(response);
  noPublishedProof.proof = undefined;
  await refused(
    checkPublication(strict(chain), sid, noPublishedProof, s2, states),
    "SMT_PROOF_MISSING",
    /published leaf without its SMT proof/,
  );
  // Absent everywhere: refused even by a wallet that accepts unpublished coins.
  await refused(
    checkPublication({ ...strict(chain), allowUnpublished: true }, sid, empty, s2, states),
    "SMT_PROOF_MISSING",
  );
});

test("a publication the SE does not show is refused unless unpublished coins are accepted, then marked", async () => {
  const { response, chain } = await scenario();
  const noLeaf = copy(response);
  noLeaf.leaf = Buffer.alloc(0);
  const noMainstay = copy(response);
  noMainstay.mainstay = undefined;
  const cases: Array<[string, GetSmtProofResponse, Ctx, RegExp]> = [
    ["no published leaf", noLeaf, strict(chain), /no published root .* holds this statechain/],
    ["no Mainstay proof", noMainstay, strict(chain), /carries no Mainstay proof/],
    ["no trusted Mainstay key", response, { chain, mainstaySlot: SLOT }, /trusts no Mainstay slot/],
    ["no trusted Mainstay slot", response, { chain, mainstayKey: params }, /trusts no Mainstay slot/],
  ];
  for (const [what, r, ctx, why] of cases) {
    await assert.rejects(checkPublication(ctx, sid, r, s2, states), (e: Error & { code?: string }) => {
      assert.equal(e.code, "UNPUBLISHED", `${what}: ${e.code} ${e.message}`);
      assert.match(e.message, why, what);
      assert.match(e.message, /--allow-unpublished/, `${what}: the message says what to do`);
      return true;
    });
    assert.equal(
      await checkPublication({ ...ctx, allowUnpublished: true }, sid, r, s2, states),
      "unpublished",
      what,
    );
  }
});

test("the Mainstay proof must be in the trusted slot, with its attestation transaction under the trusted key", async () => {
  const { response, chain, txs } = await scenario();
  // The SE answers for another slot: refused, even by a wallet that accepts unpublished coins.
  for (const allowUnpublished of [false, true]) {
    await refused(
      checkPublication(
        { chain, mainstayKey: params, mainstaySlot: SLOT + 1, allowUnpublished },
        sid,
        response,
        s2,
        states,
      ),
      "MAINSTAY_SLOT",
      /for slot 2, but this wallet trusts slot 3/,
    );
  }
  // Another service key than the trusted one: the transaction does not commit under it.
  const other: MainstayKeyParams = { ...params, chainCode: randomBytes(32) };
  await assert.rejects(
    checkPublication({ chain, mainstayKey: other, mainstaySlot: SLOT }, sid, response, s2, states),
    (e: Error & { code?: string }) => typeof e.code === "string" && e.code.startsWith("MAINSTAY"),
  );
  // A slot proof that does not lead to its merkle root.
  const badOps = copy(response);
  badOps.mainstay!.ops[0]!.commitment[0]! ^= 1;
  await refused(checkPublication(strict(chain), sid, badOps, s2, states), "MAINSTAY_SLOT_PROOF");
  // …also when the wallet has no Mainstay parameters and accepts unpublished coins: a bad proof is no absent one.
  await refused(
    checkPublication({ chain, allowUnpublished: true }, sid, badOps, s2, states),
    "MAINSTAY_SLOT_PROOF",
  );
  // A Mainstay proof of another root than the published one.
  const otherRoot = copy(response);
  otherRoot.mainstay!.commitment = randomBytes(32);
  await refused(checkPublication(strict(chain), sid, otherRoot, s2, states), "MAINSTAY_COMMITMENT");
  // The attestation transaction is not on chain.
  txs.clear();
  await refused(checkPublication(strict(chain), sid, response, s2, states), "MAINSTAY_TX_MISSING");
});
