// Owner-side helpers for host tests: a harness whose SE client steps through every call, restarts of the host it
// follows, the "who can co-sign this coin" check behind "exactly one owner, never two, never none", and what the
// chain says of a coin's exits.
import { readFileSync } from "node:fs";
import path from "node:path";
import { type BroadcastRejection, ChainError } from "../../../chain/backend.ts";
import { BitcoindChain } from "../../../chain/bitcoind.ts";
import { coSign, lockFor, type OwnedCoin, pub } from "../../../client/owner.ts";
import { SeError } from "../../../client/se-client.ts";
import { SignPurpose, type StatechainStatus } from "../../../proto/gen/common.ts";
import { buildBackupTx } from "../../../protocol/tx/build.ts";
import { txidToHex } from "../../../protocol/tx/parse.ts";
import { type Harness, ownerHarness } from "../../helpers/owners.ts";
import type { SeProcess } from "../../helpers/se-process.ts";
import { SteppingClient } from "./calls.ts";

export interface SteppingHarness extends Harness {
  client: SteppingClient;
  /** Points the wallet at a restarted host (new gRPC port; a new chain endpoint when the host embeds it). */
  follow(se: SeProcess): void;
}

export function chainOf(se: SeProcess): BitcoindChain {
  const rpc = JSON.parse(readFileSync(path.join(se.dataDir, "bitcoin-rpc.json"), "utf8"));
  return new BitcoindChain({ url: rpc.url, user: rpc.user, password: rpc.password, network: "regtest" });
}

export async function steppingHarness(se: SeProcess): Promise<SteppingHarness> {
  const h = await ownerHarness(se);
  h.close();
  const client = new SteppingClient(`127.0.0.1:${se.port}`);
  h.ctx.se = client;
  const out: SteppingHarness = {
    ctx: h.ctx,
    chain: h.chain,
    client,
    close: () => client.close(),
    follow(next) {
      client.retarget(`127.0.0.1:${next.port}`);
      if (next.dataDir !== se.dataDir || next.info.bitcoinRpc) {
        const chain = chainOf(next);
        out.ctx.chain = chain;
        out.chain = chain;
      }
    },
  };
  return out;
}

/**
 * Asks the SE to co-sign a fresh backup for `coin`'s owner (its own backup key and lock). Resolves true when the
 * SE co-signs, or with the gRPC status it refused with.
 */
export async function tryCoSign(h: Harness, coin: OwnedCoin): Promise<true | number> {
  const backup = buildBackupTx({
    mode: "absolute",
    spend: { txid: coin.statechainId.txid, vout: coin.statechainId.vout },
    spendAmountSat: coin.amountSat,
    backupKey: pub(coin.backupSecret),
    lock: lockFor(coin.initialLock, coin.interval, coin.ownerIndex),
    feeRateSatVb: 2,
  });
  try {
    await coSign(h.ctx, coin, SignPurpose.SIGN_PURPOSE_BACKUP, backup.raw, coin.amountSat);
    return true;
  } catch (err) {
    if (err instanceof SeError) return err.code;
    throw err;
  }
}

/** Waits (up to 20 s) until the SE reports `coin` in state `want`, e.g. once its monitor noticed an enclave restart. */
export async function untilStatus(
  h: SteppingHarness,
  coin: OwnedCoin,
  want: StatechainStatus,
): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const sc = await h.client.current.call("getStatechain", { statechainId: coin.statechainId });
    if (sc.status === want) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the SE did not report the coin in state ${want} within 20 s`);
}

/** For assert.rejects: the chain refused a broadcast for `code`. */
export const rejection = (code: BroadcastRejection) => (e: unknown) =>
  e instanceof ChainError && e.code === code;

/** The coin's statechain output while it is unspent (undefined once a backup or withdrawal spent it). */
export function statechainUtxo(h: Harness, coin: OwnedCoin) {
  return h.chain.getUtxo(txidToHex(coin.statechainId.txid), coin.statechainId.vout);
}
