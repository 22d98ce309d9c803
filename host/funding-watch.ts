// The funding watch (issue #19.8): at every block the host looks again at each coin's funding transaction. A
// coin exists only while its funding output does; after a reorg the funding can be gone for good (an input of it
// spent by another transaction: a double spend) or just gone (dropped from every mempool). Such a coin is marked
// beside its status (FundingState, with words), and the public API refuses to co-sign or transfer it
// (FAILED_PRECONDITION naming why, host/api/lookup.ts requireFunding). Nothing here is final: a funding that
// comes back (the reorg undone, the transaction rebroadcast) lifts the mark at the next block, and a funding that
// is only reorged out into the mempool is never marked at all.
//
// Why the enclave is not told (DESIGN.md §3.6, §5). The enclave's policy is there for what a compromised host
// must not be able to make it do: sign without the owner, a backup with a wrong lock, a second kick-off, and so
// on. A funding mark only ever refuses, and a host can refuse anything without the enclave's help (every call
// reaches the enclave through it), so the enclave enforcing the mark would add nothing against a compromised
// host. It could not check the mark either: the enclave sees no chain, it takes even the tip from the host
// (bounded, §3.6), so it would act on the host's word, and the host's word must never be what unlocks a
// signature. None is needed: co-signing for a coin whose funding left the chain gives nobody anything, because
// the enclave signs only transactions spending exactly the statechain's outpoint (§3.6), which are valid only if
// that funding returns, and then they are exactly the signatures the policy allows for it. The one party a lost
// funding can hurt is a receiver paying for a coin that does not exist, and the receiver's wallet checks the
// funding output on its own view of the chain (§3.3 step 6, client/receive.ts), not on the SE's say-so. So the
// mark serves the honest SE's owners — a clear refusal, words in GetStatechain and the wallet — and the host
// keeps it alone.

import { Transaction } from "bitcoinjs-lib";
import type { ChainBackend } from "../chain/backend.ts";
import { FundingState, StatechainStatus } from "../proto/gen/common.ts";
import { outpointFromBytes, outpointString } from "../protocol/outpoint.ts";
import { txidToHex } from "../protocol/tx/index.ts";
import { BlockPasses } from "./block-passes.ts";
import type { Store } from "./store.ts";

/** The subset of pino's Logger the watch uses. */
export interface FundingWatchLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Every coin the SE may still be asked about: the live ones, and exit-only ones (so their words stay true). */
const WATCHED = [
  StatechainStatus.STATECHAIN_STATUS_AWAITING_CONFIRMATION,
  StatechainStatus.STATECHAIN_STATUS_ACTIVE,
  StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING,
  StatechainStatus.STATECHAIN_STATUS_WITHDRAWING,
  StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP,
  StatechainStatus.STATECHAIN_STATUS_TAINTED,
];

const LOST = [FundingState.FUNDING_STATE_DOUBLE_SPENT, FundingState.FUNDING_STATE_MISSING];

/** Whether a FundingState means the coin's funding is lost (the SE refuses to co-sign or transfer it). */
export const fundingLost = (state: number): boolean => LOST.includes(state);

export interface FundingVerdict {
  state: FundingState;
  /** Words for a person, when the funding is lost. */
  problem?: string;
  /** The height from which the funding was in neither chain nor mempool. */
  missingSince?: number;
}

export interface CoinFunding {
  status: StatechainStatus;
  /** The funding transaction as bound at deposit, and the coin's output in it. */
  fundingTx: Uint8Array;
  vout: number;
  /** What the last look found: the height the funding went missing at, if it did. */
  missingSince?: number;
}

/**
 * What the chain says of a coin's funding now. In chain or mempool: OK. Otherwise, when one of its inputs is
 * spent (in chain or mempool) and that input's own transaction is known, another transaction spent it: the
 * funding cannot come back without a reorg (DOUBLE_SPENT, at once). Otherwise it is only missing, which a live
 * coin may be for `graceBlocks` (a reorg's transactions take a moment to return to a mempool; an operator may
 * rebroadcast); a coin awaiting confirmation may not have been sent yet, so it is never marked missing.
 * A backend that cannot look up a spent transaction's parent (bitcoind without txindex) sees a double spend as
 * missing: marked after the grace instead of at once.
 */
