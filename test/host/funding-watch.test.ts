// The funding watch (issue #19.8) against a scripted chain: which funding is lost and when (a double spend at
// once, a missing funding after the grace, a coin awaiting confirmation never for being unsent), and that every
// mark is lifted when the funding is back. The real reorg, with real processes, is
// test/integration/funding-reorg.test.ts.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { Transaction } from "bitcoinjs-lib";
import type { ChainBackend, TxStatus, Utxo } from "../../chain/backend.ts";
import { Db } from "../../common/sqlite.ts";
import { checkFunding, FundingWatch, fundingLost } from "../../host/funding-watch.ts";
import { HOST_MIGRATIONS, Store } from "../../host/store.ts";
import { FundingState, StatechainStatus } from "../../proto/gen/common.ts";

/** A chain whose transactions and unspent outputs the test sets by hand. */
class ScriptedChain {
  tip = 500;
  readonly txs = new Map<string, TxStatus>();
  readonly utxos = new Set<string>();
  private readonly listeners: ((h: number) => void)[] = [];
  async tipHeight() {
    return this.tip;
  }
  async getTxStatus(txid: string) {
    return this.txs.get(txid);
  }
  async getUtxo(txid: string, vout: number): Promise<Utxo | undefined> {
    if (!this.utxos.has(`${txid}:${vout}`)) return undefined;
    return { txid, vout, valueSat: 1n, script: new Uint8Array(22), confirmations: 1, coinbase: false };
  }
  onBlock(l: (h: number) => void) {
    this.listeners.push(l);
    return () => {};
  }
  asBackend = () => this as unknown as ChainBackend;
}

const confirmed: TxStatus = { confirmations: 3, blockHeight: 498, inMempool: false };

/** A funding transaction spending one output of a parent the chain knows (by default). */
function fundingOf(chain: ScriptedChain, opts: { parentKnown?: boolean } = {}) {
  const parent = randomBytes(32);
  const tx = new Transaction();
  tx.version = 2;
  tx.addInput(parent, 1);
  tx.addOutput(Buffer.alloc(22, 1), 100_000n);
  const parentTxid = Buffer.from(parent).reverse().toString("hex");
  if (opts.parentKnown ?? true) chain.txs.set(parentTxid, confirmed);
  return { raw: tx.toBuffer(), txid: tx.getId(), input: `${parentTxid}:1` };
}

const GRACE = 3;

test("a funding in chain or mempool is OK; gone with its input spent elsewhere is a double spend at once", async () => {
  const chain = new ScriptedChain();
  const f = fundingOf(chain);
  const live = { status: StatechainStatus.STATECHAIN_STATUS_ACTIVE, fundingTx: f.raw, vout: 0 };
  chain.txs.set(f.txid, confirmed);
  assert.deepEqual(await checkFunding(chain.asBackend(), live, chain.tip, GRACE), {
    state: FundingState.FUNDING_STATE_OK,
  });
  // Reorged out, back in the mempool: not lost.
  chain.txs.set(f.txid, { confirmations: 0, inMempool: true });
  assert.equal(
    (await checkFunding(chain.asBackend(), live, chain.tip, GRACE)).state,
    FundingState.FUNDING_STATE_OK,
  );
  // A backend that cannot look the funding up (no txindex) but sees its output unspent: OK.
  chain.txs.delete(f.txid);
  chain.utxos.add(`${f.txid}:0`);
  assert.equal(
    (await checkFunding(chain.asBackend(), live, chain.tip, GRACE)).state,
    FundingState.FUNDING_STATE_OK,
  );
  chain.utxos.delete(`${f.txid}:0`);
  // Gone, and its input is spent (by another transaction: the funding itself is nowhere).
  const v = await checkFunding(chain.asBackend(), live, chain.tip, GRACE);
  assert.equal(v.state, FundingState.FUNDING_STATE_DOUBLE_SPENT);
  assert.match(v.problem ?? "", new RegExp(`${f.txid}.*input 0 \\(${f.input}\\).*double spend`));
  assert.equal(v.missingSince, chain.tip);
  // Awaiting confirmation too: a funding whose input someone else spent can never confirm.
  const awaiting = {
    status: StatechainStatus.STATECHAIN_STATUS_AWAITING_CONFIRMATION,
    fundingTx: f.raw,
    vout: 0,
  };
  assert.equal(
    (await checkFunding(chain.asBackend(), awaiting, chain.tip, GRACE)).state,
    FundingState.FUNDING_STATE_DOUBLE_SPENT,
  );
});

