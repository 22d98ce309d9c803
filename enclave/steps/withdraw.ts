// Withdrawal (DESIGN.md 3.4): the signed WITHDRAW, then the erasure once the withdrawal confirmed.
import { randomBytes } from "node:crypto";
import { encodeReceipt, erasedShareCommitment, receiptHash } from "../../attestation/receipt.ts";
import { StatechainTxKind } from "../../proto/gen/common.ts";
import type * as E from "../../proto/gen/enclave.ts";
import { WithdrawInitRequest } from "../../proto/gen/statechain.ts";
import { pointBytes } from "../../protocol/encoding.ts";
import { check } from "../../protocol/errors.ts";
import { nextState, statechainIdBytes, verifyStatechainTx } from "../../protocol/statechain.ts";
import { keep, stateChanged, wipeCoin, wipePending } from "../coins.ts";
import { type EnclaveCore, hex, idHexOf, readSigned } from "../core.ts";

export async function withdrawInit(
  e: EnclaveCore,
  r: E.WithdrawInitRequest,
): Promise<E.WithdrawInitResponse> {
  const { req, verify, hash } = readSigned(WithdrawInitRequest, "WithdrawInit", r.signedRequest, e.d.now());
  const coin = e.fundedCoin(req.statechainId);
  return e.step(coin, "withdrawInit", hash, async () => {
    verify(coin.proofKey);
    check(coin.key, "KEY_WIPED", "the enclave holds no key share for this coin", "precondition");
    const sctx = req.statechainTx;
    check(
      sctx && sctx.kind === StatechainTxKind.STATECHAIN_TX_KIND_WITHDRAW,
      "SCTX_KIND",
      "statechain transaction must be a WITHDRAW",
    );
    verifyStatechainTx(sctx, coin.proofKey, coin.stateHash);
    const encoded = Buffer.from(sctx.signature);
    if (coin.withdraw) {
      check(
        coin.withdraw.statechainTx.equals(encoded),
        "WITHDRAW_STARTED",
        "a different withdrawal is already under way",
        "precondition",
      );
    } else {
      // A transfer that never completed is abandoned: its x1 and transfer keys are erased.
      wipePending(coin.pending);
      coin.pending = undefined;
      stateChanged(coin);
      coin.withdraw = {
        statechainTx: encoded,
        withdrawScript: keep(sctx.withdrawScript),
        closingState: keep(nextState(sctx)),
        signedTxids: new Set(),
      };
      e.d.log.append({ type: "withdraw-init", subject: coin.idHex!, at: e.d.now() });
    }
    return {
      feeSat: e.seFee(coin),
      feeAddress: e.d.policy.feeScript,
      stateHash: coin.withdraw.closingState,
    };
  });
}

export async function closeStatechain(
  e: EnclaveCore,
  r: E.CloseStatechainRequest,
): Promise<E.CloseStatechainResponse> {
  const id = r.statechainId;
  check(id && id.txid.length === 32, "INVALID_OUTPOINT", "statechain id is missing or malformed");
  const idHex = idHexOf(id);
  const done = e.coins.closed.get(idHex) as E.CloseStatechainResponse | undefined;
  if (done) return done;
  const coin = e.fundedCoin(id);
  return e.mutex.run(coin.depositId.toString("hex"), async () => {
    const w = coin.withdraw;
    check(w, "WITHDRAW_NOT_STARTED", "this statechain has no withdrawal", "precondition");
    check(r.withdrawalTxid.length === 32, "INVALID_TXID", "withdrawal txid must be 32 bytes");
    check(
      w.signedTxids.has(hex(r.withdrawalTxid)),
      "WITHDRAW_TXID",
      "the enclave co-signed no withdrawal with this txid for this statechain",
      "precondition",
    );
    const now = e.d.now();
    const logEntry = { type: "erasure", subject: idHex, at: now };
    const receipt = encodeReceipt({
      type: "erasure",
      statechain: statechainIdBytes(coin.outpoint!),
      epoch: coin.ownerIndex,
      erased: erasedShareCommitment(pointBytes(coin.key!.sePublicShare)),
      S2: null,
      prev: e.lastReceipt,
      log: e.d.log.peek(logEntry),
      time: now,
    });
    const nonce = randomBytes(32);
    const doc = await e.d.provider.attest({ nonce, userData: receiptHash(receipt) });
    e.d.log.append(logEntry);
    e.lastReceipt = receiptHash(receipt);
    wipeCoin(coin);
    coin.stage = "closed";
    e.coins.remove(coin);
    const res: E.CloseStatechainResponse = {
      erasure: {
        ownerIndex: coin.ownerIndex,
        receipt: Buffer.from(receipt),
        attestationDocument: Buffer.from(doc),
        attestationNonce: nonce,
      },
    };
    e.coins.closed.set(idHex, res);
    await e.commit(coin, true, res);
    e.scrubDue = true; // a full scrub before this answer, due or not (closing is rare)
    e.scrubNow();
    return res;
  });
}
