// ChainBackend over bitcoind's JSON-RPC (basic auth, per-request timeout). Needs txindex=1 for getTx on
// confirmed transactions. Also speaks to bcoin's bitcoind-compatible RPC server (the embedded regtest node's),
// detected from getnetworkinfo's subversion; where bcoin's RPC falls short it uses what bcoin offers instead:
//   - sendrawtransaction does not wait for the mempool and never reports a rejection, so the transaction's
//     fate is read back (getmempoolentry) and a refusal is diagnosed from the chain state (finality, BIP68,
//     inputs, fee, dust) — bcoin does not say why;
//   - gettxout ignores mempool spends and there is no scantxoutset: bcoin's REST endpoints on the same server
//     (GET /coin/:txid/:vout, GET /coin/address/:address) answer getUtxo and findUtxos.
import { address as btcAddress, networks, Transaction } from "bitcoinjs-lib";
import { classifyScript, dustThreshold } from "../protocol/tx/script.ts";
import { ChainError, type ChainNetwork, type DevChain, type TxStatus, type Utxo } from "./backend.ts";
import { HttpClient, TipPoller } from "./http.ts";
import { classifyRpcReject } from "./reject.ts";

export interface BitcoindOptions {
  url: string;
  user: string;
  password: string;
  network: ChainNetwork;
  timeoutMs?: number;
  /** How often the tip is polled for onBlock. */
  pollIntervalMs?: number;
  /** Used when the node has no fee estimate yet (regtest, fresh node). */
  fallbackFeeRateSatVb?: number;
  /** "auto" asks getnetworkinfo once. */
  flavor?: "auto" | "bitcoind" | "bcoin";
  /** bcoin only: how long to wait for the mempool to take a relayed transaction. */
  acceptWaitMs?: number;
  onError?: (err: Error) => void;
  /**
   * What errors call the node (default "bitcoind"): e.g. "the simulator's embedded regtest node at <url>", so a
   * message names the node the user runs rather than a bitcoind they never configured.
   */
  name?: string;
}

/** An error object returned by the JSON-RPC server. */
export class RpcError extends Error {
  override name = "RpcError";
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

const RPC_INVALID_ADDRESS_OR_KEY = -5;

const btcToSat = (btc: number): bigint => BigInt(Math.round(btc * 1e8));

interface RawTxJson {
  hex: string;
  confirmations?: number;
  blockhash?: string | null;
}

export class BitcoindChain implements DevChain {
  readonly kind = "bitcoind" as const;
  readonly network: ChainNetwork;
  private readonly auth: string;
  private readonly timeoutMs: number;
  private readonly poller: TipPoller;
  private readonly http = new HttpClient();
  private flavor: Promise<"bitcoind" | "bcoin"> | undefined;
  private nextId = 1;

  constructor(private readonly opts: BitcoindOptions) {
    this.network = opts.network;
    this.auth = `Basic ${Buffer.from(`${opts.user}:${opts.password}`).toString("base64")}`;
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    this.poller = new TipPoller(() => this.tipHeight(), opts.pollIntervalMs ?? 2000, opts.onError);
    if (opts.flavor && opts.flavor !== "auto") this.flavor = Promise.resolve(opts.flavor);
  }

  /** The node and the call, for error messages: "bitcoind getblockcount", "<name> (getblockcount)". */
  private what(call: string): string {
    return this.opts.name
      ? `${this.opts.name} (${call})`
      : `${/^GET /.test(call) ? "bcoin" : "bitcoind"} ${call}`;
  }

  /** One JSON-RPC 1.0 call; an error object in the answer becomes an RpcError. */
  async rpc<T>(method: string, params: unknown[] = []): Promise<T> {
    return this.rpcRaw<T>(method, JSON.stringify(params));
  }

