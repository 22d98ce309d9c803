// What one step changed in the enclave's state, as a log entry's data (DESIGN.md 4.1), and the whole state as a
// snapshot for a member that lacks entries (a new or lagging member: the current coins only, never an earlier
// epoch's share, since the snapshot is made from the state as it is now). Applying a delta replaces each coin it
// names and erases the replaced coin's secrets: on a follower, applying a key update's delta is the erasure of s1.
import { CloseStatechainResponse } from "../../proto/gen/enclave.ts";
import { check, fail } from "../../protocol/errors.ts";
import { statechainIdBytes } from "../../protocol/statechain.ts";
import { type Coin, wipeCoin } from "../coins.ts";
import { type EnclaveCore, hex, idHexOf } from "../core.ts";
import { Reader, Writer } from "./bytes.ts";
import { decodeCoin, encodeCoin } from "./coin-record.ts";

export const DELTA_VERSION = 1;
/** A snapshot of 10,000 live coins is ~25 MB; the cap leaves room above that. */
export const MAX_COINS_PER_RECORD = 200_000;

/** The global state every step may move (all public), carried whole by every delta: the latest one wins. */
export interface CoreState {
  maxTip: number;
  maxTipAt: number;
  lastReceipt: Uint8Array;
  logHead: Uint8Array;
  logLength: bigint;
}

export interface Delta {
  /** A snapshot replaces the whole state; a delta only the coins it names. */
  snapshot: boolean;
  core: CoreState;
  /** Coins created (at the end of keygen) or changed, as coin records. */
  coins: Uint8Array[];
  /** Coins closed by the step (36-byte statechain ids), with the answer kept for a retried CloseStatechain. */
  closed: Array<{ statechainId: Uint8Array; answer: Uint8Array }>;
}

export function coreStateOf(e: EnclaveCore): CoreState {
  return {
    maxTip: e.maxTip,
    maxTipAt: e.maxTipAt,
    lastReceipt: e.lastReceipt,
    logHead: e.d.log.head,
    logLength: e.d.log.length,
  };
}

/** The delta of a step that changed `coins` and closed `closed` (their ids and kept answers). */
export function deltaOf(
  e: EnclaveCore,
  coins: Coin[],
  closed: Array<{ coin: Coin; answer: CloseStatechainResponse }> = [],
): Uint8Array {
  return encodeDelta({
    snapshot: false,
    core: coreStateOf(e),
    coins: coins.map(encodeCoin),
    closed: closed.map((c) => ({
      statechainId: statechainIdBytes(c.coin.outpoint!),
      answer: CloseStatechainResponse.encode(c.answer).finish(),
    })),
  });
}

/** The whole replicated state: every keyed or funded coin (coins still in keygen are not replicated). */
export function snapshotOf(e: EnclaveCore): Uint8Array {
  const coins = e.coins.all().filter((c) => c.stage === "keyed" || c.stage === "funded");
  return encodeDelta({ snapshot: true, core: coreStateOf(e), coins: coins.map(encodeCoin), closed: [] });
}

export function encodeDelta(d: Delta): Uint8Array {
  const w = new Writer();
  w.u8(DELTA_VERSION);
  w.u8(d.snapshot ? 1 : 0);
  w.u64(d.core.maxTip);
  w.u64(d.core.maxTipAt);
  w.bytes(d.core.lastReceipt);
  w.bytes(d.core.logHead);
  w.u64(d.core.logLength);
  w.list(d.coins, (c) => w.bytes(c));
  w.list(d.closed, (c) => {
    w.bytes(c.statechainId);
    w.bytes(c.answer);
  });
  const out = w.finish();
  // The coin records were copied into `out`: their own buffers held the shares too.
  for (const c of d.coins) c.fill(0);
  return out;
}

export function decodeDelta(bytes: Uint8Array): Delta {
  const r = new Reader(bytes);
  const version = r.u8("delta version");
  check(version === DELTA_VERSION, "RECORD_VERSION", `state delta version ${version} is not known`);
  const delta: Delta = {
    snapshot: r.bool("snapshot"),
    core: {
      maxTip: r.num("chain tip"),
      maxTipAt: r.num("chain tip time"),
      lastReceipt: r.bytes("last receipt", 32),
      logHead: r.bytes("log head", 32),
      logLength: r.u64("log length"),
    },
    coins: r.list("coins", MAX_COINS_PER_RECORD, () => r.view("coin record")),
    closed: r.list("closed coins", MAX_COINS_PER_RECORD, () => ({
      statechainId: r.bytes("closed statechain id", 36),
      answer: r.bytes("close answer"),
    })),
  };
  r.end();
  return delta;
}

/**
 * Applies a committed delta (or a snapshot) to a member's state. Every coin record is decoded before anything
 * changes, so a bad record changes nothing; then each named coin replaces the one held, whose secrets are erased.
 */
export function applyDelta(e: EnclaveCore, bytes: Uint8Array): void {
  const d = decodeDelta(bytes);
  const coins = d.coins.map(decodeCoin);
  const closes = d.closed.map((c) => ({ idHex: hex(c.statechainId), answer: decodeCloseAnswer(c.answer) }));
  if (d.snapshot) {
    for (const c of e.coins.all()) {
      wipeCoin(c);
      e.coins.remove(c);
    }
  }
  for (const coin of coins) {
    const old = e.coins.deposit(coin.depositId.toString("hex"));
    if (old) {
      wipeCoin(old);
      e.coins.remove(old);
    }
    e.coins.add(coin);
    if (coin.outpoint) e.coins.bind(coin, idHexOf(coin.outpoint));
  }
  for (const c of closes) {
    const old = e.coins.statechain(c.idHex);
    if (old) {
      wipeCoin(old);
      old.stage = "closed";
      e.coins.remove(old);
    }
    e.coins.closed.set(c.idHex, c.answer);
  }
  e.maxTip = d.core.maxTip;
  e.maxTipAt = d.core.maxTipAt;
  e.lastReceipt = d.core.lastReceipt;
  e.d.log.restore(d.core.logHead, d.core.logLength);
}

function decodeCloseAnswer(b: Uint8Array): CloseStatechainResponse {
  try {
    return CloseStatechainResponse.decode(b);
  } catch {
    return fail("RECORD_PARSE", "a closed coin's kept answer does not parse");
  }
}
