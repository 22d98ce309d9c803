// A small Esplora-compatible HTTP server over the embedded bcoin node, answering the routes EsploraChain uses
// with bodies shaped like Blockstream's electrs (see chain/esplora.ts for the shapes). Refusals are
// reported as electrs relays them from bitcoind: HTTP 400 `sendrawtransaction RPC error: {"code":…,"message":…}`
// with Bitcoin Core's reason strings. Spends are indexed from blocks connected after the server starts.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import bcoin from "bcoin";
import { address as btcAddress, networks } from "bitcoinjs-lib";
import type { RegtestNode } from "../../chain/regtest-node.ts";

const rev = (hex: string) => Buffer.from(hex, "hex").reverse().toString("hex");

/** bcoin's reject reasons → what bitcoind says (code, message). */
function coreReject(reason: string): { code: number; message: string } {
  switch (reason) {
    case "bad-txns-inputs-spent":
      return { code: -26, message: "txn-mempool-conflict" };
    case "insufficient priority":
      return { code: -26, message: "min relay fee not met" };
    case "txn-already-known":
      return { code: -27, message: "Transaction outputs already in utxo set" };
    default:
      return { code: -26, message: reason };
  }
}

export class FakeEsplora {
  private readonly spends = new Map<string, { txid: string; vin: number; height: number; hash: string }>();
  private readonly unsubscribe: () => void;
  feeEstimates: Record<string, number> = {};
  requests: string[] = [];

  private constructor(
    private readonly node: RegtestNode,
    private readonly server: Server,
    readonly url: string,
  ) {
    // biome-ignore lint/suspicious/noExplicitAny: bcoin is untyped JavaScript
    const handler = (entry: any, block: any) => {
      for (const tx of block.txs) {
        if (tx.isCoinbase()) continue;
        tx.inputs.forEach((input: { prevout: { txid(): string; index: number } }, vin: number) => {
          this.spends.set(`${input.prevout.txid()}:${input.prevout.index}`, {
            txid: tx.txid(),
            vin,
            height: entry.height,
            hash: entry.rhash(),
          });
        });
      }
    };
    node.bcoinNode.on("connect", handler);
    this.unsubscribe = () => node.bcoinNode.off("connect", handler);
  }

  static async start(node: RegtestNode): Promise<FakeEsplora> {
    let self: FakeEsplora | undefined;
    const server = createServer((req, res) => {
      self!.handle(req, res).catch((err: Error) => send(res, 500, err.message));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    self = new FakeEsplora(node, server, `http://127.0.0.1:${port}/api`);
    return self;
  }

  private get bn() {
    return this.node.bcoinNode;
  }

  private async status(height: number, blockInternal?: string) {
    if (height < 0) return { confirmed: false };
    const entry = await this.bn.chain.getEntry(height);
    return {
      confirmed: true,
      block_height: height,
      block_hash: blockInternal ? rev(blockInternal) : entry.rhash(),
      block_time: entry.time,
    };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    const path = url.pathname.replace(/^\/api/, "");
    this.requests.push(`${req.method} ${path}`);
    if (req.method === "POST" && path === "/tx") return this.postTx(await body(req), res);
    if (path === "/blocks/tip/height") return send(res, 200, String(this.bn.chain.height));
    if (path === "/fee-estimates") return json(res, this.feeEstimates);
    const m = /^\/tx\/([0-9a-f]{64})(\/hex|\/status|\/outspend\/(\d+))?$/.exec(path);
    if (m) {
      const meta = await this.bn.getMeta(rev(m[1]!));
      if (!meta) return send(res, 404, "Transaction not found");
      if (m[2] === "/hex") return send(res, 200, meta.tx.toRaw().toString("hex"));
      const status = await this.status(meta.height, meta.block);
      if (m[2] === "/status") return json(res, status);
      if (m[3] !== undefined) return json(res, await this.outspend(m[1]!, Number(m[3]), meta.tx));
      return json(res, {
        txid: meta.tx.txid(),
        version: meta.tx.version,
        locktime: meta.tx.locktime,
        vin: meta.tx.inputs.map((i: { prevout: { txid(): string; index: number }; sequence: number }) => ({
          txid: meta.tx.isCoinbase() ? "0".repeat(64) : i.prevout.txid(),
          vout: meta.tx.isCoinbase() ? 0xffffffff : i.prevout.index,
          is_coinbase: meta.tx.isCoinbase(),
          sequence: i.sequence,
        })),
        vout: meta.tx.outputs.map((o: { script: { toRaw(): Buffer }; value: number }) => ({
          scriptpubkey: o.script.toRaw().toString("hex"),
          value: o.value,
        })),
        size: meta.tx.getSize(),
        weight: meta.tx.getWeight(),
        status,
      });
    }
    const a = /^\/address\/([^/]+)\/utxo$/.exec(path);
    if (a) {
      const script = btcAddress.toOutputScript(a[1]!, networks.regtest);
      const addr = bcoin.Script.fromRaw(Buffer.from(script)).getAddress();
      const coins = await this.bn.getCoinsByAddress([addr]);
      const out = [];
      for (const c of coins) {
        out.push({ txid: c.txid(), vout: c.index, value: c.value, status: await this.status(c.height) });
      }
      return json(res, out);
    }
    send(res, 404, "Not found");
  }

  private async outspend(txid: string, vout: number, tx: { outputs: unknown[] }) {
    if (vout >= tx.outputs.length) return { spent: false };
    if (await this.bn.getCoin(rev(txid), vout)) return { spent: false };
    const mempoolSpender = this.bn.mempool.getSpentTX(rev(txid), vout);
    if (mempoolSpender) {
      const vin = mempoolSpender.inputs.findIndex(
        (i: { prevout: { txid(): string; index: number } }) =>
          i.prevout.txid() === txid && i.prevout.index === vout,
      );
      return { spent: true, txid: mempoolSpender.txid(), vin, status: { confirmed: false } };
    }
    const s = this.spends.get(`${txid}:${vout}`);
    if (!s) throw new Error(`spend of ${txid}:${vout} happened before the fake started indexing`);
    return { spent: true, txid: s.txid, vin: s.vin, status: await this.status(s.height, rev(s.hash)) };
  }

  private async postTx(hex: string, res: ServerResponse): Promise<void> {
    let tx: { txid(): string; hash(enc: string): string };
    try {
      tx = bcoin.TX.fromRaw(Buffer.from(hex.trim(), "hex"));
    } catch {
      return rpcError(res, -22, "TX decode failed");
    }
    try {
      const missing = await this.bn.mempool.addTX(tx);
      if (missing) {
        this.bn.mempool.removeOrphan(tx.hash("hex"));
        return rpcError(res, -25, "bad-txns-inputs-missingorspent");
      }
    } catch (err) {
      const e = err as { type?: string; reason?: string };
      if (e.type !== "VerifyError") throw err;
      // Modern bitcoind accepts a resend of a mempool transaction and answers with its txid.
      if (e.reason === "txn-already-in-mempool") return send(res, 200, tx.txid());
      const { code, message } = coreReject(e.reason ?? "rejected");
      return rpcError(res, code, message);
    }
    send(res, 200, tx.txid());
  }

  async close(): Promise<void> {
    this.unsubscribe();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function send(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "content-type": "text/plain" });
  res.end(text);
}

function json(res: ServerResponse, value: unknown): void {
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify(value));
}

function rpcError(res: ServerResponse, code: number, message: string): void {
  send(res, 400, `sendrawtransaction RPC error: ${JSON.stringify({ code, message })}`);
}

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      data += chunk;
    });
    req.on("end", () => resolve(data));
    req.on("error", reject);
  });
}
