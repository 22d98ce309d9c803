// Recovery from the mnemonic (issue #22): scan the wallet's key slots, ask the SE what it holds for each proof key
// (RecoverCoins, each request signed by the key it asks about), rebuild every coin from the seed (the share o and
// the Paillier key are derived, keys.ts) and check it exactly as `wallet verify` does before the wallet keeps it.
//
// What the SE learns: the proof keys asked about, so it can link those coins to one wallet (and to one network
// address). `oneAtATime` sends the requests one by one with random pauses, which hides the timing link, not the
// address: use it over Tor or another network path per request for more.
import { BackupMode, type Outpoint, StatechainStatus } from "../proto/gen/common.ts";
import type { GetStatechainResponse, RecoveredCoin } from "../proto/gen/statechain.ts";
import { RecoveredRole } from "../proto/gen/statechain.ts";
import { mulG, mulSecret } from "../protocol/ecdsa2p/ec.ts";
import type { HolderKey } from "../protocol/ecdsa2p/holder.ts";
import { decrypt, type PaillierKey, wipePaillierKey } from "../protocol/ecdsa2p/paillier.ts";
import { bytesToBigInt, parsePoint, parseScalar } from "../protocol/encoding.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { outpointBytes, outpointString } from "../protocol/outpoint.ts";
import { parseTx, txidOf, txidToHex } from "../protocol/tx/parse.ts";
import { attestedPolicy } from "./attested-policy.ts";
import { type OwnerContext, pub } from "./owner.ts";
import { type VerifyReport, verifyCoin } from "./verify.ts";

/** Consecutive empty slots after which the scan stops (BIP44's gap limit). */
export const RECOVERY_GAP = 20;
/** Keygens tried per slot to find which one made the coin's share (o·S = P): cheap, one scalar product each. */
export const MAX_KEYGENS_PER_SLOT = 32;

export type RecoveredStatus =
  | "awaiting-confirmation"
  | "active"
  | "withdrawing"
  | "withdrawn"
  | "sent"
  | "exit-only"
  | "exited"
  | "tainted";

/** What the wallet keeps of every coin, besides its key (client/wallet.ts adds that). */
export interface CoinFields {
  statechainId: Outpoint;
  amountSat: bigint;
  sharedPublicKey: Uint8Array;
  ownerIndex: number;
  initialLock: number;
  backupMode: "absolute" | "kickoff";
  interval: number;
  fundingTx: Uint8Array;
  /** This owner's backup, fully signed. */
  backupTx: Uint8Array;
  /** The earlier owners' backups, oldest first. */
  backupHistory: readonly Uint8Array[];
  kickoffTx?: Uint8Array;
}

/** A coin rebuilt and checked, as the wallet stores it. */
export interface RebuiltCoin extends CoinFields {
  slot: number;
  /** The keygen on `slot` whose share and Paillier key the coin uses (none: no live key to rebuild). */
  keygen?: number;
  status: RecoveredStatus;
  origin: "deposit" | "received";
  key?: HolderKey;
  report: VerifyReport;
  /** Why the coin is kept in this status, in words (exit-only, sent …). */
  why?: string;
}

export interface RecoveryRefusal {
  statechainId: string;
  slot: number;
  code: string;
  reason: string;
  failedChecks?: string[];
}

export interface RecoveryResult {
  /** Slots asked about (0 … scanned − 1). */
  scanned: number;
  /** Slots on which the SE knows a coin. */
  usedSlots: number[];
  coins: RebuiltCoin[];
  refused: RecoveryRefusal[];
  /** Coins still in transfer to this wallet: `wallet receive` takes them from the mailbox. */
  incoming: string[];
}

export interface RecoveryOptions {
  gap?: number;
  /** One request at a time with a random pause of up to `maxPauseMs` before each (default 30 s). */
  oneAtATime?: boolean;
  maxPauseMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Coins the wallet already holds (hex of their outpoints): left as they are. */
  known?: ReadonlySet<string>;
}

