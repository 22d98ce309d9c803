// The start-up comparison of the host's records with the enclave's: the gaps a crash leaves pass, everything a
// restored or rolled-back database shows is caught. (test/e2e/rollback.test.ts runs it against real processes.)
import assert from "node:assert/strict";
import { test } from "node:test";
import { disagreement, type HostCoin } from "../../host/enclave-agreement.ts";
import { StatechainStatus as S } from "../../proto/gen/common.ts";
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
  ...over,
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
  // A withdrawing coin the enclave has closed already.
  assert.equal(
    disagreement(
      host({ status: S.STATECHAIN_STATUS_WITHDRAWING }),
      enclave({ status: S.STATECHAIN_STATUS_CLOSED }),
    ),
    undefined,
  );
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
