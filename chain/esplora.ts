// ChainBackend over an Esplora REST API (Blockstream's electrs, mempool.space). Block events by polling the tip.
// Response shapes relied on (all amounts in satoshis, txids in display hex):
//   GET  /blocks/tip/height        → "812345" (text)
//   GET  /tx/:txid/hex             → raw hex (text); 404 when unknown
//   GET  /tx/:txid/status          → {"confirmed":true,"block_height":n,"block_hash":"…","block_time":t} or
//                                    {"confirmed":false}; 404 when unknown
//   GET  /tx/:txid                 → {"txid","version","locktime","vin":[{"txid","vout","is_coinbase",…}],
//                                    "vout":[{"scriptpubkey":"hex","value":n,…}],"status":{…}}
//   GET  /tx/:txid/outspend/:vout  → {"spent":false} or {"spent":true,"txid","vin","status":{…}} (mempool
//                                    spends count)
//   GET  /address/:address/utxo    → [{"txid","vout","value","status":{"confirmed",…}}], mempool spends removed
//   POST /tx (body: hex)           → txid (text); HTTP 400 "sendrawtransaction RPC error: {"code":-26,
//                                    "message":"non-final"}" relaying bitcoind's refusal
//   GET  /fee-estimates            → {"1":87.9,"2":87.9,…,"144":1.02} sat/vB by confirmation target
// Addresses (not /scripthash/:hash, whose byte order differs between implementations) identify scripts.
import { address as btcAddress, networks, Transaction } from "bitcoinjs-lib";
import { type ChainBackend, ChainError, type ChainNetwork, type TxStatus, type Utxo } from "./backend.ts";
import { HttpClient, TipPoller } from "./http.ts";
import { classifyReject, classifyRpcReject } from "./reject.ts";

export interface EsploraOptions {
  /** Base URL including any path prefix, e.g. https://blockstream.info/api */
  url: string;
  network: ChainNetwork;
  timeoutMs?: number;
  pollIntervalMs?: number;
  /** Used when /fee-estimates is empty (regtest, fresh instance). */
  fallbackFeeRateSatVb?: number;
  onError?: (err: Error) => void;
}

interface EsploraStatus {
  confirmed: boolean;
  block_height?: number | null;
  block_hash?: string | null;
}

interface EsploraTx {
  txid: string;
  vin: { is_coinbase?: boolean }[];
  vout: { scriptpubkey: string; value: number }[];
  status: EsploraStatus;
}

const TXID = /^[0-9a-f]{64}$/;

export class EsploraChain implements ChainBackend {
  readonly kind = "esplora" as const;
  readonly network: ChainNetwork;
  private readonly base: string;
  private readonly timeoutMs: number;
  private readonly poller: TipPoller;
  private readonly http = new HttpClient();

  constructor(private readonly opts: EsploraOptions) {
    this.network = opts.network;
    this.base = opts.url.replace(/\/+$/, "");
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    this.poller = new TipPoller(() => this.tipHeight(), opts.pollIntervalMs ?? 10_000, opts.onError);
  }

  private async get(path: string): Promise<string | undefined> {
    const res = await this.http.request(`${this.base}${path}`, {
      timeoutMs: this.timeoutMs,
      what: `esplora GET ${path}`,
    });
    if (res.status === 404) return undefined;
    if (res.status !== 200)
      throw new ChainError(
        res.status >= 500 ? "unavailable" : "bad-response",
        `esplora GET ${path}: HTTP ${res.status} ${res.text.slice(0, 200)}`,
      );
    return res.text;
  }

