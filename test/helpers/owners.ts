// Owners for integration tests: an OwnerContext against a running `se start` process, regtest funds for
// wallets, and receiver identities; for enclaves driven in process, instance keys whose ring-Pedersen
// parameters come from checked-in safe primes (test data: fresh ones cost seconds of CPU).
import { readFileSync } from "node:fs";
import path from "node:path";
import * as bitcoin from "bitcoinjs-lib";
import { loadPcrPolicy } from "../../attestation/pcr-policy.ts";
import { BitcoindChain } from "../../chain/bitcoind.ts";
import { ringPedersenCache } from "../../client/attested-policy.ts";
import { type OwnerContext, pub, type ReceiverIdentity, randomSecret } from "../../client/owner.ts";
import { SeClient } from "../../client/se-client.ts";
import { type InstanceKeys, instanceKeysFrom } from "../../enclave/instance.ts";
import { instancePublicKey } from "../../protocol/ecdsa2p/partial-statement.ts";
import { ringPedersenFromPrimes, verifyRingPedersen } from "../../protocol/ecdsa2p/ring-pedersen.ts";
import { systemRng } from "../../protocol/rng.ts";
import { p2wpkhScript } from "../../protocol/tx/script.ts";
import type { SeProcess } from "./se-process.ts";

const primes = JSON.parse(
  readFileSync(
    path.join(import.meta.dirname, "../protocol/ecdsa2p/fixtures/ring-pedersen-primes.json"),
    "utf8",
  ),
);
let instance: InstanceKeys | undefined;
/** Instance keys for an enclave built in a test (one set per test process; the trapdoor is wiped). */
export function testInstanceKeys(): InstanceKeys {
  instance ??= instanceKeysFrom(
    ringPedersenFromPrimes(BigInt(`0x${primes.p}`), BigInt(`0x${primes.q}`), systemRng),
  );
  return instance;
}

/** What an owner takes from such an enclave's attested identity: its verified parameters and instance key. */
export function ownerViewOf(keys: InstanceKeys) {
  return {
    ringPedersen: verifyRingPedersen(keys.ringPedersen, ringPedersenCache),
    instanceKey: instancePublicKey(keys.publicKey),
  };
}

export interface Harness {
  ctx: OwnerContext;
  chain: BitcoindChain;
  close(): void;
}

/** Wallet-side context for the SE `se`: its chain through the embedded node's RPC, attestation trust from its
 * published (simulator) root and measurements — trusted explicitly, as a developer does in simulator mode. */
export async function ownerHarness(
  se: SeProcess,
  opts: { onProgress?: OwnerContext["onProgress"]; allowUnpublished?: boolean } = {},
): Promise<Harness> {
  const rpc = JSON.parse(readFileSync(path.join(se.dataDir, "bitcoin-rpc.json"), "utf8"));
  const chain = new BitcoindChain({
    url: rpc.url,
    user: rpc.user,
    password: rpc.password,
    network: "regtest",
  });
  const client = new SeClient(`127.0.0.1:${se.port}`, { rng: systemRng });
  const info = await client.call("getInfo", {});
  const ctx: OwnerContext = {
    se: client,
    chain,
    network: bitcoin.networks.regtest,
    rng: systemRng,
    now: Date.now,
    trust: {
      aws: false,
      simulatorRootPem: info.enclave!.simulatorRootPem,
      pcrPolicy: loadPcrPolicy({
        releases: info.enclave!.expectedPcrs.map((r) => ({
          name: r.name,
          pcr0: r.pcr0,
          pcr1: r.pcr1,
          pcr2: r.pcr2,
        })),
      }),
    },
    feeRateSatVb: 2,
    // Most tests run an SE without Mainstay, or receive before its next commitment: they accept unpublished
    // coins explicitly. The tests of the proof of publication itself turn this off (the wallet's default).
    allowUnpublished: opts.allowUnpublished ?? true,
    onProgress: opts.onProgress,
  };
  return { ctx, chain, close: () => client.close() };
}

/** A wallet key with one mature regtest coinbase (50 BTC) to deposit from. */
export async function fundedWallet(chain: BitcoindChain) {
  const privateKey = randomSecret(systemRng);
  const script = p2wpkhScript(pub(privateKey));
  await chain.mine(1, script);
  await chain.mine(100);
  const utxos = (await chain.findUtxos(script)).map((u) => ({ ...u, privateKey }));
  return { privateKey, script, utxos };
}

export function newIdentity(): ReceiverIdentity & { address: { proofKey: Buffer; backupKey: Buffer } } {
  const proofSecret = randomSecret(systemRng);
  const backupSecret = randomSecret(systemRng);
  return { proofSecret, backupSecret, address: { proofKey: pub(proofSecret), backupKey: pub(backupSecret) } };
}
