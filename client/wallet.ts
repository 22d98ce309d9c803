// The owner's wallet: keys from a BIP39 seed, state in one encrypted-at-rest SQLite file (store.ts), and the
// protocol flows of owner.ts wired to storage so every step survives a crash: a deposit's coin is stored before
// its funding goes out, a receive's signed key-update request and o2 before they are sent, a withdrawal's
// signed transaction before the SE is asked to broadcast it, an exit's every stage.
import { status as Status } from "@grpc/grpc-js";
import * as bitcoin from "bitcoinjs-lib";
import type { VerificationResult } from "../attestation/verify.ts";
import { type ChainBackend, ChainError, type DevChain } from "../chain/backend.ts";
import { FundingState, StatechainStatus, StatechainTx } from "../proto/gen/common.ts";
import { TransferReceiverKeyUpdateRequest } from "../proto/gen/statechain.ts";
import { wipeHolderKey } from "../protocol/ecdsa2p/holder.ts";
import { ProtocolError } from "../protocol/errors.ts";
import type { MainstayKeyParams } from "../protocol/mainstay.ts";
import { outpointBytes, outpointFromBytes, outpointString } from "../protocol/outpoint.ts";
import { type Rng, systemRng } from "../protocol/rng.ts";
import { parseTx, txidOf, txidToHex } from "../protocol/tx/parse.ts";
import { dustThreshold, p2wpkhScript } from "../protocol/tx/script.ts";
import { decodeReceiveAddress, encodeReceiveAddress, type WalletNetwork } from "./address.ts";
import {
  decodeKey,
  decodeKeySecret,
  encodeKeyPublic,
  encodeKeySecret,
  encodeShareAndPaillier,
  packFields,
  unpackFields,
} from "./codec.ts";
import { type ExitState, exitByBackup } from "./exit.ts";
import { KeyTree, mnemonicToSeed, newMnemonic, normalizeMnemonic } from "./keys.ts";
import {
  type AttestationTrust,
  broadcastIdempotent,
  confirmDeposit,
  confirmWithdrawal,
  deposit,
  type KeygenSecrets,
  type OwnedCoin,
  type OwnerContext,
  pub,
  type ReceiverIdentity,
  send,
  withdraw,
} from "./owner.ts";
import { paillierKeyPath, paillierSeed, walletPaillierCache } from "./paillier-keys.ts";
import { PaillierKeyPool } from "./paillier-pool.ts";
import {
  type CheckedTransfer,
  EXIT_ONLY_ANSWER,
  fetchKeyUpdateAnswer,
  fetchMailboxes,
  finishKeyUpdate,
  type IncomingTransfer,
  openTransfer,
  type PreparedKeyUpdate,
  RefusedAfterKeyUpdateError,
  receive,
  TransferCutError,
} from "./receive.ts";
import {
  type CoinFields,
  type RecoveryKeys,
  type RecoveryOptions,
  type RecoveryResult,
  recoverCoins,
} from "./restore.ts";
import { type SeClient, SeError, type SeResponse } from "./se-client.ts";
import {
  type CoinRow,
  type KeySlotRow,
  type PendingReceiveRow,
  pendingLabel,
  shareLabel,
  WalletStore,
} from "./store.ts";
import { type VerifyReport, verifyCoin } from "./verify.ts";

export type ProgressFn = (event: string, detail?: Record<string, unknown>) => void;

/** How the wallet reaches the world: set with connect() before any network operation. */
export interface WalletServices {
  se: SeClient;
  chain: ChainBackend;
  trust: AttestationTrust;
  /** Fee rate of every transaction the wallet makes (sat/vB); default 2. */
  feeRateSatVb?: number;
  /** The trusted Mainstay service key and slot of the SE (the wallet's trust store). */
  mainstayKey?: MainstayKeyParams;
  mainstaySlot?: number;
  /** Accept (and mark) coins without a proof of publication: only for an SE that runs without Mainstay. */
  allowUnpublished?: boolean;
  onProgress?: ProgressFn;
}

export type CoinStatus =
  | "awaiting-confirmation"
  /** The funding transaction never reached the chain (its broadcast failed, or it left the mempool): not held. */
  | "funding-failed"
  | "active"
  | "sent"
  | "withdrawing"
  | "withdrawn"
  | "exiting"
  | "exited"
  /** The SE moved the coin to this wallet but a check failed (or its answer was lost): backup exit only. */
  | "exit-only"
  /** A signature with this coin's key failed its final verification: its key never signs again; backup exit only. */
  | "tainted";

/** Statuses in which the wallet holds the coin (it is the current owner, or exiting with its backup). */
const HELD: readonly CoinStatus[] = [
  "awaiting-confirmation",
  "active",
  "withdrawing",
  "exiting",
  "exit-only",
  "tainted",
];

export interface AttestationSummary {
  what: "transfer-key" | "deletion";
  valid: boolean;
  simulator: boolean;
  release?: string;
  warnings: string[];
}

export interface CoinSummary {
  /** The wallet's number for the coin (stable; `wallet send 3 …`). */
  number: number;
  statechainId: string;
  status: CoinStatus;
  origin: "deposit" | "received";
  amountSat: bigint;
  ownerIndex: number;
  backupMode: "absolute" | "kickoff";
  /** Absolute: the height from which the backup can be mined. Kick-off: blocks after the kick-off confirms. */
  backupLock: number;
  /** Absolute mode, with the chain tip known: blocks until the backup can be mined (0 = now). */
  blocksToLock?: number;
  /** The on-chain address of the coin: P2WPKH(P). */
  depositAddress: string;
  seEndpoint: string;
  attestations: AttestationSummary[];
  /** In a receive's result: "unpublished" when it was accepted without a proof of publication (allowUnpublished). */
  publication?: "published" | "unpublished";
  exit?: ExitState;
  withdrawalTxid?: string;
  /**
   * What the coin's SE said about it the last time the wallet asked (`wallet coins`, `wallet info`): its status
   * by name ("ACTIVE", "EXIT_BY_BACKUP", …), or "UNKNOWN" when the SE has no such coin (a simulator restarted
   * with --fresh, another SE at the same address). Absent until the wallet first asked.
   */
  seStatus?: string;
  /** When the wallet last asked (ms since the epoch). */
  seCheckedAt?: number;
  /**
   * What the SE said of the coin's funding transaction (#19.8): "OK", or "DOUBLE_SPENT" / "MISSING" when a
   * reorganisation took it out of the chain (the SE then refuses to co-sign or transfer the coin), with the SE's
   * words in `seFundingProblem`. Absent until the wallet first asked, or when the SE had not looked yet.
   */
  seFunding?: string;
  seFundingProblem?: string;
  /** Whether the coin counts in the balance: the wallet holds it, and its SE does not say it has no such coin. */
  inBalance: boolean;
  /** What to do with the coin, when it is not an ordinary active one (exit-only: `wallet exit <n>`). */
  hint?: string;
  /** The receive address the coin is sent (or being sent) to, and since when (ms since the epoch). */
  receiver?: { address: string; sinceMs: number };
}

/** The SE's status by name, without the enum's prefix ("EXIT_BY_BACKUP"). */
function seStatusName(s: StatechainStatus): string {
  return (StatechainStatus[s] ?? String(s)).replace(/^STATECHAIN_STATUS_/, "");
}

/** The SE said the coin's funding transaction left the chain (double spent, or missing past its grace). */
const fundingLost = (row: CoinRow): boolean =>
  row.se_funding === "DOUBLE_SPENT" || row.se_funding === "MISSING";

/** Held by the wallet, not unknown to its SE and with its funding in the chain: what the balance counts. */
function inBalance(row: CoinRow): boolean {
  return HELD.includes(row.status as CoinStatus) && row.se_view !== "UNKNOWN" && !fundingLost(row);
}

export interface Refusal {
  statechainId?: string;
  /** Set when the coin is nonetheless the wallet's (the SE completed the key update): its number, exit only. */
  exitOnlyCoin?: number;
  code: string;
  reason: string;
  /** The attestation checks that failed, when an attestation was the reason. */
  failedChecks?: string[];
}

/** What a faucet run did. */
export interface FaucetResult {
  /** Blocks mined: the coinbases to the wallet (their 100 blocks of maturity not counted), or the one block that
   * confirmed the faucet's payment. */
  blocks: number;
  /** The wallet's on-chain funds afterwards. */
  onchainSat: bigint;
  /** Who paid: the node's funded key ("faucet"), coinbases mined to the wallet, or nobody (enough already). */
  source: "faucet" | "coinbase" | "none";
  txid?: string;
  sentSat?: bigint;
}

/** What a withdrawal pays out: amounts in satoshis, the destination as an address. */
export interface WithdrawalFigures {
  destination: string;
  /** Paid to the destination. */
  receivedSat: bigint;
  /** The network's fee. */
  feeSat: bigint;
  /** The SE's withdrawal fee (0 when it charges none). */
  seFeeSat: bigint;
}

/** What an exit by backup pays out: to the wallet's own backup key, the rest of the coin in fees. */
export interface ExitFigures {
  destination: string;
  receivedSat: bigint;
  feeSat: bigint;
}

export interface ReceiveResult {
  received: CoinSummary[];
  refused: Refusal[];
}

export interface SpendableUtxo {
  txid: string;
  vout: number;
  valueSat: bigint;
  script: Uint8Array;
  confirmations: number;
  privateKey: Uint8Array;
}

export interface CreateWalletOptions {
  file: string;
  passphrase: string;
  network: WalletNetwork;
  /** Restore from this mnemonic instead of drawing a new one. */
  mnemonic?: string;
  scryptN?: number;
  rng?: Rng;
  now?: () => number;
  onProgress?: ProgressFn;
}

export interface WalletOptions {
  rng?: Rng;
  now?: () => number;
}

export interface WaitOptions {
  /** Between polls; default: sleep pollMs. Tests mine a block here. */
  onWait?: () => Promise<void>;
  pollMs?: number;
  timeoutMs?: number;
}

/** What a coin row stores, from an owned coin or from a receive the SE completed but the wallet refused. */
interface CoinRecord extends CoinFields {
  /** The two-party key's public part (empty when the SE's new share never arrived: exit only). */
  keyPublic: Buffer;
  share: Uint8Array;
}

