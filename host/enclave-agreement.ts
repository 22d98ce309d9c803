// At start-up the host compares its record of every live coin with the enclave's: owner, proof key and status
// (a transfer or a withdrawal under way, a coin closed). A crash leaves them at most one step apart (the host
// writes a step after the enclave answered it, and a retry closes the gap); more than that means the database is
// older than the enclave, restored from a copy or rolled back by an attacker with the disk. Such a coin is not
// served from the stale record: it is marked exit-by-backup, because its newest owner holds a backup that
// unlocks before every backup the stale database knows.
//
// The one-step gaps are repaired here where the enclave is the authority and its word can be checked or cannot
// unlock anything (#19.3):
//   - a key update the enclave made (its answer is kept until the coin's next step, GetKeyUpdate);
//   - a withdrawal the enclave accepted: the host writes the WITHDRAW statement after checking the owner's
//     signature on it itself, so the enclave's word only says where to look;
//   - a withdrawing coin the enclave closed (erased its share): the enclave's stored CloseStatechain answer, with
//     its erasure receipt, is written as the close. Asked for only when the enclave no longer holds the coin, so
//     asking cannot erase anything;
//   - a transfer the host holds as pending and the enclave does not: the enclave alone holds a transfer's x1, so
//     without it that transfer can never complete; the host drops its row and message, the coin is active again.
// A coin the host is behind on in any other way, or ahead of the enclave (a withdrawal or a transfer the enclave
// never accepted), is marked exit-by-backup with an error log line naming it.
import { StatechainStatus, StatechainTx, StatechainTxKind } from "../proto/gen/common.ts";
import type {
  CloseStatechainResponse,
  EnclaveServiceClient,
  EnclaveStatechain,
  GetKeyUpdateResponse,
} from "../proto/gen/enclave.ts";
import { unary } from "../proto/unary.ts";
import { outpointFromBytes, outpointString } from "../protocol/outpoint.ts";
import { verifyStatechainTx } from "../protocol/statechain.ts";
import { writeKeyUpdate } from "./api/transfer.ts";
import { writeClose, writeWithdrawalStart } from "./api/withdraw.ts";
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
  /** WITHDRAWING: the WITHDRAW statement the host holds (encoded StatechainTx), and its co-signed txid if any. */
  withdrawal?: { statechainTx: Uint8Array; txid?: string };
}

export interface Divergence {
  depositId: Uint8Array;
  reason: string;
}

/** What start-up does about one coin. */
export type Verdict =
  | { action: "none" }
  | { action: "mark"; reason: string }
  /** The enclave made the key update of the transfer the host holds as pending. */
  | { action: "recover-key-update" }
  /** The enclave accepted a withdrawal the host has not written (the owner's signature is checked first). */
  | { action: "record-withdrawal" }
  /** The enclave closed the withdrawing coin; its stored answer is written as the close. */
  | { action: "record-close" }
  /** The enclave holds no transfer of the coin the host holds as pending: the host's can never complete. */
  | { action: "drop-transfer" };

const CHECKED = new Set([
  StatechainStatus.STATECHAIN_STATUS_AWAITING_CONFIRMATION,
  StatechainStatus.STATECHAIN_STATUS_ACTIVE,
  StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING,
  StatechainStatus.STATECHAIN_STATUS_WITHDRAWING,
]);

const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));
const mark = (reason: string): Verdict => ({ action: "mark", reason });
const NONE: Verdict = { action: "none" };

/** The host's WITHDRAW statement names the withdrawal the enclave accepted (script and owner's signature). */
function sameWithdrawal(host: HostCoin["withdrawal"], enclave: EnclaveStatechain): boolean {
  if (!host) return false;
  let sctx: StatechainTx;
  try {
    sctx = StatechainTx.decode(host.statechainTx);
  } catch {
    return false;
  }
  return same(sctx.withdrawScript, enclave.withdrawScript) && same(sctx.signature, enclave.withdrawSignature);
}

/**
 * What to do about a coin, comparing the host's record with the enclave's (undefined: the enclave does not hold
 * it). Coins the host no longer serves (exit-by-backup, tainted, closed) are left alone.
 */
