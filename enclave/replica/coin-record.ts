// A coin's replicated state as bytes (DESIGN.md 4.1): what a leader puts in a log entry when a step changes the
// coin, and what a snapshot carries, so a member that applies it holds the same coin. Replicated: everything a
// later co-signature, transfer or erasure depends on, from the end of keygen on (a keyed coin may already be
// funded on chain). Not replicated, and dropped at a change of leader: an unfinished keygen (the depositor starts
// again), open signing sessions (their nonces stay on the member that made them; the owner opens another), and the
// answers kept for retries.
//
// The encoding is written into ONE buffer outside the V8 heap (no pool slab, never moved by a collection), secrets
// included, so the log's zeroing of an applied entry (raft: data.fill(0)) leaves no copy of the shares it carried.
// Decoding copies each field into a buffer of its own (keep), as the steps hold them.

import { KeyUpdateResponse } from "../../proto/gen/enclave.ts";
import type { SignerKey } from "../../protocol/ecdsa2p/signer.ts";
import { Point, pointBytes } from "../../protocol/encoding.ts";
import { check, fail, ProtocolError } from "../../protocol/errors.ts";
import type { CoinStage } from "../coins.ts";
import { type Coin, keep, type PendingTransfer } from "../coins.ts";
import { Secret } from "../secret.ts";
import { Reader, Writer } from "./bytes.ts";

export const COIN_RECORD_VERSION = 1;
/** Far above any real coin (~2 KB plus 16 bytes per signing session used with the key). */
export const MAX_COIN_RECORD_BYTES = 1 << 20;
/** A closed coin leaves the registry with its share erased: its removal is an entry of its own. */
const STAGES: readonly CoinStage[] = ["keyed", "funded"];

/** Points travel uncompressed: reading one is a check that it is on the curve (~4 µs), not a square root (~60 µs),
 * which made a joiner's snapshot of 10,000 coins take seconds to apply. */
function point(r: Reader, what: string): Point {
  try {
    return Point.fromBytes(r.view(what));
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    return fail("RECORD_PARSE", `${what} is not an uncompressed point on secp256k1`);
  }
}

function writeKey(w: Writer, k: SignerKey): void {
  w.bytes(k.sessionId);
  w.bytes(k.share);
  for (const p of [k.sePublicShare, k.ownerPublicShare, k.sharedPublicKey]) w.bytes(p.toBytes(false));
  w.nat(k.paillierModulus);
  w.nat(k.encryptedShare);
  w.list(k.usedSignSessions, (id) => w.bytes(Buffer.from(id, "hex")));
}

function readKey(r: Reader): SignerKey {
  return {
    sessionId: r.bytes("key session id"),
    share: r.bytes("SE share s", 32),
    sePublicShare: point(r, "SE public share S"),
    ownerPublicShare: point(r, "owner public share O"),
    sharedPublicKey: point(r, "shared public key P"),
    paillierModulus: r.nat("Paillier modulus N"),
    encryptedShare: r.nat("c_key"),
    usedSignSessions: new Set(
      r.list("used signing sessions", 1 << 16, () => r.bytes("session id").toString("hex")),
    ),
    wiped: false,
  };
}

/** A 32-byte secret read straight into its Secret (one copy: a Secret keeps its own). */
function secretOf(r: Reader, what: string): Secret {
  const v = r.view(what);
  check(v.length === 32, "RECORD_PARSE", `${what} must be 32 bytes, not ${v.length}`);
  return new Secret(v);
}

function writePending(w: Writer, p: PendingTransfer): void {
  w.u32(p.newOwnerIndex);
  w.bytes(p.receiverProofKey);
  w.bytes(p.receiverBackupKey);
  p.x1.use((x1) => w.bytes(x1));
  w.bytes(p.encryptedX1);
  w.u8(p.backupSigned ? 1 : 0);
  w.opt(p.backupTxid, (t) => w.bytes(t));
  w.list(p.transferKeys, (k) => {
    w.bytes(k.publicKey);
    k.secret.use((s) => w.bytes(s));
  });
}

function readPending(r: Reader): PendingTransfer {
  return {
    newOwnerIndex: r.u32("new owner index"),
    receiverProofKey: r.bytes("receiver proof key"),
    receiverBackupKey: r.bytes("receiver backup key"),
    x1: secretOf(r, "x1"),
    encryptedX1: r.bytes("encrypted x1"),
    backupSigned: r.bool("backup signed"),
    backupTxid: r.opt("backup txid", () => r.bytes("backup txid", 32)),
    transferKeys: r.list("transfer keys", 16, () => ({
      publicKey: r.bytes("transfer public key"),
      secret: secretOf(r, "transfer key secret"),
    })),
  };
}

