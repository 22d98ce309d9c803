// Transfer (DESIGN.md 3.3 steps 2 and 7): x1 for the sender, an attested transfer key for the receiver.
import { encodeTransferKeyStatement, statementHash } from "../../attestation/statements.ts";
import type * as E from "../../proto/gen/enclave.ts";
import { TransferReceiverInitRequest, TransferSenderInitRequest } from "../../proto/gen/statechain.ts";
import { randomSecretBytes } from "../../protocol/ecdsa2p/scalar-ct.ts";
import { encrypt as eciesEncrypt, eciesPublicKey } from "../../protocol/ecies.ts";
import { parsePoint, pointBytes } from "../../protocol/encoding.ts";
import { check } from "../../protocol/errors.ts";
import { statechainIdBytes } from "../../protocol/statechain.ts";
import { backupLock } from "../../protocol/tx/policy.ts";
import { keep, MAX_TRANSFER_KEYS, stateChanged, wipePending } from "../coins.ts";
import { type EnclaveCore, readSigned } from "../core.ts";
import { policyHash } from "../policy.ts";
import { Secret } from "../secret.ts";

export async function transferInit(
  e: EnclaveCore,
  r: E.TransferInitRequest,
): Promise<E.TransferInitResponse> {
  const { req, verify, hash } = readSigned(
    TransferSenderInitRequest,
    "TransferSenderInit",
    r.signedRequest,
    e.d.now(),
  );
  const coin = e.fundedCoin(req.statechainId);
  return e.step(coin, "transferInit", hash, async () => {
    verify(coin.proofKey);
    check(coin.key, "KEY_WIPED", "the enclave holds no key share for this coin", "precondition");
    check(
      !coin.withdraw,
      "WITHDRAWING",
      "a withdrawal has started; the coin cannot be transferred",
      "precondition",
    );
    const C2 = keep(pointBytes(parsePoint(req.receiverProofKey, "receiver proof key")));
    const B2 = keep(pointBytes(parsePoint(req.receiverBackupKey, "receiver backup key")));
    check(!C2.equals(coin.proofKey), "SELF_TRANSFER", "the receiver proof key is the current owner's");
    const p = coin.pending;
    if (p) {
      if (p.receiverProofKey.equals(C2) && p.receiverBackupKey.equals(B2)) {
        return {
          encryptedX1: p.encryptedX1,
          newOwnerIndex: p.newOwnerIndex,
          backupLock: backupLock(e.context(coin), p.newOwnerIndex),
        };
      }
      check(
        !p.backupSigned,
        "TRANSFER_COMMITTED",
        "the receiver's backup is already co-signed; this transfer cannot be redirected",
        "precondition",
      );
      wipePending(p);
      coin.pending = undefined;
    }
    stateChanged(coin); // a backup session opened for an earlier receiver (or none) releases nothing now
    const newOwnerIndex = coin.ownerIndex + 1;
    const lock = backupLock(e.context(coin), newOwnerIndex);
    const x1 = randomSecretBytes(e.d.rng); // as bytes only: no BigInt copy of x1 to outlive its erasure
    const encryptedX1 = Buffer.from(eciesEncrypt(coin.proofKey, x1));
    coin.pending = {
      newOwnerIndex,
      receiverProofKey: C2,
      receiverBackupKey: B2,
      x1: new Secret(x1),
      encryptedX1,
      backupSigned: false,
      transferKeys: [],
    };
    x1.fill(0);
    e.d.log.append({
      type: "transfer-init",
      subject: coin.idHex!,
      detail: { to: newOwnerIndex },
      at: e.d.now(),
    });
    return { encryptedX1, newOwnerIndex, backupLock: lock };
  });
}

export async function transferKey(e: EnclaveCore, r: E.TransferKeyRequest): Promise<E.TransferKeyResponse> {
  const { req, verify } = readSigned(
    TransferReceiverInitRequest,
    "TransferReceiverInit",
    r.signedRequest,
    e.d.now(),
  );
  const coin = e.fundedCoin(req.statechainId);
  return e.mutex.run(coin.depositId.toString("hex"), async () => {
    // The signature first, under the key the request names: otherwise NOT_RECEIVER would tell anyone whether
    // a given proof key is the pending receiver (audit #18.13).
    parsePoint(req.receiverProofKey, "receiver proof key");
    verify(req.receiverProofKey);
    const p = coin.pending;
    const receiving = p?.receiverProofKey.equals(Buffer.from(req.receiverProofKey)) === true;
    check(p && receiving, "NOT_RECEIVER", "no transfer to this proof key is pending", "precondition");
    check(
      p.backupSigned && p.backupTxid,
      "BACKUP_MISSING",
      "the receiver's backup transaction must be co-signed before a transfer key is handed out",
      "precondition",
    );
    check(
      req.nonce.length >= 16 && req.nonce.length <= 64,
      "ATTESTATION_NONCE",
      "attestation nonce must be 16 to 64 bytes",
    );
    // Bytes only, never a BigInt: with this key and the encrypted t2 the host keeps, t2 would be recoverable.
    const sk = randomSecretBytes(e.d.rng);
    const publicKey = Buffer.from(eciesPublicKey(sk));
    const context = encodeTransferKeyStatement({
      statechain: statechainIdBytes(coin.outpoint!),
      epoch: p.newOwnerIndex,
      receiver: p.receiverProofKey,
      instance: e.d.instanceId,
      share: pointBytes(coin.key!.sePublicShare),
      kickoff: coin.kickoff ? coin.kickoff.txid : null,
      backup: p.backupTxid,
      policy: policyHash(e.d.policy),
    });
    const doc = await e.d.provider.attest({
      nonce: req.nonce,
      userData: statementHash(context),
      publicKey,
    });
    p.transferKeys.push({ publicKey, secret: new Secret(sk) });
    sk.fill(0);
    while (p.transferKeys.length > MAX_TRANSFER_KEYS) p.transferKeys.shift()!.secret.wipe();
    // The receiver encrypts t2 to this key: every member must be able to open it if this one fails.
    await e.commit(coin, false);
    return { attestationDocument: Buffer.from(doc), transferContext: Buffer.from(context) };
  });
}