const recordOf = (c: OwnedCoin): CoinRecord => ({
  ...c,
  keyPublic: encodeKeyPublic(c.key),
  share: encodeKeySecret(c.key),
});

/** Receive addresses scanned after a restore (and kept issued ahead). */
export const RESTORE_GAP = 20;
const COINBASE_MATURITY = 100;
/** A deposit's funding unknown to the chain (neither mempool nor block) for this long is marked funding-failed. */
export const FUNDING_GRACE_MS = 10 * 60_000;

/** Blocks between halvings of the block subsidy on regtest (bitcoind and bcoin alike). */
const REGTEST_HALVING_INTERVAL = 150;
/** The most coinbases one faucet run mines for an amount. */
const FAUCET_MAX_BLOCKS = 1000;

export class WalletError extends ProtocolError {
  override name = "WalletError";
}

const networks: Record<WalletNetwork, bitcoin.Network> = {
  bitcoin: bitcoin.networks.bitcoin,
  testnet: bitcoin.networks.testnet,
  signet: bitcoin.networks.testnet,
  regtest: bitcoin.networks.regtest,
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

function summarize(what: AttestationSummary["what"], v: VerificationResult): AttestationSummary {
  return { what, valid: v.valid, simulator: v.simulator, release: v.release, warnings: v.warnings };
}

export class Wallet {
  private services: WalletServices | undefined;
  private pool: PaillierKeyPool | undefined;

  private constructor(
    private readonly store: WalletStore,
    readonly network: WalletNetwork,
    private readonly keys: KeyTree,
    private readonly rng: Rng,
    private readonly now: () => number,
  ) {}

  get file(): string {
    return this.store.file;
  }

  /** The bitcoinjs network of on-chain addresses. */
  get bitcoinNetwork(): bitcoin.Network {
    return networks[this.network];
  }

  /** Creates a wallet file; returns it open with the mnemonic to write down (shown once). */
  static async create(opts: CreateWalletOptions): Promise<{ wallet: Wallet; mnemonic: string }> {
    const rng = opts.rng ?? systemRng;
    const restoring = opts.mnemonic !== undefined;
    const mnemonic = restoring ? normalizeMnemonic(opts.mnemonic!) : newMnemonic(rng);
    const seed = mnemonicToSeed(mnemonic);
    const store = await WalletStore.create(opts.file, opts.passphrase, { scryptN: opts.scryptN });
    const keys = new KeyTree(seed, opts.network);
    seed.fill(0);
    const wallet = new Wallet(store, opts.network, keys, rng, opts.now ?? Date.now);
    await store.db.transaction(async (q) => {
      await store.setMeta("network", opts.network, q);
      await store.setMeta("account", "0", q);
      await store.putSealed("mnemonic", Buffer.from(mnemonic, "utf8"), q);
    });
    if (restoring) {
      // Transfers sent to this seed's addresses while the old file was lost are still in the SE's mailboxes.
      for (let i = 0; i < RESTORE_GAP; i++) await wallet.newSlot("receive");
      for (let i = 0; i < RESTORE_GAP; i++) await wallet.fundingKey(i, "receive");
    }
    return { wallet, mnemonic };
  }

  static async open(file: string, passphrase: string, opts: WalletOptions = {}): Promise<Wallet> {
    const store = await WalletStore.open(file, passphrase);
    try {
      const network = (await store.getMeta("network")) as WalletNetwork;
      const mnemonic = await store.getSealed("mnemonic");
      if (!mnemonic) throw new WalletError("WALLET_CORRUPT", `${file} lacks its seed`, "internal");
      const seed = mnemonicToSeed(mnemonic.toString("utf8"));
      mnemonic.fill(0);
      const keys = new KeyTree(seed, network, Number((await store.getMeta("account")) ?? 0));
      seed.fill(0);
      return new Wallet(store, network, keys, opts.rng ?? systemRng, opts.now ?? Date.now);
    } catch (e) {
      await store.close();
      throw e;
    }
  }

  /** The mnemonic, for a user who asks to see it again. */
  async mnemonic(): Promise<string> {
    return (await this.store.getSealed("mnemonic"))!.toString("utf8");
  }

  connect(services: WalletServices): void {
    this.services = services;
  }

  /** Closes the wallet; Paillier keys still being made ahead are finished and written to the file first. */
  async close(): Promise<void> {
    if (this.pool) {
      await this.pool.flush();
      await this.pool.close();
      this.pool = undefined;
    }
    this.keys.wipe();
    await this.store.close();
  }

  async getConfig<T>(key: string): Promise<T | undefined> {
    return this.store.getConfig<T>(key);
  }

  async setConfig(key: string, value: unknown): Promise<void> {
    await this.store.setConfig(key, value);
  }

  private svc(): WalletServices {
    if (!this.services)
      throw new WalletError(
        "NOT_CONNECTED",
        "the wallet is not connected to an SE and a chain",
        "precondition",
      );
    return this.services;
  }

  private progress(event: string, detail?: Record<string, unknown>) {
    this.services?.onProgress?.(event, detail);
  }

  /** The protocol context for the connected SE and chain. */
  context(): OwnerContext {
    const s = this.svc();
    return {
      se: s.se,
      chain: s.chain,
      network: this.bitcoinNetwork,
      rng: this.rng,
      now: this.now,
      trust: s.trust,
      // Written before anything else, whatever the caller does next (DESIGN.md 3.1, CVE-2023-33242).
      onTaint: async (statechainId, reason) => {
        // A deposit taints before its coin is saved (its funding is not broadcast then): nothing to keep.
        const row = await this.coinRow(outpointString(statechainId)).catch(() => undefined);
        if (row) await this.setStatus(row, "tainted");
        this.progress("tainted", { statechainId: outpointString(statechainId), reason });
      },
      feeRateSatVb: s.feeRateSatVb ?? 2,
      mainstayKey: s.mainstayKey,
      mainstaySlot: s.mainstaySlot,
      allowUnpublished: s.allowUnpublished,
      onProgress: s.onProgress,
    };
  }

  // --- keys and addresses ----------------------------------------------------------------------------------

  private async newSlot(purpose: "receive" | "deposit"): Promise<KeySlotRow> {
    return this.store.db.transaction(async (q) => {
      const top = await q.get<{ idx: number | null }>("SELECT MAX(idx) AS idx FROM key_slots");
      const idx = (top?.idx ?? -1) + 1;
      const row: KeySlotRow = {
        idx,
        purpose,
        proof_key: Buffer.from(this.keys.publicKey("proof", idx)),
        backup_key: Buffer.from(this.keys.publicKey("backup", idx)),
        used: purpose === "deposit" ? 1 : 0,
        created_at: this.now(),
        keygens: 0,
      };
      await q.run(
        "INSERT INTO key_slots (idx, purpose, proof_key, backup_key, used, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        [idx, purpose, row.proof_key, row.backup_key, row.used, row.created_at],
      );
      return row;
    });
  }

  // --- per-coin Paillier keys (DESIGN.md 3.1, issue #21) ---------------------------------------------------
  //
  // Keygen k on slot s uses the key at m/8338'/<coin>'/<account>'/3'/s'/k' (paillier-keys.ts), derived from the
  // seed. A receive address gets its first key made ahead, in the pool's worker thread at the lowest priority, and
  // cached sealed in the wallet file; the keygen takes it from there. The slot's count moves on (durably) before a
  // key is handed to a keygen and its cached row goes: a key shown to the SE once is never used for another coin,
  // and from then on it lives only sealed with its coin (or pending receive) and is wiped with it.

  private keyPool(): PaillierKeyPool {
    if (!this.pool) {
      this.pool = new PaillierKeyPool({
        seedFor: (path) => paillierSeed(this.keys, path),
        cache: walletPaillierCache(this.store, this.now),
      });
      // A key that could not be built or cached is built again at its keygen: worth a line, not a failure.
      this.pool.on("failed", (path: string, err: Error) =>
        this.progress("paillier-key-failed", { path, reason: err.message }),
      );
    }
    return this.pool;
  }

  private slotKeyPath(slot: Pick<KeySlotRow, "idx" | "keygens">): string {
    return paillierKeyPath(this.network, this.keys.account, slot.idx, slot.keygens);
  }

  /** Starts making the key of the slot's next keygen in the background, unless the wallet file has it. */
  private async prepareKey(
    slot: KeySlotRow,
    detail: Record<string, unknown> & { quiet?: boolean } = {},
  ): Promise<void> {
    const path = this.slotKeyPath(slot);
    const pool = this.keyPool();
    if (pool.status(path) !== undefined) return; // under way, or ready in this process
    if (await this.store.db.get("SELECT 1 FROM paillier_keys WHERE path = ?", [path])) return;
    const { quiet, ...shown } = detail;
    if (!quiet) this.progress("paillier-key-ahead", shown);
    pool.prepare(path);
  }

  /** Resolves once the keys being made ahead are made and written to the wallet file. */
  async keysReady(): Promise<void> {
    await this.pool?.flush();
  }

  /** The secrets of a keygen starting now on slot `idx`: its Paillier key (prepared, or made now) and share o. */
  private async takeKey(idx: number): Promise<KeygenSecrets> {
    const slot = await this.store.db.transaction(async (q) => {
      const row = await q.get<KeySlotRow>("SELECT * FROM key_slots WHERE idx = ?", [idx]);
      if (!row) throw new WalletError("WALLET_CORRUPT", `key slot ${idx} is missing`, "internal");
      await q.run("UPDATE key_slots SET keygens = keygens + 1 WHERE idx = ?", [idx]);
      return row;
    });
    const path = this.slotKeyPath(slot);
    const pool = this.keyPool();
    const key = await pool.take(path, { onWaiting: () => this.progress("paillier-key") });
    await pool.discard(path); // the cached row: the key is the keygen's now
    return { paillier: key, share: this.keys.ownerShare(slot.idx, slot.keygens) };
  }

  /** The protocol context of a keygen on slot `idx`: its Paillier key comes from the slot. */
  private keygenContext(idx: number): OwnerContext {
    // The take waits for the prepare: a prepare that read the slot before the take moved its count on would
    // otherwise build (and cache) the key of a keygen already started.
    let preparing: Promise<unknown> = Promise.resolve();
    return {
      ...this.context(),
      preparePaillierKey: () => {
        preparing = this.store.db
          .get<KeySlotRow>("SELECT * FROM key_slots WHERE idx = ?", [idx])
          .then((slot) => slot && this.prepareKey(slot, { quiet: true }))
          .catch(() => {}); // only a head start: takeKey makes the key if this did not
      },
      paillierKey: async () => {
        await preparing;
        return this.takeKey(idx);
      },
    };
  }

  private identity(idx: number): ReceiverIdentity {
    return { proofSecret: this.keys.secret("proof", idx), backupSecret: this.keys.secret("backup", idx) };
  }

  /**
   * A receive address (B|C) to give a sender: the oldest one not yet used by a received coin, or with `fresh` a
   * new one. Every coin received lands on its own key slot.
   */
  async receiveAddress(opts: { fresh?: boolean } = {}): Promise<{ address: string; index: number }> {
    let slot = opts.fresh
      ? undefined
      : await this.store.db.get<KeySlotRow>(
          "SELECT * FROM key_slots WHERE purpose = 'receive' AND used = 0 ORDER BY idx LIMIT 1",
        );
    slot ??= await this.newSlot("receive");
    const address = encodeReceiveAddress(
      { proofKey: slot.proof_key, backupKey: slot.backup_key },
      this.network,
    );
    await this.prepareKey(slot, { address });
    return { address, index: slot.idx };
  }

  private async fundingKey(idx: number, purpose: "receive" | "change"): Promise<Buffer> {
    const publicKey = Buffer.from(this.keys.publicKey("funding", idx));
    await this.store.db.run(
      "INSERT OR IGNORE INTO funding_keys (idx, purpose, public_key, created_at) VALUES (?, ?, ?, ?)",
      [idx, purpose, publicKey, this.now()],
    );
    return publicKey;
  }

  /** The wallet's on-chain address (funding key 0): where to send bitcoin to deposit it. */
  async fundingAddress(): Promise<string> {
    const key = await this.fundingKey(0, "receive");
    return bitcoin.payments.p2wpkh({ pubkey: key, network: this.bitcoinNetwork }).address!;
  }

  private async changeScript(): Promise<Uint8Array> {
    const top = await this.store.db.get<{ idx: number | null }>("SELECT MAX(idx) AS idx FROM funding_keys");
    return p2wpkhScript(await this.fundingKey(Math.max(1, (top?.idx ?? 0) + 1), "change"));
  }

  /**
   * Confirmed, mature outputs the wallet can spend on its own: its funding keys' and its backup keys'. A backup
   * key is watched while no coin the wallet holds uses it (a held coin counts as a coin until it exited): so the
   * backup outputs of coins it exited count, and so do funds that arrive by a backup the wallet never held, e.g.
   * a transfer to it cut before its message arrived, whose backup the SE's watchtower broadcast.
   */
  async onchainUtxos(): Promise<SpendableUtxo[]> {
    const { chain } = this.svc();
    await this.fundingKey(0, "receive");
    const keys: { secret: () => Uint8Array; publicKey: Uint8Array }[] = [];
    const funding = await this.store.db.all<{ idx: number; public_key: Buffer }>(
      "SELECT idx, public_key FROM funding_keys ORDER BY idx",
    );
    for (const f of funding)
      keys.push({ publicKey: f.public_key, secret: () => this.keys.secret("funding", f.idx) });
    const held = HELD.map((st) => `'${st}'`).join(", ");
    const backups = await this.store.db.all<{ idx: number; backup_key: Buffer }>(
      `SELECT idx, backup_key FROM key_slots
        WHERE idx NOT IN (SELECT key_idx FROM coins WHERE status IN (${held})) ORDER BY idx`,
    );
    for (const b of backups)
      keys.push({ publicKey: b.backup_key, secret: () => this.keys.secret("backup", b.idx) });
    const out: SpendableUtxo[] = [];
    for (const k of keys) {
      const utxos = await chain.findUtxos(p2wpkhScript(k.publicKey));
      for (const u of utxos) {
        if (u.coinbase && u.confirmations < COINBASE_MATURITY) continue;
        out.push({ ...u, privateKey: k.secret() });
      }
    }
    return out;
  }

  /**
   * On-chain funds and the coins the wallet holds. `coinsSat` counts held coins except those their SE said it
   * does not know (`unknownSat`, outside the balance); exit-only coins count (they are the wallet's, leaving by
   * their backup transactions) and are also summed on their own (`exitOnlySat`).
   */
  async balance(): Promise<{
    onchainSat: bigint;
    utxos: number;
    coinsSat: bigint;
    coins: number;
    exitOnlySat: bigint;
    exitOnlyCoins: number;
    unknownSat: bigint;
    unknownCoins: number;
    fundingLostSat: bigint;
    fundingLostCoins: number;
  }> {
    const utxos = await this.onchainUtxos();
    const rows = await this.rows();
    const counted = rows.filter(inBalance);
    const exitOnly = counted.filter((r) => r.status === "exit-only");
    const held = rows.filter((r) => HELD.includes(r.status as CoinStatus));
    const unknown = held.filter((r) => r.se_view === "UNKNOWN");
    const lostFunding = held.filter((r) => r.se_view !== "UNKNOWN" && fundingLost(r));
    const sum = (rs: CoinRow[]) => rs.reduce((s, r) => s + BigInt(r.amount_sat), 0n);
    return {
      onchainSat: utxos.reduce((s, u) => s + u.valueSat, 0n),
      utxos: utxos.length,
      coinsSat: sum(counted),
      coins: counted.length,
      exitOnlySat: sum(exitOnly),
      exitOnlyCoins: exitOnly.length,
      unknownSat: sum(unknown),
      unknownCoins: unknown.length,
      fundingLostSat: sum(lostFunding),
      fundingLostCoins: lostFunding.length,
    };
  }

  /**
   * Regtest only: mines `blocks` coinbases to the wallet (then 100 blocks to mature them); or with `amountSat`
   * brings the wallet's on-chain funds up to that amount: paid by the node's own funded key when it has one (the
   * simulator's faucet key holds the chain's early coinbases; bitcoind's wallet), else by as many coinbases as
   * it takes (regtest's subsidy halves every 150 blocks: late in a chain that may not be enough, FAUCET_LIMIT).
   */
  async faucet(blocks = 1, amountSat?: bigint): Promise<FaucetResult> {
    const { dev, script } = await this.faucetTarget();
    if (amountSat === undefined) return this.mineCoinbases(dev, script, blocks);
    const have = (await this.balance()).onchainSat;
    if (have >= amountSat) return { blocks: 0, onchainSat: have, source: "none" };
    return this.fundFromNode(dev, script, amountSat - have);
  }

  /**
   * Regtest only: `sendSat` more on chain, from the node's own funded key (one transaction, one block mined to
   * confirm it), else from coinbases mined to the wallet.
   */
  async faucetSend(sendSat: bigint): Promise<FaucetResult> {
    const { dev, script } = await this.faucetTarget();
    return this.fundFromNode(dev, script, sendSat);
  }

  private async faucetTarget(): Promise<{ dev: DevChain; script: Uint8Array }> {
    const { chain } = this.svc();
    if (this.network !== "regtest" || typeof (chain as Partial<DevChain>).mine !== "function")
      throw new WalletError(
        "FAUCET_UNAVAILABLE",
        "the faucet mines regtest blocks: simulator chains only",
        "precondition",
      );
    return { dev: chain as DevChain, script: p2wpkhScript(await this.fundingKey(0, "receive")) };
  }

  private async fundFromNode(dev: DevChain, script: Uint8Array, sat: bigint): Promise<FaucetResult> {
    const paid = dev.fund ? await dev.fund(script, sat) : { unavailable: "the chain has no funded key" };
    if ("txid" in paid) {
      this.progress("faucet", { amountSat: String(sat), txid: paid.txid });
      await dev.mine(1);
      return {
        blocks: 1,
        onchainSat: (await this.balance()).onchainSat,
        source: "faucet",
        txid: paid.txid,
        sentSat: sat,
      };
    }
    // No funded key (a bitcoind without a wallet, a chain from before the faucet key): coinbases to the wallet.
    return this.mineCoinbasesFor(dev, script, sat, paid.unavailable);
  }

  /** As many coinbases as pay `sat` at this height's subsidy (at most FAUCET_MAX_BLOCKS), then their maturity. */
  private async mineCoinbasesFor(
    dev: DevChain,
    script: Uint8Array,
    sat: bigint,
    why: string,
  ): Promise<FaucetResult> {
    let tip = await dev.tipHeight();
    let sum = 0n;
    let blocks = 0;
    while (sum < sat) {
      tip++;
      const halvings = Math.floor(tip / REGTEST_HALVING_INTERVAL);
      const subsidy = halvings >= 64 ? 0n : 5_000_000_000n >> BigInt(halvings);
      if (subsidy === 0n || blocks >= FAUCET_MAX_BLOCKS)
        throw new WalletError(
          "FAUCET_LIMIT",
          `the node pays nothing from a funded key (${why}), and ${FAUCET_MAX_BLOCKS} coinbases at this height pay ${sum} sat at most, less than ${sat} sat (regtest's subsidy halves every ${REGTEST_HALVING_INTERVAL} blocks); a simulator started with \`se start --fresh\` has a new chain whose faucet key holds its early coinbases`,
          "precondition",
        );
      sum += subsidy;
      blocks++;
    }
    return this.mineCoinbases(dev, script, blocks);
  }

  private async mineCoinbases(dev: DevChain, script: Uint8Array, blocks: number): Promise<FaucetResult> {
    this.progress("mining", { blocks: blocks + COINBASE_MATURITY });
    await dev.mine(blocks, script);
    await dev.mine(COINBASE_MATURITY);
    return { blocks, onchainSat: (await this.balance()).onchainSat, source: "coinbase" };
  }

  // --- coins ----------------------------------------------------------------------------------------------

  private async rows(): Promise<CoinRow[]> {
    return this.store.db.all<CoinRow>("SELECT * FROM coins ORDER BY id");
  }

  /** A coin by its number, its statechain id (txid:vout) or a unique prefix of its txid (≥ 6 hex digits). */
  async coinRow(ref: string | number): Promise<CoinRow> {
    const rows = await this.rows();
    const r = String(ref).trim().replace(/^#/, "");
    let found: CoinRow[];
    if (/^\d+$/.test(r)) found = rows.filter((x) => x.id === Number(r));
    else if (r.includes(":"))
      found = rows.filter((x) => outpointString(outpointFromBytes(x.statechain_id)) === r);
    else if (/^[0-9a-f]{6,64}$/i.test(r))
      found = rows.filter((x) =>
        outpointString(outpointFromBytes(x.statechain_id)).startsWith(r.toLowerCase()),
      );
    else throw new WalletError("COIN_REF", `"${ref}" names no coin (a number, txid:vout or txid prefix)`);
    if (found.length === 0)
      throw new WalletError("COIN_UNKNOWN", `the wallet has no coin "${ref}"`, "not_found");
    if (found.length > 1) throw new WalletError("COIN_AMBIGUOUS", `"${ref}" matches ${found.length} coins`);
    return found[0]!;
  }

  private loadCoin(row: CoinRow): OwnedCoin {
    const sid = outpointFromBytes(row.statechain_id);
    const secret = this.store.open(row.share_sealed, shareLabel(hex(row.statechain_id), row.key_idx));
    const key = decodeKey(row.key_public, secret, this.rng);
    secret.fill(0);
    if (row.status === "tainted") key.tainted = true;
    const id = this.identity(row.key_idx);
    return {
      statechainId: sid,
      amountSat: BigInt(row.amount_sat),
      sharedPublicKey: row.shared_public_key,
      ownerIndex: row.owner_index,
      initialLock: row.initial_lock,
      backupMode: row.backup_mode as "absolute" | "kickoff",
      interval: row.lock_interval,
      proofSecret: Buffer.from(id.proofSecret),
      backupSecret: Buffer.from(id.backupSecret),
      key,
      fundingTx: row.funding_tx,
      backupTx: row.backup_tx,
      backupHistory: row.backup_history.length ? unpackHistory(row.backup_history) : [],
      kickoffTx: row.kickoff_tx ?? undefined,
      attestations: [],
    };
  }

  private async saveCoin(
    coin: CoinRecord,
    meta: {
      status: CoinStatus;
      origin: "deposit" | "received";
      keyIdx: number;
      attestations: AttestationSummary[];
    },
    q = this.store.db as Pick<WalletStore["db"], "run">,
  ): Promise<void> {
    const idBytes = outpointBytes(coin.statechainId);
    const now = this.now();
    await q.run(
      `INSERT INTO coins (statechain_id, status, origin, se_endpoint, amount_sat, shared_public_key, owner_index,
         initial_lock, backup_mode, lock_interval, key_idx, key_public, share_sealed, funding_tx, backup_tx,
         backup_history, kickoff_tx, attestations, withdrawal_tx, exit_state, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?)
       ON CONFLICT (statechain_id) DO UPDATE SET status = excluded.status, origin = excluded.origin,
         se_endpoint = excluded.se_endpoint, owner_index = excluded.owner_index, key_idx = excluded.key_idx,
         key_public = excluded.key_public, share_sealed = excluded.share_sealed, backup_tx = excluded.backup_tx,
         backup_history = excluded.backup_history, kickoff_tx = excluded.kickoff_tx,
         attestations = excluded.attestations, withdrawal_tx = NULL, exit_state = NULL, receiver_address = NULL,
         receiver_since = NULL, updated_at = excluded.updated_at`,
      [
        idBytes,
        meta.status,
        meta.origin,
        this.svc().se.endpoint,
        Number(coin.amountSat),
        coin.sharedPublicKey,
        coin.ownerIndex,
        coin.initialLock,
        coin.backupMode,
        coin.interval,
        meta.keyIdx,
        coin.keyPublic,
        this.store.seal(coin.share, shareLabel(hex(idBytes), meta.keyIdx)),
        coin.fundingTx,
        coin.backupTx,
        packFields(coin.backupHistory),
        coin.kickoffTx ?? null,
        JSON.stringify(meta.attestations),
        now,
        now,
      ],
    );
  }

  private async setStatus(
    row: CoinRow,
    status: CoinStatus,
    extra: { withdrawalTx?: Buffer; exit?: ExitState } = {},
  ) {
    await this.store.db.run(
      `UPDATE coins SET status = ?, withdrawal_tx = COALESCE(?, withdrawal_tx), exit_state = COALESCE(?, exit_state),
         updated_at = ? WHERE id = ?`,
      [
        status,
        extra.withdrawalTx ?? null,
        extra.exit ? JSON.stringify(extra.exit) : null,
        this.now(),
        row.id,
      ],
    );
  }

  private async setReceiver(id: number, address: string, since: number): Promise<void> {
    await this.store.db.run("UPDATE coins SET receiver_address = ?, receiver_since = ? WHERE id = ?", [
      address,
      since,
      id,
    ]);
  }

  private summary(row: CoinRow, tip?: number): CoinSummary {
    const lock = row.initial_lock - (row.owner_index - 1) * row.lock_interval;
    const mode = row.backup_mode as "absolute" | "kickoff";
    const P = row.shared_public_key;
    return {
      number: row.id,
      statechainId: outpointString(outpointFromBytes(row.statechain_id)),
      status: row.status as CoinStatus,
      origin: row.origin as "deposit" | "received",
      amountSat: BigInt(row.amount_sat),
      ownerIndex: row.owner_index,
      backupMode: mode,
      backupLock: lock,
      // The backup is final in a block above its nLockTime: it can go out once the tip reaches the lock.
      blocksToLock: mode === "absolute" && tip !== undefined ? Math.max(0, lock - tip) : undefined,
      depositAddress: bitcoin.payments.p2wpkh({ pubkey: P, network: this.bitcoinNetwork }).address!,
      seEndpoint: row.se_endpoint,
      attestations: JSON.parse(row.attestations) as AttestationSummary[],
      // A planned exit of a coin since sent or withdrawn is history, not state.
      exit:
        row.exit_state && !["sent", "withdrawn"].includes(row.status)
          ? (JSON.parse(row.exit_state) as ExitState)
          : undefined,
      withdrawalTxid: row.withdrawal_tx ? txidToHex(txidOf(parseTx(row.withdrawal_tx))) : undefined,
      seStatus: row.se_view ?? undefined,
      seCheckedAt: row.se_view_at ?? undefined,
      seFunding: row.se_funding ?? undefined,
      seFundingProblem: row.se_funding_problem ?? undefined,
      inBalance: inBalance(row),
      hint: coinHint(row),
      receiver:
        row.receiver_address && ["active", "sent"].includes(row.status)
          ? { address: row.receiver_address, sinceMs: row.receiver_since ?? row.updated_at }
          : undefined,
    };
  }

  /**
   * Every coin the wallet has held, with its state and lock (blocks left when a chain is connected). Connected,
   * it first asks the SE about each coin it holds there (refreshSeView).
   */
  async coins(): Promise<CoinSummary[]> {
    const tip = this.services ? await this.services.chain.tipHeight().catch(() => undefined) : undefined;
    if (this.services) {
      await this.refreshDeposits();
      await this.refreshSeView();
    }
    return (await this.rows()).map((r) => this.summary(r, tip));
  }

  /**
   * Asks the SE (GetStatechain) about each coin the wallet holds from it, and records the answer: its status, or
   * UNKNOWN when it has no such coin (NOT_FOUND). A coin the SE can no longer co-sign (EXIT_BY_BACKUP: its
   * enclave lost the key shares, e.g. a restart; TAINTED) becomes exit-only: it leaves by its backup. Unless the
   * SE also says the receiver's backup of a transfer of it was co-signed (the transfer was cut after that): then
   * the receiver's backup, with the earlier lock, wins and the coin is the receiver's (sent, see transferCut). An
   * SE that does not answer changes nothing.
   */
  async refreshSeView(): Promise<void> {
    const se = this.svc().se;
    const rows = (await this.rows()).filter(
      (r) => HELD.includes(r.status as CoinStatus) && r.status !== "exiting" && r.se_endpoint === se.endpoint,
    );
    for (const row of rows) {
      let view: string;
      let status: StatechainStatus | undefined;
      let funding: { state: string | null; problem: string | null } = { state: null, problem: null };
      let sc: SeResponse<"getStatechain"> | undefined;
      try {
        sc = await se.call("getStatechain", { statechainId: outpointFromBytes(row.statechain_id) });
        status = sc.status;
        view = seStatusName(status);
        // The SE's funding watch (#19.8): UNSPECIFIED (not looked yet) is recorded as nothing known.
        if (sc.fundingState !== FundingState.FUNDING_STATE_UNSPECIFIED)
          funding = {
            state: (FundingState[sc.fundingState] ?? String(sc.fundingState)).replace(/^FUNDING_STATE_/, ""),
            problem: sc.fundingProblem || null,
          };
      } catch (e) {
        if (!(e instanceof SeError) || e.code !== GRPC_NOT_FOUND) continue;
        view = "UNKNOWN";
      }
      await this.store.db.run(
        "UPDATE coins SET se_view = ?, se_view_at = ?, se_funding = ?, se_funding_problem = ? WHERE id = ?",
        [view, this.now(), funding.state, funding.problem, row.id],
      );
      if (sc && this.cutFromUs(row, sc)) {
        await this.setStatus(row, "sent");
        continue;
      }
      const lost =
        status === StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP ||
        status === StatechainStatus.STATECHAIN_STATUS_TAINTED;
      const cosignable =
        row.status === "active" ||
        row.status === "awaiting-confirmation" ||
        (row.status === "withdrawing" && !row.withdrawal_tx);
      if (lost && cosignable) await this.setStatus(row, "exit-only");
    }
  }

  /**
   * Whether the SE's answer `sc` says this wallet's coin `row` went to its receiver by a cut transfer: the SE still
   * names this wallet as the owner (its proof key, its owner index), can no longer co-sign the coin (its enclave
   * lost the key shares, or it is tainted), and has co-signed the next owner's backup. That backup's lock is an
   * interval earlier than this wallet's, and nothing can be co-signed to come before it: the coin is the receiver's.
   */
  private cutFromUs(row: CoinRow, sc: SeResponse<"getStatechain">): boolean {
    const stuck =
      sc.status === StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP ||
      sc.status === StatechainStatus.STATECHAIN_STATUS_TAINTED;
    return (
      stuck &&
      sc.nextOwnerBackupSigned &&
      sc.ownerIndex === row.owner_index &&
      Buffer.from(sc.currentProofKey).equals(Buffer.from(this.keys.publicKey("proof", row.key_idx))) &&
      ["active", "awaiting-confirmation", "exit-only", "tainted"].includes(row.status)
    );
  }

  /** Records the SE's status for a coin (as refreshSeView does). */
  private async recordSeView(row: CoinRow, sc: SeResponse<"getStatechain">): Promise<void> {
    await this.store.db.run("UPDATE coins SET se_view = ?, se_view_at = ? WHERE id = ?", [
      seStatusName(sc.status),
      this.now(),
      row.id,
    ]);
  }

  /** Asks the SE once about each deposit still awaiting confirmation (one left behind by an interrupted wait). */
  private async refreshDeposits(): Promise<void> {
    const rows = await this.store.db.all<CoinRow>(
      "SELECT * FROM coins WHERE status IN ('awaiting-confirmation', 'funding-failed')",
    );
    for (const row of rows) {
      const coin = this.loadCoin(row);
      const r = await this.context()
        .se.call("depositConfirm", { statechainId: coin.statechainId, auth: undefined }, coin.proofSecret)
        .catch(() => undefined);
      if (r?.status === StatechainStatus.STATECHAIN_STATUS_ACTIVE) {
        await this.setStatus(row, "active");
        continue;
      }
      // A funding the chain does not know (not in a block, not in the mempool) after a grace period did not go
      // out, or was dropped: not counted until rebroadcast (#19.10). One that turns up is awaited again.
      const txid = txidToHex(txidOf(parseTx(row.funding_tx)));
      const known = await this.svc()
        .chain.getTxStatus(txid)
        .then((st) => st !== undefined)
        .catch(() => undefined);
      if (known === true && row.status === "funding-failed")
        await this.setStatus(row, "awaiting-confirmation");
      else if (
        known === false &&
        row.status === "awaiting-confirmation" &&
        this.now() - row.created_at >= FUNDING_GRACE_MS
      )
        await this.setStatus(row, "funding-failed");
    }
  }

  async coin(ref: string | number): Promise<CoinSummary> {
    return this.summary(await this.coinRow(ref));
  }

  // --- recovery from the mnemonic (issue #22, client/restore.ts) ---------------------------------------------

  /**
   * Asks the SE what it holds for this seed's proof keys (slot by slot, up to `gap` empty ones in a row), rebuilds
   * each coin from the seed, checks it as `wallet verify` does and stores it. Coins the wallet already holds are
   * left alone. The key slots scanned are kept, those with coins marked used.
   */
  async recover(opts: RecoveryOptions = {}): Promise<RecoveryResult & { stored: CoinSummary[] }> {
    const held = await this.store.db.all<{ statechain_id: Buffer }>("SELECT statechain_id FROM coins");
    const pool = this.keyPool();
    const keys: RecoveryKeys = {
      proofSecret: (slot) => this.keys.secret("proof", slot),
      backupKey: (slot) => this.keys.publicKey("backup", slot),
      ownerShare: (slot, keygen) => this.keys.ownerShare(slot, keygen),
      paillierKey: async (slot, keygen) => {
        const path = paillierKeyPath(this.network, this.keys.account, slot, keygen);
        const key = await pool.take(path, { onWaiting: () => this.progress("paillier-key") });
        await pool.discard(path);
        return key;
      },
    };
    const result = await recoverCoins(
      this.context(),
      keys,
      { ...opts, known: new Set(held.map((r) => r.statechain_id.toString("hex"))) },
      (event, detail) => this.progress(event, detail),
    );
    const top = await this.store.db.get<{ idx: number | null }>("SELECT MAX(idx) AS idx FROM key_slots");
    for (let i = (top?.idx ?? -1) + 1; i < result.scanned; i++) await this.newSlot("receive");
    const stored: CoinSummary[] = [];
    for (const c of result.coins) {
      const record: CoinRecord = {
        ...c,
        keyPublic: c.key ? encodeKeyPublic(c.key) : Buffer.alloc(0),
        share: c.key ? encodeKeySecret(c.key) : Buffer.alloc(0),
      };
      const attestations: AttestationSummary[] = c.report.checks
        .filter((x) => /^attestation\.owner_\d+$/.test(x.name))
        .map((x) => ({
          what: "deletion",
          valid: x.status === "pass",
          simulator: c.report.simulator,
          warnings: [],
        }));
      await this.store.db.transaction(async (q) => {
        await this.saveCoin(record, { status: c.status, origin: c.origin, keyIdx: c.slot, attestations }, q);
        // The slot is spent; its keygen count moves past the keygen found, so no later keygen reuses its N.
        await q.run("UPDATE key_slots SET used = 1, purpose = ?, keygens = MAX(keygens, ?) WHERE idx = ?", [
          c.origin === "deposit" ? "deposit" : "receive",
          (c.keygen ?? -1) + 1,
          c.slot,
        ]);
      });
      record.share.fill(0);
      if (c.key) wipeHolderKey(c.key);
      stored.push(await this.coin(outpointString(c.statechainId)));
    }
    for (const slot of result.usedSlots)
      await this.store.db.run("UPDATE key_slots SET used = 1 WHERE idx = ?", [slot]);
    return { ...result, stored };
  }

  // --- deposit --------------------------------------------------------------------------------------------

  /**
   * Deposits `amountSat` from the wallet's on-chain coins: key generation with the SE, the backup co-signed, the
   * coin stored, then the funding broadcast. With `wait` (default), waits for the SE to confirm the deposit.
   */
  async deposit(
    amountSat: bigint,
    opts: WaitOptions & { wait?: boolean; token?: string } = {},
  ): Promise<CoinSummary> {
    const ctx = this.context();
    // The amount first, before any proof of work, key generation or coin selection is spent on it.
    if (amountSat <= 0n)
      throw new WalletError("AMOUNT_ZERO", "a deposit needs a positive amount", "precondition");
    const dust = dustThreshold(Uint8Array.from([0x51, 0x20, ...new Uint8Array(32)]));
    if (amountSat < dust)
      throw new WalletError(
        "AMOUNT_DUST",
        `${amountSat} sat is below the dust limit (${dust} sat): no backup paying it could be relayed`,
        "precondition",
      );
    const info = await ctx.se.call("getInfo", {});
    if (info.minDepositSat > 0n && amountSat < info.minDepositSat)
      throw new WalletError(
        "AMOUNT_RANGE",
        `this SE takes deposits of at least ${info.minDepositSat} sat; ${amountSat} sat is less`,
        "precondition",
      );
    if (info.maxDepositSat > 0n && amountSat > info.maxDepositSat)
      throw new WalletError(
        "AMOUNT_RANGE",
        `this SE takes deposits of at most ${info.maxDepositSat} sat; ${amountSat} sat is more`,
        "precondition",
      );
    const utxos = await this.onchainUtxos();
    const total = utxos.reduce((s, u) => s + u.valueSat, 0n);
    if (total <= amountSat)
      throw new WalletError(
        "INSUFFICIENT_FUNDS",
        `the wallet has ${total} sat on chain, not enough for ${amountSat} sat plus fees; send bitcoin to ${await this.fundingAddress()}${this.network === "regtest" ? " (or run `wallet faucet`)" : ""}`,
        "precondition",
      );
    const slot = await this.newSlot("deposit");
    const id = this.identity(slot.idx);
    let saved: string | undefined;
    let coin: OwnedCoin;
    try {
      coin = await deposit(this.keygenContext(slot.idx), {
        amountSat,
        utxos,
        changeScript: await this.changeScript(),
        proofSecret: id.proofSecret,
        backupSecret: id.backupSecret,
        token: opts.token,
        beforeBroadcast: async (c) => {
          await this.saveCoin(recordOf(c), {
            status: "awaiting-confirmation",
            origin: "deposit",
            keyIdx: slot.idx,
            attestations: [],
          });
          saved = outpointString(c.statechainId);
        },
      });
    } catch (e) {
      // Only the broadcast follows the coin's saving: a coin whose funding did not go out is not counted (#19.10).
      if (saved === undefined) throw e;
      const row = await this.coinRow(saved);
      await this.setStatus(row, "funding-failed");
      throw this.fundingFailed(row, e);
    }
    const row = await this.coinRow(outpointString(coin.statechainId));
    this.progress("deposited", {
      statechainId: outpointString(coin.statechainId),
      address: this.summary(row).depositAddress,
      fundingTxid: txidToHex(coin.statechainId.txid),
    });
    if (opts.wait === false) return this.summary(row);
    return this.confirmDeposit(row.id, opts);
  }

  private fundingFailed(row: CoinRow, e: unknown): WalletError {
    const txid = txidToHex(txidOf(parseTx(row.funding_tx)));
    const spent = e instanceof ChainError && (e.code === "missing-inputs" || e.code === "conflict");
    return new WalletError(
      "FUNDING_FAILED",
      spent
        ? `the funding transaction ${txid} of coin #${row.id} cannot be broadcast: its inputs are spent elsewhere (${(e as Error).message}); the coin will never be funded and is not counted in the balance`
        : `the funding transaction ${txid} of coin #${row.id} was not broadcast (${e instanceof Error ? e.message : String(e)}); the coin is not counted in the balance until it is: run \`wallet deposit --rebroadcast ${row.id}\``,
      "precondition",
    );
  }

  /**
   * Broadcasts a deposit's funding transaction again (one whose broadcast failed, or that left the mempool); with
   * `wait` (default), waits for the SE to confirm the deposit.
   */
  async rebroadcastFunding(
    ref: string | number,
    opts: WaitOptions & { wait?: boolean } = {},
  ): Promise<CoinSummary> {
    const row = await this.coinRow(ref);
    if (row.status !== "funding-failed" && row.status !== "awaiting-confirmation")
      throw new WalletError(
        "COIN_STATE",
        `coin ${row.id} is ${row.status}; only a deposit awaiting its funding can be rebroadcast`,
        "precondition",
      );
    const { chain } = this.svc();
    this.progress("broadcast", { txid: txidToHex(txidOf(parseTx(row.funding_tx))) });
    try {
      await broadcastIdempotent(chain, row.funding_tx);
    } catch (e) {
      await this.setStatus(row, "funding-failed");
      throw this.fundingFailed(row, e);
    }
    await this.setStatus(row, "awaiting-confirmation");
    if (opts.wait === false) return this.coin(row.id);
    return this.confirmDeposit(row.id, opts);
  }

  /** Waits until the SE reports the deposit confirmed (ACTIVE). */
  async confirmDeposit(ref: string | number, opts: WaitOptions = {}): Promise<CoinSummary> {
    const row = await this.coinRow(ref);
    if (row.status !== "awaiting-confirmation") return this.summary(row);
    await confirmDeposit(this.context(), this.loadCoin(row), opts);
    await this.setStatus(row, "active");
    return this.coin(row.id);
  }

  // --- send -----------------------------------------------------------------------------------------------

  /** Hands an active coin to the owner of `address`; the coin is theirs once they receive it. */
  async send(ref: string | number, address: string): Promise<CoinSummary> {
    const to = decodeReceiveAddress(address, this.network);
    let row = await this.coinRow(ref);
    if (transferCut(row)) throw transferCutError(row);
    if (row.status === "awaiting-confirmation")
      row = await this.coinRow((await this.confirmDeposit(row.id)).number);
    if (row.status !== "active" && row.status !== "sent")
      throw new WalletError(
        "COIN_STATE",
        `coin ${row.id} is ${row.status}; only an active coin can be sent`,
        "precondition",
      );
    // The receiver is recorded before the SE is asked (#19.9): an interrupted send still names it, and a retry
    // to another address is told where the coin is committed. A redirect the SE refuses keeps the old record.
    const before = row.receiver_address
      ? { address: row.receiver_address, since: row.receiver_since }
      : undefined;
    const same = before !== undefined && sameReceiver(before.address, address, this.network);
    if (!same) await this.setReceiver(row.id, address, this.now());
    try {
      await send(this.context(), this.loadCoin(row), to);
    } catch (err) {
      if (before && !same && err instanceof SeError && /cannot be redirected/.test(err.message)) {
        await this.setReceiver(row.id, before.address, before.since ?? row.updated_at);
        throw new WalletError(
          "COIN_COMMITTED",
          `coin ${row.id} is committed to ${before.address} (since ${new Date(before.since ?? row.updated_at).toISOString()}): its backup for that receiver is co-signed; finish with \`wallet send ${row.id} ${before.address}\``,
          "precondition",
        );
      }
      // The SE says the coin can no longer be co-signed (its enclave lost the share): the wallet shows that, and
      // the coin's way out, instead of an active coin that cannot move.
      if (
        err instanceof SeError &&
        err.code === Status.FAILED_PRECONDITION &&
        EXIT_ONLY_ANSWER.test(err.message)
      ) {
        // Cut after the receiver's backup was co-signed: the coin is the receiver's (its backup wins), and the
        // receiver on record is that one, whatever this retry named.
        const sc = await this.context()
          .se.call("getStatechain", { statechainId: outpointFromBytes(row.statechain_id) })
          .catch(() => undefined);
        if (sc && this.cutFromUs(row, sc)) {
          if (before && !same) await this.setReceiver(row.id, before.address, before.since ?? row.updated_at);
          await this.recordSeView(row, sc);
          await this.setStatus(row, "sent");
          throw transferCutError(await this.coinRow(row.id));
        }
        await this.setStatus(row, "exit-only");
        throw new WalletError(
          "EXIT_ONLY",
          `the SE can no longer co-sign coin ${row.id} (${err.message.replace(/^\S+: /, "")}); it can only leave by its backup transaction: \`wallet exit ${row.id}\``,
          "precondition",
        );
      }
      throw err;
    }
    await this.setStatus(row, "sent");
    return this.coin(row.id);
  }

  // --- receive --------------------------------------------------------------------------------------------

  /**
   * Reads the mailboxes of the wallet's receive addresses and takes every coin that passes every check; the
   * others are refused, each with the reason. With `wait`, polls until something arrives (or the timeout).
   */
  async receive(opts: WaitOptions & { wait?: boolean } = {}): Promise<ReceiveResult> {
    const result: ReceiveResult = { received: [], refused: [] };
    const deadline = this.now() + (opts.timeoutMs ?? 30 * 60_000);
    let polls = 0;
    let unreadable = 0;
    for (;;) {
      await this.resumePending(result);
      // Only addresses that can still receive (#19.7): a slot whose coin arrived is done, and a slot exists only
      // once its address was handed out (or, after a restore, scanned for). All go in batched, signed requests.
      const slots = await this.store.db.all<KeySlotRow>(
        "SELECT * FROM key_slots WHERE purpose = 'receive' AND used = 0 ORDER BY idx",
      );
      if (polls++ === 0) this.progress("mailbox", { addresses: slots.length });
      const ids = slots.map((slot) => this.identity(slot.idx));
      const boxes = await fetchMailboxes(this.context(), ids);
      const junk: Uint8Array[][] = [];
      for (const [i, slot] of slots.entries()) {
        const box = boxes[i]!;
        junk.push(box.unreadable.map((u) => u.messageId));
        for (const u of box.unreadable) {
          // Reported once, then deleted from the mailbox (#19.5): it frees the room and ends no wait.
          result.refused.push({
            statechainId: u.statechainId && outpointString(u.statechainId),
            code: u.code,
            reason: `${u.reason}; discarded from the mailbox`,
          });
          unreadable++;
        }
        for (const incoming of box.incoming) await this.takeIncoming(slot.idx, ids[i]!, incoming, result);
      }
      const dirty = slots.flatMap((_s, i) => (junk[i]!.length ? [i] : []));
      if (dirty.length)
        await fetchMailboxes(
          this.context(),
          dirty.map((i) => ids[i]!),
          dirty.map((i) => junk[i]!),
        );
      // A coin refused only because its state is not published yet (the SE's next Mainstay commitment) is
      // worth waiting for: with `wait`, polling goes on until it is, or until the timeout.
      // Unreadable messages (junk anyone can send) are reported but do not end a wait (#19.5).
      const unpublished =
        result.received.length === 0 &&
        result.refused.length > unreadable &&
        result.refused.every(
          (r) => isUnreadable(r) || (r.code === "UNPUBLISHED" && r.exitOnlyCoin === undefined),
        );
      const refusedCoins = result.refused.length - unreadable;
      if (!opts.wait || result.received.length > 0 || (refusedCoins > 0 && !unpublished)) return result;
      if (this.now() >= deadline) return result;
      if (unpublished) {
        this.progress("waiting", { for: "the SE's next Mainstay commitment" });
        const kept = result.refused.filter(isUnreadable);
        result.refused.length = 0;
        result.refused.push(...kept);
      } else if (polls === 1) this.progress("waiting", { for: "incoming transfers" });
      if (opts.onWait) await opts.onWait();
      else await sleep(opts.pollMs ?? 5000);
    }
  }

  /** Receives one incoming transfer (exposed for tests that hand the wallet a message themselves). */
  async takeIncoming(
    keyIdx: number,
    id: ReceiverIdentity,
    incoming: IncomingTransfer,
    result: ReceiveResult,
  ) {
    const sid = outpointString(incoming.statechainId);
    this.progress("checking", { statechainId: sid });
    try {
      const coin = await receive(this.keygenContext(keyIdx), id, incoming, {
        beforeKeyUpdate: (checked, prepared) => this.savePending(keyIdx, checked, prepared),
      });
      result.received.push(await this.storeReceived(coin, keyIdx));
    } catch (e) {
      if (e instanceof TransferCutError) {
        // Cut after this wallet's backup was co-signed: the coin is ours, by that backup only.
        result.received.push(await this.keepCut(keyIdx, e.checked));
        return;
      }
      if (e instanceof SeError) {
        result.refused.push({ statechainId: sid, code: `SE_${e.codeName}`, reason: e.message });
        return;
      }
      if (!(e instanceof ProtocolError)) throw e;
      const refusal: Refusal = {
        statechainId: sid,
        code: e.code,
        reason: e.message,
        failedChecks: (e as { failedChecks?: string[] }).failedChecks,
      };
      const idBytes = outpointBytes(incoming.statechainId);
      if (e instanceof RefusedAfterKeyUpdateError)
        refusal.exitOnlyCoin = (await this.keepForExit(idBytes)).number;
      else if (e.code !== "KEY_UPDATE_UNANSWERED")
        await this.store.db.run("DELETE FROM pending_receives WHERE statechain_id = ?", [idBytes]);
      result.refused.push(refusal);
    }
  }

  /**
   * Stores the coin of a pending receive as exit-only: the SE moved it to this wallet, but it cannot (or must
   * not) be used with the SE. Its newest backup, paying this wallet, and o2 stay; the pending receive goes.
   */
  private async keepForExit(idBytes: Buffer): Promise<CoinSummary> {
    const row = (await this.store.db.get<PendingReceiveRow>(
      "SELECT * FROM pending_receives WHERE statechain_id = ?",
      [idBytes],
    ))!;
    const sid = outpointFromBytes(idBytes);
    const incoming = openTransfer(this.identity(row.key_idx), row.message_id, sid, row.ciphertext);
    const checked = { ...reviveChecked(row.checked), incoming } as CheckedTransfer;
    const share = this.store.open(row.share_sealed, pendingLabel(hex(idBytes), row.key_idx));
    try {
      return await this.storeExitOnly(row.key_idx, checked, share);
    } finally {
      share.fill(0);
    }
  }

  /**
   * Stores the coin of a transfer cut after this wallet's backup was co-signed (TransferCutError: the SE has it
   * exit-by-backup, every check passed) as exit-only: the backup handed over is its way out. No key update
   * happened, so there is no two-party key: the row's key and share are empty. Any pending receive of it goes.
   */
  private async keepCut(keyIdx: number, checked: CheckedTransfer): Promise<CoinSummary> {
    const summary = await this.storeExitOnly(keyIdx, checked, Buffer.alloc(0));
    await this.store.db.run("UPDATE coins SET se_view = ?, se_view_at = ? WHERE id = ?", [
      seStatusName(StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP),
      this.now(),
      summary.number,
    ]);
    this.progress("exit-only", { statechainId: summary.statechainId, reason: "transfer cut" });
    return this.coin(summary.number);
  }

  /** An incoming coin stored exit-only (received, no two-party key) with the backup its sender handed over. */
  private async storeExitOnly(
    keyIdx: number,
    checked: CheckedTransfer,
    share: Uint8Array,
  ): Promise<CoinSummary> {
    const m = checked.incoming.message;
    const idBytes = outpointBytes(checked.statechainId);
    const record: CoinRecord = {
      statechainId: checked.statechainId,
      amountSat: checked.amountSat,
      sharedPublicKey: checked.sharedPublicKey,
      ownerIndex: checked.newIndex,
      initialLock: checked.initialLock,
      backupMode: checked.backupMode,
      interval: checked.interval,
      keyPublic: Buffer.alloc(0),
      share,
      fundingTx: m.fundingTx,
      backupTx: m.backupTx,
      backupHistory: m.backupHistory,
      kickoffTx: checked.kickoffTx,
    };
    await this.store.db.transaction(async (q) => {
      await this.saveCoin(record, { status: "exit-only", origin: "received", keyIdx, attestations: [] }, q);
      await q.run("DELETE FROM pending_receives WHERE statechain_id = ?", [idBytes]);
      await q.run("UPDATE key_slots SET used = 1 WHERE idx = ?", [keyIdx]);
    });
    return this.coin(outpointString(checked.statechainId));
  }

  private async storeReceived(coin: OwnedCoin, keyIdx: number): Promise<CoinSummary> {
    // finishKeyUpdate lists the transfer key's verdict (absent when resumed) before the deletion's.
    const verdicts = coin.attestations;
    const attestations = verdicts.map((v, i) =>
      summarize(i === verdicts.length - 1 ? "deletion" : "transfer-key", v),
    );
    const idBytes = outpointBytes(coin.statechainId);
    await this.store.db.transaction(async (q) => {
      await this.saveCoin(recordOf(coin), { status: "active", origin: "received", keyIdx, attestations }, q);
      await q.run("DELETE FROM pending_receives WHERE statechain_id = ?", [idBytes]);
      await q.run("UPDATE key_slots SET used = 1 WHERE idx = ?", [keyIdx]);
    });
    const summary = await this.coin(outpointString(coin.statechainId));
    return coin.publication ? { ...summary, publication: coin.publication } : summary;
  }

  private async savePending(
    keyIdx: number,
    checked: CheckedTransfer,
    prepared: PreparedKeyUpdate,
  ): Promise<void> {
    const idBytes = outpointBytes(checked.statechainId);
    const { incoming, ...rest } = checked;
    await this.store.db.run(
      `INSERT OR REPLACE INTO pending_receives (statechain_id, key_idx, message_id, ciphertext, checked, request,
         share_sealed, keygen_session, nonce, transfer_key_verdict, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        idBytes,
        keyIdx,
        incoming.messageId,
        incoming.ciphertext,
        JSON.stringify(rest, (_k, v) =>
          typeof v === "bigint"
            ? `${v}n`
            : v?.type === "Buffer"
              ? { hex: Buffer.from(v.data).toString("hex") }
              : v,
        ),
        Buffer.from(TransferReceiverKeyUpdateRequest.encode(prepared.request).finish()),
        this.store.seal(
          encodeShareAndPaillier(prepared.share, prepared.paillier),
          pendingLabel(hex(idBytes), keyIdx),
        ),
        prepared.keygenSessionId,
        prepared.nonce,
        prepared.transferKeyVerdict
          ? JSON.stringify(summarize("transfer-key", prepared.transferKeyVerdict))
          : null,
        this.now(),
      ],
    );
  }

  /**
   * Finishes key updates that were sent but whose answer never arrived, by sending the very same signed request
   * again (the SE answers a repeat with the stored response, within its replay window).
   */
  private async resumePending(result: ReceiveResult): Promise<void> {
    const rows = await this.store.db.all<PendingReceiveRow>("SELECT * FROM pending_receives");
    for (const row of rows) {
      const sid = outpointFromBytes(row.statechain_id);
      const id = this.identity(row.key_idx);
      const incoming = openTransfer(id, row.message_id, sid, row.ciphertext);
      const checked = { ...reviveChecked(row.checked), incoming } as CheckedTransfer;
      const secret = this.store.open(row.share_sealed, pendingLabel(hex(row.statechain_id), row.key_idx));
      const { share, paillier } = decodeKeySecret(secret, this.rng);
      secret.fill(0);
      const prepared: PreparedKeyUpdate = {
        request: TransferReceiverKeyUpdateRequest.decode(row.request),
        share: Buffer.from(share),
        paillier,
        keygenSessionId: row.keygen_session,
        nonce: row.nonce,
        transferKeyVerdict: undefined,
      };
      try {
        const coin = await finishKeyUpdate(this.context(), id, checked, prepared);
        result.received.push(
          await this.storeReceived({ ...coin, publication: checked.publication }, row.key_idx),
        );
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e;
        const refusal: Refusal = { statechainId: outpointString(sid), code: e.code, reason: e.message };
        if (e instanceof RefusedAfterKeyUpdateError) {
          refusal.failedChecks = e.failedChecks;
          refusal.exitOnlyCoin = (await this.keepForExit(row.statechain_id)).number;
        } else if (e.code === "NO_PCR_POLICY") {
          // Nothing was sent: kept as it is, to finish once the wallet pins the enclave's measurements again.
        } else if (e.code !== "KEY_UPDATE_UNANSWERED") {
          // The SE answered the repeat with an error: did the first request go through?
          const sc = await this.context().se.call("getStatechain", { statechainId: sid });
          const ours =
            Buffer.from(sc.currentProofKey).equals(pub(id.proofSecret)) && sc.ownerIndex === checked.newIndex;
          if (ours) {
            // Done, its answer lost: fetch it (the SE keeps it for the new owner) and check it as a first answer.
            try {
              const answer = await fetchKeyUpdateAnswer(this.context(), id, sid);
              const coin = await finishKeyUpdate(this.context(), id, checked, prepared, answer);
              result.received.push(await this.storeReceived(coin, row.key_idx));
              continue;
            } catch (again) {
              if (!(again instanceof ProtocolError || again instanceof SeError)) throw again;
              refusal.code = "KEY_UPDATE_LOST";
              refusal.reason = `the SE did the key update but its answer is lost (${e.message}; fetching it again: ${(again as Error).message}): without the SE's new key share the coin cannot be co-signed; its backup takes it out`;
              if (again instanceof RefusedAfterKeyUpdateError) refusal.failedChecks = again.failedChecks;
              refusal.exitOnlyCoin = (await this.keepForExit(row.statechain_id)).number;
            }
          } else if (
            sc.status === StatechainStatus.STATECHAIN_STATUS_EXIT_BY_BACKUP &&
            sc.ownerIndex === checked.newIndex - 1
          ) {
            // Cut before the key update went through (the enclave restarted and lost the coin's key): the backup
            // checked when the key update was prepared is the coin's first valid exit, and this wallet's.
            result.received.push(await this.keepCut(row.key_idx, { ...checked, cut: true }));
            continue;
          } else {
            // Not done (the mailbox still holds the transfer for a fresh attempt), or the coin went elsewhere.
            await this.store.db.run("DELETE FROM pending_receives WHERE statechain_id = ?", [
              row.statechain_id,
            ]);
            if (sc.status === StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING) continue;
          }
        }
        result.refused.push(refusal);
      } finally {
        share.fill(0);
      }
    }
  }

  // --- withdraw -------------------------------------------------------------------------------------------

  /** Withdraws a coin on chain to `address`; with `wait` (default), until the SE reports it confirmed. */
  async withdraw(
    ref: string | number,
    address: string,
    opts: WaitOptions & { wait?: boolean } = {},
  ): Promise<{ txid: string; coin: CoinSummary } & WithdrawalFigures> {
    let destination: Uint8Array;
    try {
      destination = bitcoin.address.toOutputScript(address, this.bitcoinNetwork);
    } catch {
      throw new WalletError("ADDRESS_INVALID", `"${address}" is not a ${this.network} bitcoin address`);
    }
    const row = await this.coinRow(ref);
    if (row.status !== "active" && !(row.status === "withdrawing" && row.withdrawal_tx))
      throw new WalletError(
        "COIN_STATE",
        `coin ${row.id} is ${row.status}; only an active coin can be withdrawn`,
        "precondition",
      );
    const ctx = this.context();
    const coin = this.loadCoin(row);
    let txid: string;
    let signed: Uint8Array;
    if (row.status === "withdrawing" && row.withdrawal_tx) {
      signed = row.withdrawal_tx;
      txid = txidToHex(txidOf(parseTx(row.withdrawal_tx)));
      // Not in the chain or mempool (dropped, or taken out by a reorg before it was buried, #19.4): the wallet
      // sends its signed withdrawal again itself rather than rely on the SE to.
      if (!(await ctx.chain.getTxStatus(txid))) await broadcastIdempotent(ctx.chain, row.withdrawal_tx);
      await ctx.se.call(
        "withdrawConfirm",
        { statechainId: coin.statechainId, withdrawalTx: row.withdrawal_tx, auth: undefined },
        coin.proofSecret,
      );
    } else {
      // An interrupted withdrawal is resumed with the statement already sent: the SE accepts that one again and
      // no other (#19.3). It is kept until the withdrawal is signed.
      const key = `withdraw.statement.${row.id}`;
      const kept = await this.store.getConfig<{ script: string; statement: string }>(key);
      const same = kept?.script === Buffer.from(destination).toString("hex");
      const w = await withdraw(ctx, coin, destination, {
        statement: kept && same ? StatechainTx.decode(Buffer.from(kept.statement, "hex")) : undefined,
        onStatement: (sctx) =>
          this.store.setConfig(key, {
            script: Buffer.from(destination).toString("hex"),
            statement: Buffer.from(StatechainTx.encode(sctx).finish()).toString("hex"),
          }),
        onSigned: (tx) => this.setStatus(row, "withdrawing", { withdrawalTx: tx }),
      });
      await this.store.setConfig(key, undefined);
      txid = w.txid;
      signed = w.tx;
    }
    if (opts.wait !== false) {
      await confirmWithdrawal(ctx, coin, opts);
      await this.setStatus(row, "withdrawn");
    }
    return { txid, coin: await this.coin(row.id), ...this.withdrawalFigures(row, signed) };
  }

  /** What a signed withdrawal pays: output 0 to its destination, output 1 (if any) the SE's fee, the rest fees. */
  private withdrawalFigures(row: CoinRow, raw: Uint8Array): WithdrawalFigures {
    const tx = parseTx(raw, "withdrawal");
    const spent = this.spentAmount(row, tx.ins[0]!);
    const out = tx.outs.reduce((s, o) => s + o.value, 0n);
    return {
      destination: this.addressOf(tx.outs[0]!.script),
      receivedSat: tx.outs[0]!.value,
      seFeeSat: tx.outs[1]?.value ?? 0n,
      feeSat: spent - out,
    };
  }

  /** The amount of the output a coin's withdrawal or backup spends: the coin's outpoint, or kick-off output 0. */
  private spentAmount(row: CoinRow, input: { hash: Uint8Array; index: number }): bigint {
    const sid = outpointFromBytes(row.statechain_id);
    if (Buffer.from(input.hash).equals(Buffer.from(sid.txid)) && input.index === sid.vout)
      return BigInt(row.amount_sat);
    if (!row.kickoff_tx)
      throw new WalletError(
        "WALLET_CORRUPT",
        `coin ${row.id}: a transaction spends neither its outpoint nor a kick-off`,
        "internal",
      );
    return parseTx(row.kickoff_tx, "kick-off").outs[0]!.value;
  }

  private addressOf(script: Uint8Array): string {
    try {
      return bitcoin.address.fromOutputScript(script, this.bitcoinNetwork);
    } catch {
      return `script ${hex(script)}`;
    }
  }

  /**
   * What the coin's backup pays when it exits: output 0 to this wallet's backup key (its on-chain funds from then
   * on); the fee is everything the coin loses on the way (the backup's fee, in kick-off mode also the kick-off's
   * fee and its anchor output, which the CPFP child spends).
   */
  private exitFigures(row: CoinRow): ExitFigures {
    const backup = parseTx(row.backup_tx, "backup");
    const received = backup.outs[0]!.value;
    return {
      destination: this.addressOf(backup.outs[0]!.script),
      receivedSat: received,
      feeSat: BigInt(row.amount_sat) - received,
    };
  }

  // --- exit -----------------------------------------------------------------------------------------------

  /**
   * Exits a coin by its backup (kick-off with CPFP first in kick-off mode), waiting for the locks unless
   * `wait` is false; resumable: run it again to continue.
   */
  async exit(
    ref: string | number,
    opts: WaitOptions & { wait?: boolean } = {},
  ): Promise<{ state: ExitState; coin: CoinSummary } & ExitFigures> {
    const row = await this.coinRow(ref);
    const s = this.svc();
    if (transferCut(row)) throw transferCutError(row);
    if (["active", "exit-only", "tainted", "awaiting-confirmation"].includes(row.status)) {
      // The SE's word first, when it answers: a coin whose transfer was cut after the receiver's backup was
      // co-signed is the receiver's, and this wallet's older backup would only lose to it. An SE that does not
      // answer stops no exit.
      const sc = await s.se
        .call("getStatechain", { statechainId: outpointFromBytes(row.statechain_id) }, undefined, 10_000)
        .catch(() => undefined);
      if (sc && this.cutFromUs(row, sc)) {
        await this.recordSeView(row, sc);
        await this.setStatus(row, "sent");
        throw transferCutError(await this.coinRow(row.id));
      }
    }
    // A withdrawal that left the chain (a reorg before it was buried, #19.4) leaves the backup as the newest
    // owner's exit: such a coin may exit. One in the chain or mempool may not (the backup would conflict).
    const withdrawalGone =
      row.status === "withdrawing" &&
      (!row.withdrawal_tx || !(await s.chain.getTxStatus(txidToHex(txidOf(parseTx(row.withdrawal_tx))))));
    if (
      !withdrawalGone &&
      !["active", "exiting", "exit-only", "tainted", "awaiting-confirmation"].includes(row.status)
    )
      throw new WalletError(
        "COIN_STATE",
        `coin ${row.id} is ${row.status}: its backup is no longer the newest (or it left already)`,
        "precondition",
      );
    const feeUtxos = row.backup_mode === "kickoff" ? await this.onchainUtxos() : [];
    const state = await exitByBackup(
      {
        backupMode: row.backup_mode as "absolute" | "kickoff",
        backupTx: row.backup_tx,
        kickoffTx: row.kickoff_tx ?? undefined,
        amountSat: BigInt(row.amount_sat),
      },
      {
        chain: s.chain,
        feeRateSatVb: s.feeRateSatVb ?? 2,
        feeUtxos,
        changeScript: await this.changeScript(),
        state: row.exit_state ? (JSON.parse(row.exit_state) as ExitState) : undefined,
        // Until something is broadcast the coin stays as it was (it can still be sent or withdrawn).
        save: (st) =>
          this.setStatus(
            row,
            st.stage === "confirmed" ? "exited" : st.broadcast ? "exiting" : (row.status as CoinStatus),
            {
              exit: st,
            },
          ),
        onWait: opts.onWait,
        pollMs: opts.pollMs,
        noWait: opts.wait === false,
        timeoutMs: opts.timeoutMs,
        now: this.now,
        onProgress: s.onProgress,
      },
    );
    return { state, coin: await this.coin(row.id), ...this.exitFigures(row) };
  }

  // --- verify ---------------------------------------------------------------------------------------------

  /** Every check of a coin, named (see verify.ts). */
  async verify(ref: string | number): Promise<VerifyReport> {
    const row = await this.coinRow(ref);
    const id = this.identity(row.key_idx);
    return verifyCoin(this.context(), {
      statechainId: outpointFromBytes(row.statechain_id),
      sharedPublicKey: row.shared_public_key,
      amountSat: BigInt(row.amount_sat),
      backupMode: row.backup_mode as "absolute" | "kickoff",
      initialLock: row.initial_lock,
      interval: row.lock_interval,
      ownerIndex: row.owner_index,
      proofKey: pub(id.proofSecret),
      backupKey: pub(id.backupSecret),
      held: HELD.includes(row.status as CoinStatus),
      fundingTx: row.funding_tx,
      backups: [...(row.backup_history.length ? unpackHistory(row.backup_history) : []), row.backup_tx],
      kickoffTx: row.kickoff_tx ?? undefined,
    });
  }
}