export async function checkFunding(
  chain: ChainBackend,
  coin: CoinFunding,
  tip: number,
  graceBlocks: number,
): Promise<FundingVerdict> {
  const tx = Transaction.fromBuffer(Buffer.from(coin.fundingTx));
  const txid = tx.getId();
  if (await chain.getTxStatus(txid)) return { state: FundingState.FUNDING_STATE_OK };
  // A backend that cannot look the transaction up (bitcoind without txindex) still sees its unspent output.
  if (await chain.getUtxo(txid, coin.vout)) return { state: FundingState.FUNDING_STATE_OK };
  // Gone since this height (kept across verdicts: a double spend that is itself undone leaves a funding that has
  // been missing all along, not one that just went missing).
  const since = coin.missingSince ?? tip;
  for (const [i, input] of tx.ins.entries()) {
    const prev = txidToHex(input.hash);
    if (await chain.getUtxo(prev, input.index)) continue;
    if (!(await chain.getTxStatus(prev))) continue;
    return {
      state: FundingState.FUNDING_STATE_DOUBLE_SPENT,
      missingSince: since,
      problem: `its funding transaction ${txid} is no longer in the chain or the mempool, and its input ${i} (${prev}:${input.index}) was spent by another transaction (a double spend): the coin does not exist unless a reorganisation of the chain brings the funding back`,
    };
  }
  if (coin.status === StatechainStatus.STATECHAIN_STATUS_AWAITING_CONFIRMATION)
    return { state: FundingState.FUNDING_STATE_OK };
  if (tip - since < graceBlocks) return { state: FundingState.FUNDING_STATE_OK, missingSince: since };
  return {
    state: FundingState.FUNDING_STATE_MISSING,
    missingSince: since,
    problem: `its funding transaction ${txid} has been in neither the chain nor the mempool since height ${since} (${tip - since} blocks; the SE waits ${graceBlocks}): the coin does not exist until the funding is broadcast again`,
  };
}

export interface FundingWatchOptions {
  store: Store;
  chain: ChainBackend;
  log: FundingWatchLogger;
  graceBlocks: number;
  /** Called after each pass with the number of coins whose funding is lost. */
  onPass?: (lost: number) => void;
}

/** Runs checkFunding over every watched coin at start and at each block, and keeps the verdicts. */
export class FundingWatch {
  private readonly blocks: BlockPasses;
  private passCount = 0;
  private lastTip = -1;

  constructor(private readonly opts: FundingWatchOptions) {
    this.blocks = new BlockPasses(opts.chain, () =>
      this.tick().catch((err: Error) =>
        opts.log.warn({ err: err.message }, "funding watch: a pass failed, will look at the next block"),
      ),
    );
  }

  /** Passes completed since start, and the tip the last one saw (-1 before the first): its metrics. */
  get passes(): number {
    return this.passCount;
  }
  get lastPassHeight(): number {
    return this.lastTip;
  }

  start(): void {
    void this.blocks.start();
  }

  stop(): Promise<void> {
    return this.blocks.stop();
  }

  /** Resolves once a pass has run with the tip at `height` or above. */
  processedHeight(height: number): Promise<void> {
    return this.blocks.processedHeight(height);
  }

  /** One pass over every watched coin at the current tip. */
  async tick(): Promise<void> {
    const { store, chain, log, graceBlocks } = this.opts;
    let tip: number;
    try {
      tip = await chain.tipHeight();
    } catch (err) {
      log.warn(
        { err: (err as Error).message },
        "funding watch: chain unavailable, will look at the next block",
      );
      return;
    }
    const rows = await store.statechainsByStatus(WATCHED);
    let lost = 0;
    for (const row of rows) {
      const statechain = outpointString(outpointFromBytes(row.statechain_id));
      let v: FundingVerdict;
      try {
        v = await checkFunding(
          chain,
          {
            status: row.status,
            fundingTx: row.funding_tx,
            vout: outpointFromBytes(row.statechain_id).vout,
            missingSince: row.funding_missing_since ?? undefined,
          },
          tip,
          graceBlocks,
        );
      } catch (err) {
        if (fundingLost(row.funding_state)) lost++;
        log.warn(
          { statechain, err: (err as Error).message },
          "funding watch: could not look at this coin's funding, will look at the next block",
        );
        continue;
      }
      if (fundingLost(v.state)) lost++;
      const problem = v.problem ?? null;
      const since = v.missingSince ?? null;
      if (
        v.state === row.funding_state &&
        problem === row.funding_problem &&
        since === row.funding_missing_since
      )
        continue;
      // Only if the coin is still in a watched state: a step may have moved it meanwhile (it is looked at again).
      await store.db.run(
        `UPDATE statechains SET funding_state = ?, funding_problem = ?, funding_missing_since = ?
          WHERE statechain_id = ? AND status IN (${WATCHED.join(",")})`,
        [v.state, problem, since, row.statechain_id],
      );
      if (fundingLost(v.state) && !fundingLost(row.funding_state))
        log.warn(
          { statechain, funding: FundingState[v.state], problem, height: tip },
          "funding watch: the coin's funding is lost; the SE refuses to co-sign or transfer it",
        );
      else if (!fundingLost(v.state) && fundingLost(row.funding_state))
        log.info(
          { statechain, height: tip },
          "funding watch: the coin's funding is back in the chain or mempool; co-signing it again",
        );
    }
    this.passCount++;
    this.lastTip = tip;
    this.opts.onPass?.(lost);
    this.blocks.passed(tip);
  }
}
