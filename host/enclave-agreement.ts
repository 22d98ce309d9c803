// At start-up the host compares its record of every live coin with the enclave's. A crash leaves them at most
// one step apart (the host writes a step after the enclave answered it, and a retry closes the gap); more than
// that means the database is older than the enclave, restored from a copy or rolled back by an attacker with
// the disk. Such a coin is not served from the stale record: it is marked exit-by-backup, because its newest
// owner holds a backup that unlocks before every backup the stale database knows.
import { StatechainStatus } from "../proto/gen/common.ts";
import type { EnclaveServiceClient, EnclaveStatechain, GetKeyUpdateResponse } from "../proto/gen/enclave.ts";
import { unary } from "../proto/unary.ts";
import { outpointFromBytes, outpointString } from "../protocol/outpoint.ts";
import { writeKeyUpdate } from "./api/transfer.ts";
import type { Logger } from "./log.ts";
import type { Store } from "./store.ts";

/** The host's view of one coin, as far as the comparison needs it. */
export interface HostCoin {
  depositId: Uint8Array;
  status: StatechainStatus;
  ownerIndex: number;
  proofKey: Uint8Array;
  /** The receiver of the transfer in flight, when status is TRANSFER_PENDING. */
  pendingReceiver?: Uint8Array;
}

export interface Divergence {
  depositId: Uint8Array;
  reason: string;
}

const CHECKED = new Set([
  StatechainStatus.STATECHAIN_STATUS_AWAITING_CONFIRMATION,
  StatechainStatus.STATECHAIN_STATUS_ACTIVE,
  StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING,
]);

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

/**
 * Why the host's record of a coin cannot be trusted, or undefined when a crash (or nothing) explains the
 * difference. WITHDRAWING coins are not checked: their owner's withdrawal is signed already, and the enclave
 * may have closed them before the host wrote it.
 */
export function disagreement(host: HostCoin, enclave: EnclaveStatechain | undefined): string | undefined {
  if (!CHECKED.has(host.status)) return undefined;
  if (!enclave) return "the enclave does not hold this coin";
  if (enclave.status === StatechainStatus.STATECHAIN_STATUS_CLOSED)
    return "the enclave closed this coin (withdrawn); the database does not record the withdrawal";
  const ahead = enclave.ownerIndex - host.ownerIndex;
  if (ahead < 0)
    return `the database names owner ${host.ownerIndex}, the enclave only reached owner ${enclave.ownerIndex}`;
  if (ahead === 0) {
    return same(enclave.proofKey, host.proofKey)
      ? undefined
      : `owner ${host.ownerIndex} has another proof key in the enclave than in the database`;
  }
  // The one gap a crash leaves: the enclave made the key update of a transfer the database holds as pending.
  if (
    ahead === 1 &&
    host.status === StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING &&
    host.pendingReceiver &&
    same(enclave.proofKey, host.pendingReceiver)
  )
    return undefined;
  return `the enclave is at owner ${enclave.ownerIndex}, the database at owner ${host.ownerIndex}: the database is older than the enclave (restored or rolled back)`;
}

/** Every coin the enclave holds, by deposit id (hex). */
async function enclaveCoins(enclave: EnclaveServiceClient): Promise<Map<string, EnclaveStatechain>> {
  const coins = new Map<string, EnclaveStatechain>();
  let pageAfter = Buffer.alloc(0);
  do {
    const page = await unary(enclave, enclave.listStatechains, { pageAfter, pageSize: 1000 });
    for (const c of page.statechains) coins.set(Buffer.from(c.depositId).toString("hex"), c);
    pageAfter = Buffer.from(page.nextPageAfter);
  } while (pageAfter.length > 0);
  return coins;
}

/**
 * Compares the live coins the running enclave instance holds for the host with the enclave's own state and
 * marks each coin whose record is stale exit-by-backup. Returns what it found.
 */
export async function checkEnclaveAgreement(
  store: Store,
  enclave: EnclaveServiceClient,
  instance: Uint8Array,
  log: Logger,
): Promise<Divergence[]> {
  const rows = await store.db.all<{
    statechain_id: Buffer;
    deposit_id: Buffer;
    status: number;
    owner_index: number;
    proof_key: Buffer;
    pending_receiver: Buffer | null;
  }>(
    `SELECT s.statechain_id, s.deposit_id, s.status, s.owner_index, s.proof_key,
            (SELECT t.receiver_proof_key FROM transfers t
              WHERE t.statechain_id = s.statechain_id AND t.completed_at IS NULL
              ORDER BY t.new_owner_index DESC LIMIT 1) AS pending_receiver
       FROM statechains s
      WHERE s.enclave_instance = ? AND s.status IN (${[...CHECKED].join(",")})`,
    [Buffer.from(instance)],
  );
  if (rows.length === 0) return [];
  const held = await enclaveCoins(enclave);
  const found: Divergence[] = [];
  for (const r of rows) {
    const inEnclave = held.get(r.deposit_id.toString("hex"));
    let reason = disagreement(
      {
        depositId: r.deposit_id,
        status: r.status,
        ownerIndex: r.owner_index,
        proofKey: r.proof_key,
        pendingReceiver: r.pending_receiver ?? undefined,
      },
      inEnclave,
    );
    if (!reason && inEnclave && inEnclave.ownerIndex === r.owner_index + 1) {
      // The enclave made a key update this host never wrote (killed in between): write it from the enclave's
      // own answer, so the receiver who paid finds the coin its own (#19.1). Failing that, exit by backup.
      reason = await recoverKeyUpdate(store, enclave, r.statechain_id, r.owner_index, log);
    }
    if (!reason) continue;
    found.push({ depositId: r.deposit_id, reason });
    await store.db.run(
      "UPDATE statechains SET status = ?, updated_at = ? WHERE statechain_id = ? AND status = ?",
      [StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP, Date.now(), r.statechain_id, r.status],
    );
    log.error(
      { statechain: outpointString(outpointFromBytes(r.statechain_id)), reason },
      "the database disagrees with the enclave: the coin is marked exit-by-backup (its newest owner's backup unlocks first)",
    );
  }
  return found;
}

/** Writes the key update the enclave made and the database lacks; the reason it could not, if it could not. */
async function recoverKeyUpdate(
  store: Store,
  enclave: EnclaveServiceClient,
  idBytes: Buffer,
  ownerIndex: number,
  log: Logger,
): Promise<string | undefined> {
  const pending = await store.pendingTransfer(idBytes);
  let got: GetKeyUpdateResponse;
  try {
    got = await unary(enclave, enclave.getKeyUpdate, { statechainId: outpointFromBytes(idBytes) });
  } catch (err) {
    return `the enclave made a key update the database lacks and no longer has its answer (${(err as Error).message})`;
  }
  const result = got.result;
  if (
    !pending ||
    got.ownerIndex !== ownerIndex + 1 ||
    pending.new_owner_index !== got.ownerIndex ||
    !result?.seShare ||
    !result.keyUpdate ||
    result.stateHash.length !== 32
  )
    return "the enclave's last key update does not match the transfer the database holds as pending";
  await store.db.transaction((q) =>
    writeKeyUpdate(q, { idBytes, oldOwnerIndex: ownerIndex, pending, result, now: Date.now() }),
  );
  log.warn(
    { statechain: outpointString(outpointFromBytes(idBytes)), owner: got.ownerIndex },
    "wrote a key update the enclave made before this host was stopped: the receiver owns the coin",
  );
  return undefined;
}
