// Progress for the CLI, always on stderr (stdout carries the result): a bar redrawn in place on a terminal, one
// line per change otherwise, and one JSON object per event with --json.
import type { ProgressFn } from "./wallet.ts";

export interface ProgressSink {
  write: (s: string) => void;
  tty: boolean;
  json: boolean;
}

const WIDTH = 24;

function bar(done: number, total: number): string {
  const f = total <= 0 ? 1 : Math.min(1, Math.max(0, done / total));
  const n = Math.round(f * WIDTH);
  return `[${"#".repeat(n)}${"-".repeat(WIDTH - n)}]`;
}

function describe(event: string, d: Record<string, unknown>): string | undefined {
  switch (event) {
    case "ring-pedersen":
      return "generating the wallet's ring-Pedersen parameters (once per wallet, a few seconds)";
    case "pow":
      return `solving the SE's deposit challenge (${d.bits} bits of proof of work)`;
    case "keygen":
      return "two-party key generation with the SE (checking its Paillier key and proofs)";
    case "backup":
      return "co-signing the backup transaction";
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
    case "mining":
      return `mining ${d.blocks} regtest blocks`;
    default:
      return undefined;
  }
}

/** A progress function for the sink, and `end()` to finish a bar left on the line. */
export function progressPrinter(sink: ProgressSink): { onProgress: ProgressFn; end: () => void } {
  let last = "";
  let open = false;
  let waitStart: number | undefined;
  const line = (s: string) => {
    if (s === last) return;
    last = s;
    if (sink.tty) {
      sink.write(`${open ? "\r\x1b[K" : ""}${s}`);
      open = true;
    } else sink.write(`${s}\n`);
  };
  const end = () => {
    if (open) sink.write("\n");
    open = false;
    last = "";
  };
  const onProgress: ProgressFn = (event, detail = {}) => {
    if (sink.json) {
      sink.write(`${JSON.stringify({ event: "progress", step: event, ...detail })}\n`);
      return;
    }
    if (event === "confirmations") {
      const have = Number(detail.have ?? 0);
      const need = Number(detail.need ?? 1);
      line(`  ${detail.tx ? `${detail.tx} ` : ""}confirmations ${bar(have, need)} ${have}/${need}`);
      return;
    }
    if (event === "wait-blocks") {
      const left = Number(detail.left ?? 0);
      waitStart = Math.max(waitStart ?? left, left);
      line(`  blocks until the lock ${bar(waitStart - left, waitStart)} ${left} left (tip ${detail.tip})`);
      return;
    }
    const text = describe(event, detail);
    if (text === undefined) return;
    end();
    line(`• ${text}`);
    end();
  };
  return { onProgress, end };
}
