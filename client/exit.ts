// Exit by backup (DESIGN.md 3.5): the owner's way out when the SE vanishes or refuses. Absolute mode: the backup
// goes out once the next block may include it: a height lock is final in a block above nLockTime, so once the
// tip reaches nLockTime (mempools judge a transaction as part of the next block). Kick-off mode: the kick-off goes out with
// a CPFP child spending its anchor (plus wallet coins when the anchor cannot pay), then, once the kick-off has
// waited out the backup's relative lock, the backup. Each stage is recorded in an ExitState so an interrupted
// exit resumes where it stopped; anything already on chain or in the mempool (the SE's watchtower may have
// broadcast the same transactions) counts as done.
import { type ChainBackend, ChainError } from "../chain/backend.ts";
import { fail } from "../protocol/errors.ts";
import { buildCpfpChild, type WalletUtxo } from "../protocol/tx/build.ts";
import { parseTx, txidOf, txidToHex } from "../protocol/tx/parse.ts";
import { ANCHOR_SCRIPT } from "../protocol/tx/script.ts";
import { type OwnInput, signP2wpkhInputs } from "../protocol/tx/sign.ts";
import { broadcastIdempotent } from "./owner.ts";

export type ExitStage = "waiting-kickoff" | "waiting-lock" | "backup-broadcast" | "confirmed";

export interface ExitState {
  mode: "absolute" | "kickoff";
  stage: ExitStage;
  backupTxid: string;
  kickoffTxid?: string;
  cpfpTxid?: string;
  /** Height of the block that confirmed the kick-off. */
  kickoffHeight?: number;
  /** The first height whose block may include the backup. */
  unlockHeight?: number;
  backupHeight?: number;
  /** Something of the exit (kick-off or backup) went to the network: the coin is leaving. */
  broadcast?: boolean;
}

export interface ExitCoin {
  backupMode: "absolute" | "kickoff";
  backupTx: Uint8Array;
  kickoffTx?: Uint8Array;
  /** What the kick-off spends (the coin's amount), for the kick-off's fee. */
  amountSat: bigint;
}

