// The embedded regtest chain for simulator mode: a bcoin full node running in this process, with real consensus
// and mempool rules, mining on demand and optionally on an interval. Its bitcoind-compatible JSON-RPC server
// listens on loopback so wallets and tools can use it like a local bitcoind.
import { randomBytes } from "node:crypto";
import { sha256 } from "@noble/hashes/sha2.js";
import { bech32, bech32m, createBase58check } from "@scure/base";
import bcoin from "bcoin";

const base58check = createBase58check(sha256);
/** bitcoind's regtest base58 version bytes → bcoin's (P2PKH 0x6f → 0x3c, P2SH 0xc4 → 0x26). */
const BASE58_VERSIONS = new Map([
  [0x6f, 0x3c],
  [0xc4, 0x26],
]);

/**
 * A bitcoind regtest address in bcoin's regtest spelling ("bcrt1…" → "rb1…", "m…"/"n…" → "R…", "2…" → bcoin's
 * P2SH prefix); anything else unchanged. The script it stands for is the same: only the prefix differs.
 */
export function bcoinRegtestAddress(text: string): string {
  if (/^bcrt1/i.test(text)) {
    for (const coder of [bech32, bech32m]) {
      try {
        const { words } = coder.decode(text as `${string}1${string}`, 1023);
        // A version 0 program is bech32, a later one bech32m (BIP350): keep the variant it decoded with.
        if ((words[0] === 0) === (coder === bech32)) return coder.encode("rb", words, 1023);
      } catch {}
    }
    return text;
  }
  if (/^[mn2][1-9A-HJ-NP-Za-km-z]{25,34}$/.test(text)) {
    try {
      const payload = base58check.decode(text);
      const version = BASE58_VERSIONS.get(payload[0]!);
      if (payload.length === 21 && version !== undefined)
        return base58check.encode(Uint8Array.from([version, ...payload.subarray(1)]));
    } catch {}
  }
  return text;
}

/** RPC parameters with every bitcoind regtest address (values, and object keys as in createrawtransaction) in bcoin's spelling. */
function bcoinParams(v: unknown): unknown {
  if (typeof v === "string") return bcoinRegtestAddress(v);
  if (Array.isArray(v)) return v.map(bcoinParams);
  if (v && typeof v === "object")
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [bcoinRegtestAddress(k), bcoinParams(x)]));
  return v;
}

export interface RegtestNodeOptions {
  /** Unused by the in-memory node; kept for the callers' call shape. */
  dataDir: string;
  rpcHost?: string;
  /** 0 picks a free port. */
  rpcPort: number;
  /** Blocks mined at first start so coinbase outputs are mature. */
  initialBlocks: number;
  /**
   * Mempool standardness (dust, output types, witness sizes), as Bitcoin Core's regtest enforces by default.
   * bcoin's regtest turns it off; default true so the simulator refuses what mainnet nodes would not relay.
   */
  requireStandard?: boolean;
}

export interface RpcEndpoint {
  url: string;
  user: string;
  password: string;
}

export class RegtestNode {
  readonly rpc: RpcEndpoint;
  private mining: NodeJS.Timeout | undefined;
  private readonly coinbase: unknown;
  private closed = false;

  private constructor(
    // biome-ignore lint/suspicious/noExplicitAny: bcoin is untyped JavaScript
    private readonly node: any,
    rpc: RpcEndpoint,
  ) {
    this.rpc = rpc;
    // Interval-mined rewards go to a throwaway key: they only move the chain forward.
    this.coinbase = bcoin.KeyRing.generate().getAddress();
  }

