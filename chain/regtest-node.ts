// The embedded regtest chain for simulator mode: a bcoin full node running in this process, with real consensus
// and mempool rules, mining on demand and optionally on an interval. Its bitcoind-compatible JSON-RPC server
// listens on loopback so wallets and tools can use it like a local bitcoind.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import { bech32, bech32m, createBase58check } from "@scure/base";
import bcoin from "bcoin";

const base58check = createBase58check(sha256);

/**
 * bcoin 1.0.2's database layer (bdb 0.2, written for leveldown 4) passes unset range options as null; leveldown 6
 * (what package.json pins, with prebuilt N-API bindings for Node 20) serializes a null bound as the string "null",
 * so every ranged iteration (the address index, the mempool cache) found nothing. Unset bounds are dropped before
 * leveldown sees them; set ones are untouched. Only bcoin uses leveldown in this process.
 */
let leveldownPatched = false;
function patchLeveldown(): void {
  if (leveldownPatched) return;
  leveldownPatched = true;
  const leveldown = createRequire(import.meta.url)("leveldown") as {
    prototype: { iterator(options?: Record<string, unknown>): unknown };
  };
  const iterator = leveldown.prototype.iterator;
  leveldown.prototype.iterator = function (this: unknown, options?: Record<string, unknown>) {
    const clean = { ...options };
    for (const k of ["gt", "gte", "lt", "lte"]) if (clean[k] == null) delete clean[k];
    return iterator.call(this, clean);
  };
}
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

/**
 * bcoin 1.0.2 keeps a persistent mempool's transactions on disk with the chain tip they were valid at, and drops
 * them all at open when that tip is not the chain's. It writes additions at most every 10 s (lastFlush, seconds)
 * and records the tip only for blocks that find a non-empty mempool, so after a block on an empty mempool
 * everything sent later was lost at the next start. Here every accepted transaction is written at once, and
 * every block records the tip, both inside bcoin's mempool lock.
 */
// biome-ignore lint/suspicious/noExplicitAny: bcoin is untyped JavaScript
function persistMempoolEagerly(mempool: any): void {
  Object.defineProperty(mempool, "lastFlush", { get: () => 0, set: () => {} });
  const addBlock = mempool._addBlock.bind(mempool);
  mempool._addBlock = async (block: { hash: string }, txs: unknown[]) => {
    await addBlock(block, txs);
    mempool.cache.sync(block.hash);
    await mempool.cache.flush();
  };
}

/**
 * bitcoind's `generateblock "output" ["rawtx"|"txid", …]` (regtest): mines one block on the tip holding exactly
 * the given transactions, in that order (a txid names one in the mempool), paying the coinbase to `output` (an
 * address). What a reorg test needs to confirm a double spend of a transaction the mempool holds: bcoin 1.0.2's
 * mempool refuses the conflict (it has no replace-by-fee), a block does not ask it. Once the block connects, the
 * mempool drops what the block's transactions double spend, as bitcoind does. Answers `{ hash }` as bitcoind.
 */
// biome-ignore lint/suspicious/noExplicitAny: bcoin is untyped JavaScript
async function generateBlock(node: any, args: unknown[], help: boolean): Promise<{ hash: string }> {
  const usage = 'generateblock "output" ["rawtx"|"txid",...]';
  if (help || args.length !== 2 || typeof args[0] !== "string" || !Array.isArray(args[1]))
    throw new Error(usage);
  let address: unknown;
  try {
    address = bcoin.Address.fromString(args[0], "regtest");
  } catch {
    throw new Error(`generateblock: ${args[0].slice(0, 100)} is not a regtest address`);
  }
  // biome-ignore lint/suspicious/noExplicitAny: bcoin is untyped JavaScript
  const txs: any[] = [];
  for (const item of args[1]) {
    if (typeof item !== "string" || !/^(?:[0-9a-f]{2})+$/i.test(item))
      throw new Error(`generateblock: ${String(item).slice(0, 100)} is neither a txid nor a raw transaction`);
    if (item.length === 64) {
      const tx = node.mempool.getTX(Buffer.from(item, "hex").reverse().toString("hex"));
      if (!tx) throw new Error(`generateblock: transaction ${item} is not in the mempool`);
      txs.push(tx);
      continue;
    }
    try {
      txs.push(bcoin.TX.fromRaw(Buffer.from(item, "hex")));
    } catch (err) {
      throw new Error(`generateblock: a raw transaction does not parse: ${(err as Error).message}`);
    }
  }
  // The RPC lock mining takes too, so no other block is built meanwhile. An empty template: the miner assembles
  // from the mempool only when it has one.
  const unlock = await node.rpc.locker.lock();
  try {
    const miner = node.miner;
    const mempool = miner.mempool;
    miner.mempool = null;
    // biome-ignore lint/suspicious/noExplicitAny: bcoin is untyped JavaScript
    let job: any;
    try {
      job = await miner.cpu.createJob(node.chain.tip, address);
    } finally {
      miner.mempool = mempool;
    }
    for (const [i, tx] of txs.entries()) {
      const view = await node.chain.getCoinView(tx);
      for (const earlier of txs.slice(0, i)) view.addTX(earlier, job.attempt.height);
      job.attempt.pushTX(tx, view);
    }
    job.refresh();
    const block = await miner.cpu.mineAsync(job);
    const entry = await node.chain.add(block);
    if (!entry) throw new Error("generateblock: the block was not connected");
    return { hash: entry.rhash() };
  } finally {
    unlock();
  }
}

