import assert from "node:assert/strict";
import { test } from "node:test";
import { schnorr, secp256k1 } from "@noble/curves/secp256k1.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { type StatechainTx, StatechainTxKind } from "../../proto/gen/common.ts";
import { ProtocolError } from "../../protocol/errors.ts";
import { systemRng } from "../../protocol/rng.ts";
import {
  initialState,
  nextState,
  signTransfer,
  signWithdraw,
  statechainIdBytes,
  statechainKey,
  transferDigest,
  verifyChain,
  verifyStatechainTx,
  withdrawDigest,
} from "../../protocol/statechain.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const cat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
const utf8 = (s: string) => new TextEncoder().encode(s);
const code = (c: string, msg?: RegExp) => (e: unknown) =>
  e instanceof ProtocolError && e.code === c && (!msg || msg.test(e.message));

function owner() {
  const sk = secp256k1.utils.randomSecretKey();
  return { sk, pk: secp256k1.getPublicKey(sk, true) };
}

/** Deposit by owners[0], then a transfer to each next owner, optionally a withdrawal by the last. */
function chainOf(n: number, withdraw?: Uint8Array) {
  const owners = Array.from({ length: n }, owner);
  let s = initialState(owners[0]!.pk);
  const txs: StatechainTx[] = [];
  for (let i = 0; i + 1 < n; i++) {
    const tx = signTransfer(owners[i]!.sk, s, owners[i + 1]!.pk, systemRng);
    txs.push(tx);
    s = nextState(tx);
  }
  if (withdraw) txs.push(signWithdraw(owners[n - 1]!.sk, s, withdraw, systemRng));
  return { owners, txs };
}

const P2WPKH = cat(new Uint8Array([0x00, 0x14]), new Uint8Array(20).fill(7));

test("statechain id is txid (internal order) || vout u32 big-endian, and the SMT key is its SHA-256", () => {
  const txid = new Uint8Array(32).map((_, i) => i);
  const id = statechainIdBytes({ txid, vout: 0x01020304 });
  assert.equal(hex(id), `${hex(txid)}01020304`);
  assert.equal(hex(statechainKey({ txid, vout: 0x01020304 })), hex(sha256(id)));
  assert.throws(() => statechainIdBytes({ txid: txid.subarray(1), vout: 0 }), code("STATECHAIN_ID"));
  assert.throws(() => statechainIdBytes({ txid, vout: -1 }), code("STATECHAIN_ID"));
  assert.throws(() => statechainIdBytes({ txid, vout: 2 ** 32 }), code("STATECHAIN_ID"));
});

test("the state hashes follow the formulas of common.proto exactly", () => {
  const [a, b] = [owner(), owner()];
  const s1 = initialState(a.pk);
  assert.equal(hex(s1), hex(sha256(a.pk)));
  const tx = signTransfer(a.sk, s1, b.pk, systemRng);
  assert.equal(tx.kind, StatechainTxKind.STATECHAIN_TX_KIND_TRANSFER);
  assert.equal(hex(transferDigest(s1, b.pk)), hex(sha256(cat(utf8("statechain/v1/transfer"), s1, b.pk))));
  // BIP340 by the x-only form of C1, over the tagged digest.
  assert.ok(
    schnorr.verify(tx.signature, transferDigest(s1, b.pk), a.pk.subarray(1)),
    "the transfer signature verifies by BIP340 under the sender's x-only key",
  );
  const s2 = nextState(tx);
  assert.equal(hex(s2), hex(sha256(cat(s1, b.pk, tx.signature))));
  const w = signWithdraw(b.sk, s2, P2WPKH, systemRng);
  assert.equal(hex(withdrawDigest(s2, P2WPKH)), hex(sha256(cat(utf8("statechain/v1/withdraw"), s2, P2WPKH))));
  assert.ok(
    schnorr.verify(w.signature, withdrawDigest(s2, P2WPKH), b.pk.subarray(1)),
    "the withdrawal signature verifies by BIP340 under the owner's x-only key",
  );
  assert.equal(hex(nextState(w)), hex(sha256(cat(s2, utf8("WITHDRAW"), P2WPKH, w.signature))));
});

test("a whole chain verifies from its deposit key: states, current key, closed", () => {
  const { owners, txs } = chainOf(5);
  const open = verifyChain(owners[0]!.pk, txs);
  assert.equal(open.states.length, 5);
  assert.equal(open.closed, false);
  assert.equal(hex(open.currentKey), hex(owners[4]!.pk));
  assert.equal(hex(open.currentState), hex(open.states[4]!));
  assert.equal(hex(open.states[0]!), hex(initialState(owners[0]!.pk)));

  const closed = chainOf(3, P2WPKH);
  const v = verifyChain(closed.owners[0]!.pk, closed.txs);
  assert.equal(v.closed, true);
  assert.equal(hex(v.withdrawScript!), hex(P2WPKH));
  assert.equal(hex(v.currentKey), hex(closed.owners[2]!.pk));
  assert.equal(v.states.length, 4);

  assert.equal(verifyChain(owners[0]!.pk, []).states.length, 1, "a fresh deposit is a chain of one state");
});

