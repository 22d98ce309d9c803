// The start-up comparison of the host's records with the enclave's: the gaps a crash leaves pass, everything a
// restored or rolled-back database shows is caught. (test/e2e/rollback.test.ts runs it against real processes.)
import assert from "node:assert/strict";
import { test } from "node:test";
import { disagreement, type HostCoin, judge } from "../../host/enclave-agreement.ts";
import { StatechainStatus as S, StatechainTx, StatechainTxKind } from "../../proto/gen/common.ts";
import type { EnclaveStatechain } from "../../proto/gen/enclave.ts";

const key = (b: number) => Buffer.alloc(33, b);
const host = (over: Partial<HostCoin> = {}): HostCoin => ({
  depositId: Buffer.alloc(32, 9),
  status: S.STATECHAIN_STATUS_ACTIVE,
  ownerIndex: 2,
  proofKey: key(2),
  ...over,
});
const enclave = (over: Partial<EnclaveStatechain> = {}): EnclaveStatechain => ({
  depositId: Buffer.alloc(32, 9),
  statechainId: undefined,
  sharedPublicKey: key(7),
  ownerIndex: 2,
  proofKey: key(2),
  stateHash: Buffer.alloc(32),
  status: S.STATECHAIN_STATUS_ACTIVE,
  initialLock: 200,
  amountSat: 1000n,
  withdrawScript: Buffer.alloc(0),
  withdrawSignature: Buffer.alloc(0),
  ...over,
});

/** An encoded WITHDRAW statement to script bytes `script`, signed with bytes `sig`. */
const withdrawTx = (script: number, sig: number) =>
  Buffer.from(
    StatechainTx.encode({
      kind: StatechainTxKind.STATECHAIN_TX_KIND_WITHDRAW,
      previousState: Buffer.alloc(32),
      nextProofKey: Buffer.alloc(0),
      withdrawScript: Buffer.alloc(22, script),
      signature: Buffer.alloc(64, sig),
    }).finish(),
  );
const withdrawingIn = (script: number, sig: number) =>
  enclave({
    status: S.STATECHAIN_STATUS_WITHDRAWING,
    withdrawScript: Buffer.alloc(22, script),
    withdrawSignature: Buffer.alloc(64, sig),
  });

test("the same owner and key agree", () => {
  assert.equal(disagreement(host(), enclave()), undefined);
  assert.equal(
    disagreement(host({ status: S.STATECHAIN_STATUS_AWAITING_CONFIRMATION }), enclave()),
    undefined,
  );
});

test("the gaps one crash leaves are not divergences", () => {
  // The enclave opened a transfer (or accepted a withdrawal) the host had not written yet.
  assert.equal(disagreement(host(), enclave({ status: S.STATECHAIN_STATUS_TRANSFER_PENDING })), undefined);
  assert.equal(disagreement(host(), enclave({ status: S.STATECHAIN_STATUS_WITHDRAWING })), undefined);
  // The enclave made the key update of the pending transfer; the receiver's retry writes it.
  const pending = host({ status: S.STATECHAIN_STATUS_TRANSFER_PENDING, pendingReceiver: key(3) });
  assert.equal(disagreement(pending, enclave({ ownerIndex: 3, proofKey: key(3) })), undefined);
  // A withdrawing coin (its withdrawal co-signed) the enclave has closed already.
  const signed = host({
    status: S.STATECHAIN_STATUS_WITHDRAWING,
    withdrawal: { statechainTx: withdrawTx(4, 5), txid: "ab".repeat(32) },
  });
  assert.equal(disagreement(signed, enclave({ status: S.STATECHAIN_STATUS_CLOSED })), undefined);
  assert.equal(disagreement(signed, undefined), undefined);
});

test("coins the host no longer serves are not checked", () => {
  for (const status of [
    S.STATECHAIN_STATUS_EXIT_BY_BACKUP,
    S.STATECHAIN_STATUS_CLOSED,
    S.STATECHAIN_STATUS_TAINTED,
  ])
    assert.equal(disagreement(host({ status }), undefined), undefined);
});