export interface RegtestNodeOptions {
  /**
   * With `persistent`, the directory whose `regtest/` subdirectory holds the chain (`regtest/chain`, blocks and
   * indexes in LevelDB) and the mempool (`regtest/mempool`), as bitcoind keeps its regtest files; otherwise unused.
   */
  dataDir: string;
  /** Keep the chain and mempool on disk in `dataDir` and resume them at the next start (default: in memory). */
  persistent?: boolean;
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

/** The faucet's fee rate (sat/vB): regtest mines everything, this only has to relay. */
const FAUCET_FEE_RATE_SAT_VB = 2;

/**
 * The simulator's faucet key: every block the node mines on its own (its first blocks, interval mining, `se
 * mine` without --address) pays its coinbase here, so the key holds the early 50-btc subsidies of a chain for
 * good, and `sendtoaddress` pays wallets from them however many halvings later. Kept with a persistent chain in
 * `<data dir>/faucet-key.json` (regtest coins only; mode 0600); an in-memory node draws one.
 */
function faucetKey(dataDir: string, persistent: boolean): { ring: unknown; file?: string } {
  const file = persistent ? path.join(dataDir, "faucet-key.json") : undefined;
  let key: Buffer | undefined;
  if (file && existsSync(file)) {
    const hex = JSON.parse(readFileSync(file, "utf8")).privateKey;
    if (typeof hex === "string" && /^[0-9a-f]{64}$/.test(hex)) key = Buffer.from(hex, "hex");
  }
  const ring = key ? bcoin.KeyRing.fromPrivate(key, true) : bcoin.KeyRing.generate(true);
  ring.witness = true;
  if (file && !key)
    writeFileSync(
      file,
      `${JSON.stringify({ note: "the simulator's regtest faucet key: coinbases of the node's own blocks go here", privateKey: ring.getPrivateKey().toString("hex") }, null, 2)}\n`,
      { mode: 0o600 },
    );
  return { ring, file };
}

/** bcoin's regtest address ("rb1…") in bitcoind's spelling ("bcrt1…"), what wallets print and RPC users expect. */
function bitcoindRegtestAddress(rb: string): string {
  for (const coder of [bech32, bech32m]) {
    try {
      const { words } = coder.decode(rb as `${string}1${string}`, 1023);
      if ((words[0] === 0) === (coder === bech32)) return coder.encode("bcrt", words, 1023);
    } catch {}
  }
  return rb;
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
  private persistent = false;
  /** The height the chain had on disk when this start opened it (undefined: a new chain). */
  readonly resumedHeight: number | undefined;

  private constructor(
    // biome-ignore lint/suspicious/noExplicitAny: bcoin is untyped JavaScript
    private readonly node: any,
    rpc: RpcEndpoint,
    resumedHeight: number | undefined,
    faucet: unknown,
  ) {
    this.rpc = rpc;
    this.resumedHeight = resumedHeight;
    this.faucet = faucet;
    // The node's own blocks pay the faucet key: the chain's early subsidies stay there to fund wallets.
    // biome-ignore lint/suspicious/noExplicitAny: bcoin is untyped JavaScript
    this.coinbase = (faucet as any).getAddress();
  }

  /** The faucet key (a bcoin KeyRing). */
  private readonly faucet: unknown;

  /** The faucet's address, in bitcoind's regtest spelling (bcrt1…). */
  faucetAddress(): string {
    // biome-ignore lint/suspicious/noExplicitAny: bcoin is untyped JavaScript
    return bitcoindRegtestAddress((this.coinbase as any).toString("regtest"));
  }

  /** What the faucet key can spend now (mature coinbases and confirmed or mempool change), in satoshis. */
  async faucetBalance(): Promise<bigint> {
    const coins = await this.spendableFaucetCoins();
    // biome-ignore lint/suspicious/noExplicitAny: bcoin is untyped JavaScript
    return coins.reduce((sum: bigint, c: any) => sum + BigInt(c.value), 0n);
  }

  // biome-ignore lint/suspicious/noExplicitAny: bcoin is untyped JavaScript
  private async spendableFaucetCoins(): Promise<any[]> {
    const height: number = this.node.chain.height;
    const coins = await this.node.getCoinsByAddress([this.coinbase]);
    return coins.filter(
      // biome-ignore lint/suspicious/noExplicitAny: bcoin is untyped JavaScript
      (c: any) => !c.coinbase || (c.height >= 0 && height + 1 >= c.height + 100),
    );
  }

  /**
   * Pays `amountSat` to `address` (either regtest spelling) from the faucet key, change back to it, into the
   * mempool (a block must still be mined to confirm it). Resolves with the txid; refuses with "insufficient
   * funds" when the key's mature coins do not cover it.
   */
  async faucetSend(address: string, amountSat: bigint): Promise<string> {
    if (amountSat <= 0n) throw new Error("the amount must be positive");
    const to = bcoin.Address.fromString(bcoinRegtestAddress(address), "regtest");
    const coins = await this.spendableFaucetCoins();
    const mtx = new bcoin.MTX();
    mtx.addOutput(to, Number(amountSat));
    try {
      await mtx.fund(coins, {
        rate: FAUCET_FEE_RATE_SAT_VB * 1000,
        changeAddress: this.coinbase,
        height: this.node.chain.height,
        selection: "value",
      });
    } catch (err) {
      const have = await this.faucetBalance();
      throw new Error(
        `insufficient funds: the faucet key holds ${have} sat it can spend now, not enough for ${amountSat} sat plus the fee (${(err as Error).message})`,
      );
    }
    mtx.sign(this.faucet);
    const tx = mtx.toTX();
    await this.node.mempool.addTX(tx);
    return tx.txid();
  }

  static async start(opts: RegtestNodeOptions): Promise<RegtestNode> {
    const apiKey = randomBytes(24).toString("hex");
    const persistent = opts.persistent === true;
    if (persistent) patchLeveldown();
    const existed = persistent && existsSync(RegtestNode.chainDir(opts.dataDir));
    const node = new bcoin.FullNode({
      network: "regtest",
      memory: !persistent,
      ...(persistent ? { prefix: path.resolve(opts.dataDir), persistentMempool: true } : {}),
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
    if (persistent) await node.ensure();
    await node.open();
    if (persistent) persistMempoolEagerly(node.mempool);
    const resumedHeight = existed ? (node.chain.height as number) : undefined;
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
    node.rpc.calls.generateblock = (args: unknown[], help: boolean) => generateBlock(node, args, help);
    const port: number = node.http.address().port;
    const self = new RegtestNode(
      node,
      {
        url: `http://${opts.rpcHost ?? "127.0.0.1"}:${port}/`,
        user: "x",
        password: apiKey,
      },
      resumedHeight,
      faucetKey(opts.dataDir, persistent).ring,
    );
    self.addFaucetRpc();
    self.persistent = persistent;
    if (node.chain.height < opts.initialBlocks) await self.mine(opts.initialBlocks - node.chain.height);
    return self;
  }

  /**
   * bitcoind's wallet calls a regtest user reaches for, over the faucet key: `getnewaddress` (the faucet's
   * address: `generatetoaddress <n> $(getnewaddress)` keeps it funded), `getbalance` (BTC it can spend now),
   * `sendtoaddress <address> <amount in BTC>` (its txid; error -6 "insufficient funds").
   */
  private addFaucetRpc(): void {
    const rpc = this.node.rpc;
    // bweb's RPC answers {code, message} for an error of type "RPCError" (any other becomes a generic one).
    const error = (code: number, message: string): Error =>
      Object.assign(new Error(message), { type: "RPCError", code });
    rpc.add("getnewaddress", async (_args: unknown[], help: boolean) => {
      if (help) throw error(-1, "getnewaddress");
      return this.faucetAddress();
    });
    rpc.add("getbalance", async (_args: unknown[], help: boolean) => {
      if (help) throw error(-1, "getbalance");
      return Number(await this.faucetBalance()) / 1e8;
    });
    rpc.add("sendtoaddress", async (args: unknown[], help: boolean) => {
      if (help || args.length < 2) throw error(-1, 'sendtoaddress "address" amount');
      const [address, amount] = args;
      if (typeof address !== "string") throw error(-5, "Invalid address");
      const btc =
        typeof amount === "number" ? amount : typeof amount === "string" ? Number(amount) : Number.NaN;
      if (!Number.isFinite(btc) || btc <= 0) throw error(-3, "Invalid amount for send");
      const sat = BigInt(Math.round(btc * 1e8));
      try {
        bcoin.Address.fromString(bcoinRegtestAddress(address), "regtest");
      } catch {
        throw error(-5, `Invalid address: ${address}`);
      }
      try {
        return await this.faucetSend(address, sat);
      } catch (err) {
        const m = (err as Error).message;
        throw error(/insufficient funds/.test(m) ? -6 : -4, m);
      }
    });
  }

  /** Where a persistent node under `dataDir` keeps its chain database. */
  static chainDir(dataDir: string): string {
    return path.join(dataDir, "regtest", "chain");
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

  /** Mines n blocks (including mempool transactions) to `address`, or to the faucet key. */
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
    // bcoin's mempool does not write its pending changes (or the tip they belong to) at close.
    if (this.persistent) {
      this.node.mempool.cache.sync(this.node.chain.tip.hash);
      await this.node.mempool.cache.flush();
    }
    this.closed = true;
    this.stopIntervalMining();
    // Transactions sent through the RPC server are "broadcast" to peers that never come (listen: false, no
    // outbound): each waits 60 s on a timer the pool only clears when it was connected. Finish them here.
    for (const item of [...this.node.pool.invMap.values()]) item.resolve();
    await this.node.close();
  }
}