  private async getJson<T>(path: string): Promise<T | undefined> {
    const text = await this.get(path);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ChainError("bad-response", `esplora GET ${path}: not JSON`);
    }
  }

  async tipHeight(): Promise<number> {
    const text = await this.get("/blocks/tip/height");
    const h = Number(text);
    if (text === undefined || !Number.isInteger(h) || h < 0)
      throw new ChainError(
        "bad-response",
        `esplora tip height is not a number: ${String(text).slice(0, 40)}`,
      );
    return h;
  }

  private checkTxid(txid: string): void {
    if (!TXID.test(txid)) throw new ChainError("not-found", `not a txid: ${txid.slice(0, 80)}`);
  }

  private async toStatus(s: EsploraStatus): Promise<TxStatus> {
    if (!s.confirmed || s.block_height == null) return { confirmations: 0, inMempool: true };
    const tip = await this.tipHeight();
    return {
      confirmations: Math.max(tip - s.block_height + 1, 1),
      blockHeight: s.block_height,
      blockHash: s.block_hash ?? undefined,
      inMempool: false,
    };
  }

  async getTxStatus(txid: string): Promise<TxStatus | undefined> {
    this.checkTxid(txid);
    const s = await this.getJson<EsploraStatus>(`/tx/${txid}/status`);
    return s ? this.toStatus(s) : undefined;
  }

  async getTx(txid: string): Promise<{ raw: Uint8Array; status: TxStatus } | undefined> {
    this.checkTxid(txid);
    const hex = await this.get(`/tx/${txid}/hex`);
    if (hex === undefined) return undefined;
    const status = await this.getTxStatus(txid);
    if (!status) return undefined;
    return { raw: new Uint8Array(Buffer.from(hex.trim(), "hex")), status };
  }

  async getUtxo(txid: string, vout: number): Promise<Utxo | undefined> {
    this.checkTxid(txid);
    const tx = await this.getJson<EsploraTx>(`/tx/${txid}`);
    const out = tx?.vout[vout];
    if (!tx || !out) return undefined;
    const spend = await this.getJson<{ spent: boolean }>(`/tx/${txid}/outspend/${vout}`);
    if (!spend || spend.spent) return undefined;
    const status = await this.toStatus(tx.status);
    return {
      txid,
      vout,
      valueSat: BigInt(out.value),
      script: new Uint8Array(Buffer.from(out.scriptpubkey, "hex")),
      confirmations: status.confirmations,
      coinbase: Boolean(tx.vin[0]?.is_coinbase),
    };
  }

  async findUtxos(script: Uint8Array): Promise<Utxo[]> {
    const addr = addressOf(script, this.network);
    if (!addr) return [];
    const list =
      (await this.getJson<{ txid: string; vout: number; value: number; status: EsploraStatus }[]>(
        `/address/${addr}/utxo`,
      )) ?? [];
    const confirmed = list.filter((u) => u.status.confirmed && u.status.block_height != null);
    if (confirmed.length === 0) return [];
    const tip = await this.tipHeight();
    // The UTXO list does not say which outputs are coinbase outputs (immature for 100 blocks): ask each tx.
    const coinbase = new Map<string, boolean>();
    for (const txid of new Set(confirmed.map((u) => u.txid))) {
      const tx = await this.getJson<EsploraTx>(`/tx/${txid}`);
      coinbase.set(txid, Boolean(tx?.vin[0]?.is_coinbase));
    }
    return confirmed
      .map((u) => ({
        txid: u.txid,
        vout: u.vout,
        valueSat: BigInt(u.value),
        script: new Uint8Array(script),
        confirmations: tip - u.status.block_height! + 1,
        coinbase: coinbase.get(u.txid) ?? false,
      }))
      .sort((a, b) => (a.txid === b.txid ? a.vout - b.vout : a.txid < b.txid ? -1 : 1));
  }

  async broadcast(raw: Uint8Array): Promise<string> {
    const hex = Buffer.from(raw).toString("hex");
    let txid: string;
    try {
      txid = Transaction.fromBuffer(raw).getId();
    } catch (err) {
      throw new ChainError("invalid", `transaction does not parse: ${(err as Error).message}`);
    }
    // bitcoind (behind Esplora) answers a resend of a known transaction with its txid: look first.
    if (await this.get(`/tx/${txid}/status`))
      throw new ChainError("already-known", `transaction ${txid} is already known`);
    const res = await this.http.request(`${this.base}/tx`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: hex,
      timeoutMs: this.timeoutMs,
      what: "esplora POST /tx",
    });
    if (res.status === 200) return res.text.trim();
    if (res.status >= 500 && !/RPC error/.test(res.text))
      throw new ChainError("unavailable", `esplora POST /tx: HTTP ${res.status}`);
    const m = /RPC error:\s*(\{.*\})\s*$/s.exec(res.text);
    if (m) {
      try {
        const e = JSON.parse(m[1]!) as { code: number; message: string };
        throw new ChainError(
          classifyRpcReject(e.code, e.message),
          `transaction ${txid} rejected: ${e.message}`,
        );
      } catch (err) {
        if (err instanceof ChainError) throw err;
      }
    }
    const reason = res.text.replace(/^sendrawtransaction RPC error:\s*/, "").trim();
    throw new ChainError(classifyReject(reason), `transaction ${txid} rejected: ${reason.slice(0, 300)}`);
  }

  async estimateFeeRate(targetBlocks: number): Promise<number> {
    const est = (await this.getJson<Record<string, number>>("/fee-estimates")) ?? {};
    const targets = Object.keys(est)
      .map(Number)
      .filter((t) => Number.isInteger(t) && Number.isFinite(est[String(t)]!))
      .sort((a, b) => a - b);
    if (targets.length === 0) return this.opts.fallbackFeeRateSatVb ?? 1;
    // The estimate for the nearest target at least as far out as asked, else the furthest one available.
    const t = targets.find((x) => x >= targetBlocks) ?? targets[targets.length - 1]!;
    return Math.max(est[String(t)]!, 1);
  }

  onBlock(listener: (height: number) => void): () => void {
    return this.poller.subscribe(listener);
  }

  async close(): Promise<void> {
    this.poller.stop();
    this.http.close();
  }
}

/** The network's address for a script, or undefined for scripts without one. */
export function addressOf(script: Uint8Array, network: ChainNetwork): string | undefined {
  const net =
    network === "bitcoin" ? networks.bitcoin : network === "regtest" ? networks.regtest : networks.testnet;
  try {
    return btcAddress.fromOutputScript(script, net);
  } catch {
    return undefined;
  }
}