  /** rpc() with the parameters as JSON text (amounts written exactly). */
  private async rpcRaw<T>(method: string, params: string): Promise<T> {
    const res = await this.http.request(this.opts.url, {
      method: "POST",
      headers: { authorization: this.auth, "content-type": "application/json" },
      body: `{"jsonrpc":"1.0","id":${this.nextId++},"method":${JSON.stringify(method)},"params":${params}}`,
      timeoutMs: this.timeoutMs,
      what: this.what(method),
    });
    if (res.status === 401 || res.status === 403)
      throw new ChainError(
        "unavailable",
        `${this.what(method)}: RPC authentication failed (HTTP ${res.status})`,
      );
    let body: { result?: T; error?: { code: number; message: string } | null };
    try {
      body = JSON.parse(res.text);
    } catch {
      throw new ChainError(
        "bad-response",
        `${this.what(method)}: HTTP ${res.status} without a JSON-RPC answer`,
      );
    }
    if (body.error) throw new RpcError(body.error.code, body.error.message);
    if (res.status !== 200 || !("result" in body))
      throw new ChainError("bad-response", `${this.what(method)}: HTTP ${res.status} without a result`);
    return body.result as T;
  }

  private getFlavor(): Promise<"bitcoind" | "bcoin"> {
    this.flavor ??= this.rpc<{ subversion?: string }>("getnetworkinfo").then(
      (info) => (/bcoin/i.test(info.subversion ?? "") ? "bcoin" : "bitcoind"),
      (err) => {
        this.flavor = undefined;
        throw err;
      },
    );
    return this.flavor;
  }

  /** bcoin's REST API on the RPC server (same credentials); undefined on 404. */
  private async rest<T>(path: string): Promise<T | undefined> {
    const res = await this.http.request(new URL(path, this.opts.url).toString(), {
      headers: { authorization: this.auth },
      timeoutMs: this.timeoutMs,
      what: this.what(`GET ${path}`),
    });
    if (res.status === 404) return undefined;
    if (res.status !== 200)
      throw new ChainError("bad-response", `${this.what(`GET ${path}`)}: HTTP ${res.status}`);
    try {
      return JSON.parse(res.text) as T;
    } catch {
      throw new ChainError("bad-response", `${this.what(`GET ${path}`)}: not JSON`);
    }
  }

  async tipHeight(): Promise<number> {
    return this.rpc<number>("getblockcount");
  }

  /**
   * Regtest only: mines `n` blocks with `generatetoaddress`, paying the coinbase to `script` (or to the node's
   * own address, see ownAddress). bcoin's regtest spells bech32 addresses with "rb", bitcoind's with "bcrt".
   */
  async mine(n: number, script?: Uint8Array): Promise<string[]> {
    if (this.network !== "regtest")
      throw new ChainError("invalid", "mining on demand exists on regtest only");
    const address = script ? await this.regtestAddress(script) : await this.ownAddress();
    return this.rpc<string[]>("generatetoaddress", [n, address]);
  }

  /** A script as a regtest address in the node's spelling ("rb1…" for bcoin, "bcrt1…" for bitcoind). */
  private async regtestAddress(script: Uint8Array): Promise<string> {
    const hrp = (await this.getFlavor()) === "bcoin" ? "rb" : "bcrt";
    return btcAddress.fromOutputScript(script, { ...networks.regtest, bech32: hrp });
  }

  private own: Promise<string> | undefined;

  /**
   * Where blocks mined for nobody in particular pay: the node's own wallet (`getnewaddress`: bitcoind's wallet,
   * the simulator's faucet key), so its funds keep growing; a throwaway script when the node has no wallet.
   */
  private ownAddress(): Promise<string> {
    this.own ??= this.rpc<string>("getnewaddress").catch(async (err) => {
      if (!(err instanceof RpcError)) {
        this.own = undefined;
        throw err;
      }
      return this.regtestAddress(Uint8Array.from([0, 20, ...new Uint8Array(20).fill(1)]));
    });
    return this.own;
  }