test("verifyChain names the first bad link", () => {
  const { owners, txs } = chainOf(5);
  const c1 = owners[0]!.pk;

  // Signed by the wrong key: owner 3 forges the hand-over that owner 2 should sign.
  const forged = [...txs];
  forged[1] = signTransfer(owners[2]!.sk, txs[1]!.previousState, owners[2]!.pk, systemRng);
  assert.throws(() => verifyChain(c1, forged), code("STATECHAIN_SIGNATURE", /^statechain transaction 2 /));

  // A flipped signature bit.
  const flipped = txs.map((t) => ({ ...t }));
  flipped[2] = { ...txs[2]!, signature: Buffer.from(txs[2]!.signature) };
  flipped[2].signature[10]! ^= 1;
  assert.throws(() => verifyChain(c1, flipped), code("STATECHAIN_SIGNATURE", /transaction 3 /));

  // A link that does not extend the previous state (a fork or a reordering).
  const reordered = [txs[0]!, txs[2]!, txs[1]!, txs[3]!];
  assert.throws(() => verifyChain(c1, reordered), code("STATECHAIN_PREVIOUS_STATE", /transaction 2 /));

  // The next key swapped after signing (the receiver is not whom the sender signed for).
  const swapped = [...txs];
  swapped[0] = { ...txs[0]!, nextProofKey: Buffer.from(owner().pk) };
  assert.throws(() => verifyChain(c1, swapped), code("STATECHAIN_SIGNATURE", /transaction 1 /));

  // Wrong deposit key.
  assert.throws(() => verifyChain(owner().pk, txs), code("STATECHAIN_PREVIOUS_STATE", /transaction 1 /));

  // Nothing may follow a WITHDRAW.
  const closed = chainOf(2, P2WPKH);
  const after = signTransfer(closed.owners[1]!.sk, nextState(closed.txs[1]!), owner().pk, systemRng);
  assert.throws(
    () => verifyChain(closed.owners[0]!.pk, [...closed.txs, after]),
    code("STATECHAIN_CLOSED", /transaction 3 /),
  );
});

test("malformed transactions are refused with the check that failed", () => {
  const [a, b] = [owner(), owner()];
  const s1 = initialState(a.pk);
  const tx = signTransfer(a.sk, s1, b.pk, systemRng);
  verifyStatechainTx(tx, a.pk, s1);
  const bad = (t: Partial<StatechainTx>, c: string) =>
    assert.throws(() => verifyStatechainTx({ ...tx, ...t }, a.pk, s1), code(c));
  bad({ kind: StatechainTxKind.STATECHAIN_TX_KIND_UNSPECIFIED }, "STATECHAIN_TX_KIND");
  bad({ signature: tx.signature.subarray(1) }, "STATECHAIN_SIGNATURE");
  bad({ previousState: tx.previousState.subarray(1) }, "STATECHAIN_STATE");
  bad({ nextProofKey: Buffer.from([2, ...new Array(32).fill(0xff)]) }, "INVALID_POINT");
  bad({ withdrawScript: Buffer.from(P2WPKH) }, "STATECHAIN_TX_FIELDS");
  // A WITHDRAW must not name a next key, and needs a script of sane size.
  const w = signWithdraw(a.sk, s1, P2WPKH, systemRng);
  verifyStatechainTx(w, a.pk, s1);
  assert.throws(
    () => verifyStatechainTx({ ...w, nextProofKey: Buffer.from(b.pk) }, a.pk, s1),
    code("STATECHAIN_TX_FIELDS"),
  );
  assert.throws(
    () => signWithdraw(a.sk, s1, new Uint8Array(0), systemRng),
    code("STATECHAIN_WITHDRAW_SCRIPT"),
  );
  assert.throws(
    () => signWithdraw(a.sk, s1, new Uint8Array(10_001), systemRng),
    code("STATECHAIN_WITHDRAW_SCRIPT"),
  );
  // A TRANSFER signature does not pass as a WITHDRAW over the same state (the tags separate them).
  const asWithdraw: StatechainTx = {
    ...tx,
    kind: StatechainTxKind.STATECHAIN_TX_KIND_WITHDRAW,
    nextProofKey: Buffer.alloc(0),
    withdrawScript: Buffer.from(b.pk),
  };
  assert.throws(() => verifyStatechainTx(asWithdraw, a.pk, s1), code("STATECHAIN_SIGNATURE"));
  assert.throws(() => initialState(new Uint8Array(33)), code("INVALID_POINT"));
});

test("signing uses the injected randomness for BIP340 aux data", () => {
  const [a, b] = [owner(), owner()];
  const s1 = initialState(a.pk);
  const fixed = () => new Uint8Array(32).fill(1);
  const x = signTransfer(a.sk, s1, b.pk, fixed);
  const y = signTransfer(a.sk, s1, b.pk, fixed);
  const z = signTransfer(a.sk, s1, b.pk, systemRng);
  assert.equal(hex(x.signature), hex(y.signature));
  assert.notEqual(hex(x.signature), hex(z.signature));
  verifyStatechainTx(z, a.pk, s1);
});
