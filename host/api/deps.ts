// What the public API handlers need from the rest of the host.

import type { ChainBackend } from "../../chain/backend.ts";
import type { EnclaveServiceClient } from "../../proto/gen/enclave.ts";
import type { GetSmtProofResponse } from "../../proto/gen/statechain.ts";
import type { MainstayKeyParams } from "../../protocol/mainstay.ts";
import type { HostConfig } from "../config.ts";
import type { CrashHook } from "../crash-hook.ts";
import type { Logger } from "../log.ts";
import type { Monitor } from "../monitor.ts";
import type { PowGuard } from "../pow.ts";
import type { RateLimiter } from "../ratelimit.ts";
import type { Store } from "../store.ts";

/** The statechain sparse Merkle tree (leaf = current state hash), brought up to date after each commit. */
export interface StateTree {
  /** Writes every committed state the tree does not hold yet (idempotent; also run at start-up). */
  sync(): Promise<void>;
}

/** Backup transactions handed to the watchtower once their owner owns the coin. */
export interface BackupWatcher {
  register(entry: {
    statechainId: Uint8Array;
    ownerIndex: number;
    backupTx: Uint8Array;
    kickoffTx?: Uint8Array;
  }): Promise<void>;
  remove(statechainId: Uint8Array): Promise<void>;
}

/** SMT and Mainstay proofs for a statechain (the publisher). */
export interface ProofSource {
  proofFor(statechainId: Uint8Array): Promise<GetSmtProofResponse>;
}

export interface ApiDeps {
  cfg: HostConfig;
  store: Store;
  enclave: EnclaveServiceClient;
  chain: ChainBackend;
  monitor: Monitor;
  log: Logger;
  pow: PowGuard;
  keyLimiter: RateLimiter;
  tree: StateTree;
  watcher: BackupWatcher;
  proofs: ProofSource;
  /** PEM of the simulator root CA (simulator mode), published so owners can choose to trust it. */
  simulatorRootPem: string;
  /** Prepaid deposit tokens (SHA-256 hex of each), when the deposit guard is "token". */
  depositTokenHashes: ReadonlySet<string>;
  /** Where the SMT roots are published (the local service's address in simulator mode); empty when off. */
  mainstayUrl: string;
  /** The local Mainstay service's attestation key, published in simulator mode. */
  mainstayKey?: MainstayKeyParams;
  /**
   * Asks the enclave now whether it is still the instance the host knows (the monitor otherwise polls every few
   * seconds), marks the coins of an instance that is gone exit-by-backup, and returns the current instance id.
   */
  recheckEnclave(): Promise<Buffer>;
  /** Test-only fault injection (host/crash-hook.ts). */
  crash?: CrashHook;
}
