// Key update (DESIGN.md 3.3 step 8): the receiver's share, the erasure of s1 and x1, the deletion receipt.
import { encodeReceipt, erasedShareCommitment, receiptHash } from "../../attestation/receipt.ts";
import { type KeyUpdateRecord, type StatechainTx, StatechainTxKind } from "../../proto/gen/common.ts";
import type * as E from "../../proto/gen/enclave.ts";
import { TransferReceiverKeyUpdateRequest } from "../../proto/gen/statechain.ts";
import { rotateShare } from "../../protocol/ecdsa2p/rotation.ts";
import { signerKeyUpdate, wipeSignerKey } from "../../protocol/ecdsa2p/signer.ts";
import { decrypt as eciesDecrypt } from "../../protocol/ecies.ts";
import { pointBytes } from "../../protocol/encoding.ts";
import { check } from "../../protocol/errors.ts";
import { nextState, statechainIdBytes, verifyStatechainTx } from "../../protocol/statechain.ts";
import { keep, stateChanged, wipePending } from "../coins.ts";
import { type EnclaveCore, readSigned } from "../core.ts";

export async function keyUpdate(e: EnclaveCore, r: E.KeyUpdateRequest): Promise<E.KeyUpdateResponse> {
  const { req, verify, hash } = readSigned(
    TransferReceiverKeyUpdateRequest,
    "TransferReceiverKeyUpdate",
    r.signedRequest,
    e.d.now(),
  );
  const coin = e.fundedCoin(req.statechainId);
  return e.step(coin, "keyUpdate", hash, async () => {
    const instance = await e.d.instance;
    e.scrubNow(); // copies an earlier step left (BigInt digits of s1, from signing) go before the erasure
    const p = coin.pending;
    const receiving = p?.receiverProofKey.equals(Buffer.from(req.receiverProofKey)) === true;
    check(
      p && receiving,
      "NOT_RECEIVER",
      "no transfer to this proof key is pending (the key update for this owner may already be done)",
      "precondition",
    );
    verify(p.receiverProofKey);
    check(coin.key, "KEY_WIPED", "the enclave holds no key share for this coin", "precondition");
    check(
      p.backupSigned,
      "BACKUP_MISSING",
      "the receiver's backup transaction must be co-signed before the key update",
      "precondition",
    );
    check(req.ownerShare, "MISSING_OWNER_SHARE", "owner share is missing");
    check(
      req.nonce.length >= 16 && req.nonce.length <= 64,
      "ATTESTATION_NONCE",
      "attestation nonce must be 16 to 64 bytes",
    );
    const sctx: StatechainTx | undefined = r.statechainTx;
    check(
      sctx && sctx.kind === StatechainTxKind.STATECHAIN_TX_KIND_TRANSFER,
      "SCTX_KIND",
      "the sender's statechain transaction must be a TRANSFER",
    );
    check(
      Buffer.from(sctx.nextProofKey).equals(p.receiverProofKey),
      "SCTX_RECEIVER",
      "the sender's statechain transaction does not transfer to this receiver",
    );
    verifyStatechainTx(sctx, coin.proofKey, coin.stateHash);
    check(
      p.transferKeys.length > 0,
      "NO_TRANSFER_KEY",
      "ask for an attested transfer key (TransferReceiverInit) first",
      "precondition",
    );

    // t2 = Dec(transfer key): try the keys handed out for this transfer, newest first.
    let t2: Uint8Array | undefined;
    let usedKey: Buffer | undefined;
    for (const k of [...p.transferKeys].reverse()) {
      try {
        t2 = k.secret.use((sk) => eciesDecrypt(sk, req.encryptedT2, "encrypted t2"));
        usedKey = k.publicKey;
        break;
      } catch {
        // not this key
      }
    }
    check(
      t2 && usedKey,
      "T2_DECRYPT",
      "encrypted t2 does not decrypt under any transfer key this enclave handed out",
    );
    check(t2.length === 32, "T2_INVALID", "t2 must be a 32-byte scalar");
    const oldKey = coin.key;
    const s2 = coin.key.share && p.x1.use((x1) => rotateShare(oldKey.share, x1, t2!, e.d.rng));
    t2.fill(0);
    // The receiver's keygen with the fixed share s2: s2·O2 = P and the receiver's Paillier proofs are checked
    // first (signer.ts). Nothing is erased if it fails.
    let fresh: ReturnType<typeof signerKeyUpdate>;
    try {
      fresh = signerKeyUpdate({
        sessionId: req.keygenSessionId,
        share: s2,
        holderShare: req.ownerShare,
        sharedPublicKey: coin.sharedPublicKey!,
        ringPedersen: instance.ringPedersenPublic,
        rng: e.d.rng,
      });
    } finally {
      s2.fill(0);
    }
    try {
      e.refuseReusedModulus(fresh.key.paillierModulus);
    } catch (err) {
      wipeSignerKey(fresh.key);
      throw err;
    }
    const newIndex = p.newOwnerIndex;
    const newState = keep(nextState(sctx));
    const idBytes = statechainIdBytes(coin.outpoint!);
    const oldS = pointBytes(oldKey.sePublicShare);
    const now = e.d.now();
    const logEntry = { type: "key-update", subject: coin.idHex!, detail: { to: newIndex }, at: now };
    const receipt = encodeReceipt({
      type: "key-update",
      statechain: idBytes,
      epoch: newIndex,
      erased: erasedShareCommitment(oldS),
      S2: pointBytes(fresh.key.sePublicShare),
      prev: e.lastReceipt,
      log: e.d.log.peek(logEntry),
      time: now,
    });
    let doc: Uint8Array;
    try {
      doc = await e.d.provider.attest({
        nonce: req.nonce,
        userData: receiptHash(receipt),
        publicKey: usedKey,
      });
    } catch (err) {
      wipeSignerKey(fresh.key);
      throw err;
    }
    // Commit: from here on nothing awaits, so the erasure and the new state happen together.
    e.d.log.append(logEntry);
    e.lastReceipt = receiptHash(receipt);
    wipeSignerKey(oldKey);
    wipePending(p);
    stateChanged(coin);
    coin.answers.clear();
    coin.key = fresh.key;
    coin.pending = undefined;
    coin.ownerIndex = newIndex;
    coin.proofKey = p.receiverProofKey;
    coin.backupKey = p.receiverBackupKey;
    coin.stateHash = newState;
    const keyUpdate: KeyUpdateRecord = {
      ownerIndex: newIndex,
      receipt: Buffer.from(receipt),
      attestationDocument: Buffer.from(doc),
      attestationNonce: req.nonce,
    };
    e.scrubOwed(); // BigInt copies of the new share s2
    const response = { seShare: fresh.msg, keyUpdate, stateHash: newState };
    coin.lastKeyUpdate = { ownerIndex: newIndex, response };
    return response;
  });
}

/** The last key update's answer (public), for a host that lost it in a crash (DESIGN.md 3.3: never neither). */
export async function getKeyUpdate(
  e: EnclaveCore,
  r: E.GetKeyUpdateRequest,
): Promise<E.GetKeyUpdateResponse> {
  const coin = e.fundedCoin(r.statechainId);
  const last = coin.lastKeyUpdate;
  check(last, "NO_KEY_UPDATE", "the enclave keeps no key update answer for this coin now", "not_found");
  return { ownerIndex: last.ownerIndex, result: last.response };
}