  /**
   * Regtest: pays `amountSat` to `script` from the node's own funds with `sendtoaddress` (bitcoind's wallet; the
   * simulator's faucet key, funded by the chain's early coinbases). Resolves with the txid, in the mempool until
   * a block is mined; or with why not (no wallet on the node, too little in it).
   */
  async fund(script: Uint8Array, amountSat: bigint): Promise<{ txid: string } | { unavailable: string }> {
    if (this.network !== "regtest") return { unavailable: "a faucet exists on regtest only" };
    const address = await this.regtestAddress(script);
    const btc = `${amountSat / 100_000_000n}.${String(amountSat % 100_000_000n).padStart(8, "0")}`;
    try {
      // The amount as a JSON number with at most eight decimals, as bitcoind parses it.
      return { txid: await this.rpcRaw<string>("sendtoaddress", `["${address}",${btc}]`) };
    } catch (err) {
      if (err instanceof RpcError) return { unavailable: `${this.what("sendtoaddress")}: ${err.message}` };
      throw err;
    }
  }

  private async rawTx(txid: string): Promise<RawTxJson | undefined> {
    try {
      return await this.rpc<RawTxJson>("getrawtransaction", [txid, true]);
    } catch (err) {
      // bitcoind: -5 "No such mempool or blockchain transaction"; bcoin: -1 "Transaction not found."
      if (
        err instanceof RpcError &&
        (err.code === RPC_INVALID_ADDRESS_OR_KEY || /not found/i.test(err.message))
      )
        return undefined;
      throw err;
    }
  }

  async getTx(txid: string): Promise<{ raw: Uint8Array; status: TxStatus } | undefined> {
    const json = await this.rawTx(txid);
    if (!json) return undefined;
    const raw = new Uint8Array(Buffer.from(json.hex, "hex"));
    if (!json.blockhash || !json.confirmations) return { raw, status: { confirmations: 0, inMempool: true } };
    const header = await this.rpc<{ height: number }>("getblockheader", [json.blockhash, true]);
    return {
      raw,
      status: {
        confirmations: json.confirmations,
        blockHeight: header.height,
        blockHash: json.blockhash,
        inMempool: false,
      },
    };
  }

  async getTxStatus(txid: string): Promise<TxStatus | undefined> {
    return (await this.getTx(txid))?.status;
  }

  async getUtxo(txid: string, vout: number): Promise<Utxo | undefined> {
    if ((await this.getFlavor()) === "bcoin") {
      const coin = await this.rest<BcoinCoin>(`coin/${txid}/${vout}`);
      return coin ? this.fromBcoinCoin(coin, await this.tipHeight()) : undefined;
    }
    const out = await this.rpc<{
      confirmations: number;
      value: number;
      scriptPubKey: { hex: string };
      coinbase: boolean;
    } | null>("gettxout", [txid, vout, true]);
    if (!out) return undefined;
    return {
      txid,
      vout,
      valueSat: btcToSat(out.value),
      script: new Uint8Array(Buffer.from(out.scriptPubKey.hex, "hex")),
      confirmations: out.confirmations,
      coinbase: out.coinbase,
    };
  }

  private fromBcoinCoin(c: BcoinCoin, tip: number): Utxo {
    return {
      txid: c.hash,
      vout: c.index,
      valueSat: BigInt(c.value),
      script: new Uint8Array(Buffer.from(c.script, "hex")),
      confirmations: c.height < 0 ? 0 : tip - c.height + 1,
      coinbase: c.coinbase,
    };
  }