test("a funding gone with its inputs unspent is missing only after the grace, and never for a coin awaiting confirmation", async () => {
  const chain = new ScriptedChain();
  const f = fundingOf(chain);
  chain.utxos.add(f.input);
  const live = { status: StatechainStatus.STATECHAIN_STATUS_TRANSFER_PENDING, fundingTx: f.raw, vout: 0 };
  const first = await checkFunding(chain.asBackend(), live, 500, GRACE);
  assert.deepEqual(first, { state: FundingState.FUNDING_STATE_OK, missingSince: 500 });
  const within = await checkFunding(chain.asBackend(), { ...live, missingSince: 500 }, 502, GRACE);
  assert.equal(within.state, FundingState.FUNDING_STATE_OK, "two blocks: within the grace of three");
  const past = await checkFunding(chain.asBackend(), { ...live, missingSince: 500 }, 503, GRACE);
  assert.equal(past.state, FundingState.FUNDING_STATE_MISSING);
  assert.match(
    past.problem ?? "",
    /neither the chain nor the mempool since height 500 \(3 blocks; the SE waits 3\)/,
  );
  // A parent the chain does not know either (a deeper reorg): missing, not a double spend.
  const orphan = fundingOf(chain, { parentKnown: false });
  const v = await checkFunding(
    chain.asBackend(),
    { ...live, fundingTx: orphan.raw, missingSince: 400 },
    503,
    GRACE,
  );
  assert.equal(v.state, FundingState.FUNDING_STATE_MISSING);
  // Not sent yet is what a deposit awaiting confirmation looks like (the backup is co-signed first).
  const awaiting = {
    status: StatechainStatus.STATECHAIN_STATUS_AWAITING_CONFIRMATION,
    fundingTx: f.raw,
    vout: 0,
  };
  assert.deepEqual(await checkFunding(chain.asBackend(), { ...awaiting, missingSince: 1 }, 503, GRACE), {
    state: FundingState.FUNDING_STATE_OK,
  });
});

test("the watch marks and unmarks the coins in the database, counts them, and keeps a double spend's start", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "funding-watch-"));
  const db = await Db.open(path.join(dir, "host.sqlite"), HOST_MIGRATIONS);
  const store = new Store(db);
  const chain = new ScriptedChain();
  const coins = [0, 1].map(() => fundingOf(chain));
  for (const [i, f] of coins.entries()) {
    const dep = randomBytes(16);
    const id = Buffer.concat([Buffer.from(f.txid, "hex").reverse(), Buffer.alloc(4)]);
    await db.run(
      "INSERT INTO deposits (deposit_id, proof_key, enclave_instance, created_at) VALUES (?, ?, ?, ?)",
      [dep, randomBytes(33), randomBytes(16), 0],
    );
    await db.run(
      `INSERT INTO statechains (statechain_id, deposit_id, status, amount_sat, shared_public_key, owner_index,
         deposit_proof_key, proof_key, state_hash, backup_mode, initial_lock, funding_tx, enclave_instance, created_at, updated_at)
       VALUES (?, ?, ?, 100000, ?, 1, ?, ?, ?, 1, 1500, ?, ?, ?, 0)`,
      [
        id,
        dep,
        StatechainStatus.STATECHAIN_STATUS_ACTIVE,
        randomBytes(33),
        randomBytes(33),
        randomBytes(33),
        randomBytes(32),
        f.raw,
        randomBytes(16),
        i,
      ],
    );
    chain.txs.set(f.txid, confirmed);
  }
  const lines: string[] = [];
  const log = {
    info: (_o: object, m: string) => void lines.push(m),
    warn: (_o: object, m: string) => void lines.push(m),
  };
  let lost = -1;
  const watch = new FundingWatch({
    store,
    chain: chain.asBackend(),
    log,
    graceBlocks: GRACE,
    onPass: (n) => (lost = n),
  });
  const states = async () =>
    (
      await db.all<{ funding_state: number; funding_missing_since: number | null }>(
        "SELECT funding_state, funding_missing_since FROM statechains ORDER BY created_at",
      )
    ).map((r) => [FundingState[r.funding_state], r.funding_missing_since]);

  await watch.tick();
  assert.deepEqual(await states(), [
    ["FUNDING_STATE_OK", null],
    ["FUNDING_STATE_OK", null],
  ]);
  assert.equal(lost, 0);

  // Coin 0 double spent, coin 1 gone with its input unspent.
  chain.txs.delete(coins[0]!.txid);
  chain.txs.delete(coins[1]!.txid);
  chain.utxos.add(coins[1]!.input);
  await watch.tick();
  assert.deepEqual(await states(), [
    ["FUNDING_STATE_DOUBLE_SPENT", 500],
    ["FUNDING_STATE_OK", 500],
  ]);
  assert.equal(lost, 1);
  assert.ok(
    lines.some((l) => /refuses to co-sign or transfer/.test(l)),
    "the mark is logged",
  );
  const row = await store.statechainsByStatus([StatechainStatus.STATECHAIN_STATUS_ACTIVE]);
  assert.ok(fundingLost(row[0]!.funding_state), "coin 0 is lost");
  assert.match(row[0]!.funding_problem ?? "", /double spend/);

  // The double spend itself undone (its input unspent again): missing since the funding first left, so the
  // grace is already over at 503.
  chain.utxos.add(coins[0]!.input);
  chain.tip = 503;
  await watch.tick();
  assert.deepEqual(await states(), [
    ["FUNDING_STATE_MISSING", 500],
    ["FUNDING_STATE_MISSING", 500],
  ]);
  assert.equal(lost, 2);

  // Both fundings back (rebroadcast, mined again): unmarked, and the words go.
  chain.txs.set(coins[0]!.txid, { confirmations: 0, inMempool: true });
  chain.txs.set(coins[1]!.txid, confirmed);
  chain.tip = 504;
  await watch.tick();
  assert.deepEqual(await states(), [
    ["FUNDING_STATE_OK", null],
    ["FUNDING_STATE_OK", null],
  ]);
  assert.equal(lost, 0);
  assert.ok(
    lines.some((l) => /back in the chain or mempool/.test(l)),
    "the lifted mark is logged",
  );
  const back = await store.statechainsByStatus([StatechainStatus.STATECHAIN_STATUS_ACTIVE]);
  assert.equal(back[0]!.funding_problem, null);
  await watch.processedHeight(504);
  await db.close();
});