/** gRPC's NOT_FOUND: the SE has no such coin. */
const GRPC_NOT_FOUND = 5;

/**
 * A coin this wallet sent whose transfer was cut after the receiver's backup was co-signed (marked from the SE's
 * answer, Wallet.cutFromUs): sent, with the SE's view of it stuck (it can no longer co-sign the coin).
 */
function transferCut(row: CoinRow): boolean {
  return row.status === "sent" && (row.se_view === "EXIT_BY_BACKUP" || row.se_view === "TAINTED");
}

/** Why a cut transfer's coin is the receiver's, in words. */
function transferCutText(row: CoinRow): string {
  const to = row.receiver_address ? ` to ${row.receiver_address}` : "";
  const why =
    row.se_view === "TAINTED" ? "its key is tainted" : "its enclave lost the key shares, e.g. it restarted";
  return `the transfer${to} was cut after the receiver's backup was co-signed (the SE can no longer co-sign the coin: ${why}); the receiver's backup has the earlier lock and wins; this coin is the receiver's now, and this wallet's older backup cannot take it out`;
}

function transferCutError(row: CoinRow): WalletError {
  return new WalletError(
    "TRANSFER_CUT",
    `coin ${row.id} cannot leave by this wallet's backup: ${transferCutText(row)}`,
    "precondition",
  );
}