export function judge(host: HostCoin, enclave: EnclaveStatechain | undefined): Verdict {
  if (!CHECKED.has(host.status)) return NONE;
  const withdrawing = host.status === StatechainStatus.STATECHAIN_STATUS_WITHDRAWING;
  if (!enclave || enclave.status === StatechainStatus.STATECHAIN_STATUS_CLOSED) {
    // The enclave closes a coin only for the withdrawal the host asked it to close, which is co-signed.
    if (withdrawing && host.withdrawal?.txid) return { action: "record-close" };
    if (enclave)
      return mark("the enclave closed this coin (withdrawn); the database does not record the withdrawal");
    return mark(
      withdrawing
        ? "the enclave does not hold this coin, and the database's withdrawal of it was never co-signed"
        : "the enclave does not hold this coin",
    );
  }
  const ahead = enclave.ownerIndex - host.ownerIndex;
  if (ahead < 0)
    return mark(
      `the database names owner ${host.ownerIndex}, the enclave only reached owner ${enclave.ownerIndex}`,
    );
  if (ahead === 0) {
    if (!same(enclave.proofKey, host.proofKey))
      return mark(`owner ${host.ownerIndex} has another proof key in the enclave than in the database`);
    return judgeStatus(host, enclave);
  }
  // The one gap a crash leaves: the enclave made the key update of a transfer the database holds as pending.
  if (
    ahead === 1 &&
    host.status === StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING &&
    host.pendingReceiver &&
    same(enclave.proofKey, host.pendingReceiver)
  )
    return { action: "recover-key-update" };
  return mark(
    `the enclave is at owner ${enclave.ownerIndex}, the database at owner ${host.ownerIndex}: the database is older than the enclave (restored or rolled back)`,
  );
}

/** Host and enclave at the same owner: do they agree on what is under way? */
function judgeStatus(host: HostCoin, enclave: EnclaveStatechain): Verdict {
  const S = StatechainStatus;
  const hostWithdrawing = host.status === S.STATECHAIN_STATUS_WITHDRAWING;
  const enclaveWithdrawing = enclave.status === S.STATECHAIN_STATUS_WITHDRAWING;
  if (hostWithdrawing && enclaveWithdrawing)
    return sameWithdrawal(host.withdrawal, enclave)
      ? NONE
      : mark("the database and the enclave hold different withdrawals of this coin");
  if (hostWithdrawing)
    return mark(
      `the database records a withdrawal the enclave never accepted (the enclave holds the coin as ${S[enclave.status]})`,
    );
  if (host.status === S.STATECHAIN_STATUS_AWAITING_CONFIRMATION) {
    // The host starts no transfer or withdrawal before the deposit is active: the enclave cannot be a step on.
    return enclave.status === S.STATECHAIN_STATUS_ACTIVE
      ? NONE
      : mark(
          `the enclave holds a coin the database has awaiting confirmation as ${S[enclave.status]}: a step the host never started`,
        );
  }
  if (enclaveWithdrawing) return { action: "record-withdrawal" };
  if (host.status === S.STATECHAIN_STATUS_TRANSFER_PENDING && enclave.status === S.STATECHAIN_STATUS_ACTIVE)
    return { action: "drop-transfer" };
  // Host active, enclave transfer pending: the sender's retry of TransferSenderInit gets the enclave's answer.
  return NONE;
}

/**
 * Why the host's record of a coin cannot be trusted, or undefined when a crash (or nothing) explains the
 * difference (repaired or left to a retry: judge).
 */
