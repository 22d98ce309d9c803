// Recovery (issue #22): what the SE holds for the coins of one proof key, for a wallet rebuilt from its mnemonic.
// Each request is signed by the key it asks about, so nobody learns another owner's coins; a key that owns nothing
// and a key the SE never saw get the same answer (an empty list) after the same checks. The answer is public data
// the owner verifies itself (statechain, backups, and the key's public parts, against its derived share and
// Paillier key); the enclave's share is never part of it.
import { SignPurpose, StatechainStatus } from "../../proto/gen/common.ts";
import {
  type CoinKey,
  RecoverCoinsRequest,
  type RecoverCoinsResponse,
  type RecoveredCoin,
  RecoveredRole,
} from "../../proto/gen/statechain.ts";
import { unary } from "../../proto/unary.ts";
import { parsePoint } from "../../protocol/encoding.ts";
import { check } from "../../protocol/errors.ts";
import { outpointFromBytes } from "../../protocol/outpoint.ts";
import type { CallContext } from "../rpc.ts";
import type { StatechainRow } from "../store.ts";
import type { ApiDeps } from "./deps.ts";
import { authorize, consumeNonce } from "./step.ts";

/** More coins than any one key plausibly touched: the answer stays bounded whatever the database holds. */
export const MAX_RECOVERED_COINS = 256;

/** Statuses in which the enclave holds the coin's key (the owner may still co-sign). */
const KEYED = new Set<number>([
  StatechainStatus.STATECHAIN_STATUS_AWAITING_CONFIRMATION,
  StatechainStatus.STATECHAIN_STATUS_ACTIVE,
  StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING,
  StatechainStatus.STATECHAIN_STATUS_WITHDRAWING,
]);

export function recoveryHandlers(deps: ApiDeps) {
  const db = deps.store.db;

  /** Where the key appears: as depositor (owner 1), and as the receiver of each transfer made to it. */
  async function appearances(key: Buffer) {
    const deposited = await db.all<{ statechain_id: Buffer }>(
      "SELECT statechain_id FROM statechains WHERE deposit_proof_key = ? LIMIT ?",
      [key, MAX_RECOVERED_COINS],
    );
    const received = await db.all<{
      statechain_id: Buffer;
      new_owner_index: number;
      completed_at: number | null;
    }>(
      "SELECT statechain_id, new_owner_index, completed_at FROM transfers WHERE receiver_proof_key = ? LIMIT ?",
      [key, MAX_RECOVERED_COINS],
    );
    return [
      ...deposited.map((d) => ({ id: d.statechain_id, ownerIndex: 1, keyUpdated: true })),
      ...received.map((r) => ({
        id: r.statechain_id,
        ownerIndex: r.new_owner_index,
        keyUpdated: r.completed_at !== null,
      })),
    ].slice(0, MAX_RECOVERED_COINS);
  }

  /** The key's public parts as the enclave holds them now; none when it lost them (a restart) or erased them. */
  async function coinKey(row: StatechainRow, key: Buffer): Promise<CoinKey | undefined> {
    if (!KEYED.has(row.status)) return undefined;
    const got = await unary(
      deps.enclave,
      deps.enclave.getCoinKey,
      { statechainId: outpointFromBytes(row.statechain_id) },
      { deadlineMs: 10_000 },
    ).catch(() => undefined);
    // The enclave's word on who shares the key: a host row ahead of or behind it names no key at all.
    if (!got || got.ownerIndex !== row.owner_index || !Buffer.from(got.proofKey).equals(key))
      return undefined;
    return {
      sePublicShare: got.sePublicShare,
      paillierModulus: got.paillierModulus,
      encryptedShare: got.encryptedShare,
    };
  }

  async function recovered(
    at: { id: Buffer; ownerIndex: number; keyUpdated: boolean },
    key: Buffer,
  ): Promise<RecoveredCoin | undefined> {
    const row = await deps.store.statechain(at.id);
    if (!row) return undefined;
    const backups = await deps.store.backups(at.id);
    const backupOf = (i: number) =>
      backups.find((b) => b.owner_index === i && b.purpose === SignPurpose.SIGN_PURPOSE_BACKUP)?.signed_tx;
    let role: RecoveredRole;
    if (at.keyUpdated && row.owner_index === at.ownerIndex && Buffer.from(row.proof_key).equals(key))
      role = RecoveredRole.RECOVERED_ROLE_OWNER;
    else if (at.keyUpdated && row.owner_index > at.ownerIndex)
      role = RecoveredRole.RECOVERED_ROLE_FORMER_OWNER;
    else if (!at.keyUpdated && row.owner_index === at.ownerIndex - 1 && backupOf(at.ownerIndex))
      role = RecoveredRole.RECOVERED_ROLE_PENDING_RECEIVER;
    else return undefined; // a transfer to this key that never got its backup: nothing of the key's is on it
    const history: Buffer[] = [];
    for (let i = 1; i <= at.ownerIndex; i++) {
      const b = backupOf(i);
      if (b) history.push(b);
    }
    const kickoff = backups.find((b) => b.purpose === SignPurpose.SIGN_PURPOSE_KICKOFF)?.signed_tx;
    return {
      statechainId: outpointFromBytes(at.id),
      ownerIndex: at.ownerIndex,
      role,
      fundingTx: row.funding_tx,
      backupTxs: history,
      kickoffTx: kickoff ?? Buffer.alloc(0),
      key: role === RecoveredRole.RECOVERED_ROLE_OWNER ? await coinKey(row, key) : undefined,
    };
  }

  return {
    async recoverCoins(req: RecoverCoinsRequest, ctx: CallContext): Promise<RecoverCoinsResponse> {
      check(req.proofKey.length === 33, "INVALID_PROOF_KEY", "proof key must be a 33-byte compressed point");
      parsePoint(req.proofKey, "proof key");
      const key = Buffer.from(req.proofKey);
      const auth = await authorize(deps, RecoverCoinsRequest, req, key, ctx);
      const coins: RecoveredCoin[] = [];
      for (const at of await appearances(key)) {
        const c = await recovered(at, key);
        if (c) coins.push(c);
      }
      await consumeNonce(deps, ctx, auth);
      return { coins };
    },
  };
}