export interface ExitOptions {
  chain: ChainBackend;
  feeRateSatVb: number;
  /** Wallet coins for the CPFP child when the anchor alone cannot pay. */
  feeUtxos?: ReadonlyArray<WalletUtxo & { privateKey: Uint8Array }>;
  /** Where the CPFP child's change goes (a wallet script). */
  changeScript: Uint8Array;
  state?: ExitState;
  /** Called after every stage change: persist the state here. */
  save?: (state: ExitState) => Promise<void>;
  /** Between polls (tests mine a block here); default: wait pollMs. */
  onWait?: () => Promise<void>;
  pollMs?: number;
  /** Return as soon as the next stage must wait for blocks, instead of waiting. */
  noWait?: boolean;
  /** Give up waiting (EXIT_TIMEOUT, the state saved: running the exit again resumes it) after this long. */
  timeoutMs?: number;
  now?: () => number;
  onProgress?: (event: string, detail?: Record<string, unknown>) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function initialExitState(coin: ExitCoin): ExitState {
  const backup = parseTx(coin.backupTx, "backup");
  const backupTxid = txidToHex(txidOf(backup));
  if (coin.backupMode === "absolute")
    return { mode: "absolute", stage: "waiting-lock", backupTxid, unlockHeight: backup.locktime + 1 };
  if (!coin.kickoffTx?.length) fail("KICKOFF_MISSING", "a kick-off mode coin needs its kick-off transaction");
  const kickoffTxid = txidToHex(txidOf(parseTx(coin.kickoffTx, "kick-off")));
  return { mode: "kickoff", stage: "waiting-kickoff", backupTxid, kickoffTxid };
}

/** Runs (or resumes) the exit of `coin`; resolves with the state reached (confirmed unless noWait stopped it). */
export async function exitByBackup(coin: ExitCoin, o: ExitOptions): Promise<ExitState> {
  const state: ExitState = o.state ? { ...o.state } : initialExitState(coin);
  const progress = (e: string, d?: Record<string, unknown>) => o.onProgress?.(e, d);
  const save = async (stage: ExitStage, patch: Partial<ExitState> = {}) => {
    Object.assign(state, patch, { stage });
    await o.save?.({ ...state });
  };
  const now = o.now ?? Date.now;
  const deadline = o.timeoutMs !== undefined ? now() + o.timeoutMs : undefined;
  const pause = async () => {
    if (deadline !== undefined && now() >= deadline) {
      const where =
        state.stage === "waiting-lock"
          ? `the backup may go out once the tip reaches ${state.unlockHeight! - 1} (to be mined from height ${state.unlockHeight}), the tip is ${await o.chain.tipHeight()}`
          : state.stage === "waiting-kickoff"
            ? "the kick-off is not confirmed yet"
            : "the backup is not confirmed yet";
      fail(
        "EXIT_TIMEOUT",
        `still exiting after ${Math.round(o.timeoutMs! / 1000)} s: ${where}; run the exit again to continue`,
        "precondition",
      );
    }
    if (o.onWait) await o.onWait();
    else await sleep(o.pollMs ?? 5000);
  };
  const backup = parseTx(coin.backupTx, "backup");
  if (!o.state) await o.save?.({ ...state });

  if (state.stage === "waiting-kickoff") {
    const kickoff = parseTx(coin.kickoffTx!, "kick-off");
    const known = await o.chain.getTxStatus(state.kickoffTxid!);
    if (!known) {
      progress("broadcast", { tx: "kick-off", txid: state.kickoffTxid });
      await broadcastIdempotent(o.chain, coin.kickoffTx!);
    }
    if (!state.broadcast) await save("waiting-kickoff", { broadcast: true });
    if (!state.cpfpTxid && !(known && known.confirmations > 0)) {
      const cpfpTxid = await bumpKickoff(kickoff, coin.amountSat, o);
      if (cpfpTxid) await save("waiting-kickoff", { cpfpTxid });
    }
    for (;;) {
      const st = await o.chain.getTxStatus(state.kickoffTxid!);
      if (st && st.confirmations > 0) {
        const tip = await o.chain.tipHeight();
        const kickoffHeight = st.blockHeight ?? tip - st.confirmations + 1;
        const relative = backup.ins[0]!.sequence & 0xffff;
        await save("waiting-lock", { kickoffHeight, unlockHeight: kickoffHeight + relative });
        break;
      }
      if (!st) {
        // Dropped from the mempool (or never relayed): send it again.
        await broadcastIdempotent(o.chain, coin.kickoffTx!);
      }
      progress("confirmations", { tx: "kick-off", have: 0, need: 1, network: o.chain.network });
      if (o.noWait) return state;
      await pause();
    }
  }

  if (state.stage === "waiting-lock") {
    // Absolute: block nLockTime + 1 is the first that may include the backup (states saved before this was
    // right said nLockTime, one block early: the network refused the backup as non-final then).
    if (state.mode === "absolute") state.unlockHeight = backup.locktime + 1;
    state.unlockHeight ??= backup.locktime;
    for (;;) {
      const st = await o.chain.getTxStatus(state.backupTxid);
      if (st) {
        await save("backup-broadcast", { broadcast: true });
        break;
      }
      const tip = await o.chain.tipHeight();
      if (tip + 1 >= state.unlockHeight!) {
        progress("broadcast", { tx: "backup", txid: state.backupTxid });
        await broadcastBackup(o.chain, coin.backupTx, state.backupTxid);
        await save("backup-broadcast", { broadcast: true });
        break;
      }
      progress("wait-blocks", {
        tip,
        target: state.unlockHeight! - 1,
        left: state.unlockHeight! - 1 - tip,
        network: o.chain.network,
      });
      if (o.noWait) return state;
      await pause();
    }
  }

  if (state.stage === "backup-broadcast") {
    for (;;) {
      const st = await o.chain.getTxStatus(state.backupTxid);
      if (st && st.confirmations > 0) {
        const tip = await o.chain.tipHeight();
        await save("confirmed", { backupHeight: st.blockHeight ?? tip - st.confirmations + 1 });
        break;
      }
      if (!st) await broadcastBackup(o.chain, coin.backupTx, state.backupTxid);
      progress("confirmations", { tx: "backup", have: 0, need: 1, network: o.chain.network });
      if (o.noWait) return state;
      await pause();
    }
  }
  return state;
}

async function broadcastBackup(chain: ChainBackend, raw: Uint8Array, txid: string): Promise<void> {
  try {
    await broadcastIdempotent(chain, raw);
  } catch (e) {
    if (!(e instanceof ChainError)) throw e;
    if (e.code === "missing-inputs" || e.code === "conflict") {
      if (await chain.getTxStatus(txid)) return;
      fail(
        "EXIT_PREEMPTED",
        "the coin was spent by another transaction (a newer owner's backup, or a withdrawal)",
        "precondition",
      );
    }
    if (e.code === "non-final")
      fail("EXIT_TOO_EARLY", `the network refuses the backup as not final yet: ${e.message}`);
    throw e;
  }
}

/**
 * A CPFP child spending the kick-off's anchor (and wallet coins if needed) so the pair pays the fee rate. A
 * child someone else already attached (the SE's watchtower) makes ours redundant: a conflict is not an error.
 */
async function bumpKickoff(
  kickoff: ReturnType<typeof parseTx>,
  amountSat: bigint,
  o: ExitOptions,
): Promise<string | undefined> {
  const parentFee = amountSat - kickoff.outs.reduce((s, x) => s + x.value, 0n);
  const child = buildCpfpChild({
    parent: {
      txid: txidOf(kickoff),
      vout: 1,
      valueSat: kickoff.outs[1]!.value,
      kind: "anchor",
      script: ANCHOR_SCRIPT,
    },
    parentVsize: kickoff.virtualSize(),
    parentFeeSat: parentFee,
    feeUtxos: o.feeUtxos ?? [],
    changeScript: o.changeScript,
    packageFeeRateSatVb: o.feeRateSatVb,
  });
  const own: OwnInput[] = child.inputs
    .filter((i) => i.kind === "p2wpkh")
    .map((i) => {
      const u = o.feeUtxos!.find((f) => Buffer.from(f.script).equals(Buffer.from(i.prevout.script)))!;
      return { inputIndex: i.inputIndex, prevout: i.prevout, privateKey: u.privateKey };
    });
  const signed = signP2wpkhInputs(child.raw, own);
  try {
    o.onProgress?.("broadcast", { tx: "cpfp", txid: child.txidHex });
    return await broadcastIdempotent(o.chain, signed);
  } catch (e) {
    if (e instanceof ChainError && (e.code === "conflict" || e.code === "missing-inputs")) return undefined;
    throw e;
  }
}
