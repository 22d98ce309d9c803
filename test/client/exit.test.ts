// `wallet exit` waits with a deadline: --timeout stops the wait with EXIT_TIMEOUT (the state saved, so running
// the exit again resumes it), and each wait reports the network for the ETA and the regtest mining hint.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as bitcoin from "bitcoinjs-lib";
import type { ChainBackend } from "../../chain/backend.ts";
import { type ExitState, exitByBackup } from "../../client/exit.ts";

function backupWithLock(locktime: number): Uint8Array {
  const tx = new bitcoin.Transaction();
  tx.version = 2;
  tx.locktime = locktime;
  tx.addInput(Buffer.alloc(32, 1), 0, 0xfffffffe);
  tx.addOutput(Buffer.from([0x00, 0x14, ...Buffer.alloc(20, 2)]), 90_000n);
  return tx.toBuffer();
}

const chainAt = (tip: number) =>
  ({
    network: "regtest",
    tipHeight: async () => tip,
    getTxStatus: async () => undefined,
  }) as unknown as ChainBackend;

test("exit: --timeout ends the wait for the lock with EXIT_TIMEOUT and where it stands; the state is kept", async () => {
  let t = 0;
  const saved: ExitState[] = [];
  const events: Array<[string, Record<string, unknown> | undefined]> = [];
  await assert.rejects(
    exitByBackup(
      { backupMode: "absolute", backupTx: backupWithLock(1000), amountSat: 100_000n },
      {
        chain: chainAt(900),
        feeRateSatVb: 2,
        changeScript: new Uint8Array(22),
        timeoutMs: 30_000,
        now: () => t,
        onWait: async () => {
          t += 10_000;
        },
        save: async (st) => {
          saved.push(st);
        },
        onProgress: (e, d) => events.push([e, d]),
      },
    ),
    (e: Error & { code?: string }) => {
      assert.equal(e.code, "EXIT_TIMEOUT");
      assert.match(
        e.message,
        /still exiting after 30 s: the backup may go out once the tip reaches 1000 \(to be mined from height 1001\), the tip is 900/,
      );
      return true;
    },
  );
  assert.equal(t, 30_000, "three polls, then the deadline");
  assert.equal(saved.at(-1)?.stage, "waiting-lock");
  const wait = events.find(([e]) => e === "wait-blocks")![1]!;
  // nLockTime 1000: final in block 1001, so the mempool takes it once the tip is 1000.
  assert.deepEqual(wait, { tip: 900, target: 1000, left: 100, network: "regtest" });
});