/** The coin's replicated state. Refuses a coin still in keygen (not replicated) or whose share was erased. */
export function encodeCoin(c: Coin): Buffer {
  const stage = STAGES.indexOf(c.stage);
  check(stage >= 0, "RECORD_STAGE", `a coin in stage ${c.stage} is not replicated`);
  check(c.key && !c.key.wiped, "RECORD_KEY", "a replicated coin needs its key share");
  const w = new Writer();
  w.u8(COIN_RECORD_VERSION);
  w.u8(stage);
  w.bytes(c.depositId);
  w.bytes(c.depositProofKey);
  w.u64(c.createdAt);
  writeKey(w, c.key);
  w.opt(c.outpoint, (o) => {
    w.bytes(o.txid);
    w.u32(o.vout);
  });
  w.opt(c.amountSat, (a) => w.u64(a));
  w.opt(c.initialLock, (l) => w.u32(l));
  w.opt(c.kickoff, (k) => {
    w.bytes(k.txid);
    w.u64(k.amountSat);
  });
  w.u32(c.ownerIndex);
  w.bytes(c.proofKey);
  w.opt(c.backupKey, (b) => w.bytes(b));
  w.bytes(c.stateHash);
  w.opt(c.pending, (p) => writePending(w, p));
  w.u64(c.stateVersion);
  w.opt(c.lastKeyUpdate, (u) => {
    w.u32(u.ownerIndex);
    w.bytes(KeyUpdateResponse.encode(u.response).finish());
  });
  w.opt(c.withdraw, (x) => {
    w.bytes(x.statechainTx);
    w.bytes(x.withdrawScript);
    w.bytes(x.closingState);
    w.list(x.signedTxids, (t) => w.bytes(Buffer.from(t, "hex")));
  });
  return w.finish();
}

/** A coin as `encodeCoin` wrote it; `bytes` is left as it was (the caller zeroes it). */
export function decodeCoin(bytes: Uint8Array): Coin {
  check(bytes.length <= MAX_COIN_RECORD_BYTES, "RECORD_PARSE", "coin record is too large");
  const r = new Reader(bytes);
  const version = r.u8("version");
  check(version === COIN_RECORD_VERSION, "RECORD_VERSION", `coin record version ${version} is not known`);
  const stage = STAGES[r.u8("stage")] ?? fail("RECORD_PARSE", "coin record has an unknown stage");
  const coin: Coin = {
    stage,
    depositId: r.bytes("deposit id", 16),
    depositProofKey: r.bytes("deposit proof key", 33),
    createdAt: r.num("created at"),
    key: readKey(r),
    outpoint: r.opt("outpoint", () => ({ txid: r.bytes("funding txid", 32), vout: r.u32("vout") })),
    amountSat: r.opt("amount", () => r.u64("amount")),
    initialLock: r.opt("initial lock", () => r.u32("initial lock")),
    kickoff: r.opt("kick-off", () => ({
      txid: r.bytes("kick-off txid", 32),
      amountSat: r.u64("kick-off amount"),
    })),
    ownerIndex: r.u32("owner index"),
    proofKey: r.bytes("proof key", 33),
    backupKey: r.opt("backup key", () => r.bytes("backup key", 33)),
    stateHash: r.bytes("state hash", 32),
    pending: r.opt("pending transfer", () => readPending(r)),
    stateVersion: r.num("state version"),
    lastKeyUpdate: r.opt("last key update", () => ({
      ownerIndex: r.u32("key update owner index"),
      response: decodeKeyUpdate(r.bytes("key update answer")),
    })),
    withdraw: r.opt("withdrawal", () => ({
      statechainTx: r.bytes("withdrawal statement"),
      withdrawScript: r.bytes("withdrawal script"),
      closingState: r.bytes("closing state", 32),
      signedTxids: new Set(r.list("signed withdrawals", 64, () => r.bytes("txid", 32).toString("hex"))),
    })),
    signSessions: new Map(),
    answers: new Map(),
  };
  r.end();
  coin.sharedPublicKey = keep(pointBytes(coin.key!.sharedPublicKey));
  return coin;
}

function decodeKeyUpdate(b: Uint8Array): KeyUpdateResponse {
  try {
    return KeyUpdateResponse.decode(b);
  } catch {
    return fail("RECORD_PARSE", "coin record's key update answer does not parse");
  }
}