/** What to do with a coin that is not simply active, in a few words naming the command. */
function coinHint(row: CoinRow): string | undefined {
  if (transferCut(row)) return `${transferCutText(row)}; not counted in the balance`;
  const held = HELD.includes(row.status as CoinStatus);
  if (held && fundingLost(row))
    return `its funding transaction left the chain: the SE says ${row.se_funding_problem ?? "it is no longer in the chain or the mempool"}; it refuses to co-sign or transfer the coin until the funding is back, and the coin is not counted in the balance`;
  if (held && row.se_view === "UNKNOWN")
    return `unknown to the SE at ${row.se_endpoint} (restarted with --fresh, or another SE): not counted in the balance; if its funding output is still on chain, \`wallet exit ${row.id}\` takes it out by its backup`;
  if (row.status === "exit-only")
    return `exit only: the SE can no longer co-sign it${row.se_view === "EXIT_BY_BACKUP" ? " (its enclave lost the key shares, e.g. it restarted)" : ""}; \`wallet exit ${row.id}\` takes it out by its backup once the lock allows`;
  return undefined;
}

/** A refusal of a mailbox message that did not decrypt or decode (discarded, not a coin). */
const isUnreadable = (r: Refusal) => UNREADABLE_CODES.has(r.code);
const UNREADABLE_CODES = new Set(["MESSAGE_DECRYPT", "MESSAGE_DECODE", "MESSAGE_STATECHAIN"]);

/** Whether two receive addresses carry the same keys (one may be written in another case). */
function sameReceiver(a: string, b: string, network: WalletNetwork): boolean {
  try {
    const x = decodeReceiveAddress(a, network);
    const y = decodeReceiveAddress(b, network);
    return Buffer.from(x.proofKey).equals(y.proofKey) && Buffer.from(x.backupKey).equals(y.backupKey);
  } catch {
    return false;
  }
}

function unpackHistory(blob: Buffer): Buffer[] {
  let count = 0;
  for (let at = 0; at < blob.length; count++) at += 4 + blob.readUInt32BE(at);
  return unpackFields(blob, count, "backup history");
}

/** The stored CheckedTransfer (without its message), with bigints and buffers restored. */
function reviveChecked(json: string): Omit<CheckedTransfer, "incoming"> {
  return JSON.parse(json, (_k, v) => {
    if (typeof v === "string" && /^\d+n$/.test(v)) return BigInt(v.slice(0, -1));
    if (v && typeof v === "object" && typeof v.hex === "string" && Object.keys(v).length === 1)
      return Buffer.from(v.hex, "hex");
    return v;
  });
}
