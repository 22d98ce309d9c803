// Progress for the CLI, always on stderr (stdout carries the result): a bar redrawn in place on a terminal, one
// line per change otherwise, and one JSON object per event with --json.
import type { ProgressFn } from "./wallet.ts";

export interface ProgressSink {
  write: (s: string) => void;
  tty: boolean;
  json: boolean;
  /** For tests; default Date.now. */
  now?: () => number;
}

/** Off a terminal a bar's line is printed again only after this long, or after this share of its way. */
export const THROTTLE_MS = 30_000;
export const THROTTLE_SHARE = 0.1;

/** Seconds between blocks by network: the target interval (regtest: none, blocks come when mined). */
const BLOCK_INTERVAL_S: Record<string, number> = { bitcoin: 600, testnet: 600, signet: 600 };

/** "about 3 h 20 min", "about 40 min", "under a minute". */
export function durationText(seconds: number): string {
  if (seconds < 60) return "under a minute";
  const min = Math.round(seconds / 60);
  if (min < 60) return `about ${min} min`;
  const h = Math.floor(min / 60);
  if (h < 48) return `about ${h} h${min % 60 ? ` ${min % 60} min` : ""}`;
  return `about ${Math.round(h / 24)} days`;
}

const WIDTH = 24;

function bar(done: number, total: number): string {
  const f = total <= 0 ? 1 : Math.min(1, Math.max(0, done / total));
  const n = Math.round(f * WIDTH);
  return `[${"#".repeat(n)}${"-".repeat(WIDTH - n)}]`;
}

function describe(event: string, d: Record<string, unknown>): string | undefined {
  switch (event) {
    case "paillier-key":
      return "making this coin's Paillier key (under a second; a wallet makes it ahead when it hands out an address)";
    case "paillier-key-ahead":
      return `making the Paillier key for the next coin to ${d.address ? "this address" : "this wallet"} ahead (under a second)`;
    case "pow":
      return `solving the SE's deposit challenge (${d.bits} bits of proof of work)`;
    case "keygen":
      return "two-party key generation with the SE (proving this coin's Paillier key to the enclave)";
    case "backup":
      return d.for
        ? `co-signing the backup transaction for ${d.for}${d.lock !== undefined ? ` (its lock: ${d.lock})` : ""}`
        : "co-signing the backup transaction";
    case "transfer-init":
      return "asking the SE to open the transfer (it answers with the key-update secret x1, encrypted to this coin's proof key)";
    case "transfer-send":
      return "handing the SE the signed statechain transaction and the receiver's encrypted transfer message";
    case "withdraw-init":
      return "asking the SE to open the withdrawal (the signed WITHDRAW statement)";
    case "cosign":
      return `co-signing the ${d.tx ?? ""} transaction with the SE`.replace("  ", " ");
    case "broadcast":
      return `broadcasting the ${d.tx ?? "funding"} transaction ${d.txid ?? ""}`.trimEnd();
    case "deposited":
      return `coin ${d.statechainId}: deposit address ${d.address}, funding txid ${d.fundingTxid}`;
    case "mailbox":
      return `reading the mailboxes of ${d.addresses} receive address(es)`;
    case "checking":
      return `checking incoming coin ${d.statechainId}`;
    case "waiting":
      return "waiting for incoming transfers…";
    case "faucet":
      return `the simulator's faucet key pays ${Number(d.amountSat).toLocaleString("en-US")} sat to the wallet (txid ${d.txid}); mining a block to confirm it`;
    case "mining":
      return `mining ${d.blocks} regtest blocks`;
    case "recover-start":
      return "asking the SE about this seed's key slots (it learns every proof key asked about, and can link those coins to this wallet)";
    case "recover-scan":
      return `key slot ${d.slot}: ${d.coins} coin(s) (${d.found} so far)`;
    case "recover-coin":
      return `rebuilding and checking coin ${d.done} of ${d.total}: ${d.statechainId}`;
    default:
      return undefined;
  }
}

/** A progress function for the sink, and `end()` to finish a bar left on the line. */
export function progressPrinter(sink: ProgressSink): { onProgress: ProgressFn; end: () => void } {
  const now = sink.now ?? Date.now;
  let last = "";
  let open = false;
  let waitStart: number | undefined;
  // Off a terminal, the last bar printed: which one, when, and how far along (0..1).
  let printed: { key: string; at: number; share: number } | undefined;
  const line = (s: string) => {
    if (s === last) return;
    last = s;
    if (sink.tty) {
      sink.write(`${open ? "\r\x1b[K" : ""}${s}`);
      open = true;
    } else sink.write(`${s}\n`);
  };
  /** A bar's line; off a terminal only the first, the last, and one per THROTTLE_MS or THROTTLE_SHARE. */
  const barLine = (key: string, share: number, s: string) => {
    if (!sink.tty) {
      const t = now();
      const same = printed?.key === key;
      if (same && share < 1 && t - printed!.at < THROTTLE_MS && share - printed!.share < THROTTLE_SHARE)
        return;
      if (same && s === last) return;
      printed = { key, at: t, share };
    }
    line(s);
  };
  const end = () => {
    if (open) sink.write("\n");
    open = false;
    last = "";
  };
  // Regtest has no block interval: the rate blocks came at while waiting, once two have.
  let firstSeen: { tip: number; at: number } | undefined;
  const eta = (left: number, tip: number, network: unknown): string => {
    const t = now();
    if (!firstSeen || tip < firstSeen.tip) firstSeen = { tip, at: t };
    const interval =
      BLOCK_INTERVAL_S[String(network)] ??
      (tip - firstSeen.tip >= 2 ? (t - firstSeen.at) / 1000 / (tip - firstSeen.tip) : undefined);
    if (left <= 0) return "";
    const when = interval !== undefined ? `, ${durationText(left * interval)}` : "";
    const mine = network === "regtest" ? ` (regtest: \`npx se mine ${left}\` mines them)` : "";
    return `${when}${mine}`;
  };
  const onProgress: ProgressFn = (event, detail = {}) => {
    if (sink.json) {
      sink.write(`${JSON.stringify({ event: "progress", step: event, ...detail })}\n`);
      return;
    }
    if (event === "confirmations") {
      const have = Number(detail.have ?? 0);
      const need = Number(detail.need ?? 1);
      const left = need - have;
      const mine =
        detail.network === "regtest" && left > 0 ? ` (regtest: \`npx se mine ${left}\` mines them)` : "";
      barLine(
        `confirmations ${detail.tx ?? ""}`,
        need > 0 ? have / need : 1,
        `  ${detail.tx ? `${detail.tx} ` : ""}confirmations ${bar(have, need)} ${have}/${need}${mine}`,
      );
      return;
    }
    if (event === "wait-blocks") {
      const left = Number(detail.left ?? 0);
      const tip = Number(detail.tip ?? 0);
      waitStart = Math.max(waitStart ?? left, left);
      barLine(
        "wait-blocks",
        waitStart > 0 ? (waitStart - left) / waitStart : 1,
        `  blocks until the lock ${bar(waitStart - left, waitStart)} ${left} left (tip ${detail.tip})${eta(left, tip, detail.network)}`,
      );
      return;
    }
    const text = describe(event, detail);
    if (text === undefined) return;
    end();
    printed = undefined;
    line(`• ${text}`);
    end();
  };
  return { onProgress, end };
}