/** What the restore needs of the wallet: its seed-derived keys and a way to build a slot's Paillier key. */
export interface RecoveryKeys {
  proofSecret(slot: number): Uint8Array;
  backupKey(slot: number): Uint8Array;
  ownerShare(slot: number, keygen: number): Uint8Array;
  paillierKey(slot: number, keygen: number): Promise<PaillierKey>;
}

type Progress = (event: string, detail?: Record<string, unknown>) => void;

const sleepFor = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

function refusal(code: string, message: string): never {
  throw new ProtocolError(code, message, "precondition");
}

/** Asks about slots 0, 1, … until `gap` slots in a row own nothing. */
async function scan(
  ctx: OwnerContext,
  keys: RecoveryKeys,
  opts: RecoveryOptions,
  progress: Progress,
): Promise<{ scanned: number; found: Array<{ slot: number; coin: RecoveredCoin }> }> {
  const gap = opts.gap ?? RECOVERY_GAP;
  const sleep = opts.sleep ?? sleepFor;
  const found: Array<{ slot: number; coin: RecoveredCoin }> = [];
  let misses = 0;
  let slot = 0;
  for (; misses < gap; slot++) {
    if (opts.oneAtATime && slot > 0) {
      const max = opts.maxPauseMs ?? 30_000;
      await sleep(Math.floor((Buffer.from(ctx.rng(4)).readUInt32BE(0) / 2 ** 32) * max));
    }
    const secret = keys.proofSecret(slot);
    const answer = await ctx.se.call("recoverCoins", { proofKey: pub(secret), auth: undefined }, secret);
    secret.fill(0);
    if (answer.coins.length === 0) misses++;
    else misses = 0;
    for (const coin of answer.coins) found.push({ slot, coin });
    progress("recover-scan", { slot, coins: answer.coins.length, found: found.length });
  }
  return { scanned: slot, found };
}

/**
 * The coin's key from the seed: the keygen k on `slot` whose o_k satisfies o_k·S = P, its Paillier key (N as the
 * enclave holds it), and c_key decrypting to o_k. Any mismatch means the SE serves a key this seed did not make.
 */
async function rebuildKey(
  keys: RecoveryKeys,
  slot: number,
  rc: RecoveredCoin,
  P: Uint8Array,
): Promise<{ key: HolderKey; keygen: number }> {
  const k = rc.key!;
  const S = parsePoint(k.sePublicShare, "the enclave's public share S");
  const shared = parsePoint(P, "shared public key P");
  for (let keygen = 0; keygen < MAX_KEYGENS_PER_SLOT; keygen++) {
    const share = keys.ownerShare(slot, keygen);
    if (!mulSecret(S, share).equals(shared)) {
      share.fill(0);
      continue;
    }
    const paillier = await keys.paillierKey(slot, keygen);
    const n = bytesToBigInt(k.paillierModulus);
    const c = bytesToBigInt(k.encryptedShare);
    if (paillier.n !== n || c <= 0n || c >= n * n || decrypt(paillier, c) !== parseScalar(share, "o")) {
      wipePaillierKey(paillier);
      share.fill(0);
      refusal(
        "RECOVERY_KEY_MISMATCH",
        "the SE's Paillier modulus or c_key for this coin is not the one this seed made: the coin cannot be co-signed (it can still leave by its backup)",
      );
    }
    paillier.used = true; // it encrypts this coin's share and nothing else
    const key: HolderKey = {
      sessionId: new Uint8Array(16), // the keygen's session is over; nothing signs with its id
      share,
      ownerPublicShare: mulG(share),
      sePublicShare: S,
      sharedPublicKey: shared,
      paillier,
      encryptedShare: c,
      tainted: false,
      wiped: false,
    };
    return { key, keygen };
  }
  return refusal(
    "RECOVERY_NO_SHARE",
    `no share of this seed (keygens 0…${MAX_KEYGENS_PER_SLOT - 1} on slot ${slot}) matches the coin's key: it was made by a wallet that drew o at random (before shares were derived)`,
  );
}

