// What the enclave co-signs (DESIGN.md 3.6): one function decides, from the coin's state at that moment, whether
// a transaction may be signed and for which owner. SignFirst runs it to open a session and SignSecond runs it
// again before the signature is released, so a session opened against an earlier state (a transfer since
// redirected, a kick-off since recorded) releases nothing (audit #18.1, #18.2).
import { SignPurpose } from "../proto/gen/common.ts";
import { check, fail } from "../protocol/errors.ts";
import { parseTx } from "../protocol/tx/parse.ts";
import { checkBackupTx, checkKickoffTx, checkWithdrawalTx } from "../protocol/tx/policy.ts";
import { p2wpkhScript } from "../protocol/tx/script.ts";
import type { Coin, SignSessionEntry } from "./coins.ts";
import { coinContext, type EnclavePolicy } from "./policy.ts";

export interface ChainView {
  tip: number;
  /** Kick-off mode: the recorded kick-off's confirmation height, when the host has seen it confirm. */
  kickoffHeight?: number;
}

export interface CoSignTerms {
  digest: Uint8Array;
  txid: Uint8Array;
  /** The owner a backup is for: the current owner n, or n+1 for the pending receiver. */
  ownerIndex: number;
  kickoffAmountSat?: bigint;
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

export function coinPolicyContext(policy: EnclavePolicy, coin: Coin) {
  return coinContext(policy, {
    outpoint: coin.outpoint!,
    amountSat: coin.amountSat!,
    sharedPublicKey: coin.sharedPublicKey!,
    initialLock: coin.initialLock!,
    kickoff: coin.kickoff,
  });
}

/** Throws a ProtocolError unless `tx` may be co-signed for `purpose` on `coin` as it is now. */
export function checkCoSign(
  coin: Coin,
  policy: EnclavePolicy,
  purpose: SignPurpose,
  tx: Uint8Array,
  chain: ChainView,
  seFeeSat: bigint,
): CoSignTerms {
  const ctx = coinPolicyContext(policy, coin);
  switch (purpose) {
    case SignPurpose.SIGN_PURPOSE_BACKUP: {
      check(
        !coin.withdraw,
        "WITHDRAWING",
        "no backup is co-signed once a withdrawal has started",
        "precondition",
      );
      const pending = coin.pending;
      const payee = parseTx(tx, "backup").outs[0]?.script;
      const toReceiver =
        pending !== undefined &&
        payee !== undefined &&
        sameBytes(payee, p2wpkhScript(pending.receiverBackupKey));
      const ownerIndex = toReceiver ? pending.newOwnerIndex : coin.ownerIndex;
      const res = checkBackupTx(tx, ctx, {
        ownerIndex,
        backupKey: toReceiver ? pending.receiverBackupKey : coin.backupKey!,
        tip: chain.tip,
        kickoffHeight: chain.kickoffHeight,
      });
      // The receiver is shown the one backup co-signed for it (the transfer-key statement names its txid).
      if (toReceiver && pending.backupTxid)
        check(
          sameBytes(pending.backupTxid, res.txid),
          "RECEIVER_BACKUP_SIGNED",
          "a different backup is already co-signed for the receiver of this transfer",
          "precondition",
        );
      return { digest: res.digest, txid: res.txid, ownerIndex };
    }
    case SignPurpose.SIGN_PURPOSE_KICKOFF: {
      check(
        coin.ownerIndex === 1 && !coin.pending && !coin.withdraw,
        "KICKOFF_LATE",
        "the kick-off transaction is co-signed at deposit only",
        "precondition",
      );
      // Refuses a different kick-off than the recorded one (checkKickoffTx) and than any open session's: one
      // kick-off per coin, ever, so every backup spends the same kick-off output.
      const res = checkKickoffTx(tx, ctx);
      for (const s of coin.signSessions.values())
        check(
          s.purpose !== SignPurpose.SIGN_PURPOSE_KICKOFF || sameBytes(s.txid, res.txid),
          "KICKOFF_SESSION_OPEN",
          "a signing session for a different kick-off is open for this coin",
          "precondition",
        );
      return { digest: res.digest, txid: res.txid, ownerIndex: 1, kickoffAmountSat: res.outputAmountSat };
    }
    case SignPurpose.SIGN_PURPOSE_WITHDRAWAL: {
      const w = coin.withdraw;
      check(
        w,
        "WITHDRAW_NOT_STARTED",
        "a withdrawal needs the owner's WITHDRAW statechain transaction first (WithdrawInit)",
        "precondition",
      );
      const res = checkWithdrawalTx(tx, ctx, {
        withdrawScript: w.withdrawScript,
        feeScript: policy.feeScript ? Buffer.from(policy.feeScript, "hex") : undefined,
        minSeFeeSat: seFeeSat,
      });
      return { digest: res.digest, txid: res.txid, ownerIndex: coin.ownerIndex };
    }
    default:
      return fail("SIGN_PURPOSE", "sign purpose must be BACKUP, KICKOFF or WITHDRAWAL");
  }
}

/**
 * At release: the session was opened against the coin's current state (no transfer started, redirected or
 * completed, no withdrawal started, no kick-off recorded since), and the transaction still passes the policy on
 * the coin as it is now, for the same owner and digest.
 */
export function checkRelease(
  coin: Coin,
  policy: EnclavePolicy,
  entry: SignSessionEntry,
  chain: ChainView,
  seFeeSat: bigint,
): CoSignTerms {
  check(
    entry.stateVersion === coin.stateVersion,
    "SESSION_STALE",
    "the coin changed since this signing session opened (a transfer or withdrawal started, or a kick-off was recorded): open a new session",
    "precondition",
  );
  const now = checkCoSign(coin, policy, entry.purpose, entry.tx, chain, seFeeSat);
  check(
    now.ownerIndex === entry.ownerIndex && sameBytes(now.digest, entry.session.digest),
    "SESSION_STALE",
    "this signing session no longer matches the coin's state: open a new session",
    "precondition",
  );
  return now;
}