  static async start(opts: RegtestNodeOptions): Promise<RegtestNode> {
    const apiKey = randomBytes(24).toString("hex");
    const node = new bcoin.FullNode({
      network: "regtest",
      // In memory only: bcoin 1.0.2's database layer (bdb 0.2, written for leveldown 4) iterates nothing on
      // the leveldown 6 that Node 20 needs, so an on-disk chain would have an empty address index. A chain
      // that must outlive the host runs as its own process (or is a real bitcoind).
      memory: true,
      workers: false,
      listen: false,
      selfish: true,
      logLevel: "none",
      indexTX: true,
      indexAddress: true,
      requireStandard: opts.requireStandard ?? true,
      httpHost: opts.rpcHost ?? "127.0.0.1",
      httpPort: opts.rpcPort,
      apiKey,
    });
    await node.open();
    // bitcoind-compatible means taking bitcoind's regtest addresses ("bcrt1…", what wallets print) too, not only
    // bcoin's own ("rb1…"): the RPC server converts them before bcoin parses the call.
    const execute = node.rpc.execute.bind(node.rpc);
    node.rpc.execute = (json: { method: string; params?: unknown }, help?: boolean) =>
      execute({ ...json, params: bcoinParams(json.params) }, help);
    // bcoin's invalidateblock rewinds the chain, but the pool's "reset" listener (registered before the mempool's)
    // throws on a node with no peers, so the mempool never follows and every later block template fails the
    // miner's mempool/tip check: mining stopped for good. Only a connected pool has peers to re-sync from.
    const forceSync = node.pool.forceSync.bind(node.pool);
    node.pool.forceSync = () => {
      if (node.pool.connected) forceSync();
    };
    // bitcoind returns the transactions of the blocks it disconnects to the mempool; bcoin's rewind deletes them.
    // Do as bitcoind does, so a reorg test sees a transaction leave the chain and come back unless replaced.
    node.rpc.calls.invalidateblock = async (args: unknown[], help: boolean) => {
      if (help || args.length !== 1 || typeof args[0] !== "string" || !/^[0-9a-f]{64}$/i.test(args[0]))
        return node.rpc.invalidateBlock(args, help);
      const hash = Buffer.from(args[0], "hex").reverse().toString("hex");
      const txs: unknown[] = [];
      for (
        let entry = node.chain.tip;
        entry && entry.height > 0;
        entry = await node.chain.getPrevious(entry)
      ) {
        if (!(await node.chain.isMainChain(entry))) break;
        const block = await node.chain.getBlock(entry.hash);
        txs.unshift(...block.txs.slice(1));
        if (entry.hash === hash) break;
      }
      const pending = node.mempool.getSnapshot().map((h: string) => node.mempool.getTX(h));
      await node.rpc.invalidateBlock(args, help);
      for (const tx of [...txs, ...pending]) {
        try {
          await node.mempool.addTX(tx);
        } catch {
          // Conflicts with, or depends on, what no longer exists: dropped, as bitcoind drops it.
        }
      }
      return null;
    };
    const port: number = node.http.address().port;
    const self = new RegtestNode(node, {
      url: `http://${opts.rpcHost ?? "127.0.0.1"}:${port}/`,
      user: "x",
      password: apiKey,
    });
    if (node.chain.height < opts.initialBlocks) await self.mine(opts.initialBlocks - node.chain.height);
    return self;
  }

  /** The underlying bcoin FullNode, for the chain backend that wraps it. */
  // biome-ignore lint/suspicious/noExplicitAny: bcoin is untyped JavaScript
  get bcoinNode(): any {
    return this.node;
  }

  height(): number {
    return this.node.chain.height;
  }

  tipHash(): string {
    return this.node.chain.tip.rhash();
  }

  /** Mines n blocks (including mempool transactions) to `address`, or to a throwaway key. */
  async mine(n: number, address?: string): Promise<string[]> {
    const addr = address ? bcoin.Address.fromString(address, "regtest") : this.coinbase;
    return this.node.rpc.mineBlocks(n, addr);
  }

  /**
   * Calls `listener` for each connected block, after the mempool has dropped the block's transactions (the
   * node's "connect" event, not the chain's, which fires before the mempool catches up).
   */
  onBlock(listener: (height: number) => void): () => void {
    const handler = (entry: { height: number }) => listener(entry.height);
    this.node.on("connect", handler);
    return () => this.node.off("connect", handler);
  }

  /** Mines one block every intervalMs until stopped; 0 disables interval mining. */
  startIntervalMining(intervalMs: number, onError: (err: Error) => void): void {
    this.stopIntervalMining();
    if (intervalMs <= 0) return;
    this.mining = setInterval(() => {
      this.mine(1).catch((err: Error) => {
        if (!this.closed) onError(err);
      });
    }, intervalMs);
    this.mining.unref();
  }

  stopIntervalMining(): void {
    if (this.mining) clearInterval(this.mining);
    this.mining = undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopIntervalMining();
    // Transactions sent through the RPC server are "broadcast" to peers that never come (listen: false, no
    // outbound): each waits 60 s on a timer the pool only clears when it was connected. Finish them here.
    for (const item of [...this.node.pool.invMap.values()]) item.resolve();
    await this.node.close();
  }
}
