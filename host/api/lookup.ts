// Common lookups of the API handlers, with the NOT_FOUND / FAILED_PRECONDITION answers they imply.

import type { Queryable } from "../../common/sqlite.ts";
import type { Outpoint } from "../../proto/gen/common.ts";
import { FundingState, StatechainStatus } from "../../proto/gen/common.ts";
import { check } from "../../protocol/errors.ts";
import { checkOutpoint, outpointBytes, outpointString } from "../../protocol/outpoint.ts";
import type { StatechainRow } from "../store.ts";
import type { ApiDeps } from "./deps.ts";

export async function requireStatechain(
  deps: ApiDeps,
  raw: Outpoint | undefined,
  q?: Queryable,
): Promise<{ row: StatechainRow; id: Outpoint; idBytes: Buffer }> {
  const id = checkOutpoint(raw);
  const idBytes = outpointBytes(id);
  const row = await deps.store.statechain(idBytes, q);
  check(row, "UNKNOWN_STATECHAIN", `no statechain ${outpointString(id)}`, "not_found");
  return { row, id, idBytes };
}

const NAMES: Record<number, string> = {
  [StatechainStatus.STATECHAIN_STATUS_AWAITING_CONFIRMATION]: "awaiting confirmation",
  [StatechainStatus.STATECHAIN_STATUS_ACTIVE]: "active",
  [StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING]: "transfer pending",
  [StatechainStatus.STATECHAIN_STATUS_WITHDRAWING]: "withdrawing",
  [StatechainStatus.STATECHAIN_STATUS_CLOSED]: "closed",
  [StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP]: "exit by backup only",
  [StatechainStatus.STATECHAIN_STATUS_TAINTED]: "tainted",
};

export const statusName = (s: number): string => NAMES[s] ?? `status ${s}`;

export function requireStatus(row: StatechainRow, allowed: StatechainStatus[], action: string): void {
  check(
    allowed.includes(row.status),
    "WRONG_STATE",
    () => `cannot ${action}: the statechain is ${statusName(row.status)}`,
    "precondition",
  );
}

/**
 * Refuses a coin whose funding transaction the funding watch found lost (host/funding-watch.ts, #19.8): gone
 * from chain and mempool and double spent, or missing past the grace. Lifted when the funding returns.
 */
export function requireFunding(row: StatechainRow, action: string): void {
  const lost =
    row.funding_state === FundingState.FUNDING_STATE_DOUBLE_SPENT ||
    row.funding_state === FundingState.FUNDING_STATE_MISSING;
  check(
    !lost,
    "FUNDING_LOST",
    () =>
      `cannot ${action}: ${row.funding_problem ?? "its funding transaction is no longer in the chain or the mempool"}`,
    "precondition",
  );
}
