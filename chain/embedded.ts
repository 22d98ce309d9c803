// ChainBackend over the in-process bcoin regtest node (simulator mode).
import bcoin from "bcoin";
import { type ChainBackend, ChainError, type DevChain, type TxStatus, type Utxo } from "./backend.ts";
import type { RegtestNode } from "./regtest-node.ts";
import { classifyReject } from "./reject.ts";

export { classifyReject };

/** bcoin 1.0 keys transactions and blocks by hex in internal byte order: the reverse of a display txid. */
const internalHex = (displayHex: string): string => Buffer.from(displayHex, "hex").reverse().toString("hex");

export class EmbeddedChain implements DevChain {
  readonly network = "regtest" as const;
  readonly kind = "embedded" as const;
  // biome-ignore lint/suspicious/noExplicitAny: bcoin is untyped JavaScript
  private readonly node: any;

  constructor(private readonly regtest: RegtestNode) {
    this.node = regtest.bcoinNode;
  }

  async tipHeight(): Promise<number> {
    return this.node.chain.height;
  }

  private status(height: number, blockHash?: string): TxStatus {
    if (height < 0) return { confirmations: 0, inMempool: true };
    return {
      confirmations: this.node.chain.height - height + 1,
      blockHeight: height,
      blockHash: blockHash ? internalHex(blockHash) : undefined,
      inMempool: false,
    };
  }

  async getTx(txid: string): Promise<{ raw: Uint8Array; status: TxStatus } | undefined> {
    const meta = await this.node.getMeta(internalHex(txid));
    if (!meta) return undefined;
    return { raw: new Uint8Array(meta.tx.toRaw()), status: this.status(meta.height, meta.block) };
  }

  async getTxStatus(txid: string): Promise<TxStatus | undefined> {
    return (await this.getTx(txid))?.status;
  }

  async getUtxo(txid: string, vout: number): Promise<Utxo | undefined> {
    const coin = await this.node.getCoin(internalHex(txid), vout);
    return coin ? this.toUtxo(coin) : undefined;
  }

  // biome-ignore lint/suspicious/noExplicitAny: bcoin is untyped JavaScript
  private toUtxo(coin: any): Utxo {
    return {
      txid: coin.txid(),
      vout: coin.index,
      valueSat: BigInt(coin.value),
      script: new Uint8Array(coin.script.toRaw()),
      confirmations: coin.height < 0 ? 0 : this.node.chain.height - coin.height + 1,
      coinbase: Boolean(coin.coinbase),
    };
  }

  async findUtxos(script: Uint8Array): Promise<Utxo[]> {
    const addr = bcoin.Script.fromRaw(Buffer.from(script)).getAddress();
    if (!addr) return [];
    // The node's address index already drops coins a mempool transaction spends; keep confirmed ones only.
    const coins = await this.node.getCoinsByAddress([addr]);
    return (
      coins
        // biome-ignore lint/suspicious/noExplicitAny: bcoin is untyped JavaScript
        .filter((c: any) => c.height >= 0 && Buffer.from(c.script.toRaw()).equals(Buffer.from(script)))
        .map((c: unknown) => this.toUtxo(c))
        .sort((a: Utxo, b: Utxo) => (a.txid === b.txid ? a.vout - b.vout : a.txid < b.txid ? -1 : 1))
    );
  }

  async broadcast(raw: Uint8Array): Promise<string> {
    let tx: { txid(): string };
    try {
      tx = bcoin.TX.fromRaw(Buffer.from(raw));
    } catch (err) {
      throw new ChainError("invalid", `transaction does not parse: ${(err as Error).message}`);
    }
    // A confirmed transaction whose outputs are all spent would otherwise look like one with missing inputs.
    if (await this.node.getMeta(internalHex(tx.txid())))
      throw new ChainError("already-known", `transaction ${tx.txid()} is already in the mempool or chain`);
    let missing: unknown;
    try {
      missing = await this.node.mempool.addTX(tx);
    } catch (err) {
      const e = err as { type?: string; reason?: string; message: string };
      if (e.type === "VerifyError") {
        const reason = e.reason ?? e.message;
        throw new ChainError(classifyReject(reason), `transaction ${tx.txid()} rejected: ${reason}`);
      }
      throw err;
    }
    if (missing) {
      this.node.mempool.removeOrphan?.(internalHex(tx.txid()));
      throw new ChainError("missing-inputs", `transaction ${tx.txid()} spends outputs that do not exist`);
    }
    return tx.txid();
  }

  async estimateFeeRate(_targetBlocks: number): Promise<number> {
    // An empty regtest mempool has no fee market: the relay minimum (1 sat/vB) always confirms.
    return 1;
  }

  onBlock(listener: (height: number) => void): () => void {
    return this.regtest.onBlock(listener);
  }

  async mine(n: number, script?: Uint8Array): Promise<string[]> {
    if (!script) return this.regtest.mine(n);
    const addr = bcoin.Script.fromRaw(Buffer.from(script)).getAddress();
    if (!addr) throw new ChainError("invalid", "coinbase script has no address form");
    return this.regtest.mine(n, addr.toString("regtest"));
  }

  async fund(script: Uint8Array, amountSat: bigint): Promise<{ txid: string } | { unavailable: string }> {
    const addr = bcoin.Script.fromRaw(Buffer.from(script)).getAddress();
    if (!addr) throw new ChainError("invalid", "the script has no address form");
    try {
      return { txid: await this.regtest.faucetSend(addr.toString("regtest"), amountSat) };
    } catch (err) {
      return { unavailable: `the simulator's faucet: ${(err as Error).message}` };
    }
  }

  async close(): Promise<void> {
    // The RegtestNode is owned by whoever started it.
  }
}

export type { ChainBackend };
