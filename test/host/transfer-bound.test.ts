// The bound TransferSenderInit reserves in the receiver's mailbox (#19.5) holds every honest hand-over: the
// largest backup the enclave co-signs, and a TransferMessage with every field at its largest, encrypted as the
// wallet encrypts it, fit in it; and it is tight (the reservation does not make mailboxes fill early).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { secp256k1 } from "@noble/curves/secp256k1.js";
import { Transaction } from "bitcoinjs-lib";
import { BACKUP_TX_MAX_BYTES, ENDPOINT_ALLOWANCE, transferMessageBound } from "../../host/api/transfer.ts";
import { StatechainTxKind } from "../../proto/gen/common.ts";
import { TransferMessage } from "../../proto/gen/statechain.ts";
import { encrypt } from "../../protocol/ecies.ts";
import { buildBackupTx } from "../../protocol/tx/index.ts";

const key = () => secp256k1.getPublicKey(secp256k1.utils.randomSecretKey(), true);

/** A backup as the enclave's policy allows it, with the longest DER signature (72 bytes + the sighash byte). */
function largestBackup(mode: "absolute" | "kickoff"): Buffer {
  const built = buildBackupTx({
    mode,
    spend: { txid: randomBytes(32), vout: 0xffffffff },
    spendAmountSat: 2_100_000_000_000_000n,
    backupKey: key(),
    lock: mode === "absolute" ? 499_999_999 : 0xffff,
    feeRateSatVb: 1,
  });
  const tx = Transaction.fromBuffer(Buffer.from(built.raw));
  tx.setWitness(0, [Buffer.alloc(73, 0x30), Buffer.from(key())]);
  return Buffer.from(tx.toBuffer());
}

test("the largest backup the enclave co-signs is BACKUP_TX_MAX_BYTES, in either mode", () => {
  assert.equal(largestBackup("absolute").length, BACKUP_TX_MAX_BYTES);
  assert.equal(largestBackup("kickoff").length, BACKUP_TX_MAX_BYTES);
});

test("an encrypted hand-over with every field at its largest fits the bound, which is tight", () => {
  for (const [owners, fundingBytes, kickoffBytes] of [
    [1, 222, 0],
    [7, 1_500, 236],
    [120, 16_384, 236],
  ] as const) {
    const newOwnerIndex = owners + 1;
    const message = TransferMessage.encode({
      statechainId: { txid: randomBytes(32), vout: 0xffffffff },
      t1: randomBytes(32),
      backupTx: largestBackup("absolute"),
      backupHistory: Array.from({ length: owners }, () => largestBackup("absolute")),
      kickoffTx: randomBytes(kickoffBytes),
      statechainTx: {
        kind: StatechainTxKind.STATECHAIN_TX_KIND_TRANSFER,
        previousState: randomBytes(32),
        nextProofKey: Buffer.from(key()),
        withdrawScript: Buffer.alloc(0),
        signature: randomBytes(64),
      },
      fundingTx: randomBytes(fundingBytes),
      amountSat: 0xffff_ffff_ffff_ffffn,
      seEndpoint: "s".repeat(ENDPOINT_ALLOWANCE),
    }).finish();
    const sent = encrypt(key(), message).length;
    const bound = transferMessageBound({
      newOwnerIndex,
      fundingTxBytes: fundingBytes,
      kickoffTxBytes: kickoffBytes,
    });
    assert.ok(sent <= bound, `${owners} owners: the hand-over has ${sent} bytes, above the bound ${bound}`);
    assert.ok(bound - sent <= 16, `${owners} owners: the bound ${bound} is within 16 bytes of ${sent}`);
  }
});