  async findUtxos(script: Uint8Array): Promise<Utxo[]> {
    const hex = Buffer.from(script).toString("hex");
    if ((await this.getFlavor()) === "bcoin") {
      const addr = bcoinAddress(script, this.network);
      if (!addr) return [];
      const tip = await this.tipHeight();
      const coins = (await this.rest<BcoinCoin[]>(`coin/address/${addr}`)) ?? [];
      return coins
        .filter((c) => c.script === hex && c.height >= 0)
        .map((c) => this.fromBcoinCoin(c, tip))
        .sort(byOutpoint);
    }
    const scan = await this.rpc<{
      height: number;
      unspents: { txid: string; vout: number; amount: number; height: number; coinbase?: boolean }[];
    }>("scantxoutset", ["start", [{ desc: `raw(${hex})` }]]);
    const out: Utxo[] = [];
    for (const u of scan.unspents) {
      // scantxoutset reads the chain's UTXO set only: drop outputs a mempool transaction already spends.
      const live = await this.rpc<unknown>("gettxout", [u.txid, u.vout, true]);
      if (!live) continue;
      out.push({
        txid: u.txid,
        vout: u.vout,
        valueSat: btcToSat(u.amount),
        script: new Uint8Array(script),
        confirmations: scan.height - u.height + 1,
        coinbase: Boolean(u.coinbase),
      });
    }
    return out.sort(byOutpoint);
  }

  async broadcast(raw: Uint8Array): Promise<string> {
    let tx: Transaction;
    try {
      tx = Transaction.fromBuffer(raw);
    } catch (err) {
      throw new ChainError("invalid", `transaction does not parse: ${(err as Error).message}`);
    }
    const txid = tx.getId();
    const bcoin = (await this.getFlavor()) === "bcoin";
    // Modern bitcoind answers a resend of a mempool transaction with its txid: look first, so that every
    // backend reports "already-known" the same way.
    if (await this.inMempool(txid))
      throw new ChainError("already-known", `transaction ${txid} is already in the mempool`);
    if (bcoin) {
      if (await this.rawTx(txid))
        throw new ChainError("already-known", `transaction ${txid} is already confirmed`);
      await this.preflight(tx, txid);
    }
    try {
      await this.rpc<string>("sendrawtransaction", [Buffer.from(raw).toString("hex")]);
    } catch (err) {
      if (err instanceof RpcError) {
        throw new ChainError(
          classifyRpcReject(err.code, err.message),
          `transaction ${txid} rejected: ${err.message}`,
        );
      }
      throw err;
    }
    if (bcoin) await this.confirmAccepted(tx, txid);
    return txid;
  }

  private async inMempool(txid: string): Promise<boolean> {
    try {
      await this.rpc("getmempoolentry", [txid]);
      return true;
    } catch (err) {
      if (err instanceof RpcError) return false;
      throw err;
    }
  }

  /** bcoin: the checks its mempool makes first, so the usual refusals come back with their reason. */
  private async preflight(tx: Transaction, txid: string): Promise<void> {
    const tip = await this.tipHeight();
    const locktimeActive = tx.ins.some((i) => i.sequence !== 0xffffffff);
    if (locktimeActive && tx.locktime > 0 && tx.locktime < 500_000_000 && tx.locktime > tip)
      throw new ChainError(
        "non-final",
        `transaction ${txid} rejected: non-final (locktime ${tx.locktime}, tip ${tip})`,
      );
    for (const [i, input] of tx.ins.entries()) {
      const prevTxid = Buffer.from(input.hash).reverse().toString("hex");
      const coin = await this.rest<BcoinCoin>(`coin/${prevTxid}/${input.index}`);
      if (!coin) {
        const onChain = await this.rpc<unknown>("gettxout", [prevTxid, input.index, false]);
        const parentInMempool = !onChain && (await this.inMempool(prevTxid));
        if (onChain || parentInMempool)
          throw new ChainError(
            "conflict",
            `transaction ${txid} rejected: input ${i} is spent by a mempool transaction`,
          );
        throw new ChainError(
          "missing-inputs",
          `transaction ${txid} rejected: input ${i} does not exist or is spent`,
        );
      }
      const seq = input.sequence;
      // BIP68 height-based relative lock (disable flag and type flag clear).
      if (tx.version >= 2 && !(seq & 0x80000000) && !(seq & 0x00400000)) {
        const coinHeight = coin.height < 0 ? tip + 1 : coin.height;
        if (coinHeight + (seq & 0xffff) - 1 >= tip + 1)
          throw new ChainError("non-final", `transaction ${txid} rejected: non-BIP68-final (input ${i})`);
      }
    }
  }

