// One interface over every way the host (and the wallet) reads and writes the Bitcoin chain: the embedded bcoin
// regtest node, bitcoind JSON-RPC, and Esplora HTTP. Txids are display hex (reversed byte order) at this
// boundary; scripts and transactions are raw bytes.

export type ChainNetwork = "regtest" | "testnet" | "signet" | "bitcoin";

export interface TxStatus {
  /** 0 while in the mempool. */
  confirmations: number;
  blockHeight?: number;
  blockHash?: string;
  inMempool: boolean;
}

export interface Utxo {
  txid: string;
  vout: number;
  valueSat: bigint;
  script: Uint8Array;
  /** 0 for a mempool output. */
  confirmations: number;
  coinbase: boolean;
}

/** Why a broadcast was refused, normalised across backends. */
export type BroadcastRejection =
  | "non-final" // locktime or relative lock not reached yet
  | "missing-inputs" // an input does not exist or is already spent
  | "conflict" // double spend of an input spent by a mempool transaction
  | "already-known" // the transaction is already in the mempool or chain
  | "fee" // fee too low (relay minimum, RBF rules)
  | "nonstandard"
  | "invalid";

export class ChainError extends Error {
  override name = "ChainError";
  constructor(
    readonly code: BroadcastRejection | "unavailable" | "not-found" | "bad-response",
    message: string,
  ) {
    super(message);
  }
}

export interface ChainBackend {
  readonly network: ChainNetwork;
  readonly kind: "embedded" | "bitcoind" | "esplora";
  tipHeight(): Promise<number>;
  getTx(txid: string): Promise<{ raw: Uint8Array; status: TxStatus } | undefined>;
  getTxStatus(txid: string): Promise<TxStatus | undefined>;
  /** The output if it exists and is unspent (mempool spends count as spent). */
  getUtxo(txid: string, vout: number): Promise<Utxo | undefined>;
  /**
   * Confirmed unspent outputs paying exactly `script`, minus those a mempool transaction already spends, in
   * outpoint order. Mempool outputs are left out on every backend (bitcoind's scantxoutset cannot see them).
   */
  findUtxos(script: Uint8Array): Promise<Utxo[]>;
  /**
   * Sends a transaction to the network; resolves with its txid or throws a ChainError. A transaction already in
   * the mempool or chain throws "already-known" on every backend (callers treat it as success).
   */
  broadcast(raw: Uint8Array): Promise<string>;
  /** Fee rate in sat/vB expected to confirm within `targetBlocks`. */
  estimateFeeRate(targetBlocks: number): Promise<number>;
  onBlock(listener: (height: number) => void): () => void;
  close(): Promise<void>;
}

/** A chain that can also mine (regtest only). */
export interface DevChain extends ChainBackend {
  /** Mines `n` blocks (with mempool transactions), paying the coinbase to `script` when given. */
  mine(n: number, script?: Uint8Array): Promise<string[]>;
  /**
   * Pays `amountSat` to `script` from the node's own funds (bitcoind's wallet, the simulator's faucet key), into
   * the mempool: a faucet that does not depend on the block subsidy. Resolves with the txid, or why it cannot.
   */
  fund?(script: Uint8Array, amountSat: bigint): Promise<{ txid: string } | { unavailable: string }>;
}