test("a database older than the enclave is caught", () => {
  // Restored from before a completed transfer.
  assert.match(disagreement(host(), enclave({ ownerIndex: 3, proofKey: key(3) }))!, /older than the enclave/);
  // Restored from before two transfers, the second still pending at the enclave.
  const pending = host({ status: S.STATECHAIN_STATUS_TRANSFER_PENDING, pendingReceiver: key(3) });
  assert.match(
    disagreement(pending, enclave({ ownerIndex: 4, proofKey: key(4) }))!,
    /older than the enclave/,
  );
  // The pending transfer's receiver is not who the enclave moved the coin to.
  assert.match(
    disagreement(pending, enclave({ ownerIndex: 3, proofKey: key(5) }))!,
    /older than the enclave/,
  );
  // Restored from before a withdrawal the enclave has completed.
  assert.match(disagreement(host(), enclave({ status: S.STATECHAIN_STATUS_CLOSED }))!, /withdrawal/);
});

test("records the enclave cannot explain are caught", () => {
  assert.match(disagreement(host(), undefined)!, /does not hold/);
  assert.match(disagreement(host(), enclave({ ownerIndex: 1, proofKey: key(1) }))!, /only reached owner 1/);
  assert.match(disagreement(host(), enclave({ proofKey: key(8) }))!, /another proof key/);
});

test("statuses: the gaps a crash leaves are repaired where the enclave is the authority", () => {
  // The enclave accepted a withdrawal the host did not write (killed before its commit), transfer pending or not.
  assert.deepEqual(judge(host(), withdrawingIn(4, 5)), { action: "record-withdrawal" });
  assert.deepEqual(judge(host({ status: S.STATECHAIN_STATUS_TRANSFER_PENDING }), withdrawingIn(4, 5)), {
    action: "record-withdrawal",
  });
  // The enclave closed a coin whose co-signed withdrawal the host holds.
  const withdrawing = host({
    status: S.STATECHAIN_STATUS_WITHDRAWING,
    withdrawal: { statechainTx: withdrawTx(4, 5), txid: "ab".repeat(32) },
  });
  assert.deepEqual(judge(withdrawing, undefined), { action: "record-close" });
  // The same withdrawal on both sides: nothing to do.
  assert.deepEqual(judge(withdrawing, withdrawingIn(4, 5)), { action: "none" });
  // The enclave holds no transfer the host holds as pending: it can never complete.
  assert.deepEqual(judge(host({ status: S.STATECHAIN_STATUS_TRANSFER_PENDING }), enclave()), {
    action: "drop-transfer",
  });
  // The host has not written a transfer the enclave started: the sender's retry gets the enclave's answer.
  assert.deepEqual(judge(host(), enclave({ status: S.STATECHAIN_STATUS_TRANSFER_PENDING })), {
    action: "none",
  });
});

test("statuses: what a crash cannot explain is marked", () => {
  const withdrawing = (txid?: string) =>
    host({ status: S.STATECHAIN_STATUS_WITHDRAWING, withdrawal: { statechainTx: withdrawTx(4, 5), txid } });
  // A withdrawal the enclave never accepted.
  assert.match(
    disagreement(withdrawing("ab".repeat(32)), enclave())!,
    /withdrawal the enclave never accepted/,
  );
  // Another withdrawal than the enclave's (another destination, or another signature).
  assert.match(disagreement(withdrawing(), withdrawingIn(6, 5))!, /different withdrawals/);
  assert.match(disagreement(withdrawing(), withdrawingIn(4, 7))!, /different withdrawals/);
  // Gone from the enclave although its withdrawal was never co-signed (the enclave closes only a co-signed one).
  assert.match(disagreement(withdrawing(), undefined)!, /never co-signed/);
  // A step on from a deposit awaiting confirmation, which the host starts nothing for.
  const awaiting = host({ status: S.STATECHAIN_STATUS_AWAITING_CONFIRMATION });
  assert.match(disagreement(awaiting, withdrawingIn(4, 5))!, /never started/);
  assert.match(
    disagreement(awaiting, enclave({ status: S.STATECHAIN_STATUS_TRANSFER_PENDING }))!,
    /never started/,
  );
  // A withdrawing coin checks owner and key as any other.
  assert.match(
    disagreement(withdrawing(), { ...withdrawingIn(4, 5), proofKey: key(8) })!,
    /another proof key/,
  );
});