  /** bcoin relays without waiting: watch for the transaction in the mempool, and if it never arrives, say why. */
  private async confirmAccepted(tx: Transaction, txid: string): Promise<void> {
    const deadline = Date.now() + (this.opts.acceptWaitMs ?? 1000);
    for (;;) {
      if ((await this.inMempool(txid)) || (await this.rawTx(txid))) return;
      if (Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const [code, reason] = await this.diagnose(tx);
    throw new ChainError(code, `transaction ${txid} rejected by bcoin (reason diagnosed here): ${reason}`);
  }

  /** The likeliest reason bcoin refused `tx`, checked in the order its mempool checks. */
  private async diagnose(tx: Transaction): Promise<[ChainError["code"], string]> {
    if (tx.version < 1 || tx.version > 2) return ["nonstandard", `version ${tx.version}`];
    for (const [i, o] of tx.outs.entries()) {
      if (classifyScript(o.script) === "nonstandard")
        return ["nonstandard", `output ${i} script is not standard`];
      if (o.value < dustThreshold(o.script)) return ["nonstandard", `output ${i} is dust`];
    }
    let inputs = 0n;
    for (const [i, input] of tx.ins.entries()) {
      const coin = await this.rest<BcoinCoin>(
        `coin/${Buffer.from(input.hash).reverse().toString("hex")}/${input.index}`,
      );
      if (!coin) return ["missing-inputs", `input ${i} is missing or spent`];
      inputs += BigInt(coin.value);
    }
    const fee = inputs - tx.outs.reduce((s, o) => s + o.value, 0n);
    const info = await this.rpc<{ relayfee?: number }>("getnetworkinfo");
    const minFee = BigInt(Math.ceil((tx.virtualSize() * btcToSatNumber(info.relayfee ?? 0.00001)) / 1000));
    if (fee < minFee) return ["fee", `fee ${fee} sat is below the relay minimum ${minFee} sat`];
    return ["invalid", "script or consensus failure (bcoin's RPC does not report the reason)"];
  }

  async estimateFeeRate(targetBlocks: number): Promise<number> {
    let est: { feerate?: number; fee?: number; errors?: string[] };
    try {
      est = await this.rpc("estimatesmartfee", [targetBlocks]);
    } catch (err) {
      if (!(err instanceof RpcError)) throw err;
      est = {};
    }
    // bitcoind: feerate in BTC/kvB (absent, with errors, until it has data); bcoin: fee in BTC/kB or -1.
    const perKvb = est.feerate ?? (est.fee !== undefined && est.fee > 0 ? est.fee : undefined);
    if (perKvb === undefined) return this.opts.fallbackFeeRateSatVb ?? 1;
    return Math.max(btcToSatNumber(perKvb) / 1000, 1);
  }

  onBlock(listener: (height: number) => void): () => void {
    return this.poller.subscribe(listener);
  }

  async close(): Promise<void> {
    this.poller.stop();
    this.http.close();
  }
}

const btcToSatNumber = (btc: number): number => Math.round(btc * 1e8);

interface BcoinCoin {
  hash: string;
  index: number;
  height: number;
  value: number;
  script: string;
  coinbase: boolean;
}

function byOutpoint(a: Utxo, b: Utxo): number {
  return a.txid === b.txid ? a.vout - b.vout : a.txid < b.txid ? -1 : 1;
}

/** The address bcoin's REST API expects for a script (bcoin's regtest bech32 prefix is "rb", not "bcrt"). */
function bcoinAddress(script: Uint8Array, network: ChainNetwork): string | undefined {
  const net =
    network === "bitcoin" ? networks.bitcoin : network === "regtest" ? networks.regtest : networks.testnet;
  const bech32 = network === "bitcoin" ? "bc" : network === "regtest" ? "rb" : "tb";
  try {
    return btcAddress.fromOutputScript(script, { ...net, bech32 });
  } catch {
    return undefined;
  }
}