export function disagreement(host: HostCoin, enclave: EnclaveStatechain | undefined): string | undefined {
  const v = judge(host, enclave);
  return v.action === "mark" ? v.reason : undefined;
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

export interface Agreement {
  /** Coins marked exit-by-backup, and why. */
  divergences: Divergence[];
  /** Coins written closed from the enclave's answer: their watchtower entries go (host/main.ts). */
  closed: Buffer[];
}

/**
 * Compares the live coins the running enclave instance holds for the host with the enclave's own state,
 * repairs the gaps a crash leaves and marks each coin whose record is stale exit-by-backup.
 */
export async function checkEnclaveAgreement(
  store: Store,
  enclave: EnclaveServiceClient,
  instance: Uint8Array,
  log: Logger,
): Promise<Agreement> {
  const rows = await store.db.all<{
    statechain_id: Buffer;
    deposit_id: Buffer;
    status: number;
    owner_index: number;
    proof_key: Buffer;
    state_hash: Buffer;
    pending_receiver: Buffer | null;
    withdraw_sctx: Buffer | null;
    withdraw_txid: string | null;
  }>(
    `SELECT s.statechain_id, s.deposit_id, s.status, s.owner_index, s.proof_key, s.state_hash,
            (SELECT t.receiver_proof_key FROM transfers t
              WHERE t.statechain_id = s.statechain_id AND t.completed_at IS NULL
              ORDER BY t.new_owner_index DESC LIMIT 1) AS pending_receiver,
            w.statechain_tx AS withdraw_sctx, w.txid AS withdraw_txid
       FROM statechains s LEFT JOIN withdrawals w ON w.statechain_id = s.statechain_id
      WHERE s.enclave_instance = ? AND s.status IN (${[...CHECKED].join(",")})`,
    [Buffer.from(instance)],
  );
  const out: Agreement = { divergences: [], closed: [] };
  if (rows.length === 0) return out;
  const held = await enclaveCoins(enclave);
  for (const r of rows) {
    const statechain = outpointString(outpointFromBytes(r.statechain_id));
    const inEnclave = held.get(r.deposit_id.toString("hex"));
    const verdict = judge(
      {
        depositId: r.deposit_id,
        status: r.status,
        ownerIndex: r.owner_index,
        proofKey: r.proof_key,
        pendingReceiver: r.pending_receiver ?? undefined,
        withdrawal: r.withdraw_sctx
          ? { statechainTx: r.withdraw_sctx, txid: r.withdraw_txid ?? undefined }
          : undefined,
      },
      inEnclave,
    );
    let reason: string | undefined;
    switch (verdict.action) {
      case "none":
        continue;
      case "mark":
        reason = verdict.reason;
        break;
      case "recover-key-update":
        // The enclave made a key update this host never wrote (killed in between): write it from the enclave's
        // own answer, so the receiver who paid finds the coin its own (#19.1). Failing that, exit by backup.
        reason = await recoverKeyUpdate(store, enclave, r.statechain_id, r.owner_index, log);
        break;
      case "record-withdrawal":
        reason = await recordWithdrawal(store, r, inEnclave!, log);
        break;
      case "record-close":
        reason = await recordClose(store, enclave, r, log);
        if (!reason) out.closed.push(r.statechain_id);
        break;
      case "drop-transfer":
        await store.db.transaction(async (q) => {
          await q.run("DELETE FROM mailbox WHERE statechain_id = ?", [r.statechain_id]);
          await q.run("DELETE FROM transfers WHERE statechain_id = ? AND completed_at IS NULL", [
            r.statechain_id,
          ]);
          await q.run(
            "UPDATE statechains SET status = ?, updated_at = ? WHERE statechain_id = ? AND status = ?",
            [StatechainStatus.STATECHAIN_STATUS_ACTIVE, Date.now(), r.statechain_id, r.status],
          );
        });
        log.warn(
          { statechain },
          "the enclave holds no transfer of this coin, which the database held as pending: that transfer can never complete, the coin is active again for its owner",
        );
        continue;
    }
    if (!reason) continue;
    out.divergences.push({ depositId: r.deposit_id, reason });
    await store.db.run(
      "UPDATE statechains SET status = ?, updated_at = ? WHERE statechain_id = ? AND status = ?",
      [StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP, Date.now(), r.statechain_id, r.status],
    );
    log.error(
      { statechain, reason },
      "the database disagrees with the enclave: the coin is marked exit-by-backup (its newest owner's backup unlocks first)",
    );
  }
  return out;
}

/**
 * Writes the withdrawal the enclave accepted and the database lacks, once the owner's signature on it checks
 * out under the coin's current proof key and state; the reason it could not, if it could not.
 */
async function recordWithdrawal(
  store: Store,
  r: { statechain_id: Buffer; status: number; proof_key: Buffer; state_hash: Buffer },
  inEnclave: EnclaveStatechain,
  log: Logger,
): Promise<string | undefined> {
  const sctx: StatechainTx = {
    kind: StatechainTxKind.STATECHAIN_TX_KIND_WITHDRAW,
    previousState: r.state_hash,
    nextProofKey: Buffer.alloc(0),
    withdrawScript: Buffer.from(inEnclave.withdrawScript),
    signature: Buffer.from(inEnclave.withdrawSignature),
  };
  try {
    verifyStatechainTx(sctx, r.proof_key, r.state_hash);
  } catch (err) {
    return `the enclave holds a withdrawal of this coin whose WITHDRAW statement does not verify under the owner's proof key (${(err as Error).message})`;
  }
  await store.db.transaction((q) => writeWithdrawalStart(q, r.statechain_id, sctx, Date.now()));
  log.warn(
    { statechain: outpointString(outpointFromBytes(r.statechain_id)) },
    "wrote a withdrawal the enclave accepted before this host was stopped: the coin is withdrawing",
  );
  return undefined;
}

/** Writes the close of a withdrawing coin the enclave closed; the reason it could not, if it could not. */
async function recordClose(
  store: Store,
  enclave: EnclaveServiceClient,
  r: {
    statechain_id: Buffer;
    owner_index: number;
    withdraw_sctx: Buffer | null;
    withdraw_txid: string | null;
  },
  log: Logger,
): Promise<string | undefined> {
  let res: CloseStatechainResponse;
  try {
    // The enclave does not hold the coin: this only fetches the answer it kept (never erases anything).
    res = await unary(enclave, enclave.closeStatechain, {
      statechainId: outpointFromBytes(r.statechain_id),
      withdrawalTxid: Buffer.from(r.withdraw_txid!, "hex").reverse(),
    });
  } catch (err) {
    return `the enclave no longer holds this withdrawing coin and keeps no answer of closing it (${(err as Error).message})`;
  }
  await store.db.transaction((q) =>
    writeClose(q, {
      idBytes: r.statechain_id,
      ownerIndex: r.owner_index,
      statechainTx: r.withdraw_sctx!,
      erasure: res.erasure,
      now: Date.now(),
    }),
  );
  log.warn(
    { statechain: outpointString(outpointFromBytes(r.statechain_id)) },
    "wrote the close of a coin the enclave closed (share erased) before this host was stopped: the coin is withdrawn",
  );
  return undefined;
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