/** Whether the chain shows `tx` (our backup) confirmed: the coin left by it. */
async function confirmedOnChain(ctx: OwnerContext, tx: Uint8Array): Promise<boolean> {
  if (tx.length === 0) return false;
  const txid = txidToHex(txidOf(parseTx(tx, "backup transaction")));
  const st = await ctx.chain.getTxStatus(txid).catch(() => undefined);
  return (st?.confirmations ?? 0) > 0;
}

const LIVE = new Set<number>([
  StatechainStatus.STATECHAIN_STATUS_AWAITING_CONFIRMATION,
  StatechainStatus.STATECHAIN_STATUS_ACTIVE,
  StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING,
  StatechainStatus.STATECHAIN_STATUS_WITHDRAWING,
]);

/** The status the wallet keeps a coin in, from the key's role and the SE's status; undefined: not this wallet's now. */
function statusOf(
  role: RecoveredRole,
  sc: GetStatechainResponse,
): { status: RecoveredStatus; why?: string } | undefined {
  if (role === RecoveredRole.RECOVERED_ROLE_FORMER_OWNER)
    return { status: "sent", why: "a later key update moved the coin to its next owner" };
  if (role === RecoveredRole.RECOVERED_ROLE_PENDING_RECEIVER) {
    if (sc.status !== StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP) return undefined;
    return {
      status: "exit-only",
      why: "its transfer to this wallet was cut after this wallet's backup was co-signed; that backup has the earliest lock, so the coin leaves by it",
    };
  }
  switch (sc.status) {
    case StatechainStatus.STATECHAIN_STATUS_AWAITING_CONFIRMATION:
      return { status: "awaiting-confirmation" };
    case StatechainStatus.STATECHAIN_STATUS_ACTIVE:
    case StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING:
      return { status: "active" };
    case StatechainStatus.STATECHAIN_STATUS_WITHDRAWING:
      return { status: "withdrawing" };
    case StatechainStatus.STATECHAIN_STATUS_CLOSED:
      return { status: "withdrawn" };
    case StatechainStatus.STATECHAIN_STATUS_TAINTED:
      return { status: "tainted", why: "its key is tainted: it leaves by its backup" };
    default:
      return { status: "exit-only", why: "the SE can no longer co-sign it: it leaves by its backup" };
  }
}

