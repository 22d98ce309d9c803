// Co-signing (DESIGN.md 3.1, 3.6): the policy at SignFirst, checked again when the enclave releases its part.
import { SignPurpose } from "../../proto/gen/common.ts";
import type * as E from "../../proto/gen/enclave.ts";
import { SignFirstRequest, SignSecondRequest } from "../../proto/gen/statechain.ts";
import { writeNat } from "../../protocol/ecdsa2p/codec.ts";
import { signerSignPartial, signerSignStart, wipeSignerSession } from "../../protocol/ecdsa2p/signer.ts";
import { check } from "../../protocol/errors.ts";
import { MAX_SIGN_SESSIONS_OPEN, stateChanged } from "../coins.ts";
import { type EnclaveCore, hex, readSigned } from "../core.ts";
import { type ChainView, checkCoSign, checkRelease } from "../cosign.ts";

export async function signFirst(e: EnclaveCore, r: E.SignFirstRequest): Promise<E.SignFirstResponse> {
  const { req, verify, hash } = readSigned(SignFirstRequest, "SignFirst", r.signedRequest, e.d.now());
  const coin = e.fundedCoin(req.statechainId);
  return e.step(coin, "signFirst", hash, async () => {
    verify(coin.proofKey);
    check(coin.key, "KEY_WIPED", "the enclave holds no key share for this coin", "precondition");
    const tip = e.acceptTip(r.chainTip);
    check(req.ownerCommit, "MISSING_OWNER_COMMIT", "owner nonce commitment is missing");
    check(req.inputIndex === 0, "INPUT_INDEX", "the co-signed input must be input 0");
    e.expireSessions(coin);
    check(
      coin.signSessions.size < MAX_SIGN_SESSIONS_OPEN,
      "TOO_MANY_SESSIONS",
      `at most ${MAX_SIGN_SESSIONS_OPEN} signing sessions may be open per coin`,
      "exhausted",
    );
    // Kick-off mode: the recorded kick-off's confirmation height, if the host saw it confirm (0: not yet).
    const chain: ChainView = { tip, kickoffHeight: r.kickoffHeight > 0 ? r.kickoffHeight : undefined };
    const terms = checkCoSign(coin, e.d.policy, req.purpose, req.tx, chain, e.seFee(coin));
    const { digest, txid, ownerIndex, kickoffAmountSat } = terms;
    const { session, msg } = signerSignStart(coin.key, {
      sessionId: req.sessionId,
      digest,
      ownerCommit: req.ownerCommit,
      rng: e.d.rng,
    });
    e.scrubOwed(); // BigInt copies of the nonce k_se (with a signature, it and the owner's k_o give the key)
    coin.signSessions.set(hex(req.sessionId), {
      session,
      purpose: req.purpose,
      tx: Buffer.from(req.tx),
      txid: Buffer.from(txid),
      stateVersion: coin.stateVersion,
      ownerIndex,
      kickoffAmountSat,
      kickoffHeight: chain.kickoffHeight,
      createdAt: e.d.now(),
    });
    return {
      sessionId: req.sessionId,
      seNonce: msg,
      digest: Buffer.from(digest),
    };
  });
}

export async function signSecond(e: EnclaveCore, r: E.SignSecondRequest): Promise<E.SignSecondResponse> {
  const { req, verify, hash } = readSigned(SignSecondRequest, "SignSecond", r.signedRequest, e.d.now());
  const coin = e.fundedCoin(req.statechainId);
  return e.step(coin, "signSecond", hash, async () => {
    verify(coin.proofKey);
    const instance = await e.d.instance;
    const entry = coin.signSessions.get(hex(req.sessionId));
    check(entry, "UNKNOWN_SESSION", "no open signing session with this id", "not_found");
    check(req.ownerNonce, "MISSING_OWNER_NONCE", "the owner's nonce opening is missing");
    coin.signSessions.delete(hex(req.sessionId));
    // Checked again now, against the coin as it is when c3 is released (audit #18.1, #18.2; DESIGN.md 3.1).
    try {
      checkRelease(
        coin,
        e.d.policy,
        entry,
        { tip: e.maxTip, kickoffHeight: entry.kickoffHeight },
        e.seFee(coin),
      );
    } catch (err) {
      wipeSignerSession(entry.session);
      throw err;
    }
    let sePartial: E.SignSecondResponse["sePartial"];
    try {
      const { c3, statement } = signerSignPartial(coin.key!, entry.session, req.ownerNonce, { rng: e.d.rng });
      // The owner checks this signature before it decrypts: a host that alters c3 is caught (DESIGN.md 3.1).
      sePartial = { partialSignature: writeNat(c3), statementSignature: instance.signPartial(statement) };
    } finally {
      e.scrubLater(); // copies of the nonce k_se and of s, answer or not
    }
    if (entry.purpose === SignPurpose.SIGN_PURPOSE_KICKOFF) {
      if (!coin.kickoff) {
        coin.kickoff = { txid: entry.txid, amountSat: entry.kickoffAmountSat! };
        stateChanged(coin); // backups opened before spend nothing the coin has
      }
    } else if (
      entry.purpose === SignPurpose.SIGN_PURPOSE_BACKUP &&
      coin.pending &&
      entry.ownerIndex === coin.pending.newOwnerIndex
    ) {
      // checkRelease made sure it pays this receiver's backup key at its lock.
      coin.pending.backupSigned = true;
      coin.pending.backupTxid = entry.txid;
    } else if (entry.purpose === SignPurpose.SIGN_PURPOSE_WITHDRAWAL) {
      coin.withdraw!.signedTxids.add(hex(entry.txid));
    }
    e.d.log.append({
      type: "sign",
      subject: coin.idHex!,
      detail: {
        purpose: entry.purpose,
        owner: entry.ownerIndex,
        txid: Buffer.from(entry.txid).reverse().toString("hex"),
      },
      at: e.d.now(),
    });
    return { sePartial };
  });
}
