// Coins with every field set, for the replication tests, and a comparable view of one.
import { randomBytes } from "node:crypto";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import type { Coin } from "../../../enclave/coins.ts";
import { Secret } from "../../../enclave/secret.ts";
import { bytesToBigInt, G, pointBytes } from "../../../protocol/encoding.ts";

const scalar = () => secp256k1.utils.randomSecretKey();
const pointOf = (k: Uint8Array) => G.multiply(bytesToBigInt(k));
const pub = () => Buffer.from(pointBytes(pointOf(scalar())));

/** A funded coin with a pending transfer, a kick-off, a withdrawal and a remembered key update: every field set. */
export function fullCoin(): Coin {
  const s = Buffer.from(scalar());
  const S = pointOf(s);
  const O = pointOf(scalar());
  const P = O.multiply(bytesToBigInt(s));
  return {
    depositId: randomBytes(16),
    depositProofKey: pub(),
    stage: "funded",
    createdAt: 1_765_000_000_123,
    key: {
      sessionId: randomBytes(32),
      share: s,
      sePublicShare: S,
      ownerPublicShare: O,
      sharedPublicKey: P,
      paillierModulus: bytesToBigInt(randomBytes(256)) | 1n,
      encryptedShare: bytesToBigInt(randomBytes(512)),
      usedSignSessions: new Set([randomBytes(16).toString("hex"), randomBytes(16).toString("hex")]),
      wiped: false,
    },
    sharedPublicKey: Buffer.from(pointBytes(P)),
    outpoint: { txid: randomBytes(32), vout: 3 },
    idHex: "ignored",
    amountSat: 1_234_567n,
    initialLock: 1100,
    kickoff: { txid: randomBytes(32), amountSat: 1_230_000n },
    ownerIndex: 4,
    proofKey: pub(),
    backupKey: pub(),
    stateHash: randomBytes(32),
    pending: {
      newOwnerIndex: 5,
      receiverProofKey: pub(),
      receiverBackupKey: pub(),
      x1: new Secret(scalar()),
      encryptedX1: randomBytes(130),
      backupSigned: true,
      backupTxid: randomBytes(32),
      transferKeys: [{ publicKey: pub(), secret: new Secret(scalar()) }],
    },
    signSessions: new Map(),
    stateVersion: 17,
    lastKeyUpdate: {
      ownerIndex: 4,
      response: { seShare: undefined, keyUpdate: undefined, stateHash: randomBytes(32) },
    },
    withdraw: {
      statechainTx: randomBytes(120),
      withdrawScript: randomBytes(22),
      closingState: randomBytes(32),
      signedTxids: new Set([randomBytes(32).toString("hex")]),
    },
    answers: new Map([["x", { requestHash: "h", response: {}, at: 1 }]]),
  };
}

/** The coin as plain comparable data (secrets read out, points as bytes, sets sorted). */
export function view(c: Coin) {
  const k = c.key!;
  return {
    ...c,
    idHex: undefined,
    answers: undefined,
    key: {
      ...k,
      share: Buffer.from(k.share).toString("hex"),
      sePublicShare: Buffer.from(pointBytes(k.sePublicShare)).toString("hex"),
      ownerPublicShare: Buffer.from(pointBytes(k.ownerPublicShare)).toString("hex"),
      sharedPublicKey: Buffer.from(pointBytes(k.sharedPublicKey)).toString("hex"),
      usedSignSessions: [...k.usedSignSessions].sort(),
    },
    pending: c.pending && {
      ...c.pending,
      x1: c.pending.x1.use((b) => Buffer.from(b).toString("hex")),
      transferKeys: c.pending.transferKeys.map((t) => ({
        publicKey: t.publicKey,
        secret: t.secret.use((b) => Buffer.from(b).toString("hex")),
      })),
    },
    withdraw: c.withdraw && { ...c.withdraw, signedTxids: [...c.withdraw.signedTxids].sort() },
  };
}