async function rebuild(
  ctx: OwnerContext,
  keys: RecoveryKeys,
  slot: number,
  rc: RecoveredCoin,
  interval: number,
): Promise<RebuiltCoin | "incoming"> {
  const id = rc.statechainId!;
  const sc = await ctx.se.call("getStatechain", { statechainId: id });
  const role = statusOf(rc.role, sc);
  if (!role) return "incoming";
  let { status, why } = role;
  if (rc.backupTxs.length !== rc.ownerIndex)
    refusal(
      "RECOVERY_BACKUPS",
      `the SE serves ${rc.backupTxs.length} co-signed backup(s) for owner ${rc.ownerIndex}: this wallet's backup is missing`,
    );
  let rebuilt: { key: HolderKey; keygen: number } | undefined;
  if (rc.role === RecoveredRole.RECOVERED_ROLE_OWNER && LIVE.has(sc.status)) {
    if (rc.key) {
      try {
        rebuilt = await rebuildKey(keys, slot, rc, sc.sharedPublicKey);
      } catch (e) {
        // No key this seed made: the coin cannot be co-signed, but its backup pays this wallet. Kept to exit.
        if (!(e instanceof ProtocolError) || !e.code.startsWith("RECOVERY_")) throw e;
        status = "exit-only";
        why = `${e.message} [${e.code}]`;
      }
    } else {
      status = "exit-only";
      why = "the SE holds no key for it any more (its enclave restarted): it leaves by its backup";
    }
  }
  const backupTx = rc.backupTxs[rc.backupTxs.length - 1]!;
  // The chain has the last word: a coin that left by this wallet's backup is exited, whatever the SE last saw.
  if (status !== "sent" && status !== "withdrawn" && (await confirmedOnChain(ctx, backupTx))) {
    status = "exited";
    why = "its backup transaction is confirmed";
    if (rebuilt) {
      rebuilt.key.share.fill(0);
      wipePaillierKey(rebuilt.key.paillier);
      rebuilt = undefined;
    }
  }
  const held = ["awaiting-confirmation", "active", "withdrawing", "exit-only", "tainted"].includes(status);
  const coin = {
    statechainId: id,
    sharedPublicKey: sc.sharedPublicKey,
    amountSat: sc.amountSat,
    backupMode:
      sc.backupMode === BackupMode.BACKUP_MODE_KICKOFF ? ("kickoff" as const) : ("absolute" as const),
    initialLock: sc.initialLock,
    interval,
    ownerIndex: rc.ownerIndex,
    fundingTx: rc.fundingTx,
    kickoffTx: rc.kickoffTx.length > 0 ? rc.kickoffTx : undefined,
  };
  // A pending receiver is not the statechain's owner: its coin is checked as one the wallet no longer co-signs.
  const owner = held && rc.role === RecoveredRole.RECOVERED_ROLE_OWNER;
  const secret = keys.proofSecret(slot);
  const report = await verifyCoin(ctx, {
    ...coin,
    proofKey: pub(secret),
    backupKey: keys.backupKey(slot),
    held: owner,
    backups: rc.backupTxs,
  });
  secret.fill(0);
  const failed = report.checks.filter((c) => c.status === "fail");
  // Funds the wallet is to hold must check out as `wallet verify` requires; a closed coin is history, kept with
  // what its checks found.
  if (held && failed.length > 0) {
    if (rebuilt) {
      rebuilt.key.share.fill(0);
      wipePaillierKey(rebuilt.key.paillier);
    }
    throw Object.assign(
      new ProtocolError(
        "RECOVERY_CHECKS",
        `the coin does not verify: ${failed.map((c) => c.name).join(", ")}`,
        "precondition",
      ),
      { failedChecks: failed.map((c) => `${c.name}: ${c.detail}`) },
    );
  }
  return {
    ...coin,
    slot,
    keygen: rebuilt?.keygen,
    status,
    origin:
      rc.ownerIndex === 1 && same(sc.depositProofKey, pub(keys.proofSecret(slot))) ? "deposit" : "received",
    key: rebuilt?.key,
    backupTx,
    backupHistory: rc.backupTxs.slice(0, -1),
    report,
    why,
  };
}

/**
 * Scans and rebuilds. A statechain found on several slots (received, sent on, received again) is kept once, from
 * the slot with the highest owner index: the latest time it came to this wallet.
 */
export async function recoverCoins(
  ctx: OwnerContext,
  keys: RecoveryKeys,
  opts: RecoveryOptions = {},
  progress: Progress = () => {},
): Promise<RecoveryResult> {
  const { scanned, found } = await scan(ctx, keys, opts, progress);
  const latest = new Map<string, { slot: number; coin: RecoveredCoin }>();
  for (const f of found) {
    const k = outpointBytes(f.coin.statechainId!).toString("hex");
    const seen = latest.get(k);
    if (!seen || f.coin.ownerIndex > seen.coin.ownerIndex) latest.set(k, f);
  }
  const result: RecoveryResult = {
    scanned,
    usedSlots: [...new Set(found.map((f) => f.slot))].sort((a, b) => a - b),
    coins: [],
    refused: [],
    incoming: [],
  };
  const todo = [...latest].filter(([k]) => !opts.known?.has(k)).map(([, f]) => f);
  if (todo.length === 0) return result;
  const interval = (await attestedPolicy(ctx)).locktimeInterval;
  let done = 0;
  for (const { slot, coin } of todo) {
    const sid = outpointString(coin.statechainId!);
    progress("recover-coin", { statechainId: sid, done: ++done, total: todo.length });
    try {
      const got = await rebuild(ctx, keys, slot, coin, interval);
      if (got === "incoming") result.incoming.push(sid);
      else result.coins.push(got);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      result.refused.push({
        statechainId: sid,
        slot,
        code: e.code,
        reason: e.message,
        failedChecks: (e as { failedChecks?: string[] }).failedChecks,
      });
    }
  }
  return result;
}
